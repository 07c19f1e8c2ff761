"""What a backtest produced, and its report.

Results: return, max drawdown of the equity curve (the store's total USD value after each bar, or
every ``sample_s`` of journal time), trades (fills), round trips (a position opened from flat
and closed back to flat) and their win rate, fees. ``write_report`` writes ``equity.png``
(matplotlib, the ``backtest`` extra), ``trades.csv``, ``equity.csv`` and ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader.clock import iso_utc
from trader.errors import ConfigError
from trader.model.units import NS


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill, with the position and realized PnL (quote asset, net of fees) after it."""

    ts_ns: int
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_asset: str
    position: Decimal
    realized_pnl: Decimal
    client_id: str
    strategy: str


@dataclass
class BacktestResult:
    """What a backtest produced."""

    equity: list[tuple[int, Decimal]]
    fills: list[Fill]
    round_trips: list[Decimal]
    events: int
    symbols: tuple[str, ...]
    open_position: dict[str, Decimal] = field(default_factory=dict)

    @property
    def start_equity(self) -> Decimal:
        """Equity (USD) after the first event."""
        return self.equity[0][1]

    @property
    def end_equity(self) -> Decimal:
        """Equity (USD) after the last event, open positions at the last price."""
        return self.equity[-1][1]

    @property
    def total_return(self) -> Decimal:
        """end / start - 1."""
        return self.end_equity / self.start_equity - 1 if self.start_equity else Decimal(0)

    @property
    def max_drawdown(self) -> Decimal:
        """The largest fall from a peak of the equity curve, as a fraction of the peak."""
        peak, worst = Decimal(0), Decimal(0)
        for _, e in self.equity:
            peak = max(peak, e)
            if peak > 0:
                worst = max(worst, (peak - e) / peak)
        return worst

    @property
    def win_rate(self) -> Decimal | None:
        """Winning round trips / round trips (None with none)."""
        if not self.round_trips:
            return None
        return Decimal(sum(1 for p in self.round_trips if p > 0)) / len(self.round_trips)

    @property
    def fees(self) -> dict[str, Decimal]:
        """Fees paid per asset."""
        out: dict[str, Decimal] = {}
        for f in self.fills:
            out[f.fee_asset] = out.get(f.fee_asset, Decimal(0)) + f.fee
        return out

    def summary(self) -> dict[str, Any]:
        """The figures as plain data."""
        wr = self.win_rate
        return {
            "symbols": list(self.symbols),
            "events": self.events,
            "start": iso_utc(self.equity[0][0]),
            "end": iso_utc(self.equity[-1][0]),
            "start_equity_usd": str(self.start_equity),
            "end_equity_usd": str(self.end_equity),
            "return": str(self.total_return),
            "max_drawdown": str(self.max_drawdown),
            "trades": len(self.fills),
            "round_trips": len(self.round_trips),
            "win_rate": None if wr is None else str(wr),
            "fees": {k: str(v) for k, v in self.fees.items()},
            "open_positions": {k: str(v) for k, v in self.open_position.items() if v},
        }


def write_report(result: BacktestResult, folder: str | Path) -> list[Path]:
    """Write ``equity.png``, ``trades.csv``, ``equity.csv`` and ``summary.json``; return them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trades = folder / "trades.csv"
    with open(trades, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "time",
                "symbol",
                "side",
                "price",
                "amount",
                "fee",
                "fee_asset",
                "position_after",
                "realized_pnl_after",
                "client_id",
                "strategy",
            ]
        )
        for f in result.fills:
            w.writerow(
                [
                    iso_utc(f.ts_ns),
                    f.symbol,
                    f.side,
                    f.price,
                    f.amount,
                    f.fee,
                    f.fee_asset,
                    f.position,
                    f.realized_pnl,
                    f.client_id,
                    f.strategy,
                ]
            )
    equity = folder / "equity.csv"
    with open(equity, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "equity_usd"])
        w.writerows((iso_utc(ts), e) for ts, e in result.equity)
    summary = folder / "summary.json"
    summary.write_text(json.dumps(result.summary(), indent=2) + "\n")
    png = folder / "equity.png"
    plot_equity(result, png)
    return [png, trades, equity, summary]


def plot_equity(result: BacktestResult, path: Path) -> None:
    """The equity curve over its drawdown, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "the equity chart needs matplotlib: pip install -e '.[backtest]'"
        ) from None
    times = [datetime.fromtimestamp(ts / NS, UTC) for ts, _ in result.equity]
    values = [float(e) for _, e in result.equity]
    peak, drawdown = -math.inf, []
    for v in values:
        peak = max(peak, v)
        drawdown.append((v / peak - 1) * 100 if peak > 0 else 0.0)
    fig, (ax1, ax2) = plt.subplots(
        2, 1, sharex=True, figsize=(10, 6), gridspec_kw={"height_ratios": [3, 1]}
    )
    s = result.summary()
    ax1.plot(times, values, color="tab:blue", linewidth=1.2)
    ax1.set_ylabel("equity (USD)")
    ax1.set_title(
        f"{', '.join(result.symbols)}: return {float(result.total_return):+.2%}, "
        f"max drawdown {float(result.max_drawdown):.2%}, {s['trades']} trades",
        fontsize=10,
    )
    ax1.grid(alpha=0.3)
    ax2.fill_between(times, drawdown, 0, color="tab:red", alpha=0.4)
    ax2.set_ylabel("drawdown (%)")
    ax2.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
