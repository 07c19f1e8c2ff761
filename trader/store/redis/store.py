"""The memory store whose writes are mirrored to Redis, and its records as hash values."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trader import codec
from trader.config import StoreConfig
from trader.events import (
    BalanceUpdate,
    Event,
    MarketUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    QuoteTick,
    StateRestored,
    Stop,
    TradeTick,
    event_from_dict,
    event_to_json,
)
from trader.store.memory import MemoryStore
from trader.store.redis.keys import BALANCES, MARKETS, ORDERS, POSITIONS, PRICES
from trader.store.redis.outbox import Outbox


def prices_to_json(quote: QuoteTick | None, trade: TradeTick | None) -> str:
    """One ``prices`` hash value: ``{"quote": QuoteTick, "trade": TradeTick}``, each an event
    object (with its ``type``) or null."""
    q = event_to_json(quote) if quote is not None else "null"
    t = event_to_json(trade) if trade is not None else "null"
    return f'{{"quote":{q},"trade":{t}}}'


def prices_from_json(text: str) -> tuple[QuoteTick | None, TradeTick | None]:
    """Inverse of :func:`prices_to_json`; raises :class:`~trader.codec.CodecError`."""
    data = codec.from_json(dict[str, Any], text)
    quote, trade = (event_from_dict(data[k]) if data.get(k) else None for k in ("quote", "trade"))
    if not isinstance(quote, QuoteTick | None) or not isinstance(trade, TradeTick | None):
        raise codec.CodecError(f"prices: expected a quote and a trade, got {text[:80]!r}")
    return quote, trade


def daily_loss_to_json(day: int, day_start: Decimal) -> str:
    """The ``<prefix>:risk daily_loss`` value: the UTC day counted and the PnL it counts from."""
    return f'{{"day":{day},"day_start":"{day_start}"}}'


def daily_loss_from_json(text: str) -> tuple[int, Decimal]:
    """Inverse of :func:`daily_loss_to_json`; raises :class:`~trader.codec.CodecError`."""
    data = codec.from_json(dict[str, Any], text)
    try:
        return int(data["day"]), Decimal(data["day_start"])
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise codec.CodecError(f"daily_loss: {type(exc).__name__}: {exc}") from None


class RedisStore(MemoryStore):
    """The memory store whose writes are mirrored to Redis by the writer thread.

    Reads are the memory store's. Each write handler marks what it changed *after* changing it,
    so the writer, reading memory later, never writes an older value and forgets the newer.
    """

    def __init__(self, config: StoreConfig, outbox: Outbox, own_prefix: str = "") -> None:
        super().__init__(config, own_prefix)
        self._outbox = outbox

    def on_event(self, ev: Event) -> None:
        """Observer: every dispatched event goes to the stream."""
        self._outbox.append(ev)

    def on_market(self, ev: MarketUpdated) -> None:  # noqa: D102 - see MemoryStore
        super().on_market(ev)
        self._outbox.mark(MARKETS, ev.symbol)

    def on_quote(self, ev: QuoteTick) -> None:  # noqa: D102
        super().on_quote(ev)
        self._outbox.mark(PRICES, ev.symbol)

    def on_trade(self, ev: TradeTick) -> None:  # noqa: D102
        super().on_trade(ev)
        self._outbox.mark(PRICES, ev.symbol)

    def on_balance(self, ev: BalanceUpdate) -> None:  # noqa: D102
        super().on_balance(ev)
        self._outbox.mark(BALANCES, ev.asset)

    def on_order_submitted(self, ev: OrderSubmitted) -> None:  # noqa: D102
        super().on_order_submitted(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_accepted(self, ev: OrderAccepted) -> None:  # noqa: D102
        super().on_order_accepted(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_rejected(self, ev: OrderRejected) -> None:  # noqa: D102
        super().on_order_rejected(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_canceled(self, ev: OrderCanceled) -> None:  # noqa: D102
        super().on_order_canceled(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_unknown(self, ev: OrderStatusUnknown) -> None:  # noqa: D102
        super().on_order_unknown(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_amended(self, ev: OrderAmended) -> None:  # noqa: D102
        super().on_order_amended(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_filled(self, ev: OrderFilled) -> Stop | None:  # noqa: D102
        out = super().on_order_filled(ev)
        if out is None:  # a repeat (STOP) changed nothing
            self._outbox.mark(ORDERS, ev.client_id)
            self._outbox.mark(POSITIONS, ev.symbol)
        return out

    def on_state_restored(self, ev: StateRestored) -> None:  # noqa: D102
        super().on_state_restored(ev)
        for b in ev.balances:
            self._outbox.mark(BALANCES, b.asset)
        for o in ev.orders:
            self._outbox.mark(ORDERS, o.client_id)
        for p in ev.positions:
            self._outbox.mark(POSITIONS, p.symbol)

    def on_order_report(self, ev: OrderStatusReport) -> None:  # noqa: D102
        super().on_order_report(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    # Serialised state, read by the writer thread -----------------------------------------

    def value(self, collection: str, key: str) -> str | None:
        """One hash field's value from memory; None when the record is gone."""
        if collection == PRICES:
            q, t = self.quote(key), self.last_trade(key)
            return prices_to_json(q, t) if q or t else None
        record: Any
        if collection == MARKETS:
            record = self.market(key)
        elif collection == BALANCES:
            record = self.balance(key)
        elif collection == ORDERS:
            record = self.order(key)
        else:
            record = self.positions().get(key)
        return None if record is None else codec.to_json(record)

    def snapshot(self) -> dict[str, dict[str, str]]:
        """Every collection as hash fields, for a full rewrite."""
        quotes, trades = self.quotes(), self.last_trades()
        return {
            MARKETS: {k: codec.to_json(v) for k, v in self.markets().items()},
            BALANCES: {k: codec.to_json(v) for k, v in self.balances().balances.items()},
            ORDERS: {o.client_id: codec.to_json(o) for o in self.orders()},
            POSITIONS: {k: codec.to_json(v) for k, v in self.positions().items()},
            PRICES: {
                s: prices_to_json(quotes.get(s), trades.get(s)) for s in set(quotes) | set(trades)
            },
        }
