"""The strategy API and the runner that feeds strategies.

A strategy receives market events and a read-only view of the store and returns order intents
and signals. It does no I/O and keeps no reference to the store beyond the call. One module per
strategy under ``trader/trading/strategies/``, each with its own ``Params`` dataclass, listed by
name in ``trader.trading.strategies.STRATEGIES`` so config can name it.

The runner calls each strategy subscribed to the event's market. A strategy that raises is
logged with the traceback and reported as ``HandlerFailed``; after ``max_consecutive_errors``
failures in a row it is disabled with a ``StrategyDisabled`` event.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from trader.clock import Clock
from trader.events import (
    Candle,
    Event,
    HandlerFailed,
    OrderFilled,
    QuoteTick,
    SignalGenerated,
    StrategyDisabled,
    TradeTick,
)
from trader.model.orders import OrderType, Side
from trader.store.view import StoreView

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent:
    """What a strategy wants; risk turns it into an order or a denial."""

    strategy: str
    symbol: str
    side: Side
    amount: Decimal
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelIntent:
    """A strategy asks to cancel one of its orders."""

    strategy: str
    symbol: str
    client_id: str


Output = OrderIntent | CancelIntent | SignalGenerated


class Strategy:
    """Base class: override the callbacks you need; each returns outputs (or nothing)."""

    Params: ClassVar[type]

    def __init__(self, strategy_id: str, symbol: str, params: Any, clock: Clock) -> None:
        self.id = strategy_id
        self.symbol = symbol
        self.params = params
        self.clock = clock

    def on_quote(self, ev: QuoteTick, view: StoreView) -> Iterable[Output]:
        """A new top of book in this strategy's market."""
        return ()

    def on_trade(self, ev: TradeTick, view: StoreView) -> Iterable[Output]:
        """A public trade in this strategy's market."""
        return ()

    def on_candle(self, ev: Candle, view: StoreView) -> Iterable[Output]:
        """A candle update in this strategy's market (check ``ev.closed``)."""
        return ()

    def on_fill(self, ev: OrderFilled, view: StoreView) -> Iterable[Output]:
        """One of this strategy's orders filled."""
        return ()

    def signal(self, kind: Any, note: str = "") -> SignalGenerated:
        """Build a signal stamped with the strategy's clock."""
        now = self.clock.now_ns()
        return SignalGenerated(
            ts_event=now, ts_recv=now, strategy=self.id, symbol=self.symbol, kind=kind, note=note
        )


IntentSink = Callable[[OrderIntent | CancelIntent], Sequence[Event]]


class StrategyRunner:
    """Routes market events and fills to strategies; hands their intents to ``sink`` (risk)."""

    def __init__(
        self,
        strategies: Sequence[Strategy],
        view: StoreView,
        sink: IntentSink,
        clock: Clock,
        max_consecutive_errors: int = 3,
    ) -> None:
        # (callback name, symbol) -> strategies that override that callback: most events reach
        # no strategy at all, and that must cost one dict lookup.
        self._routes: dict[tuple[str, str], list[Strategy]] = {}
        for s in strategies:
            for method in ("on_quote", "on_trade", "on_candle"):
                if getattr(type(s), method) is not getattr(Strategy, method):
                    self._routes.setdefault((method, s.symbol), []).append(s)
        self._by_id = {s.id: s for s in strategies}
        self._view = view
        self._sink = sink
        self._clock = clock
        self._max_errors = max_consecutive_errors
        self._errors: dict[str, int] = {}
        self.disabled: set[str] = set()

    @property
    def strategies(self) -> tuple[Strategy, ...]:
        """Every configured strategy (enabled or not)."""
        return tuple(self._by_id.values())

    def on_quote(self, ev: QuoteTick) -> list[Event]:
        """Route a quote."""
        return self._route(ev, "on_quote")

    def on_trade(self, ev: TradeTick) -> list[Event]:
        """Route a trade."""
        return self._route(ev, "on_trade")

    def on_candle(self, ev: Candle) -> list[Event]:
        """Route a candle."""
        return self._route(ev, "on_candle")

    def on_fill(self, ev: OrderFilled) -> list[Event]:
        """Route a fill to the strategy that placed the order."""
        order = self._view.order(ev.client_id)
        strat = self._by_id.get(order.strategy) if order else None
        if strat is None or strat.id in self.disabled:
            return []
        return self._call(strat, strat.on_fill, ev)

    def _route(self, ev: Any, method: str) -> list[Event]:
        strategies = self._routes.get((method, ev.symbol))
        if not strategies:
            return []
        out: list[Event] = []
        for strat in strategies:
            if strat.id not in self.disabled:
                out.extend(self._call(strat, getattr(strat, method), ev))
        return out

    def _call(self, strat: Strategy, fn: Callable[..., Iterable[Output]], ev: Event) -> list[Event]:
        try:
            outputs = list(fn(ev, self._view) or ())
        except Exception as exc:  # noqa: BLE001 - a strategy bug must not stop the system
            return self._failed(strat, ev, exc)
        self._errors[strat.id] = 0
        events: list[Event] = []
        for item in outputs:
            if isinstance(item, SignalGenerated):
                events.append(item)
            elif isinstance(item, (OrderIntent, CancelIntent)):
                events.extend(self._sink(item))
            else:
                log.error("strategy %s returned %r; expected intents or signals", strat.id, item)
        return events

    def _failed(self, strat: Strategy, ev: Event, exc: Exception) -> list[Event]:
        tb = traceback.format_exc()
        count = self._errors.get(strat.id, 0) + 1
        self._errors[strat.id] = count
        log.error("strategy %s failed (%d in a row) on %r\n%s", strat.id, count, ev, tb)
        now = self._clock.now_ns()
        out: list[Event] = [
            HandlerFailed(
                ts_event=ev.ts_event,
                ts_recv=now,
                handler=f"strategy:{strat.id}",
                event_type=type(ev).__name__,
                error=f"{type(exc).__name__}: {exc}",
                traceback=tb,
            )
        ]
        if count >= self._max_errors:
            self.disabled.add(strat.id)
            reason = f"{count} consecutive errors, last: {type(exc).__name__}: {exc}"
            log.error("strategy %s disabled: %s", strat.id, reason)
            out.append(
                StrategyDisabled(ts_event=now, ts_recv=now, strategy=strat.id, reason=reason)
            )
        return out
