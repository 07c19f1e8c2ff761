#!/usr/bin/env python3
"""Start trader.

    python scripts/start.py [--config config.yaml] [--log-level INFO] [--check-config]

Ctrl-C or SIGTERM stops it cleanly (a second Ctrl-C exits at once). A configuration error
prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from trader.config import dump_redacted, load_config  # noqa: E402
from trader.errors import ConfigError  # noqa: E402
from trader.logsetup import setup_logging  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Run the trader.")
    parser.add_argument("--config", default="config.yaml", help="path to config.yaml")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="overrides general.log_level")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the config, print it (secrets redacted) and exit")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"# {args.config}: valid\n" + dump_redacted(cfg), end="")
        return 0
    setup_logging(args.log_level or cfg.general.log_level.value, cfg.secrets.values())

    from trader.app import App

    try:
        app = App(cfg)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame: object) -> None:
        if app.stop_event.is_set():
            os._exit(130)  # second Ctrl-C: exit at once
        app.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    app.start()
    try:
        app.run()
    finally:
        app.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
