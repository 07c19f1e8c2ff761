"""Reading the journal back: its files in order, each line parsed into events again.

A line that is not a valid event (a line cut by a crash, a hand edit, a frame whose message does
not parse) is logged with its place, counted and skipped; the rest is read. Frame lines are
parsed again with the parser of the stream that received them (see
:func:`~trader.journal.lines.encode_lines`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader.events import Event, event_from_json
from trader.journal.lines import FRAME_PREFIX, SUFFIX

log = logging.getLogger(__name__)


def journal_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand the arguments: a folder gives its ``*.jsonl`` files by name (that is, by date);
    files are taken in the order given. A missing path raises ``FileNotFoundError``."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(x for x in p.iterdir() if x.suffix == SUFFIX))
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such journal file or folder: {p}")
    return out


#: A market stream's parser, by the name of its listener: ``protocol.parse(msg, ts_recv)``.
FrameParser = Callable[[Any, int], Sequence[object]]
# As the listener decodes a message: the same msg for the same parser.
_DECODE = json.JSONDecoder(parse_float=Decimal).decode


class BadFrame(ValueError):
    """A frame line that does not give events (its message cannot be parsed again)."""


@dataclass
class JournalReader:
    """Iterates the events of journal files in order. A line that is not a valid event (a line
    cut by a crash, a hand edit, a frame whose message does not parse) is logged with its place,
    counted in ``bad_lines`` and skipped; the rest is read.

    Frame lines (see :func:`~trader.journal.lines.encode_lines`) are parsed again by
    ``parsers``, the parsers of the market streams of the config the journal was recorded with;
    journals of JSON lines only need none."""

    files: list[Path]
    parsers: Mapping[str, FrameParser] = field(default_factory=dict)
    bad_lines: list[str] = field(default_factory=list)
    bytes_read: int = 0

    @property
    def total_bytes(self) -> int:
        """The size of all files (for a progress bar)."""
        return sum(f.stat().st_size for f in self.files)

    def __iter__(self) -> Iterator[Event]:
        for path in self.files:
            with open(path, "rb") as fh:
                for lineno, raw in enumerate(fh, 1):
                    self.bytes_read += len(raw)
                    if not raw.strip():
                        continue
                    try:
                        if raw.startswith(FRAME_PREFIX):
                            yield from self._frame(raw)
                        else:
                            yield event_from_json(raw.decode())
                    except (ValueError, TypeError, KeyError) as exc:
                        where = f"{path}:{lineno}"
                        self.bad_lines.append(where)
                        log.warning("journal: skipped bad line %s: %s", where, exc)

    def _frame(self, raw: bytes) -> list[Event]:
        """The events of a frame line, parsed again as the listener parsed them."""
        line = _DECODE(raw.decode())
        stream = line["frame"]
        parse = self.parsers.get(stream)
        if parse is None:
            raise BadFrame(
                f"no parser for stream {stream!r} (replay with the config the "
                f"journal was recorded with)"
            )
        try:
            items = parse(line["msg"], line["ts_recv"])
        except Exception as exc:  # noqa: BLE001 - any parser failure is this line's fault
            raise BadFrame(
                f"{stream} message does not parse: {type(exc).__name__}: {exc}"
            ) from None
        events = [item for item in items if isinstance(item, Event)]
        if not events or len(events) != len(items):
            raise BadFrame(f"{stream} message is not market data")
        return events


def read_events(
    *paths: str | Path, parsers: Mapping[str, FrameParser] | None = None
) -> list[Event]:
    """Every event of the given journal files or folders, in order (tests, small journals)."""
    return list(JournalReader(journal_files(paths), dict(parsers or {})))
