"""The hand-off from the main thread to the Redis writer: stream entries and changed keys."""

from __future__ import annotations

import logging
import threading
from collections import deque

from trader.events import Event, StreamGap
from trader.stats import Stats

log = logging.getLogger(__name__)


class Outbox:
    """Hand-off from the main thread to the writer: a bounded run of events for the stream and
    the set of state keys changed since the last flush.

    The main thread only appends, without a lock (``deque.append`` is atomic; the sequence
    number and the gap are the main thread's alone). The writer moves entries into its
    in-flight list with :meth:`take`, sends them, and drops them with :meth:`ack` only once
    acknowledged. Bound: queued plus in flight stays below ``maxlen`` (plus one gap marker).
    """

    def __init__(self, maxlen: int, stats: Stats, stream: str) -> None:
        self._queue: deque[tuple[int, Event]] = deque()
        self._inflight: list[tuple[int, Event]] = []  # the writer's
        self._inflight_n = 0  # published by the writer, counted before an entry moves
        self._dirty: set[tuple[str, str]] = set()
        self._dirty_lock = threading.Lock()
        self._maxlen = maxlen
        self._stats = stats
        self._stream = stream
        self._seq = 0
        self._gap: list[int] | None = None  # [dropped, first_ts, last_ts] of the current run
        self.dropped = 0

    def append(self, ev: Event) -> None:
        """Queue ``ev`` for the stream (main thread); when full, count it into the pending gap
        instead."""
        if self._gap is None and len(self._queue) + self._inflight_n < self._maxlen:
            self._seq += 1
            self._queue.append((self._seq, ev))
            return
        if len(self._queue) + self._inflight_n < self._maxlen:  # room again: close the gap
            n, t0, t1 = self._gap  # type: ignore[misc]
            self._gap = None
            self._seq += 1
            self._queue.append(
                (
                    self._seq,
                    StreamGap(
                        ts_event=ev.ts_recv,
                        ts_recv=ev.ts_recv,
                        stream=self._stream,
                        dropped=n,
                        first_ts=t0,
                        last_ts=t1,
                    ),
                )
            )
            self._seq += 1
            self._queue.append((self._seq, ev))
            return
        self.dropped += 1
        self._stats.incr("redis_stream_dropped")
        if self._gap is not None:
            self._gap[0] += 1
            self._gap[2] = ev.ts_recv
            return
        self._gap = [1, ev.ts_recv, ev.ts_recv]
        log.error(
            "redis: %d events buffered while Redis is unreachable (storage.buffer_max); newer "
            "events are left out of the stream until it drains: counted, and marked there by "
            "a StreamGap entry",
            self._maxlen,
        )

    def mark(self, collection: str, key: str) -> None:
        """Note that a state record changed (main thread, after changing it)."""
        # Already marked: the writer reads memory only after taking the set, so it will see
        # this change too. The fast path keeps a burst of quotes to one set lookup each.
        if (collection, key) in self._dirty:
            return
        with self._dirty_lock:
            self._dirty.add((collection, key))

    def take(self, n: int) -> list[tuple[int, Event]]:
        """The oldest ``n`` unacknowledged entries (writer), kept until :meth:`ack`."""
        inflight, queue = self._inflight, self._queue
        while len(inflight) < n and queue:
            self._inflight_n += 1
            inflight.append(queue.popleft())
        self._inflight_n = len(inflight)
        return list(inflight)

    def ack(self, n: int) -> None:
        """Drop the oldest ``n`` entries, acknowledged by Redis (writer)."""
        del self._inflight[:n]
        self._inflight_n = len(self._inflight)

    def take_dirty(self) -> set[tuple[str, str]]:
        """The changed keys since the last call (writer)."""
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        return dirty

    def __len__(self) -> int:
        """Entries not yet acknowledged."""
        return self._inflight_n + len(self._queue)
