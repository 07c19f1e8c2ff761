"""The journal's line format: which day file an event goes to, and the lines it becomes.

A day file is ``YYYY-MM-DD.jsonl`` (the UTC day of the event's ``ts_recv``). A line is an
event's JSON (``event_to_json``) or, for market data parsed from a websocket message, a frame
line: the message's bytes as received, in an envelope that names the stream (see
:func:`encode_lines`); the reader knows a frame line by :data:`FRAME_PREFIX`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from operator import attrgetter

from trader.events import Event, Frame, event_to_json
from trader.model.units import DAY_NS

SUFFIX = ".jsonl"
_EPOCH = date(1970, 1, 1)
_FRAME = attrgetter("frame")
_COUNT = attrgetter("count")
_ENVELOPE = attrgetter("stream", "ts_recv", "seq", "raw")
_FRAME_LINE = b'{"frame":"%b","ts_recv":%d,"seq":%d,"msg":%b}'.__mod__
FRAME_PREFIX = b'{"frame":'  # how every frame line (``_FRAME_LINE``) begins


def utc_day(ts_ns: int) -> tuple[str, int]:
    """The UTC date of ``ts_ns`` as ``YYYY-MM-DD`` and the ns timestamp where that day ends."""
    days = ts_ns // DAY_NS
    return (_EPOCH + timedelta(days=days)).isoformat(), (days + 1) * DAY_NS


def encode_lines(events: list[Event]) -> list[bytes]:
    """The journal lines of ``events`` (dispatched in this order), without newlines.

    A message whose events were all dispatched one after the other is one frame line, its bytes
    as received in an envelope: ``{"frame":"ws-binance-market","ts_recv":..,"seq":..,"msg":..}``.
    Every other event is its JSON line: account and system events, market data that did not come
    from a websocket, and the rest of a message the bus conflated in part (the replay parses a
    frame line into all of its events, so a frame line stands only for events all dispatched).

    The common run, messages of one event each, is encoded by C calls alone (``map``), with no
    Python code per event: that is most of what makes these lines cheaper than JSON.
    """
    frames = list(map(_FRAME, events))
    out: list[bytes] = []
    start, n = 0, len(events)
    while start < n:
        try:
            stop = frames.index(None, start)
        except ValueError:
            stop = n
        if stop > start:
            run = frames[start:stop]
            if max(map(_COUNT, run)) == 1:
                out.extend(map(_FRAME_LINE, map(_ENVELOPE, run)))
            else:
                out.extend(_messages(events[start:stop], run))
        if stop < n:
            out.append(event_to_json(events[stop]).encode())
        start = stop + 1
    return out


def _messages(events: list[Event], frames: list[Frame]) -> Iterator[bytes]:
    """The lines of a run of market data where a message gave several events: one frame line
    where all of them come one after the other, JSON lines where the bus conflated some."""
    i, n = 0, len(frames)
    while i < n:
        frame = frames[i]
        end = i + frame.count
        if end <= n and frames[i:end].count(frame) == frame.count:
            yield _FRAME_LINE(_ENVELOPE(frame))
            i = end
        else:
            yield event_to_json(events[i]).encode()
            i += 1
