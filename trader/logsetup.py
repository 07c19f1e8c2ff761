"""Logging set-up: one format, secrets scrubbed from every record, quiet third-party loggers.

Under systemd (``JOURNAL_STREAM`` set) lines carry no timestamp: journald adds its own.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Iterable


class SecretFilter(logging.Filter):
    """Replaces any secret value in a record's final message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the formatted message (and traceback text) in place."""
        if not self._secrets:
            return True
        msg = record.getMessage()
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = logging.Formatter().formatException(record.exc_info)
        for s in self._secrets:
            msg = msg.replace(s, "***")
            if exc_text:
                exc_text = exc_text.replace(s, "***")
        record.msg, record.args = msg, None
        if exc_text:
            record.exc_text, record.exc_info = exc_text, None
        return True


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger for the process."""
    fmt = "%(levelname)-7s %(threadName)-10s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s.%(msecs)03d " + fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # ccxt logs signed requests (keys in headers) at DEBUG: keep it above.
    logging.getLogger("ccxt").setLevel(max(logging.INFO, root.level))
    for noisy in ("urllib3", "websocket", "schedule"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # apprise logs parts of its URLs (bot tokens in paths); trader.alerts logs its failures.
    logging.getLogger("apprise").setLevel(logging.CRITICAL)
    threading.excepthook = _thread_excepthook


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    logging.getLogger("trader.threads").critical(
        "thread %s crashed", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )
