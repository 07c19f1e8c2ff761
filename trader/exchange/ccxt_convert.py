"""ccxt's answers as our records: pure functions, no calls, no state (what the gateway remembers
of an order, its client id, is passed in).

Decimal in and out: every float ccxt returns becomes ``Decimal(str(x))``, and a quantity goes to
ccxt as a plain string. Timestamps are ccxt's milliseconds, ours nanoseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import ccxt

from trader.events import (
    BalanceUpdate,
    Liquidity,
    MarketUpdated,
    OrderFilled,
    OrderStatusReport,
    QuoteTick,
)
from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.units import NS_PER_MS

ZERO = Decimal(0)

STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_LIQUIDITY = {"maker": Liquidity.MAKER, "taker": Liquidity.TAKER}


def dec(value: Any) -> Decimal:
    """A ccxt number (float, int, str or None) as an exact Decimal; None is 0."""
    return ZERO if value is None else Decimal(str(value))


def wire(value: Decimal) -> str:
    """A Decimal as ccxt gets it: a plain string, never in exponent notation."""
    return format(value, "f")


def ns(ms: Any, default: int) -> int:
    """ccxt's millisecond timestamp in ns, or ``default`` when there is none."""
    return int(ms) * NS_PER_MS if ms else default


def market_updated(m: dict[str, Any], precision_mode: int, now: int) -> MarketUpdated:
    """One ccxt market's trading rules; ``precision_mode`` is the exchange's
    ``precisionMode``."""
    precision, limits = m.get("precision") or {}, m.get("limits") or {}
    return MarketUpdated(
        ts_event=now,
        ts_recv=now,
        symbol=m["symbol"],
        base=m["base"],
        quote=m["quote"],
        price_increment=step(precision.get("price"), precision_mode),
        amount_increment=step(precision.get("amount"), precision_mode),
        min_amount=dec((limits.get("amount") or {}).get("min")),
        min_notional=dec((limits.get("cost") or {}).get("min")),
        active=m.get("active") is not False,
    )


def step(precision: Any, precision_mode: int) -> Decimal:
    """ccxt's precision as a step: a tick size as is, decimal places as 10^-n; significant
    digits have no fixed step (0 leaves amounts unquantised)."""
    if precision is None:
        return ZERO
    if precision_mode == ccxt.TICK_SIZE:
        return dec(precision)
    if precision_mode == ccxt.DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(precision))
    return ZERO


def quote_tick(symbol: str, t: dict[str, Any] | None, now: int) -> QuoteTick | None:
    """A ccxt ticker's top of book; None when it has none (a halted market)."""
    if not t or t.get("bid") is None or t.get("ask") is None:
        return None
    return QuoteTick(
        ts_event=ns(t.get("timestamp"), now),
        ts_recv=now,
        symbol=symbol,
        bid=dec(t["bid"]),
        bid_size=dec(t.get("bidVolume")),
        ask=dec(t["ask"]),
        ask_size=dec(t.get("askVolume")),
    )


def balance_update(
    asset: str, row: dict[str, Any], total: Decimal, ts: int, now: int
) -> BalanceUpdate:
    """One asset's row of a ccxt balance (its ``total`` already read)."""
    return BalanceUpdate(
        ts_event=ts,
        ts_recv=now,
        asset=asset,
        free=dec(row.get("free")),
        used=dec(row.get("used")),
        total=total,
    )


def status_report(raw: dict[str, Any], client_id: str, now: int) -> OrderStatusReport:
    """A ccxt order as the exchange's view of our order ``client_id``."""
    filled = dec(raw.get("filled"))
    status = STATUS.get(raw.get("status") or "", OrderStatus.UNKNOWN)
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    price, stop, cost = raw.get("price"), raw.get("triggerPrice"), raw.get("cost")
    return OrderStatusReport(
        ts_event=ns(raw.get("lastUpdateTimestamp") or raw.get("timestamp"), now),
        ts_recv=now,
        client_id=client_id,
        exchange_id=str(raw.get("id") or ""),
        symbol=raw["symbol"],
        side=Side(raw["side"]),
        order_type=OrderType.MARKET if raw.get("type") == "market" else OrderType.LIMIT,
        status=status,
        amount=dec(raw.get("amount")),
        filled=filled,
        price=dec(price) if price else None,
        avg_price=dec(raw["average"]) if raw.get("average") else None,
        venue_order_type=raw.get("type"),
        time_in_force=raw.get("timeInForce"),
        stop_price=dec(stop) if stop else None,
        cum_quote=None if cost is None else dec(cost),
    )


def order_filled(
    t: dict[str, Any],
    order: dict[str, Any],
    client_id: str,
    filled_total: Decimal,
    final: bool,
    now: int,
) -> OrderFilled:
    """A ccxt trade ``t`` of ``order`` (a ccxt order, or what is known of it: its ``id`` and
    ``symbol``) as our fill."""
    fee = t.get("fee") or {}
    return OrderFilled(
        ts_event=ns(t.get("timestamp") or order.get("timestamp"), now),
        ts_recv=now,
        client_id=client_id,
        exchange_id=str(order.get("id") or ""),
        trade_id=str(t.get("id") or ""),
        symbol=order.get("symbol") or t["symbol"],
        side=Side(t.get("side") or order["side"]),
        price=dec(t.get("price")),
        amount=dec(t.get("amount")),
        fee=dec(fee.get("cost")),
        fee_asset=fee.get("currency") or "",
        filled_total=filled_total,
        is_final=final,
        liquidity=_LIQUIDITY.get(t.get("takerOrMaker") or "", Liquidity.UNKNOWN),
    )


def order_fills(
    trades: Sequence[dict[str, Any]],
    order: dict[str, Any],
    client_id: str,
    filled_before: Decimal,
    closed: bool,
    now: int,
) -> list[OrderFilled]:
    """One order's ``trades`` (oldest first) as fills, each with the order's cumulative filled
    amount after it, counted from ``filled_before``; the last one is final when the order is
    ``closed``."""
    out = []
    cumulative = filled_before
    for i, t in enumerate(trades):
        cumulative += dec(t.get("amount"))
        final = closed and i == len(trades) - 1
        out.append(order_filled(t, order, client_id, cumulative, final, now))
    return out
