"""Portfolio arithmetic: pure functions over immutable positions and prices, tested against
hand-computed numbers; plus :class:`Portfolio`, the main-thread holder of the sampled equity curve.

Conventions:

- a position is signed (negative is short) and per market; ``avg_price`` is the average entry
  price of the open amount, without fees;
- fees are accumulated separately (valued in the quote asset) and subtracted from
  ``realized_pnl`` when paid, so realized PnL is net of every fee;
- a fee charged in the base asset changes the amount held (a buy of 1 BTC with a 0.001 BTC fee
  leaves 0.999 BTC) and is valued at the fill price; a fee in a third asset (BNB) is valued in the
  quote asset by the caller (``fee_value``), or ignored when no price path exists;
- PnL is in the market's quote asset; :func:`pnl_usd` converts it through USD prices;
- equity is the USD value of every balance (what the account is worth); exposure per asset is the
  USD value held in each non-USD asset (spot: what a price move changes).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Mapping

from trader.clock import Clock
from trader.events import Side
from trader.store.models import BalancesSnapshot, Position
from trader.store.view import StoreView

log = logging.getLogger(__name__)

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


def pnl_usd(
    positions: Mapping[str, Position], prices: Mapping[str, Decimal | None]
) -> tuple[Decimal, Decimal]:
    """Realized and unrealized PnL of every position, in USD.

    ``prices`` maps symbols to their last price (used as the mark and for the quote asset's USD
    value). A position without a mark has no unrealized PnL; one whose quote asset has no USD
    price is left out (shown per market by :func:`position_rows`).
    """
    from trader.store.memory import split_symbol, usd_price

    realized = unrealized = ZERO
    for symbol, pos in positions.items():
        _, quote = split_symbol(symbol)
        quote_usd = usd_price(quote, prices)
        if quote_usd is None:
            continue
        realized += pos.realized_pnl * quote_usd
        mark = prices.get(symbol)
        if mark is not None and pos.amount:
            unrealized += unrealized_pnl(pos, mark) * quote_usd
    return realized, unrealized


def exposures(balances: BalancesSnapshot) -> dict[str, Decimal]:
    """USD value held per non-USD asset (assets without a USD price are left out)."""
    from trader.store.memory import USD_ASSETS

    return {
        asset: value for asset, value in sorted(balances.usd_values.items())
        if value is not None and asset not in USD_ASSETS and value != 0
    }


def prices_of(view: StoreView) -> dict[str, Decimal | None]:
    """Last prices of every market, quote and position the store knows."""
    symbols = set(view.markets()) | set(view.quotes()) | set(view.positions())
    return {s: view.last_price(s) for s in symbols}


@dataclass(frozen=True, slots=True)
class PositionRow:
    """One market's position with its mark and PnL (quote asset)."""

    symbol: str
    amount: Decimal
    avg_price: Decimal
    mark: Decimal | None
    realized: Decimal
    unrealized: Decimal | None
    fees: Decimal


def position_rows(
    positions: Mapping[str, Position], prices: Mapping[str, Decimal | None]
) -> list[PositionRow]:
    """Every position with its mark and PnL, sorted by symbol."""
    rows = []
    for symbol in sorted(positions):
        pos = positions[symbol]
        mark = prices.get(symbol)
        rows.append(PositionRow(
            symbol, pos.amount, pos.avg_price, mark, pos.realized_pnl,
            unrealized_pnl(pos, mark) if mark is not None else None, pos.fees,
        ))
    return rows


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """The portfolio at one moment, in USD unless stated."""

    ts: int
    equity: Decimal
    realized: Decimal
    unrealized: Decimal
    exposures: Mapping[str, Decimal]
    positions: tuple[PositionRow, ...]


def snapshot(view: StoreView, ts: int) -> PortfolioSnapshot:
    """Value the whole portfolio from the store."""
    prices = prices_of(view)
    positions = view.positions()
    realized, unrealized = pnl_usd(positions, prices)
    balances = view.balances()
    return PortfolioSnapshot(
        ts, balances.total_usd, realized, unrealized,
        MappingProxyType(exposures(balances)), tuple(position_rows(positions, prices)),
    )


class Portfolio:
    """Samples equity on a timer (main thread) into a bounded series and logs a summary line."""

    def __init__(self, view: StoreView, clock: Clock, max_samples: int) -> None:
        self._view = view
        self._clock = clock
        self._equity: deque[tuple[int, Decimal]] = deque(maxlen=max_samples)

    def snapshot(self) -> PortfolioSnapshot:
        """The portfolio now."""
        return snapshot(self._view, self._clock.now_ns())

    def pnl_usd(self) -> tuple[Decimal, Decimal]:
        """Realized and unrealized PnL now, in USD (for the metrics)."""
        return pnl_usd(self._view.positions(), prices_of(self._view))

    def sample(self) -> PortfolioSnapshot:
        """Record equity now and log one line; returns the snapshot."""
        snap = self.snapshot()
        self._equity.append((snap.ts, snap.equity))
        total = snap.equity or Decimal(1)
        held = ", ".join(f"{a} {v:.2f} ({v / total:.0%})" for a, v in snap.exposures.items())
        log.info("PORTFOLIO equity %.2f USD | realized %.2f unrealized %.2f | exposure %s",
                 snap.equity, snap.realized, snap.unrealized, held or "none")
        return snap

    def equity_curve(self) -> tuple[tuple[int, Decimal], ...]:
        """(ts_ns, equity USD) samples, oldest first."""
        return tuple(self._equity)
