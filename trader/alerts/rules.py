"""Which events become alerts, and their text: main-thread handlers and one timer that only
append to the :class:`~trader.alerts.sender.Outbox` (delivery is the ``alerts`` worker's).

    fills            every fill of ours
    trading_state    trading halted, reducing or resumed, with the reason
    feed_down_after_s  a feed stale or disconnected this long (and its recovery after that)
    reconciliation   a round that found differences
    errors           handler failures, worker crashes, storage failures, disabled strategies
    daily_summary_utc  once a day at HH:MM UTC: equity, PnL, trades and fees since the last one
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from trader.alerts.sender import Alert, Outbox
from trader.clock import Clock
from trader.config import AlertsConfig
from trader.events import (
    FeedConnected,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    HandlerFailed,
    OrderFilled,
    ReconciliationCompleted,
    StorageFailed,
    StrategyDisabled,
    TradingState,
    TradingStateChanged,
    WorkerCrashed,
)
from trader.store.view import StoreView
from trader.trading.portfolio import pnl_usd, prices_of

NS = 1_000_000_000
DAY_NS = 86_400 * NS


class AlertRules:
    """Turns events into alert lines (main thread only)."""

    def __init__(self, cfg: AlertsConfig, outbox: Outbox, view: StoreView, clock: Clock) -> None:
        self._cfg = cfg
        self._outbox = outbox
        self._view = view
        self._clock = clock
        self._down: dict[str, tuple[int, str]] = {}  # feed -> (since ns, what)
        self._alerted: set[str] = set()  # feeds whose outage was reported
        now = clock.now_ns()
        self._summary_day = self._summary_due_day(now)
        self._since_summary = now
        self._equity_at_summary: Decimal | None = None
        self._trades = 0
        self._fees: dict[str, Decimal] = {}

    def _put(self, kind: str, text: str) -> None:
        self._outbox.put(Alert(kind, text))

    # ------------------------------------------------------------------ handlers

    def on_fill(self, ev: OrderFilled) -> None:
        """A fill: counted for the summary, and an alert when ``fills`` is on."""
        self._trades += 1
        if ev.fee:
            self._fees[ev.fee_asset] = self._fees.get(ev.fee_asset, Decimal(0)) + ev.fee
        if self._cfg.fills:
            self._put(
                "fill",
                f"FILL {ev.side.upper()} {ev.amount} {ev.symbol} @ {ev.price} "
                f"(fee {ev.fee} {ev.fee_asset}, order {ev.client_id})",
            )

    def on_trading_state(self, ev: TradingStateChanged) -> None:
        """Halted, reducing or resumed, with the reason."""
        if not self._cfg.trading_state:
            return
        word = {
            TradingState.HALTED: "HALTED",
            TradingState.REDUCING: "REDUCING ONLY",
            TradingState.ACTIVE: "RESUMED",
        }[ev.state]
        self._put("trading", f"TRADING {word}: {ev.reason}")

    def on_feed(self, ev: FeedConnected | FeedDisconnected | FeedStale | FeedRecovered) -> None:
        """Track outages; :meth:`check` reports those lasting ``feed_down_after_s``."""
        if isinstance(ev, (FeedConnected, FeedRecovered)):
            since = self._down.pop(ev.feed, None)
            if since is not None and ev.feed in self._alerted:
                self._alerted.discard(ev.feed)
                self._put(
                    "feed", f"FEED {ev.feed} recovered after {(ev.ts_recv - since[0]) / NS:.0f}s"
                )
            return
        what = "stale (no data)" if isinstance(ev, FeedStale) else f"down ({ev.reason})"
        since_ns = self._down.get(ev.feed, (ev.ts_recv, ""))[0]
        if isinstance(ev, FeedStale):
            since_ns = min(since_ns, ev.ts_recv - int(ev.silent_s * NS))
        self._down[ev.feed] = (since_ns, what)
        self.check()

    def on_reconciliation(self, ev: ReconciliationCompleted) -> None:
        """A round that found differences."""
        if self._cfg.reconciliation and not ev.ok:
            self._put(
                "reconciliation",
                f"RECONCILIATION: {ev.differences} difference(s) "
                f"between store and exchange: {ev.summary}",
            )

    def on_error(
        self, ev: HandlerFailed | WorkerCrashed | StorageFailed | StrategyDisabled
    ) -> None:
        """Failures the operator should look at."""
        if not self._cfg.errors:
            return
        if isinstance(ev, HandlerFailed):
            text = f"handler {ev.handler} failed on {ev.event_type}: {ev.error}"
        elif isinstance(ev, WorkerCrashed):
            text = f"worker {ev.worker} crashed ({ev.error}); restarting in {ev.restart_in_s}s"
        elif isinstance(ev, StorageFailed):
            text = f"storage {ev.component} failing: {ev.error}"
        else:
            text = f"strategy {ev.strategy} disabled: {ev.reason}"
        self._put("error", f"ERROR {text}")

    # ------------------------------------------------------------------ timer

    def check(self) -> None:
        """Timer (every second): long feed outages and the daily summary."""
        now = self._clock.now_ns()
        after = self._cfg.feed_down_after_s
        if after:
            for feed, (since, what) in self._down.items():
                if feed not in self._alerted and now - since >= after * NS:
                    self._alerted.add(feed)
                    self._put("feed", f"FEED {feed} {what} for {(now - since) / NS:.0f}s")
        if self._cfg.daily_summary_utc and self._summary_due_day(now) > self._summary_day:
            self._summary_day = self._summary_due_day(now)
            self._put("summary", self._summary(now))

    def _summary_due_day(self, now: int) -> int:
        """The number of the last UTC day whose summary time has passed."""
        hh, mm = (int(x) for x in (self._cfg.daily_summary_utc or "00:00").split(":"))
        return (now - (hh * 3600 + mm * 60) * NS) // DAY_NS

    def _summary(self, now: int) -> str:
        equity = self._view.balances().total_usd
        realized, unrealized = pnl_usd(self._view.positions(), prices_of(self._view))
        change = (
            ""
            if self._equity_at_summary is None
            else f" ({equity - self._equity_at_summary:+.2f} since the last summary)"
        )
        fees = ", ".join(f"{v.normalize()} {k}" for k, v in sorted(self._fees.items())) or "none"
        hours = (now - self._since_summary) / NS / 3600
        day = datetime.fromtimestamp(now / NS, UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = (
            f"DAILY SUMMARY {day}: equity {equity:.2f} USD{change}; PnL realized "
            f"{realized:+.2f} USD, unrealized {unrealized:+.2f} USD; {self._trades} trade(s) "
            f"and fees {fees} in the last {hours:.1f} h"
        )
        self._equity_at_summary, self._since_summary = equity, now
        self._trades, self._fees = 0, {}
        return text
