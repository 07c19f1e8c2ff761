"""Counters shared by the bus, the engine and the workers.

Counters are plain integers in dicts. Only the main thread writes the engine's counters; the bus
and worker counters are written under a lock because several producer threads touch them.
Readers (the stats log line, metrics) take :meth:`Stats.snapshot`.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Process-wide counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.dispatched: Counter[str] = Counter()  # written by the main thread only
        self.handler_errors: Counter[str] = Counter()  # handler qualname -> count
        self.unhandled: Counter[str] = Counter()
        self._counters: Counter[str] = Counter()  # thread-safe, see incr()

    def incr(self, name: str, n: int = 1) -> None:
        """Increment a counter from any thread."""
        with self._lock:
            self._counters[name] += n

    def get(self, name: str) -> int:
        """Read one thread-safe counter."""
        with self._lock:
            return self._counters[name]

    def counters(self) -> dict[str, int]:
        """A copy of the thread-safe counters (those of :meth:`incr`)."""
        with self._lock:
            return dict(self._counters)

    def snapshot(self) -> dict[str, Any]:
        """A copy of every counter, safe to read from any thread."""
        with self._lock:
            counters = dict(self._counters)
        return {
            "dispatched": dict(self.dispatched),
            "dispatched_total": sum(self.dispatched.values()),
            "handler_errors": dict(self.handler_errors),
            "unhandled": dict(self.unhandled),
            **counters,
        }
