"""Backtests: the configured strategies over recorded market data, through the same engine,
strategies, risk, executor and paper gateway as a paper session.

Data: OHLCV CSV files or recorded journals (:mod:`.bars`). The run: each event dispatched with
the clock at its time, the app settled after each (:mod:`.run`). Results: return, max drawdown,
trades, round trips and their win rate, fees, and the report files (:mod:`.report`).
"""

from trader.backtest.bars import (
    CSV_COLUMNS,
    Bar,
    BarFile,
    DataError,
    bar_events,
    journal_market_events,
    merge_by_time,
    parse_timestamp,
    read_csv,
)
from trader.backtest.report import BacktestResult, Fill, plot_equity, write_report
from trader.backtest.run import Backtest, TradeRecorder, backtest_config, run_csv, run_journals

__all__ = [
    "CSV_COLUMNS",
    "Backtest",
    "BacktestResult",
    "Bar",
    "BarFile",
    "DataError",
    "Fill",
    "TradeRecorder",
    "backtest_config",
    "bar_events",
    "journal_market_events",
    "merge_by_time",
    "parse_timestamp",
    "plot_equity",
    "read_csv",
    "run_csv",
    "run_journals",
    "write_report",
]
