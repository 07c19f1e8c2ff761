"""The REST poller: a private ``schedule.Scheduler()`` in its own thread.

Jobs: balances (at start and every ``balances_every_s``), tickers for the configured markets,
open orders. ``schedule`` does not catch job exceptions, so every job is wrapped: a failure is
logged, counted and published as ``PollFailed``, and the next run happens on time. Jobs use
``every(n).seconds`` (never ``.at()``), so nothing depends on the local time zone.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

import schedule

from trader.clock import Clock
from trader.config import PollerConfig
from trader.errors import TraderError
from trader.events import ErrorKind, Event, PollFailed
from trader.exchange.gateway import Gateway
from trader.stats import Stats
from trader.workers import Worker

log = logging.getLogger(__name__)


class Poller(Worker):
    """Runs the polling jobs and publishes what they return."""

    name = "poller"

    def __init__(
        self,
        gateway: Gateway,
        publish: Callable[[Event], None],
        clock: Clock,
        stats: Stats,
        cfg: PollerConfig,
        symbols: Sequence[str],
    ) -> None:
        self._publish = publish
        self._clock = clock
        self._stats = stats
        self.scheduler = schedule.Scheduler()
        jobs: list[tuple[str, int, Callable[[], Sequence[Event]]]] = [
            ("balances", cfg.balances_every_s, gateway.fetch_balances),
            ("tickers", cfg.tickers_every_s, lambda: gateway.fetch_tickers(symbols)),
            ("open_orders", cfg.open_orders_every_s, lambda: gateway.fetch_open_orders(symbols)),
        ]
        for name, every, fetch in jobs:
            if every > 0:
                self.scheduler.every(every).seconds.do(self.run_job, name, fetch).tag(name)

    def run_job(self, name: str, fetch: Callable[[], Sequence[Event]]) -> None:
        """Run one job; publish its events, or a ``PollFailed`` when it raises."""
        try:
            events = fetch()
        except Exception as exc:  # noqa: BLE001 - schedule would let it kill the thread
            kind = exc.kind if isinstance(exc, TraderError) else ErrorKind.INTERNAL
            self._stats.incr(f"poll_failed.{name}")
            log.warning("poll %s failed: %s: %s", name, type(exc).__name__, exc)
            now = self._clock.now_ns()
            self._publish(PollFailed(ts_event=now, ts_recv=now, job=name, kind=kind,
                                     error=f"{type(exc).__name__}: {exc}"))
            return
        self._stats.incr(f"polled.{name}")
        for ev in events:
            self._publish(ev)

    def run_now(self, tag: str | None = None) -> None:
        """Run every job (or those tagged ``tag``) now, e.g. at start or after a reconnect."""
        for job in list(self.scheduler.jobs):
            if tag is None or tag in job.tags:
                job.run()

    def run(self, stop: threading.Event) -> None:
        """Run every job at start, then each on its schedule, until stopped."""
        self.run_now()
        while not stop.is_set():
            self.scheduler.run_pending()
            idle = self.scheduler.idle_seconds
            stop.wait(1.0 if idle is None else min(max(idle, 0.0), 1.0))
