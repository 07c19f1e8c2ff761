"""``trader``: start trader.

    trader [--config config.yaml] [--log-level INFO] [--check-config]

Ctrl-C or SIGTERM stops it cleanly (a second Ctrl-C exits at once). A configuration error, or
keys the exchange refuses at start, print one line and exit with code 2; an exchange that cannot
be reached within ``exchange.start_deadline_s`` (rate limits, 5xx and network errors are retried
until then), Redis holding the saved state (unless ``storage.start_empty_if_unreachable``), or
``metrics.port`` in use, prints one line and exits with code 1 (systemd tries again). A failed
start is journaled. ``--check-config`` also checks the files the config names and the port.

Exit after a stop: once ``App.shutdown`` has stopped and joined the threads, drained the bus,
written the journal, flushed the paper account file's writer (and Redis's) and logged the
totals, nothing is left to save, only memory to free. The interpreter's teardown frees it object
by object (about a second with 500 markets' state); the process ends with ``os._exit`` instead,
after flushing the log handlers and the standard streams (see :func:`exit_now`).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
from typing import NoReturn

from trader.app import App
from trader.config import dump_with_sources, load_config_sources
from trader.config.checks import check_paths
from trader.errors import (
    AuthenticationError,
    ConfigError,
    ExchangeError,
    OperationalError,
    StorageUnavailableError,
)
from trader.httpapi import HOST
from trader.logsetup import setup_logging
from trader.portowner import check_port_free
from trader.registries import check_config


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description="Run the trader.")
    parser.add_argument("--config", default="config.yaml", help="path to config.yaml")
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="overrides general.log_level",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the config, print every value with where it came from "
        "(file, environment, default; secrets redacted) and exit",
    )
    args = parser.parse_args(argv)
    try:
        cfg, sources = load_config_sources(args.config)
        check_config(cfg)  # the strategies and the exchange it names
        check_paths(cfg)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        try:
            if cfg.metrics.port:
                check_port_free(HOST, cfg.metrics.port)
        except OperationalError as exc:
            print(f"not ready: {exc}", file=sys.stderr)
            return 1
        print(
            f"# {args.config}: valid; each value's origin: file, env VAR (TRADER__SECTION__KEY) "
            "or default\n" + dump_with_sources(cfg, sources),
            end="",
        )
        return 0
    setup_logging(
        args.log_level or cfg.general.log_level.value, cfg.secrets.values(), cfg.general.log_format
    )
    # systemd's watchdog kills a stuck main loop with SIGABRT: print every thread's stack first.
    faulthandler.enable()

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
    try:
        app.start()
    except ConfigError as exc:  # e.g. a market the exchange does not list
        return failed_start(app, f"config error: {exc}", 2)
    except AuthenticationError as exc:
        return failed_start(app, f"authentication failed: {exc}", 2)
    except StorageUnavailableError as exc:
        return failed_start(app, f"storage error at start: {exc}", 1)
    except OperationalError as exc:
        return failed_start(app, f"cannot start: {exc}", 1)
    except ExchangeError as exc:
        return failed_start(app, f"exchange error at start: {exc}", 1)
    try:
        app.run()
    finally:
        app.shutdown()
    exit_now(0)


def exit_now(code: int) -> NoReturn:
    """End the process after a clean stop without the interpreter's teardown: everything is
    already written (see the module docstring); only the log handlers and the standard streams
    are flushed here."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def failed_start(app: App, message: str, code: int) -> int:
    """Print the one-line reason the start failed (no thread has started yet); the journal
    records it."""
    app.abort_start(message)
    print(message, file=sys.stderr)
    return code
