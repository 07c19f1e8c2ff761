"""Worker threads and the supervisor that restarts them.

A worker does I/O in its own named thread and reports only through events. ``run(stop)`` must
return promptly once ``stop`` is set: waits use ``stop.wait(t)``, never ``time.sleep``. If
``run`` raises, the supervisor logs the traceback, publishes ``WorkerCrashed`` and calls ``run``
again after a capped exponential backoff (reset once a run has stayed up for ``healthy_s``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal

from trader.backoff import Backoff
from trader.clock import Clock
from trader.errors import BusFullError
from trader.events import Event, WorkerCrashed
from trader.stats import Stats

log = logging.getLogger(__name__)


class Worker:
    """Base class of worker threads."""

    name = "worker"

    def run(self, stop: threading.Event) -> None:
        """Do the work until ``stop`` is set."""
        raise NotImplementedError

    def close(self) -> None:
        """Unblock whatever ``run`` is blocked on (sockets); called once at stop."""


class Supervisor:
    """Starts workers in named threads, restarts crashed ones, stops and joins them."""

    def __init__(
        self,
        publish: Callable[[Event], None],
        clock: Clock,
        stats: Stats,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        healthy_s: float = 60.0,
    ) -> None:
        self._publish = publish
        self._clock = clock
        self._stats = stats
        self._backoff_s = (backoff_initial_s, backoff_max_s)
        self._healthy = healthy_s
        self._stop = threading.Event()
        self._workers: list[Worker] = []
        self._threads: list[threading.Thread] = []

    @property
    def workers(self) -> tuple[Worker, ...]:
        """The supervised workers."""
        return tuple(self._workers)

    def add(self, worker: Worker) -> None:
        """Supervise ``worker`` (before :meth:`start`)."""
        self._workers.append(worker)

    def start(self) -> None:
        """Start one thread per worker."""
        for worker in self._workers:
            # daemon: a thread that ignores stop cannot keep the process alive after the join
            # timeout; the shutdown path logs it by name instead.
            t = threading.Thread(target=self._loop, args=(worker,), name=worker.name, daemon=True)
            self._threads.append(t)
            t.start()

    def stop(self, timeout: float) -> list[str]:
        """Signal every worker, join them within ``timeout`` in all; return those still alive."""
        self._stop.set()
        for worker in self._workers:
            try:
                worker.close()
            except Exception:  # noqa: BLE001
                log.exception("closing %s failed", worker.name)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.error("workers still running after %.1fs: %s", timeout, ", ".join(alive))
        return alive

    def _loop(self, worker: Worker) -> None:
        # No jitter: one process restarting its own thread has nobody to spread out from, and the
        # delay it reports in WorkerCrashed is then the one it waits.
        backoff = Backoff(*self._backoff_s, jitter=0)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                worker.run(self._stop)
                return
            except Exception as exc:  # noqa: BLE001 - report and restart
                if time.monotonic() - started >= self._healthy:
                    backoff.reset()
                delay = backoff.next_delay()
                self._stats.incr("worker_crashes")
                log.exception("worker %s crashed; restarting in %.1fs", worker.name, delay)
                now = self._clock.now_ns()
                try:
                    self._publish(
                        WorkerCrashed(
                            ts_event=now,
                            ts_recv=now,
                            worker=worker.name,
                            error=f"{type(exc).__name__}: {exc}",
                            restart_in_s=Decimal(str(round(delay, 3))),
                        )
                    )
                except BusFullError:
                    pass  # already logged as critical by the bus
                if self._stop.wait(delay):
                    return
