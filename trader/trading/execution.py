"""The order executor: a worker thread that sends commands through the gateway and publishes
what came back. It decides nothing (risk has decided).

A create is never blindly retried. When the outcome is unknown (timeout, 5xx, any temporary
error), the order becomes UNKNOWN and the executor looks it up by client id with backoff until
the exchange says what happened: found -> its status report; not found after
``lookup_attempts`` tries -> rejected (it never reached the exchange). Invalid orders and
insufficient funds are rejected at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from trader.clock import Clock
from trader.errors import (
    BusFullError,
    ExchangeError,
    InvalidOrderError,
    OrderNotFoundError,
    TemporaryError,
)
from trader.events import (
    CancelAllOrders,
    CancelOrder,
    Command,
    ErrorKind,
    Event,
    OrderRejected,
    OrderStatus,
    OrderStatusUnknown,
    SubmitOrder,
)
from trader.exchange.gateway import Gateway
from trader.stats import Stats
from trader.store.view import StoreView
from trader.workers import Worker

log = logging.getLogger(__name__)


@dataclass
class _Lookup:
    client_id: str
    symbol: str
    due: float
    attempts: int = 0


class Executor(Worker):
    """Owns the order command queue; the only caller of the gateway's order methods."""

    name = "executor"

    def __init__(
        self,
        gateway: Gateway,
        publish: Callable[[Event], None],
        view: StoreView,
        clock: Clock,
        stats: Stats,
        lookup_attempts: int = 5,
        lookup_backoff_s: float = 0.5,
    ) -> None:
        self._gateway = gateway
        self._publish = publish
        self._view = view
        self._clock = clock
        self._stats = stats
        # Unbounded on purpose: the main thread must never block on it; risk bounds the rate.
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._lookups: dict[str, _Lookup] = {}
        self._attempts = lookup_attempts
        self._backoff = lookup_backoff_s

    # main thread ---------------------------------------------------------------------------

    def submit(self, cmd: Command) -> None:
        """Handler for commands: hand them to the executor thread (never blocks)."""
        self._commands.put(cmd)

    def pending(self) -> int:
        """Commands not yet sent plus orders being looked up."""
        return self._commands.qsize() + len(self._lookups)

    # executor thread -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Send commands as they come; look up unknown orders when due."""
        while not stop.is_set():
            try:
                cmd = self._commands.get(timeout=self._wait_s())
            except queue.Empty:
                cmd = None
            if cmd is not None:
                self.execute(cmd)
            self._run_lookups()

    def drain(self, deadline: float) -> None:
        """Send what is queued until the deadline (used by the shutdown path)."""
        while time.monotonic() < deadline:
            try:
                self.execute(self._commands.get_nowait())
            except queue.Empty:
                return

    def execute(self, cmd: Command) -> None:
        """Carry out one command."""
        if isinstance(cmd, SubmitOrder):
            self._create(cmd)
        elif isinstance(cmd, CancelOrder):
            self._call(lambda: self._gateway.cancel_order(cmd.client_id, cmd.symbol), "cancel")
        elif isinstance(cmd, CancelAllOrders):
            for order in self._view.open_orders(cmd.symbol):
                if not order.external:
                    self._call(
                        lambda o=order: self._gateway.cancel_order(o.client_id, o.symbol),
                        "cancel",
                    )
        else:
            log.error("executor: unknown command %r", cmd)

    def _create(self, cmd: SubmitOrder) -> None:
        now = self._clock.now_ns
        try:
            events = self._gateway.create_order(cmd)
        except InvalidOrderError as exc:
            self._stats.incr("orders_rejected")
            events = [OrderRejected(ts_event=now(), ts_recv=now(), client_id=cmd.client_id,
                                    reason=str(exc), kind=exc.kind)]
        except ExchangeError as exc:
            if not isinstance(exc, TemporaryError) and exc.kind is not ErrorKind.UNKNOWN_OUTCOME:
                events = [OrderRejected(ts_event=now(), ts_recv=now(), client_id=cmd.client_id,
                                        reason=str(exc), kind=exc.kind)]
            else:
                events = self._unknown(cmd.client_id, cmd.symbol, exc)
        except Exception as exc:  # noqa: BLE001 - a gateway bug: the order may have gone out
            log.exception("executor: create %s raised", cmd.client_id)
            events = self._unknown(cmd.client_id, cmd.symbol, exc)
        self._emit(events)

    def _unknown(self, client_id: str, symbol: str, exc: Exception) -> list[Event]:
        self._stats.incr("orders_unknown")
        log.warning("order %s outcome unknown (%s); looking it up", client_id, exc)
        self._lookups[client_id] = _Lookup(client_id, symbol, time.monotonic() + self._backoff)
        now = self._clock.now_ns()
        return [OrderStatusUnknown(ts_event=now, ts_recv=now, client_id=client_id,
                                   reason=f"{type(exc).__name__}: {exc}")]

    def _run_lookups(self) -> None:
        now_m = time.monotonic()
        for lk in [lk for lk in self._lookups.values() if lk.due <= now_m]:
            lk.attempts += 1
            try:
                report = self._gateway.fetch_order(lk.client_id, lk.symbol)
            except OrderNotFoundError:
                if lk.attempts >= self._attempts:
                    del self._lookups[lk.client_id]
                    now = self._clock.now_ns()
                    self._emit([OrderRejected(
                        ts_event=now, ts_recv=now, client_id=lk.client_id,
                        reason=f"not on the exchange after {lk.attempts} lookups",
                        kind=ErrorKind.UNKNOWN_OUTCOME)])
                    continue
            except Exception as exc:  # noqa: BLE001 - keep looking, with backoff
                log.warning("lookup of %s failed: %s", lk.client_id, exc)
            else:
                if report.status is not OrderStatus.UNKNOWN:
                    del self._lookups[lk.client_id]
                    self._emit([report])
                    continue
            lk.due = now_m + self._backoff * 2 ** min(lk.attempts, 6)

    def _wait_s(self) -> float:
        if not self._lookups:
            return 0.2
        return max(0.0, min(0.2, min(lk.due for lk in self._lookups.values()) - time.monotonic()))

    def _call(self, fn: Callable[[], list[Event]], what: str) -> None:
        try:
            self._emit(fn())
        except OrderNotFoundError as exc:
            log.warning("%s: %s", what, exc)
        except Exception as exc:  # noqa: BLE001 - report, never kill the executor
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)
            self._stats.incr(f"{what}_failed")

    def _emit(self, events: list[Event]) -> None:
        for ev in events:
            try:
                self._publish(ev)
            except BusFullError:
                pass  # logged as critical by the bus; reconciliation repairs the store
