"""The in-memory store: all state, written by the main thread's handlers, read by any thread.

Every write takes the lock briefly and replaces immutable records; every read takes the lock,
copies what it needs, and returns immutable snapshots (frozen records, tuples, read-only
mappings). Nothing under the lock logs, does I/O or calls back. Every collection is bounded by
``StoreConfig``; what does not fit is counted in ``dropped``.

Ordering. Facts about the same thing race to the store (the executor thread's answers against
the main thread's fills, a REST poll fetched before a stream message); arrival order is not
their order. So state only moves forward, and what is older than what the store holds is
ignored and counted in ``stale_updates``:

- a balance, per asset, by (``ts_event``, ``seq``): the account's time, then the sequence the
  source stamps where it numbers its updates (the paper account); an equal one applies;
- an order, by its stage in the state machine and its cumulative filled amount: the rules of
  the order ledger (:mod:`trader.store.ledger`), the base of this store.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal
from itertools import islice
from types import MappingProxyType
from typing import TypeVar

from trader.config import StoreConfig
from trader.events import (
    BalanceUpdate,
    Candle,
    MarketUpdated,
    QuoteTick,
    SignalGenerated,
    StateRestored,
    TradeTick,
)
from trader.model.market import usd_price
from trader.model.records import Balance, BalancesSnapshot, Market, Order, Position
from trader.store.ledger import OrderLedger

log = logging.getLogger(__name__)

T = TypeVar("T")


class MemoryStore(OrderLedger):
    """All state in process memory. Implements :class:`trader.store.view.StoreView`; the order
    and fill handlers are the ledger's (:class:`~trader.store.ledger.OrderLedger`)."""

    def __init__(self, config: StoreConfig, own_prefix: str = "") -> None:
        super().__init__(config, own_prefix)
        self._markets: dict[str, Market] = {}
        self._quotes: dict[str, QuoteTick] = {}
        self._last_trades: dict[str, TradeTick] = {}
        self._trades: dict[str, deque[TradeTick]] = {}
        self._candles: dict[str, deque[Candle]] = {}
        self._balances: dict[str, Balance] = {}
        self._balance_at: dict[str, tuple[int, int]] = {}  # asset -> (ts_event, seq) applied
        self._signals: deque[SignalGenerated] = deque(maxlen=config.max_signals)
        self.dropped = 0  # records refused because a bound was reached
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ writes (main thread)

    def _symbol_ok(self, table: Mapping[str, object], symbol: str) -> bool:
        if symbol in table or len(table) < self._cfg.max_symbols:
            return True
        self.dropped += 1
        if symbol not in self._warned:
            self._warned.add(symbol)
            log.warning("store: max_symbols=%d reached, ignoring %s", self._cfg.max_symbols, symbol)
        return False

    def on_market(self, ev: MarketUpdated) -> None:
        """Record a market's rules."""
        market = Market(
            ev.symbol,
            ev.base,
            ev.quote,
            ev.price_increment,
            ev.amount_increment,
            ev.min_amount,
            ev.min_notional,
            ev.active,
        )
        with self._lock:
            if self._symbol_ok(self._markets, ev.symbol):
                self._markets[ev.symbol] = market

    def on_quote(self, ev: QuoteTick) -> None:
        """Record the top of book."""
        with self._lock:
            quotes = self._quotes
            if ev.symbol in quotes or self._symbol_ok(quotes, ev.symbol):
                quotes[ev.symbol] = ev

    def on_trade(self, ev: TradeTick) -> None:
        """Record the last trade and keep a bounded history."""
        with self._lock:
            if not self._symbol_ok(self._last_trades, ev.symbol):
                return
            self._last_trades[ev.symbol] = ev
            hist = self._trades.get(ev.symbol)
            if hist is None:
                hist = self._trades[ev.symbol] = deque(maxlen=self._cfg.trade_history)
            hist.append(ev)

    def on_candle(self, ev: Candle) -> None:
        """Keep a bounded history of candles; a forming candle replaces the previous update."""
        with self._lock:
            if not self._symbol_ok(self._candles, ev.symbol):
                return
            hist = self._candles.get(ev.symbol)
            if hist is None:
                hist = self._candles[ev.symbol] = deque(maxlen=self._cfg.candle_history)
            if hist and hist[-1].start_ns == ev.start_ns:
                hist[-1] = ev
            else:
                hist.append(ev)

    def on_balance(self, ev: BalanceUpdate) -> None:
        """Record one asset's balance unless it is older than the one held (see the module
        docstring: ordered by ``ts_event``, then ``seq``)."""
        at = (ev.ts_event, ev.seq)
        with self._lock:
            held = self._balance_at.get(ev.asset)
            if held is not None and at < held:
                self.stale_updates += 1
            elif ev.asset in self._balances or len(self._balances) < self._cfg.max_assets:
                self._balances[ev.asset] = Balance(ev.asset, ev.free, ev.used, ev.total)
                self._balance_at[ev.asset] = at
            else:
                self.dropped += 1

    def on_signal(self, ev: SignalGenerated) -> None:
        """Keep a bounded history of signals."""
        with self._lock:
            self._signals.append(ev)

    def on_state_restored(self, ev: StateRestored) -> None:
        """Load the ledger the process starts from (dispatched at start, and in a replay at the
        same place in each session)."""
        self.restore(balances=ev.balances, orders=ev.orders, positions=ev.positions)

    def restore(
        self,
        *,
        markets: Iterable[Market] = (),
        balances: Iterable[Balance] = (),
        orders: Iterable[Order] = (),
        positions: Iterable[Position] = (),
        quotes: Iterable[QuoteTick] = (),
        trades: Iterable[TradeTick] = (),
    ) -> None:
        """Load records saved by a persistent backend, at start before any event (orders oldest
        first, then bounded like new ones; each order carries its fills, so a fill delivered
        again after the restart is not applied twice)."""
        with self._lock:
            self._markets.update((m.symbol, m) for m in markets)
            self._balances.update((b.asset, b) for b in balances)  # any update is newer
            for order in sorted(orders, key=lambda o: o.ts_update):
                self._orders[order.client_id] = order
            self._evict_orders()
            self._positions.update((p.symbol, p) for p in positions)
            self._quotes.update((q.symbol, q) for q in quotes)
            self._last_trades.update((t.symbol, t) for t in trades)

    # ------------------------------------------------------------------ reads (any thread)

    def _get(self, table: Mapping[str, T], key: str) -> T | None:
        with self._lock:
            return table.get(key)

    def _copy(self, table: Mapping[str, T]) -> Mapping[str, T]:
        with self._lock:
            return MappingProxyType(dict(table))

    def market(self, symbol: str) -> Market | None:
        """A market's rules, or None."""
        return self._get(self._markets, symbol)

    def markets(self) -> Mapping[str, Market]:
        """Every known market."""
        return self._copy(self._markets)

    def quote(self, symbol: str) -> QuoteTick | None:
        """The latest top of book."""
        return self._get(self._quotes, symbol)

    def quotes(self) -> Mapping[str, QuoteTick]:
        """Every latest top of book."""
        return self._copy(self._quotes)

    def last_trade(self, symbol: str) -> TradeTick | None:
        """The latest public trade."""
        return self._get(self._last_trades, symbol)

    def last_trades(self) -> Mapping[str, TradeTick]:
        """Every latest public trade."""
        return self._copy(self._last_trades)

    def trades(self, symbol: str, last: int | None = None) -> tuple[TradeTick, ...]:
        """Recent public trades, oldest first; only the ``last`` few when given."""
        with self._lock:
            return _newest(self._trades.get(symbol, ()), last)

    def candles(self, symbol: str, last: int | None = None) -> tuple[Candle, ...]:
        """Recent candles, oldest first; only the ``last`` few when given."""
        with self._lock:
            return _newest(self._candles.get(symbol, ()), last)

    def last_price(self, symbol: str) -> Decimal | None:
        """Mid of the latest quote, else the last trade price."""
        with self._lock:
            return self._last_price(symbol)

    def _last_price(self, symbol: str) -> Decimal | None:
        q = self._quotes.get(symbol)
        if q is not None:
            return (q.bid + q.ask) / 2
        t = self._last_trades.get(symbol)
        return t.price if t is not None else None

    def _prices(self) -> dict[str, Decimal | None]:
        return {s: self._last_price(s) for s in set(self._quotes) | set(self._last_trades)}

    def balance(self, asset: str) -> Balance | None:
        """One asset's balance."""
        return self._get(self._balances, asset)

    def balances(self) -> BalancesSnapshot:
        """Every balance with its USD value and the total (the article's ``calc_usd_value``)."""
        with self._lock:
            balances = dict(self._balances)
            prices = self._prices()
        usd: dict[str, Decimal | None] = {}
        for asset, bal in balances.items():
            px = usd_price(asset, prices)
            usd[asset] = None if px is None else bal.total * px
        total = sum((v for v in usd.values() if v is not None), Decimal(0))
        return BalancesSnapshot(MappingProxyType(balances), MappingProxyType(usd), total)

    def order(self, client_id: str) -> Order | None:
        """One order by client id."""
        with self._lock:
            return self._orders.get(client_id)

    def orders(self) -> tuple[Order, ...]:
        """Every order we remember, oldest first."""
        with self._lock:
            return tuple(self._orders.values())

    def open_orders(self, symbol: str | None = None) -> tuple[Order, ...]:
        """Orders that may still fill (including UNKNOWN)."""
        with self._lock:
            return tuple(o for o in self._orders.open() if symbol is None or o.symbol == symbol)

    def position(self, symbol: str) -> Position:
        """The position in one market (flat when none)."""
        with self._lock:
            return self._positions.get(symbol) or Position(symbol)

    def positions(self) -> Mapping[str, Position]:
        """Every position."""
        return self._copy(self._positions)

    def signals(self) -> tuple[SignalGenerated, ...]:
        """Recent signals, oldest first."""
        with self._lock:
            return tuple(self._signals)

    def sizes(self) -> dict[str, int]:
        """Collection sizes, for metrics."""
        with self._lock:
            return {
                "markets": len(self._markets),
                "quotes": len(self._quotes),
                "candles": sum(len(d) for d in self._candles.values()),
                "trades": sum(len(d) for d in self._trades.values()),
                "balances": len(self._balances),
                "orders": len(self._orders),
                "positions": len(self._positions),
                "signals": len(self._signals),
                "fills_seen": len(self._fills_seen),
            }


def _newest(history: deque[T] | tuple[()], last: int | None) -> tuple[T, ...]:
    """The ``last`` newest items of ``history``, oldest first (all of it when None): a strategy
    reading its window on every candle copies that window, not the whole history."""
    if last is None or last >= len(history):
        return tuple(history)
    if last < 0:
        raise ValueError(f"last must not be negative, got {last}")
    return tuple(islice(reversed(history), last))[::-1]
