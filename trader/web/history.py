"""What the dashboard shows that the store does not keep: our fills with their times, risk
denials, per-feed reconnects and last errors, the active halt reasons and an equity curve since
start.

Written by the main thread's handlers and one timer; read by the HTTP thread. Every buffer is
bounded (a process running for months holds the same amount), and every read copies under a
lock held for a few microseconds by either side, so a reader never blocks the main loop for
longer than a copy of a few hundred references.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from trader.clock import Clock
from trader.events import (
    FeedConnected,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    OrderDenied,
    OrderFilled,
    TradingStateChanged,
)
from trader.store.view import StoreView

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class FeedNotes:
    """What the feed events told about one feed beyond its state."""

    connects: int = 0
    last_error: str = ""
    last_error_ns: int = 0

    @property
    def reconnects(self) -> int:
        """Connections after the first."""
        return max(self.connects - 1, 0)


class EquitySeries:
    """(second, value) points since start in at most ``capacity`` points: when full, every
    other point is dropped and the sampling stride doubles, so the curve always spans the whole
    run at a resolution that coarsens with its age."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 4)
        self._points: list[tuple[int, Decimal]] = []
        self._stride = 1
        self._seen = 0

    def add(self, second: int, value: Decimal) -> None:
        """Offer one sample; kept when it falls on the stride and is in a new second."""
        self._seen += 1
        if (self._seen - 1) % self._stride:
            return
        if self._points and self._points[-1][0] >= second:
            return
        self._points.append((second, value))
        if len(self._points) >= self._capacity:
            self._points = self._points[::2]
            self._stride *= 2

    def points(self) -> tuple[tuple[int, Decimal], ...]:
        """Every kept point, oldest first."""
        return tuple(self._points)


class History:
    """Bounded buffers for the dashboard, fed on the main thread, read from any thread."""

    def __init__(
        self,
        view: StoreView,
        clock: Clock,
        halts: Callable[[], Mapping[str, str]],
        max_fills: int = 500,
        max_denials: int = 50,
        equity_points: int = 2_000,
    ) -> None:
        self._view = view
        self._clock = clock
        self._halts_source = halts
        self._lock = threading.Lock()
        self._fills: deque[OrderFilled] = deque(maxlen=max_fills)
        self._denials: deque[OrderDenied] = deque(maxlen=max_denials)
        self._feeds: dict[str, FeedNotes] = {}
        self._halts: tuple[tuple[str, str], ...] = ()
        self._equity = EquitySeries(equity_points)

    # ------------------------------------------------------------------ handlers (main thread)

    def on_fill(self, ev: OrderFilled) -> None:
        """One of our fills (a chart marker and a row)."""
        with self._lock:
            self._fills.append(ev)

    def on_denied(self, ev: OrderDenied) -> None:
        """A risk denial with its reason."""
        with self._lock:
            self._denials.append(ev)

    def on_feed(self, ev: FeedConnected | FeedDisconnected | FeedStale | FeedRecovered) -> None:
        """Count connections and keep the last problem of each feed."""
        notes = self._feeds.get(ev.feed) or FeedNotes()
        if isinstance(ev, FeedConnected):
            notes = FeedNotes(notes.connects + 1, notes.last_error, notes.last_error_ns)
        elif isinstance(ev, FeedDisconnected):
            notes = FeedNotes(notes.connects, f"disconnected: {ev.reason}", ev.ts_recv)
        elif isinstance(ev, FeedStale):
            notes = FeedNotes(notes.connects, f"stale: no data for {ev.silent_s}s", ev.ts_recv)
        with self._lock:
            self._feeds[ev.feed] = notes

    def on_trading(self, ev: TradingStateChanged) -> None:
        """The halt reasons, at once when the state moves (they also refresh every sample)."""
        self._take_halts()

    def sample(self) -> None:
        """Timer: one equity point and the current halt reasons."""
        equity = self._view.balances().total_usd
        second = self._clock.now_ns() // NS
        self._take_halts()
        with self._lock:
            self._equity.add(second, equity)

    def _take_halts(self) -> None:
        halts = tuple(sorted((str(k), v) for k, v in self._halts_source().items()))
        with self._lock:
            self._halts = halts

    # ------------------------------------------------------------------ readers (any thread)

    def fills(self) -> tuple[OrderFilled, ...]:
        """Our recent fills, oldest first."""
        with self._lock:
            return tuple(self._fills)

    def denials(self) -> tuple[OrderDenied, ...]:
        """Recent risk denials, oldest first."""
        with self._lock:
            return tuple(self._denials)

    def feeds(self) -> dict[str, FeedNotes]:
        """Per-feed notes."""
        with self._lock:
            return dict(self._feeds)

    def halts(self) -> tuple[tuple[str, str], ...]:
        """Active halt causes and their reasons."""
        with self._lock:
            return self._halts

    def equity(self) -> tuple[tuple[int, Decimal], ...]:
        """The equity curve: (unix second, USD) points, oldest first."""
        with self._lock:
            return self._equity.points()
