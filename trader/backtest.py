"""Backtests: the configured strategies over recorded market data, through the same engine,
strategies, risk, executor and paper gateway as a paper session.

Data: OHLCV CSV files (``timestamp,open,high,low,close,volume``; the timestamp in s, ms, us or ns
since the epoch, or ISO 8601 UTC) or recorded journals (only their market data and market rules
are used: what the live strategies did is not replayed, the configured ones decide again).

A CSV bar becomes, at its close time (start + bar interval), a ``QuoteTick`` at the close
(``simulated.spread_bps`` wide) and then a closed ``Candle``. Each event is dispatched with the
clock at its ``ts_recv``; then the app is settled: follow-ups dispatched, orders sent through
the executor synchronously, the paper gateway's answers dispatched, until nothing is left. So an
order decided on a bar fills at that bar's close (market orders, plus ``paper.slippage_bps``);
resting limit orders fill when a later close reaches them (there is no intra-bar path).

Results: return, max drawdown of the equity curve (the store's total USD value after each bar, or
every ``sample_s`` of journal time), trades (fills), round trips (a position opened from flat
and closed back to flat) and their win rate, fees. ``write_report`` adds ``equity.png``
(matplotlib, the ``backtest`` extra), ``trades.csv``, ``equity.csv`` and ``summary.json``.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from trader.app import App, RunMode
from trader.clock import ManualClock, iso_utc
from trader.config import SIMULATED, Config, Mode
from trader.errors import ConfigError
from trader.events import (
    Candle,
    Event,
    MarketData,
    MarketUpdated,
    OrderFilled,
    QuoteTick,
    TradeTick,
)
from trader.feeds.streams import market_parsers
from trader.journal import JournalReader, journal_files
from trader.model.records import Position
from trader.model.units import NS
from trader.progress import Progress
from trader.registries import Strategies
from trader.trading.strategies import STRATEGIES

CSV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class DataError(ValueError):
    """Bad input data: the message names the file and line."""


# ---------------------------------------------------------------------------------- data


class Bar(NamedTuple):
    """One OHLCV bar; ``start_ns`` is when it opened (a tuple: built for every bar of a file, at
    every read, it costs a third of a frozen dataclass)."""

    start_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def parse_timestamp(text: str) -> int:
    """Epoch seconds, ms, us or ns (told apart by size), or ISO 8601 (UTC unless it says)."""
    if not text.isdigit():  # digits alone are the usual case
        text = text.strip()
    if text.lstrip("-").isdigit():
        value = int(text)
        for limit, scale in ((10**11, NS), (10**14, 10**6), (10**17, 10**3)):
            if abs(value) < limit:
                return value * scale
        return value
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * NS + when.microsecond * 1000


class BarFile:
    """An OHLCV CSV file, checked whole by :func:`read_csv`, whose bars are read again from the
    file at each iteration: a backtest's memory does not grow with the number of bars."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        first: Bar | None = None
        gap = None
        previous = 0
        for bar in self:
            if first is None:
                first = bar
            elif bar.start_ns <= previous:
                raise DataError(f"{path}:{self.count + 2}: timestamps must increase")
            else:
                gap = bar.start_ns - previous if gap is None else min(gap, bar.start_ns - previous)
            previous = bar.start_ns
            self.count += 1
        if first is None:
            raise DataError(f"{path}: no bars")
        self.first: Bar = first
        self.interval_ns: int = gap or 60 * NS  # the smallest gap (60 s for a single bar)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Bar]:
        """The bars, oldest first, each checked (``DataError`` names the line)."""
        path = self.path
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path}: missing columns {missing}; expected {','.join(CSV_COLUMNS)}"
                )
            when = header.index(CSV_COLUMNS[0])
            prices = itemgetter(*(header.index(c) for c in CSV_COLUMNS[1:]))
            for lineno, row in enumerate(reader, 2):
                try:
                    ts = parse_timestamp(row[when])
                    o, h, lo, c, v = map(Decimal, prices(row))
                except (ValueError, InvalidOperation, IndexError) as exc:
                    raise DataError(f"{path}:{lineno}: cannot parse {row}: {exc}") from None
                if not (lo <= o <= h and lo <= c <= h and v >= 0 and lo > 0):
                    raise DataError(
                        f"{path}:{lineno}: inconsistent bar o={o} h={h} l={lo} c={c} v={v}"
                    )
                yield Bar(ts, o, h, lo, c, v)


def read_csv(path: str | Path) -> BarFile:
    """Check an OHLCV CSV strictly (the header must name the six columns, timestamps increase,
    every bar is consistent); the bars are read from the file when iterated."""
    return BarFile(Path(path))


def bar_events(symbol: str, bars: BarFile, spread_bps: Decimal) -> Iterator[Event]:
    """A quote at the close and the closed candle, stamped at each bar's close time."""
    interval = bars.interval_ns
    half = spread_bps / Decimal(20_000)
    bid_f, ask_f = 1 - half, 1 + half
    label = f"{interval // NS}s" if interval % (60 * NS) else f"{interval // (60 * NS)}m"
    for bar in bars:
        ts = bar.start_ns + interval
        close = bar.close
        yield QuoteTick(
            ts_event=ts,
            ts_recv=ts,
            symbol=symbol,
            bid=close * bid_f if half else close,
            ask=close * ask_f if half else close,
            bid_size=bar.volume,
            ask_size=bar.volume,
        )
        yield Candle(
            ts_event=ts,
            ts_recv=ts,
            symbol=symbol,
            interval=label,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            start_ns=bar.start_ns,
            closed=True,
        )


def merge_by_time(streams: Iterable[Iterable[Event]]) -> Iterator[Event]:
    """Merge time-ordered streams by ``ts_recv`` (stable: ties keep stream order)."""
    return heapq.merge(*streams, key=lambda e: e.ts_recv)


def journal_market_events(reader: JournalReader, symbols: set[str]) -> Iterator[Event]:
    """Market data and market rules of ``symbols`` from journal files, in recorded order."""
    for ev in reader:
        if isinstance(ev, (MarketData, MarketUpdated)) and ev.symbol in symbols:
            yield ev


# ---------------------------------------------------------------------------------- results


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


class TradeRecorder:
    """Keeps each fill the store applied, and each round trip's PnL (realized PnL from the fill
    that opened a position from flat to the fill that closed it, fees included). Positions are
    the store's (the one ledger): read before a fill reaches the store and after it applied it."""

    def __init__(self, app: App) -> None:
        self._view = app.view
        self.fills: list[Fill] = []
        self.round_trips: list[Decimal] = []
        self._before: Position | None = None  # the position the fill being dispatched moves
        self._opened_at: dict[str, Decimal] = {}  # realized PnL before the opening fill

    def on_event(self, ev: Event) -> None:
        """Registry observer (it sees a fill before the store): note the position it moves."""
        if isinstance(ev, OrderFilled):
            self._before = self._view.position(ev.symbol)

    def on_fill(self, ev: OrderFilled) -> None:
        """Handler after the store's (which ends a repeated fill's dispatch): record the fill."""
        pos, after = self._before, self._view.position(ev.symbol)
        assert pos is not None and pos.symbol == ev.symbol  # on_event saw this fill first
        if pos.amount == 0 and after.amount != 0:
            self._opened_at[ev.symbol] = pos.realized_pnl
        elif pos.amount != 0 and (after.amount == 0 or (after.amount > 0) != (pos.amount > 0)):
            self.round_trips.append(after.realized_pnl - self._opened_at.pop(ev.symbol))
            if after.amount != 0:  # flipped: a new trip opened at this fill
                self._opened_at[ev.symbol] = after.realized_pnl
        order = self._view.order(ev.client_id)
        self.fills.append(
            Fill(
                ev.ts_recv,
                ev.symbol,
                ev.side.value,
                ev.price,
                ev.amount,
                ev.fee,
                ev.fee_asset,
                after.amount,
                after.realized_pnl,
                ev.client_id,
                order.strategy if order else "",
            )
        )


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


# ---------------------------------------------------------------------------------- running


def backtest_config(
    cfg: Config, symbols: Sequence[str], start_prices: dict[str, Decimal]
) -> Config:
    """The config a backtest runs with: the simulated venue on paper, only ``symbols``, only the
    strategies trading them, every order kept in the store, no HTTP endpoint."""
    strategies = tuple(s for s in cfg.strategies if s.market in symbols)
    if not strategies:
        raise ConfigError(
            f"no configured strategy trades {', '.join(symbols)}; "
            f"add one under 'strategies' in the config"
        )
    return replace(
        cfg,
        exchange=replace(cfg.exchange, name=SIMULATED, mode=Mode.PAPER),
        trade=replace(cfg.trade, markets=tuple(symbols)),
        simulated=replace(
            cfg.simulated, start_prices={**cfg.simulated.start_prices, **start_prices}
        ),
        store=replace(cfg.store, max_orders=10_000_000),
        strategies=strategies,
        metrics=replace(cfg.metrics, port=0),
    )


