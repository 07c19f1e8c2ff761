"""The store's order and fill ledger: orders through their state machine, the fills applied to
them once, and the positions those fills move.

Facts about the same order race to the store (the executor thread's answers against the main
thread's fills, a REST poll fetched before a stream message); arrival order is not their order.
So an order only moves forward, by its stage in the state machine
(:func:`~trader.model.orders.is_behind`: an acknowledgement or an ``open`` report after a fill
or a cancel) and, for a report of a live order, by its cumulative filled amount (a report
knowing fewer fills than were applied); what is older is ignored and counted in
``stale_updates``. The locking rules are the store's (:mod:`trader.store.memory`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from trader.config import StoreConfig
from trader.events import (
    STOP,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    Stop,
)
from trader.model.fills import apply_fill
from trader.model.market import split_symbol, usd_price
from trader.model.orders import OrderStatus, is_behind, is_legal
from trader.model.records import Fill, Order, Position
from trader.store.order_table import OrderTable

log = logging.getLogger(__name__)


class OrderLedger:
    """Orders, their fills and positions, with the store's lock: the base of
    :class:`~trader.store.memory.MemoryStore`, which adds the market data (and, through
    :meth:`_prices`, values a fee paid in a third asset)."""

    def __init__(self, config: StoreConfig, own_prefix: str = "") -> None:
        self._cfg = config
        self.own_prefix = own_prefix  # client ids starting with it are ours (see owns())
        self._lock = threading.Lock()  # the store's one lock: these tables and the subclass's
        self._orders = OrderTable()  # open orders indexed apart: no scan over the history
        self._positions: dict[str, Position] = {}
        # The one place that drops repeated fills (see on_order_filled), bounded.
        self._orphan_fills: OrderedDict[str, list[OrderFilled]] = OrderedDict()  # of unknown orders
        self._fills_seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self.duplicate_fills = 0
        self.illegal_transitions = 0
        self.late_fills = 0  # fills applied to the position after the order became final
        self.stale_updates = 0  # balances and order updates older than what is held, ignored

    def _prices(self) -> Mapping[str, Decimal | None]:
        """The latest price of every market (called under the lock); the market data is the
        subclass's."""
        raise NotImplementedError

    def on_order_submitted(self, ev: OrderSubmitted) -> None:
        """Record a new order in PENDING before it is sent (a client id is recorded once)."""
        order = Order(
            ev.client_id,
            ev.symbol,
            ev.side,
            ev.order_type,
            ev.amount,
            ev.price,
            OrderStatus.PENDING,
            strategy=ev.strategy,
            ts_update=ev.ts_recv,
        )
        with self._lock:
            known = ev.client_id in self._orders
            if not known:
                self._orders[ev.client_id] = order
                self._evict_orders()
        if known:  # a generator bug: never let a second order overwrite the first
            self.illegal_transitions += 1
            log.error("order %s submitted twice; the second is ignored", ev.client_id)

    def on_order_accepted(self, ev: OrderAccepted) -> None:
        """PENDING/UNKNOWN -> OPEN."""
        self._transition(ev.client_id, OrderStatus.OPEN, ev.ts_recv, exchange_id=ev.exchange_id)

    def on_order_rejected(self, ev: OrderRejected) -> None:
        """-> REJECTED."""
        self._transition(ev.client_id, OrderStatus.REJECTED, ev.ts_recv, reason=ev.reason)

    def on_order_canceled(self, ev: OrderCanceled) -> None:
        """-> CANCELED (or EXPIRED)."""
        status = OrderStatus.EXPIRED if ev.expired else OrderStatus.CANCELED
        self._transition(ev.client_id, status, ev.ts_recv, reason=ev.reason)

    def on_order_unknown(self, ev: OrderStatusUnknown) -> None:
        """-> UNKNOWN: the executor will look it up."""
        self._transition(ev.client_id, OrderStatus.UNKNOWN, ev.ts_recv, reason=ev.reason)

    def on_order_amended(self, ev: OrderAmended) -> None:
        """The exchange changed a live order in place: the same order, its new quantity (and
        price). An order unknown or already final is left as is, counted and logged."""
        with self._lock:
            order = self._orders.get(ev.client_id)
            if order is not None and order.is_open:
                self._orders[ev.client_id] = replace(
                    order,
                    amount=ev.amount,
                    price=ev.price or order.price,
                    exchange_id=order.exchange_id or ev.exchange_id,
                    ts_update=ev.ts_recv,
                )
                return
            self.illegal_transitions += 1
        log.warning(
            "amendment of order %s ignored: %s",
            ev.client_id,
            "unknown to the store" if order is None else f"it is {order.status}",
        )

    def screen_fill(self, ev: OrderFilled) -> Stop | None:
        """The one filter of repeated fills (the wiring's gate for ``OrderFilled``): ``STOP``,
        counted, for a fill already applied, so the journal and every handler see each fill
        once, whichever sources delivered it. Keyed by (symbol, exchange order id, trade id):
        exchanges number orders and trades per market, and a self-trade is one trade id for two
        orders; the bounded set also covers fills of orders we do not know, and an order's own
        record of its fills outlives the set's eviction (and a restart)."""
        key = (ev.symbol, ev.exchange_id, ev.trade_id)
        with self._lock:
            order = self._orders.get(ev.client_id)
            if key in self._fills_seen or (order is not None and order.has_fill(ev.trade_id)):
                self.duplicate_fills += 1
                return STOP
        return None

    def on_order_filled(self, ev: OrderFilled) -> Stop | None:
        """Apply a fill to its order and to the market's position, once: a repeat returns
        ``STOP``, so no later handler sees it either.

        A fill is a fact: it always moves the position, even when the order's status can no
        longer change (a fill delivered after a REST report already made the order final); the
        status alone follows the state machine. Every source (order answer, user stream, REST
        poll, lookup, reconciliation) reports every fill it sees; :meth:`screen_fill` drops the
        repeats. ``filled`` is the largest of what we knew, the exchange's cumulative amount
        and the sum of the fills applied.
        """
        if self.screen_fill(ev) is STOP:
            return STOP
        base, quote = split_symbol(ev.symbol)
        key = (ev.symbol, ev.exchange_id, ev.trade_id)
        late: Order | None = None
        with self._lock:
            order = self._orders.get(ev.client_id)
            if order is not None:
                self._orders[ev.client_id] = _with_fill(order, ev)
                if not is_legal(order.status, _fill_status(ev)):
                    late = order
            else:  # kept for the order's report, which may have been fetched before this fill
                self._orphan_fills.setdefault(ev.client_id, []).append(ev)
                if len(self._orphan_fills) > self._cfg.max_orders:
                    self._orphan_fills.popitem(last=False)
            self._fills_seen[key] = None
            if len(self._fills_seen) > 4 * self._cfg.max_orders:
                self._fills_seen.popitem(last=False)
            fee_value = None
            if ev.fee and ev.fee_asset not in (base, quote):
                fee_value = self._third_asset_fee(ev.fee, ev.fee_asset, quote)
            pos = self._positions.get(ev.symbol) or Position(ev.symbol)
            self._positions[ev.symbol] = apply_fill(
                pos, ev.side, ev.price, ev.amount, ev.fee, ev.fee_asset, base, quote, fee_value
            )
        if late is not None:
            self.late_fills += 1
            log.warning(
                "fill %s of order %s arrived after it became %s: position updated, status kept",
                ev.trade_id,
                ev.client_id,
                late.status,
            )
        return None

    def _third_asset_fee(self, fee: Decimal, asset: str, quote: str) -> Decimal | None:
        """A fee paid in a third asset (BNB) valued in the quote asset through USD prices."""
        prices = self._prices()
        fee_usd, quote_usd = usd_price(asset, prices), usd_price(quote, prices)
        if fee_usd is None or not quote_usd:
            return None
        return fee * fee_usd / quote_usd

    def owns(self, client_id: str) -> bool:
        """True for client ids this system generates (this session's or an earlier one's)."""
        return bool(self.own_prefix) and client_id.startswith(self.own_prefix)

    def on_order_report(self, ev: OrderStatusReport) -> None:
        """Take the exchange's view of an order. An order unknown to the store is recorded as
        external (left alone by cancel-all) unless its client id carries our prefix: then an
        earlier session placed it, and it is adopted (no strategy owns it). A report older than
        the order (an earlier stage, or fewer fills than applied while the order is live) is
        stale: ignored and counted."""
        stale: Order | None = None
        with self._lock:
            order = self._orders.get(ev.client_id)
            if order is None:
                order = Order(
                    ev.client_id,
                    ev.symbol,
                    ev.side,
                    ev.order_type,
                    ev.amount,
                    ev.price,
                    ev.status,
                    ev.filled,
                    ev.avg_price,
                    exchange_id=ev.exchange_id,
                    external=not self.owns(ev.client_id),
                    ts_update=ev.ts_recv,
                )
                # Fills applied while the order was unknown are newer than a report fetched
                # before them: they move it forward (a stale `open` never creates it open).
                for fill in self._orphan_fills.pop(ev.client_id, ()):
                    order = _with_fill(order, fill)
                self.stale_updates += order.status is not ev.status
                self._orders[ev.client_id] = order
                self._evict_orders()
                return
            if is_behind(order.status, ev.status) or (
                not ev.status.is_final and ev.filled < order.filled
            ):
                self.stale_updates += 1
                stale = order
            elif order.status != ev.status and not is_legal(order.status, ev.status):
                self._illegal(order, ev.status)
                return
            else:
                self._orders[ev.client_id] = replace(
                    order,
                    status=ev.status,
                    filled=max(order.filled, ev.filled),
                    avg_price=ev.avg_price or order.avg_price,
                    exchange_id=ev.exchange_id,
                    ts_update=ev.ts_recv,
                )
        if stale is not None:
            self._log_stale(stale, ev.status, ev.filled)

    def _log_stale(self, order: Order, status: OrderStatus, filled: Decimal | None) -> None:
        log.info(
            "stale update of order %s ignored: it is %s filled %s, the update says %s%s",
            order.client_id,
            order.status,
            order.filled,
            status,
            "" if filled is None else f" filled {filled}",
        )

    def _transition(self, client_id: str, status: OrderStatus, ts: int, **changes: Any) -> None:
        with self._lock:
            order = self._orders.get(client_id)
            if order is None:
                self.illegal_transitions += 1
                log.warning("order %s unknown to the store; %s ignored", client_id, status)
                return
            if is_legal(order.status, status):
                self._orders[client_id] = replace(order, status=status, ts_update=ts, **changes)
                return
            if not is_behind(order.status, status):
                self._illegal(order, status)
                return
            self.stale_updates += 1
        self._log_stale(order, status, None)

    def _illegal(self, order: Order, status: OrderStatus) -> None:
        self.illegal_transitions += 1
        log.warning(
            "illegal order transition %s: %s -> %s (ignored)", order.client_id, order.status, status
        )

    def _evict_orders(self) -> None:
        """Drop the oldest final orders beyond ``max_orders``; open ones are never evicted."""
        excess = len(self._orders) - self._cfg.max_orders
        if excess <= 0:
            return
        for cid in self._orders.oldest_final(excess):
            del self._orders[cid]


def _with_fill(order: Order, ev: OrderFilled) -> Order:
    """``order`` with the fill ``ev``: its status moves forward when the state machine allows
    (a late fill leaves a final status); ``filled`` is the largest of what was known, the
    exchange's cumulative amount and the sum of the fills."""
    status = _fill_status(ev)
    if not is_legal(order.status, status):
        status = order.status
    fills = (*order.fills, Fill(ev.trade_id, ev.price, ev.amount))
    by_fills = order.filled_by_fills + ev.amount
    cost = sum((f.price * f.amount for f in fills), Decimal(0))
    return replace(
        order,
        status=status,
        filled=max(order.filled, ev.filled_total, by_fills),
        avg_price=cost / by_fills if by_fills else order.avg_price,
        fee=order.fee + ev.fee,
        ts_update=ev.ts_recv,
        exchange_id=order.exchange_id or ev.exchange_id,
        fills=fills,
    )


def _fill_status(ev: OrderFilled) -> OrderStatus:
    return OrderStatus.FILLED if ev.is_final else OrderStatus.PARTIALLY_FILLED
