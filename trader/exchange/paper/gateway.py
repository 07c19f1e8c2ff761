"""The paper gateway: matching on top of real (or simulated) market data, the account's funds
and file kept by its siblings; see the package docstring for the rules."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from itertools import islice
from pathlib import Path

from trader.clock import Clock
from trader.codec import CodecError
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
    SubmitOrder,
    TradeTick,
)
from trader.exchange.gateway import MarketDataSource
from trader.exchange.paper import persistence
from trader.exchange.paper.account import Funds
from trader.exchange.paper.orders import (
    ZERO,
    PaperOrder,
    funds_needed,
    taker_price,
    trades_through,
)
from trader.exchange.paper.persistence import AccountWriter, SavedAccount, SavedBalance
from trader.model.market import split_symbol
from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.units import NS_PER_MS

log = logging.getLogger(__name__)

MAX_CLOSED_ORDERS = 10_000
MAX_FILLS = 10_000
SAVED_CLOSED_ORDERS = 500  # closed orders kept in the account file (for lookups after a restart)
SAVED_FILLS = 1_000  # fills kept in the account file (for reconciliation after a restart)


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
        publish: Callable[[Event], None] | None = None,
    ) -> None:
        """With an ``account_file``, the account is loaded from it when it exists, and
        :attr:`writer` (a worker to run) saves it, reporting failures through ``publish``."""
        self._source = source
        self._clock = clock
        self._fee_rate = fee_rate
        self._slippage = slippage_bps / Decimal(10_000)
        self._latency_ns = latency_ms * NS_PER_MS
        self._partial = partial_fills
        self._lock = threading.Lock()
        self._funds = Funds(
            {a: Decimal(v) for a, v in starting_balances.items()},
            {a: ZERO for a in starting_balances},
        )
        self._quotes: dict[str, QuoteTick] = {}
        # What our fills took from the displayed size of the current quote: (quote, taken)
        self._taken: dict[tuple[str, Side], tuple[QuoteTick, Decimal]] = {}
        self._orders: OrderedDict[str, PaperOrder] = OrderedDict()
        self._working: dict[str, dict[str, PaperOrder]] = {}  # symbol -> client id -> order
        # symbol -> (highest resting buy, lowest resting sell), while every working order of
        # that market rests: a quote crossing neither has nothing to match (most quotes)
        self._edges: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        self._closed: deque[str] = deque()  # final orders' client ids, in the order they ended
        self._fills: deque[OrderFilled] = deque(maxlen=MAX_FILLS)
        self._seq = 0
        self._last_ns = 0  # the account's time: never goes back (see _now)
        self.writer: AccountWriter | None = None
        if account_file is not None:
            if account_file.exists():
                self._load(account_file)
            self.writer = AccountWriter(account_file, self.snapshot, publish or _unused, clock)

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
            working = self._working.get(ev.symbol)
            if not working:
                return []
            edges = self._edges.get(ev.symbol) or self._resting_edges(ev.symbol, working)
            if edges is not None:
                buy, sell = edges
                if (buy is None or ev.ask >= buy) and (sell is None or ev.bid <= sell):
                    return []
            return self._match(ev.symbol, None)

    def _resting_edges(
        self, symbol: str, working: dict[str, PaperOrder]
    ) -> tuple[Decimal | None, Decimal | None] | None:
        """The highest resting buy and lowest resting sell of ``symbol``, remembered until its
        working orders change; None while some order there does not rest yet."""
        buys: list[Decimal] = []
        sells: list[Decimal] = []
        for o in working.values():
            if not o.resting or o.cmd.price is None:
                return None
            (buys if o.cmd.side is Side.BUY else sells).append(o.cmd.price)
        edges = (max(buys, default=None), min(sells, default=None))
        self._edges[symbol] = edges
        return edges

    def on_trade(self, ev: TradeTick) -> list[Event]:
        """Main-thread handler: a public trade through a resting limit fills it."""
        with self._lock:
            return self._match(ev.symbol, ev)

    # ------------------------------------------------------------------ account

    def fetch_balances(self) -> list[BalanceUpdate]:
        """Every asset's balance."""
        with self._lock:
            now = self._now()
            return [self._funds.balance(a, now) for a in self._funds.assets()]

    def fetch_open_orders(self, symbols: Sequence[str]) -> list[OrderStatusReport]:
        """Working orders in ``symbols``."""
        with self._lock:
            now = self._now()
            return [
                o.report(now)
                for s in dict.fromkeys(symbols)
                for o in self._working.get(s, {}).values()
            ]

    def fetch_order(self, client_id: str, symbol: str) -> OrderStatusReport:
        """One order by client id."""
        with self._lock:
            order = self._orders.get(client_id)
            if order is None:
                raise OrderNotFoundError(f"paper: no order {client_id}")
            return order.report(self._now())

    def fetch_my_trades(self, symbol: str, since_ns: int) -> list[OrderFilled]:
        """Our fills in ``symbol`` since ``since_ns``."""
        with self._lock:
            return [f for f in self._fills if f.symbol == symbol and f.ts_event >= since_ns]

    # ------------------------------------------------------------------ orders

    def create_order(self, cmd: SubmitOrder) -> list[Event]:
        """Acknowledge or reject an order; with no latency it meets the book at once."""
        with self._lock:
            now = self._now()
            if cmd.client_id in self._orders:
                return [
                    self._reject(cmd, now, "duplicate client order id", ErrorKind.INVALID_ORDER)
                ]
            if cmd.order_type is OrderType.LIMIT and (cmd.price is None or cmd.price <= 0):
                return [
                    self._reject(cmd, now, "limit order without a price", ErrorKind.INVALID_ORDER)
                ]
            quote = self._quotes.get(cmd.symbol)
            if quote is None:
                return [self._reject(cmd, now, "no market data yet", ErrorKind.TEMPORARY)]
            asset, need = funds_needed(cmd, quote, self._slippage, self._fee_rate)
            if self._funds.free_of(asset) < need:
                return [
                    self._reject(
                        cmd,
                        now,
                        f"insufficient {asset}: need {need}, free {self._funds.free_of(asset)}",
                        ErrorKind.INSUFFICIENT_FUNDS,
                    )
                ]
            self._seq += 1
            order = PaperOrder(cmd, f"paper-{self._seq}", now + self._latency_ns)
            self._funds.lock(order, asset, need)
            self._orders[cmd.client_id] = order
            self._working.setdefault(cmd.symbol, {})[cmd.client_id] = order
            self._edges.pop(cmd.symbol, None)
            events: list[Event] = [
                OrderAccepted(
                    ts_event=now,
                    ts_recv=now,
                    client_id=cmd.client_id,
                    exchange_id=order.exchange_id,
                )
            ]
            if not self._latency_ns:
                events += self._match(cmd.symbol, None, only=order)
            if not any(isinstance(e, BalanceUpdate) and e.asset == asset for e in events):
                events.append(self._funds.balance(asset, now))
            self._changed()
            return events

    def cancel_order(self, client_id: str, symbol: str) -> list[Event]:
        """Cancel a working order and release its funds."""
        with self._lock:
            now = self._now()
            order = self._orders.get(client_id)
            if order is None:
                raise OrderNotFoundError(f"paper: no order {client_id}")
            if order.status.is_final:
                return []
            events = self._close(order, OrderStatus.CANCELED, "canceled", now)
            self._changed()
            return events

    def close(self) -> None:
        """Nothing to release (the account file's writer is a worker, flushed at its stop)."""

    def _now(self) -> int:
        """The account's time, taken under the lock: the clock, but never earlier than a
        previous stamp. The executor thread and the main thread both change the account, and
        their results reach the bus in either order; stamped here, together with the funds'
        sequence, they tell the store which is newer."""
        self._last_ns = max(self._last_ns, self._clock.now_ns())
        return self._last_ns

    # ------------------------------------------------------------------ matching (locked)

    def _match(
        self, symbol: str, trade: TradeTick | None, only: PaperOrder | None = None
    ) -> list[Event]:
        working = self._working.get(symbol)
        if not working:
            return []
        now = self._now()
        q = self._quotes.get(symbol)
        trade_left = trade.size if trade is not None else ZERO
        events: list[Event] = []
        for order in [only] if only is not None else list(working.values()):
            if now < order.active_at:
                continue
            c = order.cmd
            if not order.resting:
                taker_px = taker_price(c, q, self._slippage) if q is not None else None
                if taker_px is not None:
                    if trade is None:  # takers meet quotes; a trade waits for the next quote
                        amount = self._take_shown(order, q)  # type: ignore[arg-type]  # px: q set
                        events += self._fill(order, taker_px, amount, Liquidity.TAKER, now)
                        if c.order_type is OrderType.LIMIT:
                            order.resting = True  # the rest waits at its price
                            self._edges.pop(symbol, None)
                    continue
                if c.order_type is OrderType.MARKET or q is None:
                    continue
                order.resting = True
                self._edges.pop(symbol, None)
            if not trades_through(c, q, trade):
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
            self._changed()
        return events

    def _take(self, order: PaperOrder, shown: Decimal) -> Decimal:
        remaining = order.cmd.amount - order.filled
        return min(remaining, max(shown, ZERO)) if self._partial else remaining

    def _take_shown(self, order: PaperOrder, q: QuoteTick) -> Decimal:
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

    def _fill(
        self, order: PaperOrder, price: Decimal, amount: Decimal, liq: Liquidity, now: int
    ) -> list[Event]:
        if amount <= 0 or order.status.is_final:
            return []
        c = order.cmd
        base, quote = split_symbol(c.symbol)
        notional = amount * price
        fee = notional * self._fee_rate
        if c.side is Side.BUY:
            if not self._funds.spend(order, quote, notional + fee):
                return self._close(
                    order, OrderStatus.CANCELED, f"insufficient {quote} at fill time", now
                )
            self._funds.move(base, amount, ZERO)
        else:
            if not self._funds.spend(order, base, amount):
                return self._close(
                    order, OrderStatus.CANCELED, f"insufficient {base} at fill time", now
                )
            self._funds.move(quote, notional - fee, ZERO)
        order.filled += amount
        order.cost += notional
        order.fills += 1
        final = order.filled >= c.amount
        fill = OrderFilled(
            ts_event=now,
            ts_recv=now,
            client_id=c.client_id,
            exchange_id=order.exchange_id,
            trade_id=f"{order.exchange_id}-{order.fills}",
            symbol=c.symbol,
            side=c.side,
            price=price,
            amount=amount,
            fee=fee,
            fee_asset=quote,
            filled_total=order.filled,
            is_final=final,
            liquidity=liq,
        )
        self._fills.append(fill)
        if final:
            order.status = OrderStatus.FILLED
            self._release(order)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        return [fill, self._funds.balance(base, now), self._funds.balance(quote, now)]

    def _release(self, order: PaperOrder) -> str:
        """Stop working ``order`` (now final) and free what it still holds; returns the locked
        asset. Closed orders beyond ``MAX_CLOSED_ORDERS`` are forgotten, oldest closed first."""
        self._working.get(order.cmd.symbol, {}).pop(order.cmd.client_id, None)
        self._edges.pop(order.cmd.symbol, None)
        self._closed.append(order.cmd.client_id)
        if len(self._closed) > MAX_CLOSED_ORDERS:
            del self._orders[self._closed.popleft()]
        return self._funds.release(order)

    def _close(self, order: PaperOrder, status: OrderStatus, reason: str, now: int) -> list[Event]:
        order.status = status
        asset = self._release(order)
        if reason != "canceled":
            log.info("paper: %s %s: %s", status, order.cmd.client_id, reason)
        return [
            OrderCanceled(ts_event=now, ts_recv=now, client_id=order.cmd.client_id, reason=reason),
            self._funds.balance(asset, now),
        ]

    def _reject(self, cmd: SubmitOrder, now: int, reason: str, kind: ErrorKind) -> OrderRejected:
        log.info("paper: rejected %s: %s", cmd.client_id, reason)
        return OrderRejected(
            ts_event=now, ts_recv=now, client_id=cmd.client_id, reason=reason, kind=kind
        )

    # ------------------------------------------------------------------ the account file

    def _changed(self) -> None:
        """The account changed: have the writer save it (nothing is written here)."""
        if self.writer is not None:
            self.writer.request()

    def snapshot(self) -> SavedAccount:
        """The account as saved: balances, the last closed orders, then the working ones (copied:
        matching changes them in place), the last fills. Cheap: bounded by those counts."""
        with self._lock:
            funds = self._funds
            closed = [self._orders[c] for c in islice(reversed(self._closed), SAVED_CLOSED_ORDERS)]
            working = [replace(o) for w in self._working.values() for o in w.values()]
            return SavedAccount(
                seq=self._seq,
                balances={
                    a: SavedBalance(funds.free[a], funds.used.get(a, ZERO)) for a in funds.assets()
                },
                orders=(*reversed(closed), *working),
                fills=(*reversed(list(islice(reversed(self._fills), SAVED_FILLS))),),
            )

    def _load(self, path: Path) -> None:
        try:
            saved = persistence.read(path)
        except (OSError, CodecError) as exc:
            raise ConfigError(
                f"paper account file {path} cannot be read ({type(exc).__name__}: {exc}); "
                "fix it or delete it to start from paper.starting_balances"
            ) from None
        self._funds = Funds(
            {a: b.free for a, b in saved.balances.items()},
            {a: b.used for a, b in saved.balances.items()},
        )
        self._seq = saved.seq
        self._fills.extend(saved.fills)
        for order in saved.orders:
            self._orders[order.cmd.client_id] = order
            if order.status.is_final:
                self._closed.append(order.cmd.client_id)
            else:
                self._working.setdefault(order.cmd.symbol, {})[order.cmd.client_id] = order
        log.info(
            "paper: account loaded from %s: %s; %d working orders (starting_balances "
            "ignored; delete the file to start over)",
            path,
            ", ".join(f"{a} {b.free + b.used}" for a, b in sorted(saved.balances.items()))
            or "empty",
            sum(len(w) for w in self._working.values()),
        )


def _unused(_ev: Event) -> None:
    """Where the writer's reports go when the gateway was built without ``publish``."""
