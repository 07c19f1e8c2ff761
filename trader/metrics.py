"""Metrics: what the running system says about itself.

Collected on the main thread: events per type (``Stats``), dispatch lag (``ts_recv`` -> handled)
and per-handler time as histograms (sampled, see ``trader.engine``), queue depth and its high-water
mark, conflated and dropped counts, errors by kind, feed states, store sizes, process memory, the
journal's figures, and every counter the process keeps (``trader.counters``). Once a second the
main thread publishes an immutable snapshot (one attribute swap); the HTTP thread
(``trader.httpapi``) reads only that snapshot, the feed states (also swapped whole on each change)
and thread-safe reads (queue depth, store reads under its lock).

Served as Prometheus text (``trader.prometheus``: a ``prometheus_client`` collector on a registry
of this object's own) and as JSON for
``/health`` and ``/status``; one summary line goes to the log every ``summary_every_s``.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from trader import prometheus
from trader.bus import Bus
from trader.clock import Clock
from trader.config import MetricsConfig
from trader.engine import Engine, Handler, handler_name
from trader.errors import ErrorKind
from trader.events import (
    FeedConnected,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    HandlerFailed,
    OrderRejected,
    PollFailed,
    SessionStarted,
    StorageFailed,
    WorkerCrashed,
)
from trader.model.units import NS
from trader.stats import Stats
from trader.store.memory import MemoryStore

log = logging.getLogger("trader")

REFRESH_S = 1.0
#: Histogram upper bounds in seconds: handler calls take microseconds, lag can reach seconds.
BUCKETS_S = (
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BUCKETS_NS = tuple(int(b * NS) for b in BUCKETS_S)


class FeedState:
    """Names of a feed's states, from the feed events."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STALE = "stale"
    #: Every state, in the order ``/metrics`` lists them.
    ALL = (CONNECTED, DISCONNECTED, STALE)

    FROM_EVENT = {
        FeedConnected: CONNECTED,
        FeedRecovered: CONNECTED,
        FeedDisconnected: DISCONNECTED,
        FeedStale: STALE,
    }


class Histogram:
    """Fixed-bucket histogram of nanosecond values; written by the main thread only."""

    __slots__ = ("counts", "sum_ns")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS_NS) + 1)  # the last one is +Inf
        self.sum_ns = 0

    def observe_ns(self, ns: int) -> None:
        """Count one value."""
        self.counts[bisect_left(_BUCKETS_NS, ns)] += 1
        self.sum_ns += ns

    def snapshot(self) -> HistogramSnapshot:
        """An immutable copy."""
        return HistogramSnapshot(tuple(self.counts), self.sum_ns / NS)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Per-bucket counts (not cumulative; the last is +Inf) and the sum in seconds."""

    counts: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        """How many values."""
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile ``q`` (None when empty or past the
        last bound)."""
        total = self.count
        if not total:
            return None
        seen = 0
        for bound, n in zip(BUCKETS_S, self.counts, strict=False):  # counts: one more, +Inf
            seen += n
            if seen >= q * total:
                return bound
        return None


