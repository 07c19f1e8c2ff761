"""``trader-replay``: replay journal files through the same handlers, with a simulated clock,
and print the state.

    trader-replay data/journal/2024-05-01.jsonl [more files or folders]
        [--config config.yaml] [--until N|TYPE|TIME] [--show TYPES --since TIME] [--json]
        [--report DIR]

``--until`` stops before event number N (0-based, as printed), before the first event of a type
(``--until HandlerFailed`` stops right after the event whose handler failed, which the replay has
just re-run), or before the first event received at a UTC time (``2024-05-01T14:03``).
``--show TYPES`` prints the events of those types (comma-separated, or ``all``) as they are
replayed, one readable line each, from ``--since TIME`` on. No workers, no network: orders are
not sent again; the journal already holds what happened to them. ``--report DIR`` also writes
DIR/report.html: the market data as candles with the recorded fills, the equity as replayed, in
one file that opens with no server and no internet.
Exit codes: 0 done, 2 bad arguments, configuration or journal path.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trader.clock import ManualClock
from trader.errors import ConfigError
from trader.events import EVENT_TYPES, Event
from trader.feeds.streams import market_parsers
from trader.journal import JournalReader, journal_files
from trader.logsetup import setup_logging
from trader.progress import Progress
from trader.registries import Strategies, check_config
from trader.replay import (
    Replayer,
    Until,
    describe,
    offline_config,
    print_report,
)
from trader.trading.strategies import STRATEGIES
from trader.web.html_report import ChartRecorder, replay_report, write_html

REPORT_BAR_S = 10  # candles built from quotes when the journal holds none; equity sampling


def main(argv: list[str] | None = None, strategies: Strategies = STRATEGIES) -> int:
    """Entry point; returns the exit code. The config's strategies are looked up in
    ``strategies``."""
    parser = argparse.ArgumentParser(description="Replay trader journal files.")
    parser.add_argument("paths", nargs="+", help="journal files (.jsonl) or folders of them")
    parser.add_argument(
        "--config",
        default="config.yaml",
        help="the config the journal was recorded with (strategies, markets)",
    )
    parser.add_argument("--until", help="stop before event N, the first event of TYPE, or TIME")
    parser.add_argument("--show", help="print events of these types as replayed (A,B or all)")
    parser.add_argument("--since", help="with --show: from this UTC time on (2024-05-01T14:03)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--log-level",
        default="ERROR",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="ERROR (default) shows reproduced handler failures; INFO also every "
        "signal, trade and denial",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--report", metavar="DIR", help="write DIR/report.html (charts, fills)")
    args = parser.parse_args(argv)
    try:
        until = Until.parse(args.until) if args.until else None
        since = Until.parse(args.since).ts_ns if args.since else None
        if args.since and since is None:
            raise ValueError(f"--since {args.since!r}: expected a UTC time (2024-05-01T14:03)")
        show = set(args.show.split(",")) if args.show else set()
        unknown = show - set(EVENT_TYPES) - {"all"}
        if unknown:
            raise ValueError(f"--show: unknown event types {sorted(unknown)}")
        files = journal_files(args.paths)
        cfg = offline_config(args.config)  # paper, no keys: nothing is sent
        check_config(cfg, strategies)
    except (ValueError, FileNotFoundError, ConfigError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, cfg.secrets.values())

    reader = JournalReader(files, market_parsers(cfg, ManualClock()))
    progress = Progress(
        reader.total_bytes, "B", "replay", enabled=False if args.no_progress or show else None
    )
    replayer = Replayer(cfg, strategies)
    recorder = (
        ChartRecorder(REPORT_BAR_S, lambda: replayer.app.store.balances().total_usd)
        if args.report
        else None
    )

    def on_event(index: int, ev: Event) -> None:
        if recorder is not None:
            recorder.on_event(ev)
        if not index % 1000:
            progress.update(reader.bytes_read, index)
        if (
            show
            and ("all" in show or type(ev).__name__ in show)
            and (since is None or ev.ts_recv >= since)
        ):
            print(describe(index, ev))

    stats = replayer.run(reader, until, on_event)
    progress.close(stats.total)
    report = replayer.report()
    report["stats"]["files"] = [str(f) for f in files]
    report["stats"]["bad_lines"] = reader.bad_lines
    if args.json:
        print(json.dumps(report, default=str, indent=2))
    else:
        print_report(report)
        if reader.bad_lines:
            print(f"bad lines skipped: {len(reader.bad_lines)} ({', '.join(reader.bad_lines[:5])})")
    if recorder is not None:
        title = ", ".join(Path(p).name for p in args.paths)
        try:
            path = write_html(replay_report(title, recorder, report["stats"]), args.report)
        except OSError as exc:
            print(f"replay: cannot write the report: {exc}", file=sys.stderr)
            return 2
        print(f"report: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
