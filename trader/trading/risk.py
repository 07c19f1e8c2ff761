"""Risk: the trading-state gate every order intent passes, and the rules after it.

**Gate.** ``TradingState`` ACTIVE trades, REDUCING only reduces positions, HALTED sends nothing.
Trading is HALTED while any halt cause holds: the operator's ``HaltTrading`` command, a
reconciliation round that has not yet found the store and the exchange in agreement, or the
daily loss limit (``risk.daily_loss_limit``). Otherwise it is REDUCING once the day's loss
passes the soft limit (``risk.daily_loss_soft_limit``, 0: off; it must be below the hard one),
and ACTIVE when nothing holds. See ``trader.trading.daily_loss`` for how the day's loss counts.

In REDUCING an order passes the gate only if it reduces the market's position without
reversing it: a sell of at most the long position (spot: of the base bought), a buy of at most
the short, counting what our open orders on that side already take. Any other order is an
``OrderDenied`` saying why ("trading is reducing (daily_loss: ...)"). Loss growing past the hard
limit escalates to HALTED; a new UTC day lifts both. ``ResumeTrading`` (the operator) lifts the
operator's own halt; with ``force`` it clears every halt cause and the reduce-only state and
starts the day's count afresh. Every change of
state is a ``TradingStateChanged`` event with its reason. Cancels are never gated.

**Rules** (:mod:`trader.trading.risk_rules`, the per-market data halt among them): an intent
that passes the gate is rounded to its market and checked by each rule in turn; the first
reason denies it with an ``OrderDenied`` event and nothing is sent.

**Orders.** An intent that passes gets a deterministic client order id and becomes two follow-up
events in this order: ``OrderSubmitted`` (recorded in the store and journal) and then the
``SubmitOrder`` command (handed to the executor thread). So an order is always recorded before
it is sent.
"""

from __future__ import annotations

import logging
from collections import deque
from decimal import Decimal
from enum import StrEnum
from typing import Any

from trader.clock import Clock
from trader.config import RiskConfig
from trader.events import (
    JOURNAL,
    CancelAllOrders,
    CancelOrder,
    Event,
    HaltTrading,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    ReconciliationCompleted,
    ReconciliationStarted,
    ResumeTrading,
    StateRestored,
    StorageFailed,
    StorageRecovered,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)
from trader.model.market import quantize_down, quantize_passive
from trader.model.orders import OrderType, Side
from trader.model.units import NS
from trader.store.view import StoreView
from trader.trading.client_ids import ClientIdGenerator
from trader.trading.daily_loss import DailyLoss, LossLevel
from trader.trading.data_halt import DataHalts
from trader.trading.portfolio import pnl_usd, prices_of
from trader.trading.risk_rules import DEFAULT_RULES, Check, Rule, taker_price
from trader.trading.strategy import CancelIntent, OrderIntent

log = logging.getLogger(__name__)


class HaltCause(StrEnum):
    """Why trading is halted; trading resumes when no cause is left."""

    OPERATOR = "operator"
    RECONCILIATION = "reconciliation"
    DAILY_LOSS = "daily_loss"
    JOURNAL = "journal"  # the journal cannot write: nothing may happen that is not recorded


