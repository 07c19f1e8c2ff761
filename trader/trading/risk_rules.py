"""Risk rules: the checks every order intent must pass before it becomes an order.

Each rule is a function of a :class:`Check` (the intent rounded to its market, the prices, the
clock and recent activity) returning a reason (a short sentence) or None.
:class:`~trader.trading.risk.Risk` runs :data:`DEFAULT_RULES` in order after its trading-state
gate; the first reason denies the intent with an ``OrderDenied`` event and nothing is sent.

Precision: the amount is rounded down to the market's step and a limit price is rounded toward
the passive side (a buy down, a sell up), so an order is never larger or more aggressive than
the strategy asked; the rules see the rounded values and deny what rounds to nothing.

**Data halt** (per market, kept by :class:`~trader.trading.data_halt.DataHalts`): while a feed
that carries a market's data is disconnected or stale, the ``fresh_data`` rule denies new orders
on that market ("data halt on ...") until the first fresh data after the reconnect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from trader.config import RiskConfig
from trader.model.market import split_symbol
from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.records import Market
from trader.model.units import NS
from trader.store.view import StoreView
from trader.trading.strategy import OrderIntent

BPS = Decimal(10_000)
_NOT_ON_EXCHANGE_YET = (OrderStatus.PENDING, OrderStatus.UNKNOWN)


@dataclass(frozen=True, slots=True)
class Check:
    """What a rule sees: the rounded intent, its market, prices, the clock and recent activity."""

    intent: OrderIntent
    market: Market | None
    amount: Decimal  # rounded to the market's step
    limit_price: Decimal | None  # rounded toward the passive side; None for a market order
    price: Decimal | None  # the limit price, else the side we would take (ask/bid), else last
    last: Decimal | None  # the last price (mid of the quote, else last trade)
    view: StoreView
    cfg: RiskConfig
    now_ns: int = 0
    recent_orders: int = 0  # orders sent in the last ``order_window_s``
    data_halt: str | None = None  # why the market's data cannot be trusted now


Rule = Callable[[Check], "str | None"]


def market_known(c: Check) -> str | None:
    """The market exists and trades."""
    if c.market is None:
        return f"unknown market {c.intent.symbol}"
    if not c.market.active:
        return f"market {c.intent.symbol} is not active"
    return None


def has_price(c: Check) -> str | None:
    """A reference price exists (no trading blind)."""
    return None if c.price else f"no price for {c.intent.symbol} yet"


def precision(c: Check) -> str | None:
    """Amount and limit price still mean something after rounding to the market's steps."""
    assert c.market is not None
    if c.amount <= 0:
        return f"amount {c.intent.amount} rounds to 0 at step {c.market.amount_increment}"
    if c.intent.order_type is OrderType.LIMIT and (c.limit_price is None or c.limit_price <= 0):
        return f"limit price {c.intent.price} is missing or rounds to 0"
    return None


def fresh_data(c: Check) -> str | None:
    """No data halt on the market, and its latest quote is at most ``stale_after_s`` old."""
    if c.data_halt:
        return f"data halt on {c.intent.symbol}: {c.data_halt}"
    if not c.cfg.stale_after_s:
        return None
    q = c.view.quote(c.intent.symbol)
    if q is None:
        return f"no quote for {c.intent.symbol}: market data is stale"
    age = (c.now_ns - q.ts_recv) / NS
    if age > c.cfg.stale_after_s:
        return (
            f"last quote for {c.intent.symbol} is {age:.1f}s old (stale_after_s "
            f"{c.cfg.stale_after_s:g})"
        )
    return None


def price_band(c: Check) -> str | None:
    """A limit price at most ``price_band_bps`` from the last price (fat-finger guard)."""
    if not c.cfg.price_band_bps or c.limit_price is None or not c.last:
        return None
    off = abs(c.limit_price - c.last) / c.last * BPS
    if off > c.cfg.price_band_bps:
        return (
            f"limit price {c.limit_price} is {off:.0f} bps from the last price {c.last} "
            f"(price_band_bps {c.cfg.price_band_bps})"
        )
    return None


def minimums(c: Check) -> str | None:
    """Amount and notional at or above the market's minimums after rounding."""
    assert c.market is not None and c.price is not None
    if c.amount <= 0 or c.amount < c.market.min_amount:
        return f"amount {c.amount} below the minimum {c.market.min_amount}"
    if c.amount * c.price < c.market.min_notional:
        return f"notional {c.amount * c.price:.2f} below the minimum {c.market.min_notional}"
    return None


def max_order_notional(c: Check) -> str | None:
    """Order notional within ``risk.max_order_notional``."""
    assert c.price is not None
    notional = c.amount * c.price
    if notional > c.cfg.max_order_notional:
        return f"notional {notional:.2f} above max_order_notional {c.cfg.max_order_notional}"
    return None


def max_position_notional(c: Check) -> str | None:
    """The resulting position within ``risk.max_position_notional`` (reducing is always fine)."""
    assert c.price is not None
    pos = c.view.position(c.intent.symbol).amount
    after = pos + (c.amount if c.intent.side is Side.BUY else -c.amount)
    if abs(after) > abs(pos) and abs(after) * c.price > c.cfg.max_position_notional:
        return (
            f"position notional {abs(after) * c.price:.2f} would exceed "
            f"max_position_notional {c.cfg.max_position_notional}"
        )
    return None


def taker_price(view: StoreView, symbol: str, side: Side) -> Decimal | None:
    """What a market order would pay: the ask for a buy, the bid for a sell, else the last."""
    q = view.quote(symbol)
    if q is not None:
        return q.ask if side is Side.BUY else q.bid
    return view.last_price(symbol)


def _need(side: Side, amount: Decimal, price: Decimal, reserve: Decimal) -> Decimal:
    return amount * price * (1 + reserve) if side is Side.BUY else amount


def free_balance(c: Check) -> str | None:
    """Enough free balance: quote for a buy (plus ``buy_reserve_bps`` for fees and slippage),
    base for a sell, after what our orders not yet on the exchange will take."""
    assert c.price is not None
    base, quote = split_symbol(c.intent.symbol)
    side = c.intent.side
    asset = quote if side is Side.BUY else base
    reserve = c.cfg.buy_reserve_bps / BPS
    need = _need(side, c.amount, c.price, reserve)
    in_flight = Decimal(0)
    for o in c.view.open_orders():
        if o.status in _NOT_ON_EXCHANGE_YET and not o.external:
            o_base, o_quote = split_symbol(o.symbol)
            if (o_quote if o.side is Side.BUY else o_base) == asset:
                px = o.price or taker_price(c.view, o.symbol, o.side) or Decimal(0)
                in_flight += _need(o.side, o.remaining, px, reserve)
    bal = c.view.balance(asset)
    free = (bal.free if bal else Decimal(0)) - in_flight
    if free < need:
        return f"free {asset} {free} is less than the {need:.8f} needed"
    return None


def order_rate(c: Check) -> str | None:
    """At most ``max_orders_per_window`` new orders per ``order_window_s`` (0: no limit)."""
    limit = c.cfg.max_orders_per_window
    if limit and c.recent_orders >= limit:
        return (
            f"{c.recent_orders} orders in the last {c.cfg.order_window_s:g}s "
            f"(max_orders_per_window {limit})"
        )
    return None


DEFAULT_RULES: tuple[Rule, ...] = (
    market_known,
    precision,
    has_price,
    fresh_data,
    price_band,
    minimums,
    max_order_notional,
    max_position_notional,
    free_balance,
    order_rate,
)
