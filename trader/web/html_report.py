"""``report.html``: one self-contained file for a backtest or a replay, opened from the disk with
no server and no internet. It inlines the vendored lightweight-charts build, the dashboard's chart
component (``static/charts.js``) and style sheet, and the data: candles per market with every
fill as a marker, the equity and drawdown curves, the summary table and the fills.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader.clock import iso_utc
from trader.events import Candle, Event, OrderFilled, QuoteTick, TradeTick
from trader.web.routes import static_files

NS = 1_000_000_000
FILL_ROWS = 2_000  # rows in the fills table (every fill is still a chart marker)


@dataclass
class ReportData:
    """What a report shows; times in unix seconds."""

    title: str
    kind: str  # "backtest" or "replay"
    summary: list[tuple[str, str]]
    candles: dict[str, list[list[float]]]
    fills: list[dict[str, Any]]
    equity: list[list[float]] = field(default_factory=list)


def per_second(points: Iterable[tuple[int, Decimal]]) -> list[list[float]]:
    """(ns, value) -> [[second, value]], the last value of each second (the chart needs strictly
    increasing times)."""
    out: dict[int, float] = {}
    for ts, v in points:
        out[ts // NS] = float(v)
    return [[t, v] for t, v in sorted(out.items())]


def drawdown(equity: Sequence[Sequence[float]]) -> list[list[float]]:
    """[[second, drawdown %]] of an equity curve (0 at a peak, negative below it)."""
    peak, out = float("-inf"), []
    for t, v in equity:
        peak = max(peak, v)
        out.append([t, round((v / peak - 1) * 100, 4) if peak > 0 else 0.0])
    return out


class ChartRecorder:
    """An observer of replayed or backtested events: candles per market (the data's own closed
    candles, else bars of ``interval_s`` built from quote mids and trades), our fills, and the
    equity sampled every ``interval_s`` of event time through ``equity()``."""

    def __init__(self, interval_s: float, equity: Callable[[], Decimal] | None = None) -> None:
        self._interval = max(int(interval_s * NS), NS)
        self._equity = equity
        self._own: dict[str, dict[int, list[float]]] = {}
        self._built: dict[str, dict[int, list[float]]] = {}
        self.fills: list[OrderFilled] = []
        self.equity: list[tuple[int, Decimal]] = []
        self._next_sample = 0

    def on_event(self, ev: Event) -> None:
        """Take one dispatched event."""
        if isinstance(ev, Candle):
            if ev.closed:
                self._own.setdefault(ev.symbol, {})[ev.start_ns // NS] = [
                    float(ev.open),
                    float(ev.high),
                    float(ev.low),
                    float(ev.close),
                ]
        elif isinstance(ev, (QuoteTick, TradeTick)):
            px = float(ev.mid if isinstance(ev, QuoteTick) else ev.price)
            start = ev.ts_recv // self._interval * self._interval // NS
            bars = self._built.setdefault(ev.symbol, {})
            bar = bars.get(start)
            if bar is None:
                bars[start] = [px, px, px, px]
            else:
                bar[1], bar[2], bar[3] = max(bar[1], px), min(bar[2], px), px
        elif isinstance(ev, OrderFilled):
            self.fills.append(ev)
        if self._equity is not None and ev.ts_recv >= self._next_sample:
            self.equity.append((ev.ts_recv, self._equity()))
            self._next_sample = ev.ts_recv + self._interval

    def candles(self) -> dict[str, list[list[float]]]:
        """Per market: [[second, open, high, low, close]], oldest first."""
        out = {}
        for symbol in sorted(set(self._own) | set(self._built)):
            bars = self._own.get(symbol) or self._built[symbol]
            out[symbol] = [[t, *ohlc] for t, ohlc in sorted(bars.items())]
        return out


def fill_rows(fills: Iterable[Any]) -> list[dict[str, Any]]:
    """Fills (``OrderFilled`` or the backtest's records) as the chart component's rows."""
    rows = []
    for i, f in enumerate(fills):
        ts = f.ts_ns if hasattr(f, "ts_ns") else f.ts_event
        rows.append(
            {
                "id": f"{f.client_id}/{i}",
                "t": ts / NS,
                "time": iso_utc(ts),
                "symbol": f.symbol,
                "side": str(f.side),
                "price": str(f.price),
                "amount": str(f.amount),
                "fee": str(f.fee),
                "fee_asset": f.fee_asset,
            }
        )
    return rows


def _when(iso: Any) -> str:
    """``2024-05-01T14:03:00.000Z`` -> ``2024-05-01 14:03:00 UTC``."""
    return str(iso).replace("T", " ").replace(".000Z", " UTC").replace("Z", " UTC")


def _json(data: Any) -> str:
    # "</" would end the script element early
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def render(data: ReportData) -> str:
    """The whole page as one string."""
    files = static_files()

    def script(name: str) -> str:
        return files[name].decode().replace("</script", "<\\/script")

    summary = "".join(
        f'<tr><th>{html.escape(k)}</th><td class="num">{html.escape(v)}</td></tr>'
        for k, v in data.summary
    )
    payload = {
        "candles": data.candles,
        "fills": data.fills,
        "equity": data.equity,
        "drawdown": drawdown(data.equity),
        "fill_rows": FILL_ROWS,
    }
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(data.title)}</title>
<link rel="icon" href="data:,">
<style>{files["style.css"].decode()}</style>
</head>
<body>
<header class="top">
  <div class="brand">{html.escape(data.title)}</div>
  <span class="badge paper">{html.escape(data.kind)} report</span>
</header>
<main>
  <section class="grid two">
    <div class="panel"><h2>Summary</h2><table class="data" id="summary">{summary}</table></div>
    <div class="panel"><h2>Equity (USD)</h2><div id="equity-chart" class="chart small"></div>
      <h2 style="margin-top:8px">Drawdown (%)</h2><div id="drawdown-chart" class="chart small">
      </div></div>
  </section>
  <section id="charts" class="charts"></section>
  <section class="panel"><h2>Fills <span id="fills-note" class="dim"></span></h2>
    <table class="data" id="fills"></table></section>
</main>
<footer>Written by trader; opens from the disk with no server and no internet. Charts:
TradingView Lightweight Charts (Apache-2.0).</footer>
<script>{script("vendor/lightweight-charts.standalone.production.js")}</script>
<script>{script("charts.js")}</script>
<script>const REPORT = {_json(payload)};</script>
<script>{script("report.js")}</script>
</body>
</html>
"""


def write_html(data: ReportData, folder: str | Path) -> Path:
    """Write ``report.html`` into ``folder``; returns its path."""
    path = Path(folder) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data), encoding="utf-8")
    return path


