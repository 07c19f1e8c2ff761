"""The REST poller: a private ``schedule.Scheduler()`` in its own thread.

Jobs: balances (at start and every ``balances_every_s``), tickers for the configured markets,
open orders, and our recent trades. ``schedule`` does not catch job exceptions, so every job is
wrapped: a failure is logged, counted and published as ``PollFailed``, and the next run happens
on time. Jobs use ``every(n).seconds`` (never ``.at()``), so nothing depends on the local time
zone.

Recent trades: each run asks for fills since the previous run (with an overlap for clock skew
and fills the exchange shows late) and publishes every fill it gets, repeats included: the
store is the one place that drops a fill already applied, whichever source delivered it first
(an order's answer, a user stream, an earlier poll).

Other threads never touch the scheduler. They leave requests that the poller thread carries
out at its next turn (it is woken at once):

- :meth:`set_fast` (through the main-thread handlers :meth:`on_feed_down`, for ``FeedStale``
  and ``FeedDisconnected``, and :meth:`on_feed_recovered`): from the moment a feed goes stale
  or drops until it delivers data again, every job also runs every ``fast_every_s``, tickers
  included even when their normal schedule is off, because REST is then the only source of
  that data. One feed down speeds up every job: the poller does not know which data a feed
  carries, and a few extra requests while a stream is down are cheap.
- :meth:`request_refresh`: run jobs now, once.
- :meth:`request_catch_up` (through :meth:`on_feed_recovered`, whenever a feed delivers again
  after a drop, a stall or a resubscribe: what happened meanwhile was missed): balances, open
  orders and our trades, each retried until it succeeds: after a rate limit once its
  ``Retry-After`` has passed, else with backoff (up to ``fast_every_s``). The fast schedule
  stays on until the catch-up has succeeded. Its fills go to the store like any other, which
  drops those already applied.

Reconnects reach the poller only as these events, handled on the main thread; no listener
calls it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import schedule

from trader.backoff import Backoff
from trader.clock import Clock
from trader.config import PollerConfig
from trader.errors import ErrorKind, RateLimitedError, TraderError
from trader.events import Event, FeedDisconnected, FeedRecovered, FeedStale, PollFailed
from trader.exchange.gateway import Gateway
from trader.model.units import NS
from trader.stats import Stats
from trader.workers import Worker

log = logging.getLogger(__name__)

TRADES_OVERLAP_S = 60  # each trades poll reaches this far behind the previous one
FAST = "fast"
REFRESH_AFTER_RECONNECT = ("balances", "open_orders", "trades")
CATCH_UP_RETRY_S = 0.5  # the first retry of a failed catch-up (doubling up to fast_every_s)


class Poller(Worker):
    """Runs the polling jobs and publishes what they return."""

    name = "poller"

    def __init__(
        self,
        gateway: Gateway,
        publish: Callable[[Event], None],
        clock: Clock,
        stats: Stats,
        cfg: PollerConfig,
        symbols: Sequence[str],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gateway = gateway
        self._publish = publish
        self._clock = clock
        self._stats = stats
        self._symbols = tuple(symbols)
        self._fast_every = cfg.fast_every_s
        self.scheduler = schedule.Scheduler()
        self._fetchers: dict[str, Callable[[], Sequence[Event]]] = {
            "balances": gateway.fetch_balances,
            "tickers": lambda: gateway.fetch_tickers(self._symbols),
            "open_orders": lambda: gateway.fetch_open_orders(self._symbols),
            "trades": self._recent_fills,
        }
        intervals = {
            "balances": cfg.balances_every_s,
            "tickers": cfg.tickers_every_s,
            "open_orders": cfg.open_orders_every_s,
            "trades": cfg.trades_every_s,
        }
        for name, every in intervals.items():
            if every > 0:
                self.scheduler.every(every).seconds.do(
                    self.run_job, name, self._fetchers[name]
                ).tag(name)
        # Requests from other threads, under _lock; the poller thread applies them.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stale: set[str] = set()
        self._refresh: list[str] = []
        self._catch_up_asked: list[str] = []
        self._fast_on = False  # poller thread only
        # the catch-up after a recovery (poller thread only): jobs not yet done, when to retry
        self._monotonic = monotonic
        self._catch_up: dict[str, None] = {}
        self._catch_up_due = 0.0
        self._catch_up_backoff = Backoff(
            min(CATCH_UP_RETRY_S, cfg.fast_every_s), cfg.fast_every_s, jitter=0.5
        )
        self._trades_since = clock.now_ns()  # poller thread only

    # ------------------------------------------------------------------ any thread

    def set_fast(self, feed: str, stale: bool) -> None:
        """Note that ``feed`` went stale (or recovered); thread-safe, applied by the poller."""
        with self._lock:
            if stale:
                self._stale.add(feed)
            else:
                self._stale.discard(feed)
        self._wake.set()

    def request_refresh(self, *jobs: str) -> None:
        """Ask the poller thread to run ``jobs`` (all when none given) now; thread-safe."""
        with self._lock:
            self._refresh.extend(jobs or self._fetchers)
        self._wake.set()

    def request_catch_up(self, *jobs: str) -> None:
        """Ask the poller thread to run ``jobs`` now and retry each until it succeeds;
        thread-safe."""
        with self._lock:
            self._catch_up_asked.extend(jobs)
        self._wake.set()

    @property
    def catching_up(self) -> tuple[str, ...]:
        """The catch-up jobs not yet done (for tests and diagnostics)."""
        return tuple(self._catch_up)

    def on_feed_down(self, ev: FeedStale | FeedDisconnected) -> None:
        """Main-thread handler: poll fast until the feed delivers again."""
        self.set_fast(ev.feed, True)

    def on_feed_recovered(self, ev: FeedRecovered) -> None:
        """Main-thread handler: refresh what the feed may have missed while it was down, and
        go back to the normal schedule once no feed is down."""
        log.info(
            "%s delivers again (%s): refreshing balances, open orders and trades over "
            "REST, each until it succeeds",
            ev.feed,
            ev.reason or "recovered",
        )
        self.request_catch_up(*REFRESH_AFTER_RECONNECT)
        self.set_fast(ev.feed, False)

    def close(self) -> None:
        """Wake the loop so it sees the stop at once."""
        self._wake.set()

    # ------------------------------------------------------------------ poller thread

    def run_job(self, name: str, fetch: Callable[[], Sequence[Event]]) -> Exception | None:
        """Run one job; publish its events, or a ``PollFailed`` when it raises (and return
        the exception)."""
        try:
            events = fetch()
        except Exception as exc:  # noqa: BLE001 - schedule would let it kill the thread
            kind = exc.kind if isinstance(exc, TraderError) else ErrorKind.INTERNAL
            self._stats.incr(f"poll_failed.{name}")
            log.warning("poll %s failed: %s: %s", name, type(exc).__name__, exc)
            now = self._clock.now_ns()
            self._publish(
                PollFailed(
                    ts_event=now,
                    ts_recv=now,
                    job=name,
                    kind=kind,
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
            return exc
        self._stats.incr(f"polled.{name}")
        for ev in events:
            self._publish(ev)
        return None

    def run_now(self, tag: str | None = None) -> None:
        """Run every job (or those tagged ``tag``) now; on the poller thread (or in tests)."""
        for job in list(self.scheduler.jobs):
            if tag is None or tag in job.tags:
                job.run()

    def run(self, stop: threading.Event) -> None:
        """Run every job at start, then each on its schedule, until stopped."""
        self.run_now()
        while not stop.is_set():
            self._wake.clear()  # before serving, so a request arriving meanwhile wakes the wait
            self.serve_requests()
            self.scheduler.run_pending()
            idle = self.scheduler.idle_seconds
            wait = 1.0 if idle is None else min(max(idle, 0.0), 1.0)
            if self._catch_up:
                wait = min(wait, max(0.0, self._catch_up_due - self._monotonic()))
            self._wake.wait(wait)

    def serve_requests(self) -> None:
        """On the poller thread: carry out what other threads asked for (refreshes, then the
        fast schedule)."""
        with self._lock:
            refresh, self._refresh = list(dict.fromkeys(self._refresh)), []
            asked, self._catch_up_asked = self._catch_up_asked, []
            want_fast = bool(self._stale)
        for name in refresh:
            self.run_job(name, self._fetchers[name])
        if asked:
            self._catch_up.update(dict.fromkeys(asked))
            self._catch_up_due = 0.0  # a new recovery: try at once (a rate limit still holds)
        self._run_catch_up()
        want_fast = want_fast or bool(self._catch_up)
        if want_fast and not self._fast_on:
            log.info("a feed is stale: polling every %ds", self._fast_every)
            for name, fetch in self._fetchers.items():
                self.scheduler.every(self._fast_every).seconds.do(self.run_job, name, fetch).tag(
                    FAST
                )
            self.run_now(FAST)
        elif self._fast_on and not want_fast:
            log.info("feeds recovered: polling on the normal schedule")
            self.scheduler.clear(FAST)
        self._fast_on = want_fast

    def _run_catch_up(self) -> None:
        """Run the catch-up jobs not yet done, if their retry is due; keep those that fail."""
        if not self._catch_up or self._monotonic() < self._catch_up_due:
            return
        wait = 0.0
        for name in list(self._catch_up):
            exc = self.run_job(name, self._fetchers[name])
            if exc is None:
                del self._catch_up[name]
            elif isinstance(exc, RateLimitedError):
                wait = exc.retry_after_s or 0.0
                break  # every other REST call fails at once until the pause has passed
        if not self._catch_up:
            self._catch_up_backoff.reset()
            return
        wait = max(wait, self._catch_up_backoff.next_delay())
        self._catch_up_due = self._monotonic() + wait
        log.warning(
            "catch-up after a recovery: %s not fetched yet; retrying in %.1fs",
            ", ".join(self._catch_up),
            wait,
        )

    def _recent_fills(self) -> list[Event]:
        now = self._clock.now_ns()
        since = self._trades_since - TRADES_OVERLAP_S * NS
        fills = [f for s in self._symbols for f in self._gateway.fetch_my_trades(s, since)]
        self._trades_since = now
        return sorted(fills, key=lambda f: f.ts_event)
