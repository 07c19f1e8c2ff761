"""The event bus: one bounded ``queue.Queue`` with two stated policies.

1. **Never drop** (account, order, system events and commands): ``publish`` blocks the producer
   while the queue is full, up to ``put_timeout`` seconds. A timeout is a logged, counted critical
   error raised to the producer as :class:`BusFullError`; the event is never silently dropped.
2. **Conflate** (market data, ``event.conflatable``): while the queue has room, market data goes
   straight in, in order. When it is full, market data goes to an overflow table keyed by
   (class, symbol) where the newest value replaces an older one still waiting; each replacement
   is counted. While the overflow holds anything, all market data goes there, and the consumer
   takes overflow entries only when the queue is empty. So every value in the overflow is newer
   than anything of the same key in the queue, and per-key order is kept.

The main thread must never ``publish`` into its own bounded queue (it could deadlock on a full
queue); it hands follow-up events to the engine's local deque instead.

Why ``queue.Queue`` and not ``queue.SimpleQueue`` (faster): ``SimpleQueue`` cannot be bounded,
and a bound is what makes overload visible and lets us apply the policies above.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from trader.errors import BusFullError
from trader.events import Event
from trader.stats import Stats

log = logging.getLogger(__name__)


class Bus:
    """Bounded event queue with a never-drop path and a conflating path."""

    def __init__(self, maxsize: int, put_timeout: float, stats: Stats) -> None:
        self._q: queue.Queue[Event] = queue.Queue(maxsize)
        self.maxsize = maxsize
        self._put_timeout = put_timeout
        self._stats = stats
        self._overflow: dict[tuple[type, str], Event] = {}
        self._overflow_lock = threading.Lock()
        self.conflated = 0  # replacements in the overflow (under _overflow_lock)
        # market data published: straight into the queue (under its mutex), into the overflow
        # (under _overflow_lock); the conflated share is conflated / both
        self._market_queued = 0
        self._market_overflowed = 0
        self.high_water = 0  # deepest queue seen by the consumer

    def publish(self, event: Event) -> None:
        """Queue ``event`` by its policy: conflate market data, never drop anything else."""
        if event.conflatable:
            self._publish_market(event)
            return
        try:
            self._q.put(event, timeout=self._put_timeout)
        except queue.Full:
            self._stats.incr("bus_put_timeouts")
            log.critical(
                "bus full for %.1fs: could not queue %s; the producer must resynchronise",
                self._put_timeout,
                type(event).__name__,
            )
            raise BusFullError(f"bus full: {type(event).__name__} not queued") from None

    def _publish_market(self, event: Any) -> None:
        if not self._overflow:
            # queue.Queue.put_nowait, inlined: the hot path of every quote and trade. Same lock,
            # same bound, same wake-up of the consumer (get_batch reads this deque the same way).
            q = self._q
            with q.mutex:
                if len(q.queue) < self.maxsize:
                    self._market_queued += 1
                    q.queue.append(event)
                    q.unfinished_tasks += 1
                    # Condition.notify() is Python code that first proves the lock is held (an
                    # acquire attempt) even when nobody waits; the consumer waits only on an empty
                    # queue, so most messages have no waiter. Reading the waiter list under the
                    # same mutex is race-free: a consumer adds itself before releasing it.
                    if q.not_empty._waiters:  # type: ignore[attr-defined]  # noqa: SLF001
                        q.not_empty.notify()
                    return
        key = (type(event), event.symbol)
        with self._overflow_lock:
            self._market_overflowed += 1
            if key in self._overflow:
                self.conflated += 1
                del self._overflow[key]  # re-insert so the dict keeps arrival order
            self._overflow[key] = event

    def get(self, timeout: float) -> Event:
        """Take the next event for the consumer; raises ``queue.Empty`` after ``timeout``."""
        if self._overflow:
            try:
                return self._q.get_nowait()
            except queue.Empty:
                with self._overflow_lock:
                    if self._overflow:
                        key = next(iter(self._overflow))
                        return self._overflow.pop(key)
        return self._q.get(timeout=timeout)

    def get_batch(self, max_items: int, timeout: float) -> list[Event]:
        """Take up to ``max_items`` waiting events under one lock acquisition, waiting up to
        ``timeout`` for the first; ``[]`` on timeout.

        This is what lets the consumer keep up with producers: ``queue.Queue.get`` takes the
        queue's mutex and notifies per item, and that per-item cost is most of a bare hand-off.
        Producers still use the ordinary ``put``; the bound and both policies are unchanged.
        """
        q = self._q
        with q.not_empty:
            items = q.queue
            if not items and not self._overflow:
                q.not_empty.wait(timeout)
            n = min(len(items), max_items)
            batch = [items.popleft() for _ in range(n)]
            left = len(items)
            if n:
                q.not_full.notify(n)
        if not left and self._overflow and len(batch) < max_items:
            with self._overflow_lock:
                while self._overflow and len(batch) < max_items:
                    batch.append(self._overflow.pop(next(iter(self._overflow))))
        return batch

    def get_nowait(self) -> Event:
        """Take the next event without waiting; raises ``queue.Empty``."""
        return self.get(0)

    def depth(self) -> int:
        """Events waiting: the queue plus the overflow."""
        depth = self._q.qsize() + len(self._overflow)
        if depth > self.high_water:
            self.high_water = depth
        return depth

    @property
    def market_data(self) -> int:
        """Market data events published so far (conflated ones included)."""
        return self._market_queued + self._market_overflowed

    def conflated_share(self) -> float:
        """The share of published market data replaced before it was dispatched (0 to 1):
        above 0, the consumer is not keeping up with the feeds."""
        return self.conflated / self.market_data if self.market_data else 0.0

    def counters(self) -> dict[str, int | float]:
        """Bus figures for stats and metrics."""
        return {
            "queue_depth": self.depth(),
            "queue_high_water": self.high_water,
            "conflated": self.conflated,
            "market_data": self.market_data,
            "conflated_share": self.conflated_share(),
            "put_timeouts": self._stats.get("bus_put_timeouts"),
        }
