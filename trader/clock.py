"""Clocks. Everything that needs the time takes a clock, so tests and replays control it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from trader.model.units import NS


class Clock(Protocol):
    """Source of wall-clock time in integer nanoseconds since the epoch (UTC)."""

    def now_ns(self) -> int:
        """Return the current time in nanoseconds."""
        ...


class LiveClock:
    """The real wall clock."""

    def now_ns(self) -> int:
        """Return ``time.time_ns()``."""
        return time.time_ns()


class ManualClock:
    """A clock that only moves when told to; used by tests and by replay.

    Replay sets it to each event's ``ts_recv`` before dispatching, so handlers that read the
    clock see the time they saw live.
    """

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        """Return the clock's current value."""
        return self._now

    def set(self, ns: int) -> None:
        """Move the clock to ``ns`` (never backwards)."""
        self._now = max(self._now, ns)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self._now += int(seconds * NS)


def iso_utc(ts_ns: int) -> str:
    """``ts_ns`` as ISO 8601 UTC with milliseconds: ``2024-05-01T14:03:12.345Z``."""
    dt = datetime.fromtimestamp(ts_ns / NS, UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
