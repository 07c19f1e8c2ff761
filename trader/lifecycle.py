"""The start and stop order of the running system (``trader.app`` builds it). :class:`Lifecycle`
is mixed into :class:`~trader.app.App`: it uses the objects the app built, declared below, and
nothing else.

Start: open the journal, bind the HTTP endpoint (either failing is a ``ConfigError``) -> record
``SessionStarted`` -> restore the saved ledger (``StateRestored``: the state file, or Redis) ->
load markets and balances (retried on rate limits, 5xx and network errors up to
``exchange.start_deadline_s``; a failed start is journaled) -> halt
trading until reconciled -> start the storage writers (journal, Redis), the executor, the
producers (feeds, poller, reconciler, HTTP endpoint) -> main loop; systemd READY once the
start-up reconciliation completed (at once without it).
Stop (Ctrl-C, SIGTERM, fatal error, one path): tell systemd STOPPING -> stop and join the
producers -> drain the bus before a deadline -> stop the executor and send what it still holds
(unless it is stuck in a request: then nothing more is sent, and the next start's reconciliation
settles the recorded orders) -> optional cancel-all -> close the gateway -> flush and stop the
storage writers, write what is left of the journal -> log totals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from trader.bus import Bus
from trader.clock import Clock
from trader.config import Config
from trader.engine import Engine, Registry
from trader.events import (
    CancelAllOrders,
    Event,
    ReconciliationCompleted,
    SessionStarted,
    ShutdownRequested,
)
from trader.exchange.gateway import Gateway
from trader.httpapi import HttpApi
from trader.journal import Journal
from trader.startup import StartRetry
from trader.stats import Stats
from trader.systemd import Notifier, StatusLine
from trader.trading.execution import Executor
from trader.trading.reconcile import Reconciler
from trader.trading.risk import HaltCause, Risk
from trader.trading.strategy import StrategyRunner
from trader.workers import Supervisor

log = logging.getLogger("trader")

PRODUCER_JOIN_S = 0.4
DRAIN_S = 0.2
EXECUTOR_JOIN_S = 0.2
STORAGE_JOIN_S = 2.0  # the writer's last flush is bounded by its socket timeout (1 s)
JOURNAL_CHECK_S = 1.0  # how often the main loop compares the journal's backlog with its cap


class Restorer(Protocol):
    """What start needs of the storage choice: its saved state as events."""

    @property
    def restore(self) -> Callable[[], list[Event]]:
        """The saved state as events."""
        ...


class Lifecycle:
    """Start, run, stop: the one ordered path each way."""

    cfg: Config
    clock: Clock
    session: str
    stats: Stats
    bus: Bus
    registry: Registry
    engine: Engine
    storage: Restorer
    gateway: Gateway
    risk: Risk
    runner: StrategyRunner
    executor: Executor
    reconciler: Reconciler
    producers: Supervisor
    executors: Supervisor
    storage_workers: Supervisor
    journal: Journal
    http: HttpApi | None
    systemd: Notifier
    status_line: StatusLine
    stop_event: threading.Event
    _notified_ready: bool

    def start(self) -> None:
        """Open the journal, restore saved state, load markets, start the workers, log the
        start-up summary; tell systemd READY now, or once the start-up reconciliation completed.

        Raises ``ConfigError`` before anything runs when the journal folder cannot be written or
        the HTTP port cannot be bound."""
        self.journal.open()
        if self.http is not None:
            self.http.bind()
        now = self.clock.now_ns()
        c = self.cfg
        self.engine.dispatch(
            SessionStarted(
                ts_event=now,
                ts_recv=now,
                session=self.session,
                exchange=c.exchange.name,
                mode=c.exchange.mode.value,
            )
        )
        # The saved ledger first, dispatched (and journaled) before any market or exchange event.
        for ev in self.storage.restore():
            self.engine.dispatch(ev)
        retry = StartRetry(c.exchange.start_deadline_s, self.stop_event)
        for ev in retry.call("loading markets", lambda: self.gateway.load_markets(c.trade.markets)):
            self.engine.dispatch(ev)
        # A signed request before any thread starts: bad keys end the start here, in one line.
        for ev in retry.call("fetching balances", self.gateway.fetch_balances):
            self.engine.dispatch(ev)
        if self.cfg.reconcile.enabled:
            for ev in self.risk.halt(HaltCause.RECONCILIATION, "awaiting start-up reconciliation"):
                self.engine.emit(ev)
            self.reconciler.request("start-up")
        self.storage_workers.start()
        self.executors.start()
        self.producers.start()
        log.info(
            "started %s: exchange %s (%s), markets %s, strategies %s, %d event types handled",
            c.general.name,
            c.exchange.name,
            c.exchange.mode,
            ", ".join(c.trade.markets),
            ", ".join(s.id for s in self.runner.strategies) or "none",
            len(self.registry.table()),
        )
        log.info("journal: %s", self.journal.folder.resolve())
        self.engine.every(JOURNAL_CHECK_S, self.journal.check_backlog)
        if not self.cfg.reconcile.enabled:
            self._ready()  # else once the start-up reconciliation completed

    def _ready_once_reconciled(self, _ev: ReconciliationCompleted) -> None:
        """systemd READY after the first reconciliation round, agreed or not: start-up is done,
        and whether trading is halted shows in the status line."""
        if not self._notified_ready:
            self._ready()

    def _ready(self) -> None:
        """READY, then the watchdog pings and status lines (systemd arms the watchdog at READY).
        They are engine timers, which fire only from the main loop: see systemd.py."""
        self._notified_ready = True
        if not self.systemd.enabled:
            return
        self.systemd.ready(self.status_line())
        if self.systemd.watchdog_interval_s:
            self.engine.every(self.systemd.watchdog_interval_s, self.systemd.watchdog)
        self.engine.every(
            self.cfg.general.stats_interval_s, lambda: self.systemd.status(self.status_line())
        )

    def abort_start(self, message: str) -> None:
        """A start that failed (no worker thread runs yet): record why, write the journal (so a
        replay shows it) and close the gateway."""
        now = self.clock.now_ns()
        # journaled only: the caller prints the one line, no handler has anything to do
        self.journal.record(
            ShutdownRequested(ts_event=now, ts_recv=now, reason=f"start failed: {message}")
        )
        self.journal.finish()
        self.gateway.close()

    def request_stop(self, reason: str) -> None:
        """Ask the main loop to stop (safe from a signal handler on the main thread)."""
        if not self.stop_event.is_set():
            now = self.clock.now_ns()
            self.engine.emit(ShutdownRequested(ts_event=now, ts_recv=now, reason=reason))
            self.stop_event.set()

    def shutdown(self) -> dict[str, Any]:
        """The one ordered stop path; returns the totals it logs."""
        t0 = time.monotonic()
        self.systemd.stopping()
        self.producers.stop(PRODUCER_JOIN_S)
        self.engine.drain(time.monotonic() + DRAIN_S)
        stuck = self.executors.stop(EXECUTOR_JOIN_S)
        if stuck:
            # The executor is blocked in a request (holding the gateway's lock until the
            # exchange timeout): sending more from here would block the exit on the network.
            # What it still holds is recorded (PENDING) and settled by the next start's
            # reconciliation, which looks each one up by client id.
            log.error(
                "executor busy at exit: %d queued command(s) not sent%s",
                self.executor.pending(),
                "; open orders NOT canceled"
                if self.cfg.execution.cancel_open_orders_on_exit
                else "",
            )
        else:
            self.executor.drain(time.monotonic() + DRAIN_S)
            if self.cfg.execution.cancel_open_orders_on_exit:
                now = self.clock.now_ns()
                self.executor.execute(CancelAllOrders(ts_event=now, ts_recv=now))
        left = self.engine.drain(time.monotonic() + DRAIN_S)
        self.gateway.close()
        self.storage_workers.stop(STORAGE_JOIN_S)
        self.journal.finish()
        self.systemd.close()
        totals = self.totals(left)
        log.info(
            "stopped in %.2fs: %d events dispatched (%s), %d conflated, %d left on the queue, "
            "%d journaled",
            time.monotonic() - t0,
            totals["dispatched_total"],
            ", ".join(f"{k} {v}" for k, v in sorted(totals["dispatched"].items())),
            totals["conflated"],
            totals["left_on_queue"],
            totals["journaled"],
        )
        return totals

    def totals(self, left: int = 0) -> dict[str, Any]:
        """Counters for the final log line (and tests)."""
        snap = self.stats.snapshot()
        return {
            "dispatched": snap["dispatched"],
            "dispatched_total": snap["dispatched_total"],
            "conflated": self.bus.conflated,
            "left_on_queue": left,
            "handler_errors": sum(snap["handler_errors"].values()),
            "journaled": self.journal.written,
        }
