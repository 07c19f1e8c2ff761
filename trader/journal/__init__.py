"""The event journal: every dispatched event, one line each, one file per UTC day.

Files are ``<journal.path>/YYYY-MM-DD.jsonl``, in dispatch order, so ``grep`` answers "what
happened at 14:03" and ``scripts/replay.py`` rebuilds the state. A line is
``event_to_json(event)`` (its ``type``, ``ts_event``, ``ts_recv`` and fields), except for market
data parsed from a websocket message: that message is one frame line, its bytes as received in an
envelope (see :func:`encode_lines`), which the reader parses again with the stream's parser.
An event goes to the file of its ``ts_recv`` day; the file only rolls forward, so a late event
stays in the current file and dispatch order is kept across files. Successive sessions append to
the same day's file; each starts with a ``SessionStarted`` event.

The package, one part a module:

- :mod:`~trader.journal.lines`: the line format (frame lines and JSON lines) and the day files;
- :mod:`~trader.journal.writer`: :class:`Journal`, the writer thread, its buffer, the files,
  write failures and retention;
- :mod:`~trader.journal.reader`: :class:`JournalReader` and :func:`read_events`, which parse the
  lines back into events.
"""

from trader.journal.lines import SUFFIX, encode_lines, utc_day
from trader.journal.reader import BadFrame, FrameParser, JournalReader, journal_files, read_events
from trader.journal.writer import Journal, JournalBuffer

__all__ = [
    "SUFFIX",
    "BadFrame",
    "FrameParser",
    "Journal",
    "JournalBuffer",
    "JournalReader",
    "encode_lines",
    "journal_files",
    "read_events",
    "utc_day",
]
