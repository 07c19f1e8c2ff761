"""Risk: the trading-state gate and the rules every order intent must pass.

Each rule returns a reason (a short sentence) or None. The first reason denies the intent with an
``OrderDenied`` event; nothing is sent. An intent that passes is quantised to the market's
precision, given a deterministic client order id, and becomes two follow-up events in this
order: ``OrderSubmitted`` (recorded in the store and journal) and then the ``SubmitOrder``
command (handed to the executor thread). So an order is always recorded before it is sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Callable

from trader.clock import Clock
from trader.config import RiskConfig
from trader.events import (
    CancelOrder,
    Event,
    OrderDenied,
    OrderSubmitted,
    OrderType,
    Side,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)
from trader.store.memory import split_symbol
from trader.store.models import Market
from trader.store.view import StoreView
from trader.trading.strategy import CancelIntent, OrderIntent

log = logging.getLogger(__name__)

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _BASE36[r] + out
        if not n:
            return out


class ClientIdGenerator:
    """Client order ids ``<prefix>-<session>-<seq>``: unique across restarts (the session is the
    start time in seconds, base 36), deterministic within a session, at most 36 characters of
    ``[a-z0-9-]`` (Binance and Bybit both accept 36)."""

    MAX_LEN = 36

    def __init__(self, prefix: str, session_start_ns: int) -> None:
        self._head = f"{prefix}-{_base36(session_start_ns // 1_000_000_000)}-"
        self._seq = 0
        if len(self._head) > self.MAX_LEN - 8:
            raise ValueError(f"client id prefix {prefix!r} is too long")

    def next(self) -> str:
        """The next id."""
        self._seq += 1
        return f"{self._head}{self._seq}"


def quantize_down(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``step`` (0 step leaves it unchanged)."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


@dataclass(frozen=True, slots=True)
class Check:
    """What a rule sees: the quantised intent, its market and reference price."""

    intent: OrderIntent
    market: Market | None
    amount: Decimal
    price: Decimal | None  # limit price, else the last price
    view: StoreView
    cfg: RiskConfig


Rule = Callable[[Check], "str | None"]


def market_known(c: Check) -> str | None:
    """The market exists and trades."""
    if c.market is None:
        return f"unknown market {c.intent.symbol}"
    if not c.market.active:
        return f"market {c.intent.symbol} is not active"
    return None


def has_price(c: Check) -> str | None:
    """A reference price exists (no trading blind)."""
    return None if c.price else f"no price for {c.intent.symbol} yet"


def minimums(c: Check) -> str | None:
    """Amount and notional at or above the market's minimums after rounding."""
    assert c.market is not None and c.price is not None
    if c.amount <= 0 or c.amount < c.market.min_amount:
        return f"amount {c.amount} below the minimum {c.market.min_amount}"
    if c.amount * c.price < c.market.min_notional:
        return f"notional {c.amount * c.price:.2f} below the minimum {c.market.min_notional}"
    return None


def max_order_notional(c: Check) -> str | None:
    """Order notional within ``risk.max_order_notional``."""
    assert c.price is not None
    notional = c.amount * c.price
    if notional > c.cfg.max_order_notional:
        return f"notional {notional:.2f} above max_order_notional {c.cfg.max_order_notional}"
    return None


def max_position_notional(c: Check) -> str | None:
    """The resulting position within ``risk.max_position_notional``."""
    assert c.price is not None
    pos = c.view.position(c.intent.symbol).amount
    after = pos + (c.amount if c.intent.side is Side.BUY else -c.amount)
    if abs(after) > abs(pos) and abs(after) * c.price > c.cfg.max_position_notional:
        return (
            f"position notional {abs(after) * c.price:.2f} would exceed "
            f"max_position_notional {c.cfg.max_position_notional}"
        )
    return None


def free_balance(c: Check) -> str | None:
    """Enough free balance: quote for a buy, base for a sell."""
    assert c.price is not None
    base, quote = split_symbol(c.intent.symbol)
    if c.intent.side is Side.BUY:
        need, asset = c.amount * c.price, quote
    else:
        need, asset = c.amount, base
    bal = c.view.balance(asset)
    free = bal.free if bal else Decimal(0)
    if free < need:
        return f"free {asset} {free} is less than the {need:.8f} needed"
    return None


DEFAULT_RULES: tuple[Rule, ...] = (
    market_known, has_price, minimums, max_order_notional, max_position_notional, free_balance,
)


class Risk:
    """Gates intents by trading state and rules; turns accepted ones into orders."""

    def __init__(
        self,
        view: StoreView,
        cfg: RiskConfig,
        clock: Clock,
        ids: ClientIdGenerator,
        rules: tuple[Rule, ...] = DEFAULT_RULES,
    ) -> None:
        self._view = view
        self._cfg = cfg
        self._clock = clock
        self._ids = ids
        self._rules = rules
        self.state = TradingState.ACTIVE

    def set_state(self, state: TradingState, reason: str) -> list[Event]:
        """Move the trading gate; returns the ``TradingStateChanged`` event."""
        if state is self.state:
            return []
        log.warning("trading state %s -> %s: %s", self.state, state, reason)
        self.state = state
        now = self._clock.now_ns()
        return [TradingStateChanged(ts_event=now, ts_recv=now, state=state, reason=reason)]

    def on_state_changed(self, ev: TradingStateChanged) -> None:
        """Follow state changes made elsewhere (operator, replay)."""
        self.state = ev.state

    def evaluate(self, intent: OrderIntent | CancelIntent) -> list[Event]:
        """Decide on one intent."""
        now = self._clock.now_ns()
        if isinstance(intent, CancelIntent):
            return [CancelOrder(ts_event=now, ts_recv=now, client_id=intent.client_id,
                                symbol=intent.symbol)]
        reason = self._gate(intent) or self._check(intent)
        if reason:
            log.info("denied %s %s %s: %s", intent.strategy, intent.side, intent.symbol, reason)
            return [OrderDenied(ts_event=now, ts_recv=now, strategy=intent.strategy,
                                symbol=intent.symbol, side=intent.side, amount=intent.amount,
                                reason=reason)]
        market = self._view.market(intent.symbol)
        assert market is not None
        amount = quantize_down(intent.amount, market.amount_increment)
        price = intent.price
        if price is not None:
            price = quantize_down(price, market.price_increment)
        cid = self._ids.next()
        fields = dict(client_id=cid, symbol=intent.symbol, side=intent.side,
                      order_type=intent.order_type, amount=amount, price=price,
                      strategy=intent.strategy)
        return [OrderSubmitted(ts_event=now, ts_recv=now, **fields),
                SubmitOrder(ts_event=now, ts_recv=now, **fields)]

    def _gate(self, intent: OrderIntent) -> str | None:
        if self.state is TradingState.HALTED:
            return "trading is halted"
        if self.state is TradingState.REDUCING:
            pos = self._view.position(intent.symbol).amount
            reduces = (pos > 0 and intent.side is Side.SELL) or (pos < 0 and intent.side is Side.BUY)
            if not reduces or intent.amount > abs(pos):
                return "trading is reducing: only orders that reduce a position"
        return None

    def _check(self, intent: OrderIntent) -> str | None:
        market = self._view.market(intent.symbol)
        amount = intent.amount
        if market is not None:
            amount = quantize_down(amount, market.amount_increment)
        price = intent.price if intent.order_type is OrderType.LIMIT else None
        price = price or self._view.last_price(intent.symbol)
        check = Check(intent, market, amount, price, self._view, self._cfg)
        for rule in self._rules:
            reason = rule(check)
            if reason:
                return reason
        return None
