"""The paper gateway: a simulated account and order matching on top of real (or simulated)
market data, behind the same :class:`~trader.exchange.gateway.Gateway` Protocol as a live
exchange. Chosen once by the wiring; no other code knows it is trading on paper.

Matching rules (made to be honest rather than flattering):

- a market order fills at the opposite side of the latest quote (the ask for a buy), moved
  against us by ``slippage_bps``; with no quote yet it is rejected;
- a limit order that crosses the book fills at once at the opposite side, as a taker; otherwise
  it rests, its funds locked (``used``), and fills at its limit price, as a maker, when a later
  quote's opposite side or a public trade reaches it;
- fees are ``fee_rate`` of the notional, charged in the quote asset;
- an order the free balance cannot cover is rejected as insufficient funds.

The gateway keeps its own copy of the latest quotes (fed by the main thread's ``on_quote``) and
guards all its state with one lock, because the executor thread and the main thread both call it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Mapping, Sequence

from trader.clock import Clock
from trader.errors import OrderNotFoundError
from trader.events import (
    BalanceUpdate,
    ErrorKind,
    Event,
    Liquidity,
    MarketUpdated,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    OrderType,
    QuoteTick,
    Side,
    SubmitOrder,
    TradeTick,
)
from trader.exchange.gateway import MarketDataSource
from trader.store.memory import split_symbol

log = logging.getLogger(__name__)

ZERO = Decimal(0)
MAX_CLOSED_ORDERS = 10_000
MAX_FILLS = 10_000


@dataclass
class _PaperOrder:
    cmd: SubmitOrder
    exchange_id: str
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    locked: Decimal = ZERO  # funds held in ``used`` while it rests
    fills: list[OrderFilled] = field(default_factory=list)

    def report(self, now: int) -> OrderStatusReport:
        c = self.cmd
        return OrderStatusReport(
            ts_event=now, ts_recv=now, client_id=c.client_id, exchange_id=self.exchange_id,
            symbol=c.symbol, side=c.side, order_type=c.order_type, status=self.status,
            amount=c.amount, filled=self.filled, price=c.price,
            avg_price=(self.cost / self.filled) if self.filled else None,
        )


class PaperGateway:
    """Simulated account and matching engine; see the module docstring for the rules."""

    def __init__(
        self,
        source: MarketDataSource,
        clock: Clock,
        starting_balances: Mapping[str, Decimal],
        fee_rate: Decimal,
        slippage_bps: Decimal = ZERO,
    ) -> None:
        self._source = source
        self._clock = clock
        self._fee_rate = fee_rate
        self._slippage = slippage_bps / Decimal(10_000)
        self._lock = threading.Lock()
        self._free: dict[str, Decimal] = {a: Decimal(v) for a, v in starting_balances.items()}
        self._used: dict[str, Decimal] = {a: ZERO for a in starting_balances}
        self._quotes: dict[str, QuoteTick] = {}
        self._orders: OrderedDict[str, _PaperOrder] = OrderedDict()
        self._resting: dict[str, dict[str, _PaperOrder]] = {}  # symbol -> client id -> order
        self._fills: list[OrderFilled] = []
        self._seq = 0

    # ------------------------------------------------------------------ market data

    def load_markets(self, symbols: Sequence[str]) -> list[MarketUpdated]:
        """Delegated to the market-data source."""
        return self._source.load_markets(symbols)

    def fetch_tickers(self, symbols: Sequence[str]) -> list[QuoteTick]:
        """Delegated to the market-data source."""
        return self._source.fetch_tickers(symbols)

    def on_quote(self, ev: QuoteTick) -> list[Event]:
        """Main-thread handler: remember the book, fill resting limit orders it reaches."""
        with self._lock:
            self._quotes[ev.symbol] = ev
            return self._match_resting(ev.symbol, ev.ask, ev.bid)

    def on_trade(self, ev: TradeTick) -> list[Event]:
        """Main-thread handler: a public trade at or through a resting limit fills it."""
        with self._lock:
            return self._match_resting(ev.symbol, ev.price, ev.price)

    # ------------------------------------------------------------------ account

    def fetch_balances(self) -> list[BalanceUpdate]:
        """Every asset's balance."""
        with self._lock:
            return [self._balance_event(a) for a in sorted(self._free)]

    def fetch_open_orders(self, symbols: Sequence[str]) -> list[OrderStatusReport]:
        """Resting orders in ``symbols``."""
        now = self._clock.now_ns()
        with self._lock:
            return [
                o.report(now) for o in self._orders.values()
                if not o.status.is_final and o.cmd.symbol in symbols
            ]

    def fetch_order(self, client_id: str, symbol: str) -> OrderStatusReport:
        """One order by client id."""
        with self._lock:
            order = self._orders.get(client_id)
            if order is None:
                raise OrderNotFoundError(f"paper: no order {client_id}")
            return order.report(self._clock.now_ns())

    def fetch_my_trades(self, symbol: str, since_ns: int) -> list[OrderFilled]:
        """Our fills in ``symbol`` since ``since_ns``."""
        with self._lock:
            return [f for f in self._fills if f.symbol == symbol and f.ts_event >= since_ns]

    # ------------------------------------------------------------------ orders

    def create_order(self, cmd: SubmitOrder) -> list[Event]:
        """Accept, fill or reject an order at once against the latest quote."""
        now = self._clock.now_ns()
        with self._lock:
            if cmd.client_id in self._orders:
                return [OrderRejected(ts_event=now, ts_recv=now, client_id=cmd.client_id,
                                      reason="duplicate client order id")]
            quote = self._quotes.get(cmd.symbol)
            base, quote_asset = split_symbol(cmd.symbol)
            if quote is None:
                return [self._reject(cmd, now, "no market data yet", ErrorKind.TEMPORARY)]
            crosses, fill_px = self._crossing_price(cmd, quote)
            need_asset, need = self._funds_needed(cmd, fill_px if crosses else cmd.price)
            if self._free.get(need_asset, ZERO) < need:
                return [self._reject(
                    cmd, now, f"insufficient {need_asset}: need {need}, free "
                    f"{self._free.get(need_asset, ZERO)}", ErrorKind.INSUFFICIENT_FUNDS)]
            self._seq += 1
            order = _PaperOrder(cmd, exchange_id=f"paper-{self._seq}")
            self._orders[cmd.client_id] = order
            self._trim()
            events: list[Event] = [OrderAccepted(ts_event=now, ts_recv=now,
                                                 client_id=cmd.client_id,
                                                 exchange_id=order.exchange_id)]
            if crosses:
                events += self._fill(order, fill_px, Liquidity.TAKER, now)
            else:
                order.locked = need
                self._resting.setdefault(cmd.symbol, {})[cmd.client_id] = order
                self._move(need_asset, -need, need)
                events.append(self._balance_event(need_asset, now))
            return events

    def cancel_order(self, client_id: str, symbol: str) -> list[Event]:
        """Cancel a resting order and release its funds."""
        now = self._clock.now_ns()
        with self._lock:
            order = self._orders.get(client_id)
            if order is None:
                raise OrderNotFoundError(f"paper: no order {client_id}")
            if order.status.is_final:
                return []
            order.status = OrderStatus.CANCELED
            self._resting.get(symbol, {}).pop(client_id, None)
            asset = self._locked_asset(order.cmd)
            self._move(asset, order.locked, -order.locked)
            order.locked = ZERO
            return [OrderCanceled(ts_event=now, ts_recv=now, client_id=client_id,
                                  reason="canceled"), self._balance_event(asset, now)]

    def close(self) -> None:
        """Nothing to release."""

    # ------------------------------------------------------------------ internals (locked)

    def _crossing_price(self, cmd: SubmitOrder, q: QuoteTick) -> tuple[bool, Decimal]:
        if cmd.side is Side.BUY:
            px = q.ask * (1 + self._slippage) if cmd.order_type is OrderType.MARKET else q.ask
            return (cmd.order_type is OrderType.MARKET or cmd.price >= q.ask), px
        px = q.bid * (1 - self._slippage) if cmd.order_type is OrderType.MARKET else q.bid
        return (cmd.order_type is OrderType.MARKET or cmd.price <= q.bid), px

    def _funds_needed(self, cmd: SubmitOrder, price: Decimal) -> tuple[str, Decimal]:
        base, quote = split_symbol(cmd.symbol)
        if cmd.side is Side.BUY:
            return quote, cmd.amount * price * (1 + self._fee_rate)
        return base, cmd.amount

    @staticmethod
    def _locked_asset(cmd: SubmitOrder) -> str:
        base, quote = split_symbol(cmd.symbol)
        return quote if cmd.side is Side.BUY else base

    def _match_resting(self, symbol: str, ask: Decimal, bid: Decimal) -> list[Event]:
        resting = self._resting.get(symbol)
        if not resting:
            return []
        events: list[Event] = []
        now = self._clock.now_ns()
        for order in list(resting.values()):
            c = order.cmd
            assert c.price is not None
            if (c.side is Side.BUY and ask <= c.price) or (c.side is Side.SELL and bid >= c.price):
                del resting[c.client_id]
                asset = self._locked_asset(c)
                self._move(asset, order.locked, -order.locked)  # release, then pay
                order.locked = ZERO
                events += self._fill(order, c.price, Liquidity.MAKER, now)
        return events

    def _fill(self, order: _PaperOrder, price: Decimal, liq: Liquidity, now: int) -> list[Event]:
        c = order.cmd
        base, quote = split_symbol(c.symbol)
        amount = c.amount - order.filled
        notional = amount * price
        fee = notional * self._fee_rate
        if c.side is Side.BUY:
            self._move(quote, -(notional + fee), ZERO)
            self._move(base, amount, ZERO)
        else:
            self._move(base, -amount, ZERO)
            self._move(quote, notional - fee, ZERO)
        order.filled += amount
        order.cost += notional
        order.status = OrderStatus.FILLED
        fill = OrderFilled(
            ts_event=now, ts_recv=now, client_id=c.client_id, exchange_id=order.exchange_id,
            trade_id=f"{order.exchange_id}-{len(order.fills) + 1}", symbol=c.symbol,
            side=c.side, price=price, amount=amount, fee=fee, fee_asset=quote,
            filled_total=order.filled, is_final=True, liquidity=liq,
        )
        order.fills.append(fill)
        self._fills.append(fill)
        del self._fills[:-MAX_FILLS]
        return [fill, self._balance_event(base, now), self._balance_event(quote, now)]

    def _move(self, asset: str, free_delta: Decimal, used_delta: Decimal) -> None:
        self._free[asset] = self._free.get(asset, ZERO) + free_delta
        self._used[asset] = self._used.get(asset, ZERO) + used_delta

    def _balance_event(self, asset: str, now: int | None = None) -> BalanceUpdate:
        now = now if now is not None else self._clock.now_ns()
        free, used = self._free.get(asset, ZERO), self._used.get(asset, ZERO)
        return BalanceUpdate(ts_event=now, ts_recv=now, asset=asset, free=free, used=used,
                             total=free + used)

    def _reject(self, cmd: SubmitOrder, now: int, reason: str, kind: ErrorKind) -> OrderRejected:
        log.info("paper: rejected %s: %s", cmd.client_id, reason)
        return OrderRejected(ts_event=now, ts_recv=now, client_id=cmd.client_id, reason=reason,
                             kind=kind)

    def _trim(self) -> None:
        closed = [cid for cid, o in self._orders.items() if o.status.is_final]
        for cid in closed[: max(0, len(closed) - MAX_CLOSED_ORDERS)]:
            del self._orders[cid]
