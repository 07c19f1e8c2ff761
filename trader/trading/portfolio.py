"""Portfolio valuation: PnL in USD, exposures and position rows over immutable positions and
prices (the fill accounting itself is :mod:`trader.model.fills`); plus :class:`Portfolio`, the
main-thread holder of the sampled equity curve.

- PnL is in the market's quote asset; :func:`pnl_usd` converts it through USD prices;
- equity is the USD value of every balance (what the account is worth); exposure per asset is the
  USD value held in each non-USD asset (spot: what a price move changes).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from trader.clock import Clock
from trader.model.fills import unrealized_pnl
from trader.model.market import USD_ASSETS, split_symbol, usd_price
from trader.model.records import BalancesSnapshot, Position
from trader.store.view import StoreView

log = logging.getLogger(__name__)

ZERO = Decimal(0)


def pnl_usd(
    positions: Mapping[str, Position], prices: Mapping[str, Decimal | None]
) -> tuple[Decimal, Decimal]:
    """Realized and unrealized PnL of every position, in USD.

    ``prices`` maps symbols to their last price (used as the mark and for the quote asset's USD
    value). A position without a mark has no unrealized PnL; one whose quote asset has no USD
    price is left out (shown per market by :func:`position_rows`).
    """
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
    return {
        asset: value
        for asset, value in sorted(balances.usd_values.items())
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
        rows.append(
            PositionRow(
                symbol,
                pos.amount,
                pos.avg_price,
                mark,
                pos.realized_pnl,
                unrealized_pnl(pos, mark) if mark is not None else None,
                pos.fees,
            )
        )
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
        ts,
        balances.total_usd,
        realized,
        unrealized,
        MappingProxyType(exposures(balances)),
        tuple(position_rows(positions, prices)),
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
        log.info(
            "PORTFOLIO equity %.2f USD | realized %.2f unrealized %.2f | exposure %s",
            snap.equity,
            snap.realized,
            snap.unrealized,
            held or "none",
        )
        return snap

    def equity_curve(self) -> tuple[tuple[int, Decimal], ...]:
        """(ts_ns, equity USD) samples, oldest first."""
        return tuple(self._equity)
