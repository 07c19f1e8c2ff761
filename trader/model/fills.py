"""Fill accounting: pure functions over immutable positions, tested against hand-computed numbers.

Conventions:

- a position is signed (negative is short) and per market; ``avg_price`` is the average entry
  price of the open amount, without fees;
- fees are accumulated separately (valued in the quote asset) and subtracted from
  ``realized_pnl`` when paid, so realized PnL is net of every fee;
- a fee charged in the base asset changes the amount held (a buy of 1 BTC with a 0.001 BTC fee
  leaves 0.999 BTC) and is valued at the fill price; a fee in a third asset (BNB) is valued in the
  quote asset by the caller (``fee_value``), or ignored when no price path exists;
- PnL is in the market's quote asset.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from trader.model.orders import Side
from trader.model.records import Position

ZERO = Decimal(0)


def fee_in_quote(fee: Decimal, fee_asset: str, price: Decimal, base: str, quote: str) -> Decimal:
    """The fee's value in the quote asset (0 for a third asset such as BNB: see ``apply_fill``)."""
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
    fee_value: Decimal | None = None,
) -> Position:
    """Return the position after one fill.

    ``fee_value`` is the quote-asset value of a fee paid in a third asset; without it such a fee
    is not counted (there is no price to value it with).
    """
    qty = amount if side is Side.BUY else -amount
    if fee_asset == base:
        qty -= fee  # the fee came out of the base asset we hold
    fee_q = fee_in_quote(fee, fee_asset, price, base, quote)
    if fee_value is not None and fee_asset not in (base, quote):
        fee_q = fee_value
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
    """PnL of the open amount at ``mark`` (quote asset)."""
    return (mark - pos.avg_price) * pos.amount
