"""What strategies and risk decide: signals, denials, trading state."""

from __future__ import annotations

from decimal import Decimal

from trader.events.base import Event, SignalKind, TradingState, event
from trader.model.orders import Side

# --------------------------------------------------------------------------------------------
# Trading


@event
class SignalGenerated(Event):
    """A strategy's view of a market, journaled whether or not it leads to an order."""

    strategy: str
    symbol: str
    kind: SignalKind
    strength: Decimal = Decimal(1)
    note: str = ""


@event
class OrderDenied(Event):
    """Risk refused an order intent; nothing was sent."""

    strategy: str
    symbol: str
    side: Side
    amount: Decimal
    reason: str


@event
class TradingStateChanged(Event):
    """The trading gate moved (e.g. the daily loss limit or the operator halted trading)."""

    state: TradingState
    reason: str


@event
class DataHaltChanged(Event):
    """New orders on ``symbol`` are held (``halted``) because a feed carrying its market data
    is disconnected or stale, or released (``halted`` False) by the first fresh data after the
    reconnect. Per market, and not a trading-state change: cancels go through, other markets
    trade on."""

    symbol: str
    halted: bool
    reason: str


@event
class StrategyDisabled(Event):
    """A strategy raised too many times in a row and no longer receives events."""

    strategy: str
    reason: str
