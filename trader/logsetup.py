"""Logging set-up: text or JSON lines, secrets scrubbed from every record, quiet third-party
loggers.

A text line is one line: control characters in it (a newline in ``general.name``, in a request
path, in an exchange's error text) are written escaped (``\\n``, ``\\x1b``), so no value can
forge a log line; only a traceback that follows the message keeps its lines. JSON lines escape
them by being JSON.

Text lines under systemd (``JOURNAL_STREAM`` or ``INVOCATION_ID`` set) carry no timestamp:
journald adds its own. JSON lines (``general.log_format: json``) always carry theirs, for a log
shipper: one object a line with ``time`` (ISO 8601, UTC), ``level``, ``thread``, ``logger``,
``message``, ``exc`` when there is a traceback, and ``event`` (the event's fields, as the journal
writes them) when the record was logged with ``extra={"event": ev}``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from trader.config import LogFormat
from trader.events import Event, event_to_dict


class SecretFilter(logging.Filter):
    """Replaces any secret value in a record's final message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the formatted message (and traceback text) in place."""
        if not self._secrets:
            return True
        msg = record.getMessage()
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.scrub(msg), None
        if exc_text:
            record.exc_text, record.exc_info = self.scrub(exc_text), None
        return True


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c != 0x09}
_CONTROLS.update({0x0A: "\\n", 0x0D: "\\r", 0x85: "\\x85", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_TRACEBACK = "\nTraceback (most recent call last):"


def escape_controls(text: str) -> str:
    """``text`` with control characters escaped, except in a traceback that follows it."""
    head, sep, tail = text.partition(_TRACEBACK)
    return head.translate(_CONTROLS) + sep + tail


class TextFormatter(logging.Formatter):
    """The standard formatter, with the message line's control characters escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """The line, escaped (the traceback ``format`` appends keeps its lines)."""
        return escape_controls(super().formatMessage(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the event's string fields pass through ``scrub``, since
    they never went through the message the filter scrubs."""

    def __init__(self, secrets: SecretFilter) -> None:
        super().__init__()
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "thread": record.threadName,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        event = getattr(record, "event", None)
        if isinstance(event, Event):
            out["event"] = {
                k: self._secrets.scrub(v) if isinstance(v, str) else v
                for k, v in event_to_dict(event).items()
            }
        return json.dumps(out, ensure_ascii=False)


def under_journald(environ: Mapping[str, str] = os.environ) -> bool:
    """True when stderr goes to the journal: systemd sets ``JOURNAL_STREAM`` for it, and
    ``INVOCATION_ID`` for every service it starts."""
    return bool(environ.get("JOURNAL_STREAM") or environ.get("INVOCATION_ID"))


def setup_logging(
    level: str, secrets: Iterable[str] = (), log_format: LogFormat = LogFormat.TEXT
) -> None:
    """Configure the root logger for the process."""
    scrubber = SecretFilter(secrets)
    handler = logging.StreamHandler(sys.stderr)
    if log_format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter(scrubber))
    else:
        fmt = "%(levelname)-7s %(threadName)-10s %(name)s: %(message)s"
        if not under_journald():
            fmt = "%(asctime)s.%(msecs)03d " + fmt
        handler.setFormatter(TextFormatter(fmt, datefmt="%H:%M:%S"))
    handler.addFilter(scrubber)
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
        "thread %s crashed",
        name,
        # typeshed allows a None exc_value here; a thread's raised exception always has one
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
    )