class Backtest:
    """Drives a ``RunMode.BACKTEST`` app one event at a time (see the module docstring)."""

    def __init__(
        self,
        cfg: Config,
        symbols: Sequence[str],
        start_prices: dict[str, Decimal],
        start_ns: int,
        strategies: Strategies = STRATEGIES,
    ) -> None:
        self.symbols = tuple(symbols)
        self.clock = ManualClock(start_ns)
        self.app = App(
            backtest_config(cfg, symbols, start_prices), self.clock, RunMode.BACKTEST, strategies
        )
        self.recorder = TradeRecorder(self.app)
        # Read-only, like the journal: an observer, and a fill handler after the store's.
        self.app.registry.observe(self.recorder.on_event)
        self.app.registry.register(OrderFilled, self.recorder.on_fill)
        gateway = self.app.gateway
        for ev in (*gateway.load_markets(self.symbols), *gateway.fetch_balances()):
            self.app.engine.dispatch(ev)
        self._settle()

    def run(self, events: Iterable[Event], sample_ns: int) -> BacktestResult:
        """Feed ``events``; sample equity once all events of a timestamp are done (a bar's
        quote and candle, and the trades they caused), at most every ``sample_ns``."""
        equity: list[tuple[int, Decimal]] = []
        last_sample: int | None = None
        group: int | None = None  # the timestamp being dispatched
        count = 0
        balances, set_clock = self.app.store.balances, self.clock.set
        dispatch, settle = self.app.engine.dispatch, self._settle
        for ev in events:
            ts = ev.ts_recv
            if (
                group is not None
                and ts != group
                and (last_sample is None or group - last_sample >= sample_ns)
            ):
                equity.append((group, balances().total_usd))
                last_sample = group
            group = ts
            set_clock(ts)
            dispatch(ev)
            settle()
            count += 1
        if group is None:
            raise DataError("no market data for the configured strategies' markets")
        equity.append((group, self.app.store.balances().total_usd))  # the final state
        positions = {s: p.amount for s, p in self.app.store.positions().items()}
        return BacktestResult(
            equity, self.recorder.fills, self.recorder.round_trips, count, self.symbols, positions
        )

    def _settle(self) -> None:
        """Dispatch follow-ups, send the orders they made, dispatch the answers; until quiet."""
        engine, executor, bus = self.app.engine, self.app.executor, self.app.bus
        if not engine.has_followups() and not bus.depth():
            # Most bars: the event made nothing. Orders reach the executor only through
            # follow-ups (SubmitOrder, CancelOrder), so it has nothing to send either.
            return
        while True:
            engine.drain(math.inf)
            executor.drain(math.inf)  # the paper gateway answers at once, onto the bus
            if not bus.depth():
                return


def run_csv(
    cfg: Config,
    files: dict[str, BarFile],
    strategies: Strategies = STRATEGIES,
    progress: bool | None = False,
) -> BacktestResult:
    """Backtest over CSV bars, ``symbol -> bars``, with the configured strategies looked up in
    ``strategies``. ``progress``: draw a bar on stderr (``None``: when it is a terminal)."""
    spread = cfg.simulated.spread_bps
    start = min(bars.first.start_ns for bars in files.values())
    bt = Backtest(
        cfg, list(files), {s: bars.first.open for s, bars in files.items()}, start, strategies
    )
    sample = min(b.interval_ns for b in files.values())
    bar = Progress(2 * sum(map(len, files.values())), "ev", "backtest", progress)  # 2 per bar
    events = merge_by_time(bar_events(s, b, spread) for s, b in files.items())
    return bt.run(bar.track(events, position=lambda count: count), sample)


def run_journals(
    cfg: Config,
    paths: Sequence[str | Path],
    sample_s: float = 1.0,
    strategies: Strategies = STRATEGIES,
    progress: bool | None = False,
) -> BacktestResult:
    """Backtest over the market data of journal files or folders, with the configured
    strategies looked up in ``strategies``; ``progress`` as in :func:`run_csv`, in bytes of
    journal read."""
    files = journal_files(paths)
    parsers = market_parsers(cfg, ManualClock())  # for the messages journaled as received
    symbols = {s.market for s in cfg.strategies}
    prices: dict[str, Decimal] = {}  # each market's first price, for its simulated rules
    start_ns = None
    for ev in journal_market_events(JournalReader(files, parsers), symbols):
        start_ns = ev.ts_recv if start_ns is None else start_ns
        if isinstance(ev, QuoteTick):
            prices.setdefault(ev.symbol, ev.mid)
        elif isinstance(ev, TradeTick):
            prices.setdefault(ev.symbol, ev.price)
        if len(prices) == len(symbols):
            break
    if not prices or start_ns is None:
        raise DataError(f"no market data for {', '.join(sorted(symbols))} in the journal")
    bt = Backtest(cfg, sorted(prices), prices, start_ns, strategies)
    reader = JournalReader(files, parsers)
    bar = Progress(reader.total_bytes, "B", "backtest", progress)
    events = bar.track(journal_market_events(reader, set(prices)), lambda _: reader.bytes_read)
    return bt.run(events, int(sample_s * NS))


# ---------------------------------------------------------------------------------- report


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
