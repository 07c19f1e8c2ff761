"""The order executor: a worker thread that sends commands through the gateway and publishes
what came back. It decides nothing (risk has decided).

A create is never blindly retried. When the outcome is unknown (timeout, 5xx, any temporary
error), the order becomes UNKNOWN and the executor looks it up by client id with backoff until
the exchange says what happened: found -> its fills (so positions follow; the store applies each
trade id once) and its status report; not found after ``lookup_attempts`` tries -> rejected (it
never reached the exchange). Invalid orders and insufficient funds are rejected at once.

Cancel: a cancel the exchange answers with "order not found" asks what became of the order and
publishes that report; when the exchange does not know it at all, the order is marked canceled
("not found on the exchange"), so nothing waits forever on a ghost order. Cancel-all cancels our
open orders, never external ones.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from trader.backoff import Backoff
from trader.clock import Clock
from trader.errors import (
    BusFullError,
    ErrorKind,
    ExchangeError,
    InvalidOrderError,
    OrderNotFoundError,
    TemporaryError,
)
from trader.events import (
    CancelAllOrders,
    CancelOrder,
    Command,
    Event,
    OrderCanceled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    SubmitOrder,
)
from trader.exchange.gateway import Gateway
from trader.model.orders import OrderStatus
from trader.model.units import DAY_NS, NS
from trader.stats import Stats
from trader.store.view import StoreView
from trader.workers import Worker

log = logging.getLogger(__name__)


@dataclass
class _Lookup:
    client_id: str
    symbol: str
    due: float
    since_ns: int  # fills are fetched from here on
    backoff: Backoff = field(repr=False)
    attempts: int = 0


FILLS_MARGIN_NS = 60 * NS  # clock skew between us and the exchange
LOOKUP_MAX_FACTOR = 64  # lookups back off up to 64 times lookup_backoff_s apart
FILLS_LOOKBACK_NS = DAY_NS  # how far back the fills of a vanished order are sought


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
        fills_later: str = "",
    ) -> None:
        """``fills_later`` says what fetches an order's fills when a lookup could not (the
        wiring knows whether reconciliation or the trades poll runs); empty: nothing does."""
        self._gateway = gateway
        self._publish = publish
        self._fills_later = fills_later
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
            self._cancel(cmd.client_id, cmd.symbol)
        elif isinstance(cmd, CancelAllOrders):
            orders = [o for o in self._view.open_orders(cmd.symbol) if not o.external]
            log.info(
                "cancel-all%s: %d open orders", f" {cmd.symbol}" if cmd.symbol else "", len(orders)
            )
            for order in orders:
                self._cancel(order.client_id, order.symbol)
        else:
            log.error("executor: unknown command %r", cmd)

    def _create(self, cmd: SubmitOrder) -> None:
        now = self._clock.now_ns
        try:
            events = self._gateway.create_order(cmd)
        except InvalidOrderError as exc:
            self._stats.incr("orders_rejected")
            events = [
                OrderRejected(
                    ts_event=now(),
                    ts_recv=now(),
                    client_id=cmd.client_id,
                    reason=str(exc),
                    kind=exc.kind,
                )
            ]
        except ExchangeError as exc:
            if not isinstance(exc, TemporaryError) and exc.kind is not ErrorKind.UNKNOWN_OUTCOME:
                events = [
                    OrderRejected(
                        ts_event=now(),
                        ts_recv=now(),
                        client_id=cmd.client_id,
                        reason=str(exc),
                        kind=exc.kind,
                    )
                ]
            else:
                events = self._unknown(cmd.client_id, cmd.symbol, exc)
        except Exception as exc:  # noqa: BLE001 - a gateway bug: the order may have gone out
            log.exception("executor: create %s raised", cmd.client_id)
            events = self._unknown(cmd.client_id, cmd.symbol, exc)
        self._emit(events)

    def _unknown(self, client_id: str, symbol: str, exc: Exception) -> list[Event]:
        self._stats.incr("orders_unknown")
        log.warning("order %s outcome unknown (%s); looking it up", client_id, exc)
        now = self._clock.now_ns()
        # No jitter: one lookup per order, nothing to spread out; a lookup's patience (the sum of
        # its delays) stays what lookup_attempts and lookup_backoff_s promise.
        backoff = Backoff(self._backoff, self._backoff * LOOKUP_MAX_FACTOR, jitter=0)
        self._lookups[client_id] = _Lookup(
            client_id,
            symbol,
            time.monotonic() + backoff.next_delay(),
            now - FILLS_MARGIN_NS,
            backoff,
        )
        return [
            OrderStatusUnknown(
                ts_event=now,
                ts_recv=now,
                client_id=client_id,
                reason=f"{type(exc).__name__}: {exc}",
            )
        ]

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
                    self._emit(
                        [
                            OrderRejected(
                                ts_event=now,
                                ts_recv=now,
                                client_id=lk.client_id,
                                reason=f"not on the exchange after {lk.attempts} lookups",
                                kind=ErrorKind.UNKNOWN_OUTCOME,
                            )
                        ]
                    )
                    continue
            except Exception as exc:  # noqa: BLE001 - keep looking, with backoff
                log.warning("lookup of %s failed: %s", lk.client_id, exc)
            else:
                if report.status is not OrderStatus.UNKNOWN:
                    del self._lookups[lk.client_id]
                    self._emit(
                        self._fills_of(lk.client_id, lk.symbol, lk.since_ns, report) + [report]
                    )
                    continue
            lk.due = now_m + lk.backoff.next_delay()

    def _wait_s(self) -> float:
        if not self._lookups:
            return 0.2
        return max(0.0, min(0.2, min(lk.due for lk in self._lookups.values()) - time.monotonic()))

    def _fills_of(
        self, client_id: str, symbol: str, since_ns: int, report: OrderStatusReport
    ) -> list[Event]:
        """The fills of an order found by a lookup (the create's answer, with them, was lost)."""
        if not report.filled:
            return []
        try:
            trades = self._gateway.fetch_my_trades(symbol, since_ns)
        except Exception as exc:  # noqa: BLE001 - the report still goes out
            log.warning(
                "fills of %s not fetched (%s); %s",
                client_id,
                exc,
                self._fills_later
                or "nothing fetches them again (reconciliation and "
                "the trades poll are off): check the account by hand",
            )
            return []
        return [t for t in trades if t.client_id == client_id]

    def _cancel(self, client_id: str, symbol: str) -> None:
        try:
            self._emit(self._gateway.cancel_order(client_id, symbol))
            return
        except OrderNotFoundError as exc:
            log.warning("cancel %s: %s; asking what became of it", client_id, exc)
        except Exception as exc:  # noqa: BLE001 - report, never kill the executor
            log.error("cancel %s failed: %s: %s", client_id, type(exc).__name__, exc)
            self._stats.incr("cancel_failed")
            return
        if client_id in self._lookups:
            return  # its outcome is being looked up already
        try:
            report = self._gateway.fetch_order(client_id, symbol)
        except OrderNotFoundError:
            now = self._clock.now_ns()
            self._emit(
                [
                    OrderCanceled(
                        ts_event=now,
                        ts_recv=now,
                        client_id=client_id,
                        reason="not found on the exchange",
                    )
                ]
            )
        except Exception as exc:  # noqa: BLE001
            log.error("lookup of %s after a failed cancel: %s", client_id, exc)
        else:
            since = self._clock.now_ns() - FILLS_LOOKBACK_NS
            self._emit(self._fills_of(client_id, symbol, since, report) + [report])

    def _emit(self, events: list[Event]) -> None:
        for ev in events:
            try:
                self._publish(ev)
            except BusFullError:
                pass  # logged as critical by the bus; reconciliation repairs the store