def bar_rows(bars: Iterable[Any]) -> list[list[float]]:
    """Backtest CSV bars as candles."""
    return [
        [b.start_ns // NS, float(b.open), float(b.high), float(b.low), float(b.close)] for b in bars
    ]


def backtest_report(result: Any, candles: dict[str, list[list[float]]]) -> ReportData:
    """The report of a :class:`trader.backtest.BacktestResult`."""
    s = result.summary()
    wr = "–" if s["win_rate"] is None else f"{float(s['win_rate']):.1%}"
    fees = ", ".join(f"{v:.4f} {k}" for k, v in result.fees.items()) or "0"
    opened = ", ".join(f"{k} {v}" for k, v in s["open_positions"].items()) or "none"
    summary = [
        ("Markets", ", ".join(result.symbols)),
        ("From", _when(s["start"])),
        ("To", _when(s["end"])),
        ("Events", str(s["events"])),
        ("Start equity", f"{result.start_equity:,.2f} USD"),
        ("End equity", f"{result.end_equity:,.2f} USD"),
        ("Return", f"{float(result.total_return):+.2%}"),
        ("Max drawdown", f"{float(result.max_drawdown):.2%}"),
        ("Trades", f"{s['trades']} fills, {s['round_trips']} round trips"),
        ("Win rate", wr),
        ("Fees", fees),
        ("Still open", opened),
    ]
    return ReportData(
        f"Backtest {', '.join(result.symbols)}",
        "backtest",
        summary,
        candles,
        fill_rows(result.fills),
        per_second(result.equity),
    )


def replay_report(title: str, recorder: ChartRecorder, stats: dict[str, Any]) -> ReportData:
    """The report of a replay: what the journal recorded, valued as it was replayed."""
    equity = per_second(recorder.equity)
    summary = [
        ("Journal", title),
        ("From", _when(stats.get("first"))),
        ("To", _when(stats.get("last"))),
        ("Events", str(stats.get("events"))),
        ("Sessions", str(stats.get("sessions"))),
        ("Fills", str(len(recorder.fills))),
    ]
    if equity:
        summary += [
            ("Start equity", f"{equity[0][1]:,.2f} USD"),
            ("End equity", f"{equity[-1][1]:,.2f} USD"),
        ]
        dd = min((v for _, v in drawdown(equity)), default=0.0)
        summary.append(("Max drawdown", f"{-dd:.2f}%"))
    return ReportData(
        f"Replay {title}", "replay", summary, recorder.candles(), fill_rows(recorder.fills), equity
    )
