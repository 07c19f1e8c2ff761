"""The paper gateway: a simulated account and order matching on top of real (or simulated)
market data, behind the same :class:`~trader.exchange.gateway.Gateway` Protocol as a live
exchange. Chosen once by the wiring; no other code knows it is trading on paper.

Matching rules (made to be honest rather than flattering):

- **Latency.** An order is acknowledged at once but works only ``latency_ms`` later, by the
  injected clock: it meets the first quote after that, not the one it was sent on.
- **Market orders** fill at the opposite side of the book (the ask for a buy), moved against us
  by ``slippage_bps``. With no quote yet they are rejected.
- **Limit orders** that cross the book when they start working fill at once at the opposite
  side, as a taker. Otherwise they rest and fill at their limit price, as a maker, only when the
  market trades *through* them: a public trade strictly beyond the price (below a buy, above a
  sell), or the opposite quote strictly beyond it (an ask below a resting buy). A trade *at* the
  price does not fill: others were queued there first.
- **Partial fills** (``partial_fills``): every fill is capped by the size the market shows (the
  quote's ``ask_size``/``bid_size`` for takers and quote crossings, the trade's size for trades
  through), shared by our orders in time priority; the rest fills on later quotes and trades.
- **Fees** are ``fee_rate`` of the notional, charged in the quote asset.
- **Funds.** An order locks what it may need (``used``): a buy its notional plus fee at the limit
  (market: the ask plus slippage), a sell its amount; an order the free balance cannot cover is
  rejected as insufficient funds. A market order whose price moved past what was locked takes
  the difference from free funds, or is canceled for the rest when there is none.

**Restart rule.** With an ``account_file``, the account (balances, working orders, the last
closed orders and fills) is saved after every change: written to a temporary file, flushed to
disk, then renamed over the old one, so a crash leaves either the old or the new file, never a
torn one. On start the file is loaded and ``starting_balances`` are ignored (delete the file to
start over). Working orders did not fill while the process was down, since no market data was
seen then; they resume matching on the first quotes and trades after the restart, and start-up
reconciliation adopts them (their client ids carry our prefix). A file that cannot be read stops
the start with a clear error rather than being overwritten.

The gateway keeps its own copy of the latest quotes (fed by the main thread's ``on_quote``) and
guards all its state with one lock, because the executor thread and the main thread both call it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping, Sequence

from trader.clock import Clock
from trader.errors import ConfigError, ErrorKind, OrderNotFoundError
from trader.events import (
    BalanceUpdate,
    Event,
    Liquidity,
    MarketUpdated,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    QuoteTick,
    StorageFailed,
    StorageRecovered,
    SubmitOrder,
    TradeTick,
    event_from_dict,
    event_to_dict,
)
from trader.exchange.gateway import MarketDataSource
from trader.model.market import split_symbol
from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.units import NS_PER_MS

log = logging.getLogger(__name__)

ZERO = Decimal(0)
MAX_CLOSED_ORDERS = 10_000
MAX_FILLS = 10_000
SAVED_CLOSED_ORDERS = 500  # closed orders kept in the account file (for lookups after a restart)
SAVED_FILLS = 1_000  # fills kept in the account file (for reconciliation after a restart)
FILE_VERSION = 1
COMPONENT = "paper-account"


@dataclass
class _PaperOrder:
    cmd: SubmitOrder
    exchange_id: str
    active_at: int  # ns: the order works from then on (latency)
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    locked: Decimal = ZERO  # funds held in ``used`` for it
    resting: bool = False  # it has met the book once and now waits as a maker
    fills: int = 0

    def report(self, now: int) -> OrderStatusReport:
        c = self.cmd
        return OrderStatusReport(
            ts_event=now, ts_recv=now, client_id=c.client_id, exchange_id=self.exchange_id,
            symbol=c.symbol, side=c.side, order_type=c.order_type, status=self.status,
            amount=c.amount, filled=self.filled, price=c.price,
            avg_price=(self.cost / self.filled) if self.filled else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cmd": event_to_dict(self.cmd), "exchange_id": self.exchange_id,
            "active_at": self.active_at, "status": self.status.value, "filled": str(self.filled),
            "cost": str(self.cost), "locked": str(self.locked), "resting": self.resting,
            "fills": self.fills,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _PaperOrder:
        cmd = event_from_dict(d["cmd"])
        if not isinstance(cmd, SubmitOrder):
            raise ValueError(f"not an order: {d['cmd']!r}")
        return cls(cmd, d["exchange_id"], int(d["active_at"]), OrderStatus(d["status"]),
                   Decimal(d["filled"]), Decimal(d["cost"]), Decimal(d["locked"]),
                   bool(d["resting"]), int(d["fills"]))


class PaperGateway:
    """Simulated account and matching engine; see the module docstring for the rules."""

    def __init__(
        self,
        source: MarketDataSource,
        clock: Clock,
        starting_balances: Mapping[str, Decimal],
        fee_rate: Decimal,
        slippage_bps: Decimal = ZERO,
        latency_ms: int = 0,
        partial_fills: bool = True,
        account_file: Path | None = None,
    ) -> None:
        self._source = source
        self._clock = clock
        self._fee_rate = fee_rate
        self._slippage = slippage_bps / Decimal(10_000)
        self._latency_ns = latency_ms * NS_PER_MS
        self._partial = partial_fills
        self._file = account_file
        self._save_failed = False
        self._lock = threading.Lock()
        self._free: dict[str, Decimal] = {a: Decimal(v) for a, v in starting_balances.items()}
        self._used: dict[str, Decimal] = {a: ZERO for a in starting_balances}
        self._quotes: dict[str, QuoteTick] = {}
        # What our fills took from the displayed size of the current quote: (quote, taken)
        self._taken: dict[tuple[str, Side], tuple[QuoteTick, Decimal]] = {}
        self._orders: OrderedDict[str, _PaperOrder] = OrderedDict()
        self._working: dict[str, dict[str, _PaperOrder]] = {}  # symbol -> client id -> order
        self._fills: list[OrderFilled] = []
        self._seq = 0
        if account_file is not None and account_file.exists():
            self._load(account_file)

    # ------------------------------------------------------------------ market data

    def load_markets(self, symbols: Sequence[str]) -> list[MarketUpdated]:
        """Delegated to the market-data source."""
        return self._source.load_markets(symbols)

    def fetch_tickers(self, symbols: Sequence[str]) -> list[QuoteTick]:
        """Delegated to the market-data source."""
        return self._source.fetch_tickers(symbols)

    def on_quote(self, ev: QuoteTick) -> list[Event]:
        """Main-thread handler: remember the book, match working orders against it."""
        with self._lock:
            self._quotes[ev.symbol] = ev
            return self._match(ev.symbol, None) if self._working.get(ev.symbol) else []

    def on_trade(self, ev: TradeTick) -> list[Event]:
        """Main-thread handler: a public trade through a resting limit fills it."""
        with self._lock:
            return self._match(ev.symbol, ev)

    # ------------------------------------------------------------------ account

    def fetch_balances(self) -> list[BalanceUpdate]:
        """Every asset's balance."""
        with self._lock:
            return [self._balance_event(a) for a in sorted(self._free)]

    def fetch_open_orders(self, symbols: Sequence[str]) -> list[OrderStatusReport]:
        """Working orders in ``symbols``."""
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
        """Acknowledge or reject an order; with no latency it meets the book at once."""
        now = self._clock.now_ns()
        with self._lock:
            if cmd.client_id in self._orders:
                return [self._reject(cmd, now, "duplicate client order id",
                                     ErrorKind.INVALID_ORDER)]
            if cmd.order_type is OrderType.LIMIT and (cmd.price is None or cmd.price <= 0):
                return [self._reject(cmd, now, "limit order without a price",
                                     ErrorKind.INVALID_ORDER)]
            quote = self._quotes.get(cmd.symbol)
            if quote is None:
                return [self._reject(cmd, now, "no market data yet", ErrorKind.TEMPORARY)]
            asset, need = self._funds_needed(cmd, quote)
            if self._free.get(asset, ZERO) < need:
                return [self._reject(
                    cmd, now, f"insufficient {asset}: need {need}, free "
                    f"{self._free.get(asset, ZERO)}", ErrorKind.INSUFFICIENT_FUNDS)]
            self._seq += 1
            order = _PaperOrder(cmd, f"paper-{self._seq}", now + self._latency_ns, locked=need)
            self._move(asset, -need, need)
            self._orders[cmd.client_id] = order
            self._working.setdefault(cmd.symbol, {})[cmd.client_id] = order
            self._trim()
            events: list[Event] = [OrderAccepted(ts_event=now, ts_recv=now,
                                                 client_id=cmd.client_id,
                                                 exchange_id=order.exchange_id)]
            if not self._latency_ns:
                events += self._match(cmd.symbol, None, only=order)
            if not any(isinstance(e, BalanceUpdate) and e.asset == asset for e in events):
                events.append(self._balance_event(asset, now))
            return events + self._save()

    def cancel_order(self, client_id: str, symbol: str) -> list[Event]:
        """Cancel a working order and release its funds."""
        now = self._clock.now_ns()
        with self._lock:
            order = self._orders.get(client_id)
            if order is None:
                raise OrderNotFoundError(f"paper: no order {client_id}")
            if order.status.is_final:
                return []
            events = self._close(order, OrderStatus.CANCELED, "canceled", now)
            return events + self._save()

    def close(self) -> None:
        """Nothing to release (the account file is written on every change)."""

    # ------------------------------------------------------------------ matching (locked)

    def _funds_needed(self, cmd: SubmitOrder, q: QuoteTick) -> tuple[str, Decimal]:
        base, quote = split_symbol(cmd.symbol)
        if cmd.side is Side.SELL:
            return base, cmd.amount
        price = cmd.price if cmd.order_type is OrderType.LIMIT else q.ask * (1 + self._slippage)
        assert price is not None
        return quote, cmd.amount * price * (1 + self._fee_rate)

    def _taker_price(self, cmd: SubmitOrder, q: QuoteTick) -> Decimal | None:
        """The price a taker gets now, or None when a limit order does not cross."""
        if cmd.side is Side.BUY:
            if cmd.order_type is OrderType.MARKET:
                return q.ask * (1 + self._slippage)
            assert cmd.price is not None
            return q.ask if cmd.price >= q.ask else None
        if cmd.order_type is OrderType.MARKET:
            return q.bid * (1 - self._slippage)
        assert cmd.price is not None
        return q.bid if cmd.price <= q.bid else None

    @staticmethod
    def _through(cmd: SubmitOrder, q: QuoteTick | None, trade: TradeTick | None) -> bool:
        """The market traded strictly through a resting limit's price."""
        assert cmd.price is not None
        if trade is not None:
            px = trade.price
        elif q is not None:
            px = q.ask if cmd.side is Side.BUY else q.bid
        else:
            return False
        return px < cmd.price if cmd.side is Side.BUY else px > cmd.price

    def _match(self, symbol: str, trade: TradeTick | None,
               only: _PaperOrder | None = None) -> list[Event]:
        working = self._working.get(symbol)
        if not working:
            return []
        now = self._clock.now_ns()
        q = self._quotes.get(symbol)
        trade_left = trade.size if trade is not None else ZERO
        events: list[Event] = []
        for order in [only] if only is not None else list(working.values()):
            if now < order.active_at:
                continue
            c = order.cmd
            if not order.resting:
                taker_px = self._taker_price(c, q) if q is not None else None
                if taker_px is not None:
                    if trade is None:  # takers meet quotes; a trade waits for the next quote
                        amount = self._take_shown(order, q)
                        events += self._fill(order, taker_px, amount, Liquidity.TAKER, now)
                        if c.order_type is OrderType.LIMIT:
                            order.resting = True  # the rest waits at its price
                    continue
                if c.order_type is OrderType.MARKET or q is None:
                    continue
                order.resting = True
            if not self._through(c, q, trade):
                continue
            if trade is not None:
                amount = self._take(order, trade_left)
                trade_left -= amount
            else:
                assert q is not None
                amount = self._take_shown(order, q)
            assert c.price is not None
            events += self._fill(order, c.price, amount, Liquidity.MAKER, now)
        if events and only is None:
            events += self._save()
        return events

    def _take(self, order: _PaperOrder, shown: Decimal) -> Decimal:
        remaining = order.cmd.amount - order.filled
        return min(remaining, max(shown, ZERO)) if self._partial else remaining

    def _take_shown(self, order: _PaperOrder, q: QuoteTick) -> Decimal:
        """Take from the size quote ``q`` shows to our side (a buy takes the ask's size); what
        earlier orders took from the same quote is gone."""
        key = (q.symbol, order.cmd.side)
        shown = q.ask_size if order.cmd.side is Side.BUY else q.bid_size
        taken = self._taken.get(key)
        if taken is not None and taken[0] is q:
            shown -= taken[1]
        else:
            taken = (q, ZERO)
        amount = self._take(order, shown)
        self._taken[key] = (q, taken[1] + amount)
        return amount

    def _fill(self, order: _PaperOrder, price: Decimal, amount: Decimal, liq: Liquidity,
              now: int) -> list[Event]:
        if amount <= 0 or order.status.is_final:
            return []
        c = order.cmd
        base, quote = split_symbol(c.symbol)
        notional = amount * price
        fee = notional * self._fee_rate
        if c.side is Side.BUY:
            if not self._spend(order, quote, notional + fee):
                return self._close(order, OrderStatus.CANCELED,
                                   f"insufficient {quote} at fill time", now)
            self._move(base, amount, ZERO)
        else:
            if not self._spend(order, base, amount):
                return self._close(order, OrderStatus.CANCELED,
                                   f"insufficient {base} at fill time", now)
            self._move(quote, notional - fee, ZERO)
        order.filled += amount
        order.cost += notional
        order.fills += 1
        final = order.filled >= c.amount
        fill = OrderFilled(
            ts_event=now, ts_recv=now, client_id=c.client_id, exchange_id=order.exchange_id,
            trade_id=f"{order.exchange_id}-{order.fills}", symbol=c.symbol,
            side=c.side, price=price, amount=amount, fee=fee, fee_asset=quote,
            filled_total=order.filled, is_final=final, liquidity=liq,
        )
        self._fills.append(fill)
        del self._fills[:-MAX_FILLS]
        if final:
            order.status = OrderStatus.FILLED
            self._release(order)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        return [fill, self._balance_event(base, now), self._balance_event(quote, now)]

    def _spend(self, order: _PaperOrder, asset: str, amount: Decimal) -> bool:
        """Pay ``amount`` from the order's locked funds, then from free funds."""
        from_locked = min(order.locked, amount)
        rest = amount - from_locked
        if rest > self._free.get(asset, ZERO):
            return False
        order.locked -= from_locked
        self._used[asset] = self._used.get(asset, ZERO) - from_locked
        self._free[asset] = self._free.get(asset, ZERO) - rest
        return True

    def _release(self, order: _PaperOrder) -> str:
        """Stop working ``order`` and free what it still holds; returns the locked asset."""
        c = order.cmd
        self._working.get(c.symbol, {}).pop(c.client_id, None)
        base, quote = split_symbol(c.symbol)
        asset = quote if c.side is Side.BUY else base
        self._move(asset, order.locked, -order.locked)
        order.locked = ZERO
        return asset

    def _close(self, order: _PaperOrder, status: OrderStatus, reason: str,
               now: int) -> list[Event]:
        order.status = status
        asset = self._release(order)
        if reason != "canceled":
            log.info("paper: %s %s: %s", status, order.cmd.client_id, reason)
        return [OrderCanceled(ts_event=now, ts_recv=now, client_id=order.cmd.client_id,
                              reason=reason), self._balance_event(asset, now)]

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

    # ------------------------------------------------------------------ the account file

    def _save(self) -> list[Event]:
        """Write the account atomically; a failure is logged and reported, never raised (the
        account in memory stays right and the next change tries again)."""
        if self._file is None:
            return []
        closed = [o for o in self._orders.values() if o.status.is_final][-SAVED_CLOSED_ORDERS:]
        working = [o for o in self._orders.values() if not o.status.is_final]
        data = {
            "version": FILE_VERSION,
            "seq": self._seq,
            "balances": {a: {"free": str(self._free[a]), "used": str(self._used.get(a, ZERO))}
                         for a in sorted(self._free)},
            "orders": [o.to_dict() for o in closed + working],
            "fills": [event_to_dict(f) for f in self._fills[-SAVED_FILLS:]],
        }
        now = self._clock.now_ns()
        tmp = self._file.with_name(self._file.name + ".tmp")
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._file)
        except OSError as exc:
            first = not self._save_failed
            self._save_failed = True
            if first:
                log.error("paper: cannot write the account file %s: %s", self._file, exc)
                return [StorageFailed(ts_event=now, ts_recv=now, component=COMPONENT,
                                      error=f"{self._file}: {exc}")]
            return []
        if self._save_failed:
            self._save_failed = False
            log.warning("paper: the account file %s is written again", self._file)
            return [StorageRecovered(ts_event=now, ts_recv=now, component=COMPONENT)]
        return []

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != FILE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {FILE_VERSION}")
            free = {a: Decimal(b["free"]) for a, b in data["balances"].items()}
            used = {a: Decimal(b["used"]) for a, b in data["balances"].items()}
            orders = [_PaperOrder.from_dict(o) for o in data["orders"]]
            fills = [event_from_dict(f) for f in data["fills"]]
            seq = int(data["seq"])
        except (OSError, ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise ConfigError(
                f"paper account file {path} cannot be read ({type(exc).__name__}: {exc}); "
                "fix it or delete it to start from paper.starting_balances"
            ) from None
        self._free, self._used, self._seq = free, used, seq
        self._fills = [f for f in fills if isinstance(f, OrderFilled)]
        for order in orders:
            self._orders[order.cmd.client_id] = order
            if not order.status.is_final:
                self._working.setdefault(order.cmd.symbol, {})[order.cmd.client_id] = order
        log.info("paper: account loaded from %s: %s; %d working orders (starting_balances "
                 "ignored; delete the file to start over)", path,
                 ", ".join(f"{a} {free[a] + used.get(a, ZERO)}" for a in sorted(free)) or "empty",
                 sum(len(w) for w in self._working.values()))