class DispatchTiming:
    """The engine's sampled timings: dispatch lag and each handler's time."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.lag = Histogram()
        self.handlers: dict[Handler, tuple[str, Histogram]] = {}

    def handler_ns(self, handler: Handler, ns: int) -> None:
        """One handler call took ``ns``."""
        entry = self.handlers.get(handler)
        if entry is None:
            entry = self.handlers[handler] = (handler_name(handler), Histogram())
        entry[1].observe_ns(ns)

    def lag_ns(self, ns: int) -> None:
        """An event was handled ``ns`` after its receipt."""
        self.lag.observe_ns(ns)


def rss_bytes() -> int:
    """Resident memory of this process (``/proc/self/statm``; the peak from ``getrusage``
    where there is no /proc)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Metrics:
    """Collects on the main thread; publishes :attr:`snapshot` and :attr:`feeds` for readers."""

    def __init__(
        self,
        cfg: MetricsConfig,
        clock: Clock,
        stats: Stats,
        bus: Bus,
        engine: Engine,
        store: MemoryStore,
        markets: Sequence[str],
        trading_state: Callable[[], str],
        strategies: Callable[[], list[dict[str, Any]]],
        journal_counters: Callable[[], dict[str, int]] | None = None,
        info: Mapping[str, str] | None = None,
        kept_counters: Callable[[], Mapping[str, int]] = dict,
        pnl: Callable[[], tuple[Decimal, Decimal]] | None = None,
    ) -> None:
        """``kept_counters``: counters kept outside ``stats`` (named in
        :data:`trader.counters.KEPT`), read on every refresh."""
        self.cfg = cfg
        self._clock = clock
        self._stats = stats
        self._bus = bus
        self._engine = engine
        self._store = store
        self._markets = tuple(markets)
        self._trading_state = trading_state
        self._strategies = strategies
        self._journal = journal_counters
        self._kept = kept_counters
        self._pnl = pnl
        self.info = dict(info or {})
        self.timing = DispatchTiming(cfg.sample_every)
        self.errors: dict[str, int] = {}
        self.started_ns = clock.now_ns()
        self.started_monotonic = time.monotonic()
        self._feeds: dict[str, tuple[str, int]] = {}
        #: feed -> (state, since ns); replaced whole on every change, read by any thread.
        self.feeds: Mapping[str, tuple[str, int]] = MappingProxyType({})
        self._last_total = 0
        self._last_t = time.monotonic()
        self._summary_total = 0
        self._summary_t = time.monotonic()
        #: The latest snapshot (a plain dict never mutated after publication).
        self.snapshot: dict[str, Any] = {}
        self.refresh()
        #: This object's own registry (not the library's global one): ``/metrics``.
        self.registry = prometheus.registry(
            prometheus.SnapshotCollector(self, BUCKETS_S, FeedState.ALL)
        )

    # ------------------------------------------------------------------ handlers (main thread)

    def on_feed(self, ev: FeedConnected | FeedDisconnected | FeedStale | FeedRecovered) -> None:
        """Track each feed's state."""
        self._feeds[ev.feed] = (FeedState.FROM_EVENT[type(ev)], ev.ts_recv)
        self.feeds = MappingProxyType(dict(self._feeds))

    def on_error(
        self, ev: PollFailed | OrderRejected | HandlerFailed | WorkerCrashed | StorageFailed
    ) -> None:
        """Count errors by kind: the event's ``ErrorKind`` where it has one."""
        kind = getattr(ev, "kind", None)
        if not isinstance(kind, ErrorKind):
            kind = _ERROR_NAMES[type(ev)]
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def on_session(self, ev: SessionStarted) -> None:
        """Remember the session for ``/status``."""
        self.info.update(session=ev.session, exchange=ev.exchange, mode=ev.mode)

    # ------------------------------------------------------------------ snapshots (main thread)

    def refresh(self) -> None:
        """Build and publish a new snapshot (a main-thread timer, every second)."""
        now = time.monotonic()
        s = self._stats.snapshot()
        total = s["dispatched_total"]
        rate = (total - self._last_total) / max(now - self._last_t, 1e-9)
        self._last_total, self._last_t = total, now
        bus = self._bus.counters()
        errors = dict(self.errors)
        if bus["put_timeouts"]:
            errors["bus_full"] = int(bus["put_timeouts"])
        journal = self._journal() if self._journal else {}
        balances = self._store.balances()
        self.snapshot = {
            "taken_monotonic": now,
            "events": s["dispatched"],
            "events_total": total,
            "events_per_s": rate,
            "unhandled": s["unhandled"],
            "handler_errors": s["handler_errors"],
            "errors": errors,
            "lag": self.timing.lag.snapshot(),
            "handlers": {name: h.snapshot() for name, h in self.timing.handlers.values()},
            "queue_high_water": bus["queue_high_water"],
            "conflated": bus["conflated"],
            "conflated_share": bus["conflated_share"],
            "dropped": {
                "bus_put_timeout": bus["put_timeouts"],
                "store": getattr(self._store, "dropped", 0),
                "journal": journal.get("dropped", 0),
            },
            "store": self._store.sizes() if hasattr(self._store, "sizes") else {},
            "rss_bytes": rss_bytes(),
            "journal": journal,
            "trading_state": str(self._trading_state()),
            "balances_total_usd": balances.total_usd,
            "pnl_usd": self._pnl() if self._pnl else None,
            "open_orders": len(self._store.open_orders()),
            "strategies": self._strategies(),
            "counters": self._stats.counters(),
            "kept": dict(self._kept()),
        }

    def log_summary(self) -> None:
        """The one-line summary (a main-thread timer, every ``summary_every_s``)."""
        self.refresh()
        s = self.snapshot
        now = time.monotonic()
        events = s["events_total"] - self._summary_total
        span = max(now - self._summary_t, 1e-9)
        self._summary_total, self._summary_t = s["events_total"], now
        lag = s["lag"]
        feeds = " ".join(f"{name} {state}" for name, (state, _) in sorted(self.feeds.items()))
        j = s["journal"]
        log.info(
            "METRICS %.0fs: %d events (%.1f/s) | lag p50 %s p99 %s | queue %d, max %d | "
            "conflated %d, dropped %d | errors %d | feeds %s | journal %s | rss %.1f MB",
            span,
            events,
            events / span,
            _ms(lag.quantile(0.5)),
            _ms(lag.quantile(0.99)),
            self._bus.depth(),
            s["queue_high_water"],
            s["conflated"],
            sum(s["dropped"].values()),
            sum(s["errors"].values()),
            feeds or "none",
            f"{j['written']} written, {j['pending']} pending" if j else "off",
            s["rss_bytes"] / 1e6,
        )

    # ------------------------------------------------------------------ readers (any thread)

    def market_ages(self) -> dict[str, float | None]:
        """Seconds since each traded market's last quote or trade (None: no data yet)."""
        now = self._clock.now_ns()
        out: dict[str, float | None] = {}
        for symbol in self._markets:
            q = self._store.quote(symbol)
            t = self._store.last_trade(symbol)
            last = max((e.ts_recv for e in (q, t) if e is not None), default=None)
            out[symbol] = None if last is None else (now - last) / NS
        return out

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, the ``/health`` document). Unhealthy when the main loop is stuck (events
        wait and nothing was dispatched for ``stuck_after_s``) or a feed is stale (a
        ``FeedStale`` not yet recovered, a feed disconnected or a market silent for longer than
        ``stale_after_s``)."""
        now_m = time.monotonic()
        now_ns = self._clock.now_ns()
        depth = self._bus.depth()
        idle = now_m - self._engine.last_dispatch_monotonic
        problems = []
        if depth and idle > self.cfg.stuck_after_s:
            problems.append(f"main loop stuck: {depth} events waiting, no dispatch for {idle:.1f}s")
        stale_s = self.cfg.stale_after_s
        feeds = {}
        for name, (state, since) in sorted(self.feeds.items()):
            age = (now_ns - since) / NS
            feeds[name] = {"state": state, "since_s": round(age, 3)}
            if state == FeedState.STALE or (
                state == FeedState.DISCONNECTED and stale_s and age > stale_s
            ):
                problems.append(f"feed {name} {state} for {age:.1f}s")
        ages = self.market_ages()
        uptime = (now_ns - self.started_ns) / NS
        if stale_s:
            for symbol, last in ages.items():
                if last is None and uptime > stale_s:
                    problems.append(f"no data for {symbol} since start ({uptime:.0f}s)")
                elif last is not None and last > stale_s:
                    problems.append(f"no data for {symbol} for {last:.1f}s")
        doc = {
            "status": "ok" if not problems else "unhealthy",
            "problems": problems,
            "trading_state": self.snapshot.get("trading_state"),
            "queue_depth": depth,
            "last_dispatch_s": round(idle, 3),
            "feeds": feeds,
            "markets": {
                s: {"last_data_s": None if a is None else round(a, 3)} for s, a in ages.items()
            },
        }
        return not problems, doc

    def status(self) -> dict[str, Any]:
        """The ``/status`` document."""
        s = self.snapshot
        return {
            **self.info,
            "trading_state": s["trading_state"],
            "queue_depth": self._bus.depth(),
            "events_per_s": round(s["events_per_s"], 1),
            "events_total": s["events_total"],
            "balances_total_usd": str(s["balances_total_usd"]),
            "open_orders": s["open_orders"],
            "strategies": s["strategies"],
            "uptime_s": round(time.monotonic() - self.started_monotonic, 1),
        }

    def queue_depth(self) -> int:
        """Events waiting on the bus now."""
        return self._bus.depth()

    def last_dispatch_age_s(self) -> float:
        """Seconds since the main loop dispatched."""
        return time.monotonic() - self._engine.last_dispatch_monotonic

    def prometheus(self) -> str:
        """The Prometheus text exposition format (version 0.0.4) of :attr:`registry`."""
        return prometheus.text(self.registry)


_ERROR_NAMES = {
    HandlerFailed: "handler",
    WorkerCrashed: "worker_crashed",
    StorageFailed: "storage",
}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:g}ms"
