"""Portfolio arithmetic: pure functions over immutable positions, tested against hand-computed
numbers.

Conventions: a position is signed (negative is short); ``avg_price`` is the average entry price
of the open amount, without fees; fees are accumulated separately (in the quote asset) and
subtracted from ``realized_pnl`` when paid, so realized PnL is net of every fee.
A fee charged in the base asset changes the amount received (a buy of 1 BTC with a 0.001 BTC fee
leaves 0.999 BTC) and is valued at the fill price.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from trader.events import Side
from trader.store.models import Position

ZERO = Decimal(0)


def fee_in_quote(fee: Decimal, fee_asset: str, price: Decimal, base: str, quote: str) -> Decimal:
    """The fee's value in the quote asset (0 for a third asset such as BNB: tracked elsewhere)."""
    if fee_asset == quote:
        return fee
    if fee_asset == base:
        return fee * price
    return ZERO


def apply_fill(
    pos: Position,
    side: Side,
    price: Decimal,
    amount: Decimal,
    fee: Decimal,
    fee_asset: str,
    base: str,
    quote: str,
) -> Position:
    """Return the position after one fill."""
    qty = amount if side is Side.BUY else -amount
    if fee_asset == base:
        qty -= fee  # the fee came out of the base asset we hold
    fee_q = fee_in_quote(fee, fee_asset, price, base, quote)
    old = pos.amount
    new_amount = old + qty
    realized = pos.realized_pnl - fee_q
    avg = pos.avg_price
    if old == 0 or (old > 0) == (qty > 0):
        # Opening or increasing: weighted average entry.
        total = abs(old) + abs(qty)
        avg = (abs(old) * pos.avg_price + abs(qty) * price) / total if total else ZERO
    else:
        closed = min(abs(qty), abs(old))
        direction = Decimal(1) if old > 0 else Decimal(-1)
        realized += (price - pos.avg_price) * closed * direction
        if new_amount == 0:
            avg = ZERO
        elif (new_amount > 0) != (old > 0):
            avg = price  # flipped: the remainder opened at this fill's price
    return replace(
        pos, amount=new_amount, avg_price=avg, realized_pnl=realized, fees=pos.fees + fee_q
    )


def unrealized_pnl(pos: Position, mark: Decimal) -> Decimal:
    """PnL of the open amount at ``mark``."""
    return (mark - pos.avg_price) * pos.amount