class Risk:
    """Gates intents by trading state and rules; turns accepted ones into orders.

    Main thread only. Its handlers return follow-up events (state changes, cancel-all).
    """

    def __init__(
        self,
        view: StoreView,
        cfg: RiskConfig,
        clock: Clock,
        ids: ClientIdGenerator,
        rules: tuple[Rule, ...] = DEFAULT_RULES,
        data_halts: DataHalts | None = None,
    ) -> None:
        """``data_halts``: the markets whose feed is down (see the module docstring)."""
        self._view = view
        self._cfg = cfg
        self._clock = clock
        self._ids = ids
        self._rules = rules
        self.state = TradingState.ACTIVE
        self.halts: dict[HaltCause, str] = {}
        self._sent: deque[int] = deque()  # times of orders sent, for the order-rate rule
        self.data_halts = data_halts or DataHalts()
        self._loss = DailyLoss(cfg, clock, self._pnl)
        self.reducing: str | None = None  # why trading is reduce-only (the soft loss limit)

    # ------------------------------------------------------------------ the gate

    def set_state(self, state: TradingState, reason: str) -> list[Event]:
        """Move the trading gate; returns the ``TradingStateChanged`` event."""
        if state is self.state:
            return []
        log.warning("trading state %s -> %s: %s", self.state, state, reason)
        self.state = state
        now = self._clock.now_ns()
        return [TradingStateChanged(ts_event=now, ts_recv=now, state=state, reason=reason)]

    def halt(self, cause: HaltCause, reason: str) -> list[Event]:
        """Add a halt cause; trading is HALTED while any cause holds."""
        self.halts[cause] = reason
        return self.set_state(TradingState.HALTED, f"{cause}: {reason}")

    def release(self, cause: HaltCause, reason: str) -> list[Event]:
        """Drop a halt cause; with none left trading is REDUCING or ACTIVE again."""
        if self.halts.pop(cause, None) is None:
            return []
        return self._settle(f"{cause}: {reason}")

    def _settle(self, reason: str) -> list[Event]:
        """The state the causes call for: HALTED, else REDUCING, else ACTIVE."""
        state = (
            TradingState.HALTED
            if self.halts
            else TradingState.REDUCING
            if self.reducing
            else TradingState.ACTIVE
        )
        return self.set_state(state, reason)

    def on_state_changed(self, ev: TradingStateChanged) -> None:
        """Follow state changes made elsewhere (replay)."""
        self.state = ev.state

    def on_halt(self, cmd: HaltTrading) -> list[Event]:
        """Operator kill switch: HALTED, and cancel every open order when asked."""
        out = self.halt(HaltCause.OPERATOR, cmd.reason or "operator")
        if cmd.cancel_orders:
            now = self._clock.now_ns()
            out.append(CancelAllOrders(ts_event=now, ts_recv=now))
        return out

    def on_storage_failed(self, ev: StorageFailed) -> list[Event]:
        """The journal cannot write: HALTED until it writes again (an operator resume without
        ``force`` leaves this halt in place)."""
        if ev.component != JOURNAL:
            return []
        return self.halt(HaltCause.JOURNAL, f"journal failed: {ev.error}")

    def on_storage_recovered(self, ev: StorageRecovered) -> list[Event]:
        """The journal writes again: its halt is lifted."""
        if ev.component != JOURNAL:
            return []
        return self.release(HaltCause.JOURNAL, "journal writes again")

    def on_resume(self, cmd: ResumeTrading) -> list[Event]:
        """Operator: lift the operator's halt. With ``force``: ACTIVE again, every halt cause
        cleared (the operator overrides a pending reconciliation) and the daily loss count
        started afresh from now; without, any other cause keeps trading halted."""
        reason = f"operator: {cmd.reason or 'resume'}"
        automatic = {c: r for c, r in self.halts.items() if c is not HaltCause.OPERATOR}
        if not cmd.force:
            if automatic:
                log.warning(
                    "operator resume lifts only the operator's halt; still halted by %s "
                    "(resume with force to override)",
                    "; ".join(f"{c}: {r}" for c, r in automatic.items()),
                )
            return self.release(HaltCause.OPERATOR, cmd.reason or "resume")
        if automatic:
            log.warning(
                "operator resume overrides %s", "; ".join(f"{c}: {r}" for c, r in automatic.items())
            )
        self.halts.clear()
        self.reducing = None
        self._loss.restart()
        return self.set_state(TradingState.ACTIVE, reason)

    def on_reconciliation_started(self, ev: ReconciliationStarted) -> list[Event]:
        """Halt until this round agrees."""
        return self.halt(HaltCause.RECONCILIATION, f"round {ev.round} ({ev.reason})")

    def on_reconciliation_completed(self, ev: ReconciliationCompleted) -> list[Event]:
        """Resume when the store and the exchange agree; stay halted otherwise."""
        if ev.ok:
            return self.release(HaltCause.RECONCILIATION, "store and exchange agree")
        if ev.error:  # nothing was compared: "0 differences" would be a lie
            return self.halt(
                HaltCause.RECONCILIATION, f"could not fetch the exchange's state ({ev.error})"
            )
        return self.halt(HaltCause.RECONCILIATION, f"{ev.differences} differences")

    # ------------------------------------------------------------------ daily loss

    def _pnl(self) -> Decimal:
        realized, unrealized = pnl_usd(self._view.positions(), prices_of(self._view))
        return realized + unrealized

    def on_state_restored(self, ev: StateRestored) -> None:
        """Go on with the daily loss count the saved state carries."""
        self._loss.load(ev.loss_day, ev.loss_day_start)

    def daily_loss_saved(self) -> tuple[int, Decimal]:
        """The daily loss count to save with the ledger (read by a storage writer thread: two
        plain values, read without a lock, may be one check apart; the next write fixes it)."""
        return self._loss.saved()

    def check_daily_loss(self) -> list[Event]:
        """REDUCING below ``-daily_loss_soft_limit``, HALTED below ``-daily_loss_limit`` (USD,
        realized + unrealized since the UTC day began); a new day lifts both."""
        if not self._loss.enabled:
            return []
        new_day, level, today = self._loss.check()
        out: list[Event] = []
        if new_day:
            lifted = self.halts.pop(HaltCause.DAILY_LOSS, None) is not None or bool(self.reducing)
            self.reducing = None
            if lifted:
                out += self._settle(f"{HaltCause.DAILY_LOSS}: a new UTC day began")
        if level is LossLevel.HARD and HaltCause.DAILY_LOSS not in self.halts:
            out += self.halt(
                HaltCause.DAILY_LOSS,
                f"PnL today {today:.2f} USD is below -{self._loss.hard} (daily_loss_limit)",
            )
        elif level is LossLevel.SOFT and not self.reducing:
            self.reducing = (
                f"daily_loss: PnL today {today:.2f} USD is below "
                f"-{self._loss.soft} (daily_loss_soft_limit)"
            )
            out += self._settle(self.reducing)
        return out

    def on_fill(self, ev: OrderFilled) -> list[Event]:
        """Every fill may move the day's PnL."""
        return self.check_daily_loss()

    # ------------------------------------------------------------------ intents

    def evaluate(self, intent: OrderIntent | CancelIntent) -> list[Event]:
        """Decide on one intent."""
        now = self._clock.now_ns()
        if isinstance(intent, CancelIntent):
            return [
                CancelOrder(
                    ts_event=now, ts_recv=now, client_id=intent.client_id, symbol=intent.symbol
                )
            ]
        out = self.check_daily_loss()
        check = self._prepare(intent, now)
        reason = self._gate(intent) or self._check(check)
        if reason:
            return out + [
                OrderDenied(
                    ts_event=now,
                    ts_recv=now,
                    strategy=intent.strategy,
                    symbol=intent.symbol,
                    side=intent.side,
                    amount=intent.amount,
                    reason=reason,
                )
            ]
        self._sent.append(now)
        cid = self._ids.next()
        fields: dict[str, Any] = dict(
            client_id=cid,
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            amount=check.amount,
            price=check.limit_price,
            strategy=intent.strategy,
        )
        return out + [
            OrderSubmitted(ts_event=now, ts_recv=now, **fields),
            SubmitOrder(ts_event=now, ts_recv=now, **fields),
        ]

    def _gate(self, intent: OrderIntent) -> str | None:
        if self.state is TradingState.HALTED:
            why = "; ".join(f"{c}: {r}" for c, r in self.halts.items())
            return f"trading is halted ({why})" if why else "trading is halted"
        if self.state is TradingState.REDUCING:
            pos = self._view.position(intent.symbol).amount
            side = intent.side
            reduces = (pos > 0 and side is Side.SELL) or (pos < 0 and side is Side.BUY)
            # what our open orders on this side already take from the position
            taken = sum(
                (
                    o.remaining
                    for o in self._view.open_orders(intent.symbol)
                    if o.side is side and not o.external
                ),
                Decimal(0),
            )
            if not reduces or intent.amount > abs(pos) - taken:
                why = f" ({self.reducing})" if self.reducing else ""
                return f"trading is reducing{why}: only orders that reduce a position"
        return None

    def _prepare(self, intent: OrderIntent, now: int) -> Check:
        market = self._view.market(intent.symbol)
        amount, limit_price = intent.amount, None
        if intent.order_type is OrderType.LIMIT:
            limit_price = intent.price
        if market is not None:
            amount = quantize_down(amount, market.amount_increment)
            if limit_price is not None:
                limit_price = quantize_passive(limit_price, market.price_increment, intent.side)
        last = self._view.last_price(intent.symbol)
        price = limit_price or taker_price(self._view, intent.symbol, intent.side)
        window = int(self._cfg.order_window_s * NS)
        while self._sent and self._sent[0] <= now - window:
            self._sent.popleft()
        return Check(
            intent,
            market,
            amount,
            limit_price,
            price,
            last,
            self._view,
            self._cfg,
            now,
            len(self._sent),
            self.data_halts.reason(intent.symbol),
        )

    def _check(self, check: Check) -> str | None:
        for rule in self._rules:
            reason = rule(check)
            if reason:
                return reason
        return None
