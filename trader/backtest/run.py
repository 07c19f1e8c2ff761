"""Running a backtest: the configured strategies over bar or journal events, through the same
engine, strategies, risk, executor and paper gateway as a paper session (a ``RunMode.BACKTEST``
app).

Each event is dispatched with the clock at its ``ts_recv``; then the app is settled: follow-ups
dispatched, orders sent through the executor synchronously, the paper gateway's answers
dispatched, until nothing is left. So an order decided on a bar fills at that bar's close (market
orders, plus ``paper.slippage_bps``); resting limit orders fill when a later close reaches them
(there is no intra-bar path).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from trader.app import App, RunMode
from trader.backtest.bars import (
    BarFile,
    DataError,
    bar_events,
    journal_market_events,
    merge_by_time,
)
from trader.backtest.report import BacktestResult, Fill
from trader.clock import ManualClock
from trader.config import SIMULATED, Config, Mode
from trader.errors import ConfigError
from trader.events import Event, OrderFilled, QuoteTick, TradeTick
from trader.feeds.streams import market_parsers
from trader.journal import JournalReader, journal_files
from trader.model.records import Position
from trader.model.units import NS
from trader.progress import Progress
from trader.registries import Strategies
from trader.trading.strategies import STRATEGIES


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
