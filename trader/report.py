"""What the log shows a user while the system runs: every trade, signal, denial and error as it
happens, and a stats line every few seconds. Handlers only read events and the store. Each event's
line carries the event (``extra={"event": ev}``): JSON logs show its fields."""

from __future__ import annotations

import dataclasses
import logging
import time

from trader.bus import Bus
from trader.events import (
    BalanceUpdate,
    DataHaltChanged,
    ExchangeUpdateUnusable,
    FeedConnected,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    HandlerFailed,
    Heartbeat,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    PollFailed,
    ShutdownRequested,
    SignalGenerated,
    StrategyDisabled,
    TradingStateChanged,
    WorkerCrashed,
)
from trader.stats import Stats
from trader.store.view import StoreView

log = logging.getLogger("trader")


class Reporter:
    """Log lines for the events a user cares about, and the periodic stats line."""

    def __init__(self, view: StoreView, bus: Bus, stats: Stats, markets: tuple[str, ...]) -> None:
        self._view = view
        self._bus = bus
        self._stats = stats
        self._markets = markets
        self._last_total = 0
        self._last_t = time.monotonic()
        self._last_market = 0
        self._last_conflated = 0
        self._balances_seen: set[str] = set()

    def on_fill(self, ev: OrderFilled) -> None:
        """Every trade."""
        log.info(
            "TRADE %s %s %s @ %s fee %s %s (%s, order %s)",
            ev.side.upper(),
            ev.amount,
            ev.symbol,
            ev.price,
            ev.fee,
            ev.fee_asset,
            "final" if ev.is_final else "partial",
            ev.client_id,
            extra={"event": ev},
        )

    def on_balance(self, ev: BalanceUpdate) -> None:
        """Balance changes: the first of each asset at INFO, later ones at DEBUG."""
        level = logging.DEBUG if ev.asset in self._balances_seen else logging.INFO
        self._balances_seen.add(ev.asset)
        log.log(
            level,
            "BALANCE %s free %s used %s total %s",
            ev.asset,
            ev.free,
            ev.used,
            ev.total,
            extra={"event": ev},
        )

    def on_signal(self, ev: SignalGenerated) -> None:
        """Strategy signals."""
        log.info(
            "SIGNAL %s %s %s %s",
            ev.strategy,
            ev.symbol,
            ev.kind.upper(),
            ev.note,
            extra={"event": ev},
        )

    def on_denied(self, ev: OrderDenied) -> None:
        """Risk denials."""
        log.warning(
            "DENIED %s %s %s %s: %s",
            ev.strategy,
            ev.side,
            ev.amount,
            ev.symbol,
            ev.reason,
            extra={"event": ev},
        )

    def on_rejected(self, ev: OrderRejected) -> None:
        """Exchange rejections."""
        log.warning(
            "REJECTED order %s (%s): %s", ev.client_id, ev.kind, ev.reason, extra={"event": ev}
        )

    def on_unusable(self, ev: ExchangeUpdateUnusable) -> None:
        """An exchange update nothing could be booked from: an error a user must see."""
        log.error(
            "UNUSABLE exchange update for %s, nothing booked (the REST polls and "
            "reconciliation will bring the truth): %s",
            ev.subject,
            ev.reason,
        )

    def on_system(
        self,
        ev: FeedConnected
        | FeedDisconnected
        | FeedStale
        | FeedRecovered
        | PollFailed
        | WorkerCrashed
        | StrategyDisabled
        | TradingStateChanged
        | DataHaltChanged
        | HandlerFailed
        | ShutdownRequested,
    ) -> None:
        """System events, one line each."""
        fields = {
            f.name: getattr(ev, f.name)
            for f in dataclasses.fields(ev)
            if not f.name.startswith("ts_") and f.name != "traceback"  # logged when it happened
        }
        log.info(
            "%s %s",
            type(ev).__name__,
            " ".join(f"{k}={v}" for k, v in fields.items()),
            extra={"event": ev},
        )

    def on_heartbeat(self, ev: Heartbeat) -> None:
        """Heartbeats at DEBUG only."""
        log.debug("heartbeat: queue %d, dispatched %d", ev.queue_depth, ev.dispatched)

    def stats_line(self) -> None:
        """Events/s, queue depth, market data in and the share conflated (since the last line),
        prices and the total balance in USD."""
        now = time.monotonic()
        span = max(now - self._last_t, 1e-9)
        total = sum(self._stats.dispatched.values())
        rate = (total - self._last_total) / span
        market, conflated = self._bus.market_data, self._bus.conflated
        market_in = market - self._last_market
        share = (conflated - self._last_conflated) / market_in if market_in else 0.0
        self._last_total, self._last_t = total, now
        self._last_market, self._last_conflated = market, conflated
        prices = []
        for s in self._markets:
            px = self._view.last_price(s)
            if px is not None:
                prices.append(f"{s} {px:.2f}")
        bal = self._view.balances()
        log.info(
            "STATS %.0f ev/s | queue %d | market data %.0f/s, conflated %.1f%% (%d in all) | %s "
            "| balance %.2f USD",
            rate,
            self._bus.depth(),
            market_in / span,
            100 * share,
            conflated,
            " ".join(prices) or "no prices yet",
            bal.total_usd,
        )
