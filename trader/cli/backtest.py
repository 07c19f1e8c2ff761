"""``trader-backtest``: run the configured strategies over recorded market data and write a
report.

    trader-backtest DATA... [--config config.yaml] [--symbol BTC/USDT]
        [--out reports/NAME] [--sample-s 1]

DATA is an OHLCV CSV file (columns timestamp,open,high,low,close,volume), written
``SYMBOL=path.csv`` or plain (then ``--symbol``, or the one market the strategies trade); or
journal files or folders (``.jsonl``; their market data only). Prints return, max drawdown,
trades, win rate and fees; writes equity.png, trades.csv, equity.csv and summary.json to the
report folder, and report.html: candles with every fill, equity and drawdown and the summary in
one file that opens with no server and no internet. Exit codes: 0 done, 2 bad arguments, data
or configuration.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from trader.backtest import (
    BacktestResult,
    BarFile,
    DataError,
    journal_market_events,
    read_csv,
    run_csv,
    run_journals,
    write_report,
)
from trader.config import Config
from trader.errors import ConfigError
from trader.journal import JournalReader, journal_files
from trader.logsetup import setup_logging
from trader.replay import offline_config
from trader.web.html_report import ChartRecorder, backtest_report, bar_rows, write_html


def split_data(cfg: Config, data: list[str], symbol: str | None) -> tuple[dict, list[str]]:
    """CSV files by symbol, and journal paths."""
    csvs: dict[str, BarFile] = {}
    journals: list[str] = []
    for item in data:
        sym, sep, path = item.rpartition("=")
        if not sep:
            path, sym = item, symbol or ""
        if Path(path).is_dir() or path.endswith(".jsonl"):
            journals.append(path)
            continue
        if not sym:
            markets = sorted({s.market for s in cfg.strategies})
            if len(markets) != 1:
                raise DataError(
                    f"{path}: which market is it? write SYMBOL={path} or --symbol "
                    f"(the strategies trade {', '.join(markets) or 'nothing'})"
                )
            sym = markets[0]
        if sym in csvs:
            raise DataError(f"two CSV files for {sym}")
        csvs[sym] = read_csv(path)
    if csvs and journals:
        raise DataError("give CSV files or journals, not both")
    return csvs, journals


def print_summary(result: BacktestResult, files: list[Path]) -> None:
    """The figures a user looks at first."""
    s = result.summary()
    wr = "-" if s["win_rate"] is None else f"{float(s['win_rate']):.1%}"
    fees = ", ".join(f"{v:.4f} {k}" for k, v in result.fees.items()) or "0"
    print(
        f"backtest {', '.join(result.symbols)}: {result.events} events, {s['start']} .. {s['end']}"
    )
    print(
        f"  return        {float(result.total_return):+.2%}  "
        f"({result.start_equity:.2f} -> {result.end_equity:.2f} USD)"
    )
    print(f"  max drawdown  {float(result.max_drawdown):.2%}")
    print(f"  trades        {s['trades']} fills, {s['round_trips']} round trips, win rate {wr}")
    print(f"  fees          {fees}")
    if s["open_positions"]:
        print(f"  still open    {s['open_positions']} (valued at the last price)")
    print(f"  report        {files[0].parent}/ ({', '.join(f.name for f in files)})")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Backtest the configured strategies.")
    parser.add_argument("data", nargs="+", help="CSV files ([SYMBOL=]path.csv) or journals")
    parser.add_argument("--config", default="config.yaml", help="strategies, paper account, risk")
    parser.add_argument("--symbol", help="the market of CSV files given without SYMBOL=")
    parser.add_argument("--out", help="report folder (default reports/backtest-<time>)")
    parser.add_argument(
        "--sample-s",
        type=float,
        default=1.0,
        help="equity sampling step for journals, in seconds of journal time",
    )
    parser.add_argument(
        "--log-level",
        default="ERROR",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="INFO shows every signal, trade and denial",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        cfg = offline_config(args.config)  # paper, no keys: nothing is sent
        setup_logging(args.log_level, cfg.secrets.values())
        csvs, journals = split_data(cfg, args.data, args.symbol)
        progress = False if args.no_progress else None  # None: on a terminal
        result = (
            run_csv(cfg, csvs, progress=progress)
            if csvs
            else run_journals(cfg, journals, args.sample_s, progress=progress)
        )
        out = args.out or f"reports/backtest-{datetime.now():%Y%m%d-%H%M%S}"
        files = write_report(result, out)
        if csvs:
            candles = {sym: bar_rows(bars) for sym, bars in csvs.items()}
        else:
            recorder = ChartRecorder(args.sample_s)
            for ev in journal_market_events(
                JournalReader(journal_files(journals)), set(result.symbols)
            ):
                recorder.on_event(ev)
            candles = recorder.candles()
        files.append(write_html(backtest_report(result, candles), out))
    except (DataError, ConfigError, OSError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    print_summary(result, files)
    return 0
