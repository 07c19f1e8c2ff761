"""Spread market maker: quotes a limit buy below the mid and a limit sell above it, ``spread_bps``
apart, and requotes when the mid moves.

- **One live quote per side, never more.** A quote is any open order of this strategy on that
  side (pending, open, partially filled or unknown). A quote whose price is more than
  ``requote_bps`` from where it should now be is canceled (``CancelIntent``); its replacement
  (``OrderIntent``) is placed on a later quote, once the cancel is confirmed. Cancel, then new:
  for a moment there is no quote on that side, never two.
- **Inventory.** Spot: the inventory is the base asset's balance. No buy quote when a fill would
  take the balance above ``max_inventory`` (a live buy quote is canceled when it would); no sell
  quote without the free base to deliver it.
- **Pacing.** At most one new quote per side every ``cooldown_s`` (by the strategy's clock), so a
  quote denied by risk is not retried on every tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from trader.events import QuoteTick
from trader.model.market import split_symbol
from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.records import Order
from trader.model.units import NS
from trader.store.view import StoreView
from trader.trading.strategy import CancelIntent, OrderIntent, Output, Strategy

BPS = Decimal(10_000)
_CANCELABLE = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True)
class MarketMakerParams:
    """Parameters of :class:`MarketMaker`."""

    spread_bps: Decimal = Decimal(20)  # distance between our buy and sell quotes
    amount: Decimal = Decimal("0.001")  # base amount of each quote
    requote_bps: Decimal = Decimal(10)  # requote when a quote is this far from its target
    max_inventory: Decimal = Decimal("0.01")  # the most base asset to hold
    cooldown_s: float = 1.0  # at least this long between new quotes on one side

    def __post_init__(self) -> None:
        if self.spread_bps <= 0:
            raise ValueError("spread_bps must be positive")
        if self.amount <= 0:
            raise ValueError("amount must be positive")
        if self.requote_bps <= 0:
            raise ValueError("requote_bps must be positive")
        if self.max_inventory < self.amount:
            raise ValueError("max_inventory must be at least amount")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")


class MarketMaker(Strategy):
    """Quotes both sides around the mid; see the module docstring."""

    Params = MarketMakerParams
    params: MarketMakerParams

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._base, _ = split_symbol(self.symbol)
        self._last_new: dict[Side, int] = {}
        self._canceling: set[str] = set()

    def targets(self, mid: Decimal) -> dict[Side, Decimal]:
        """Where the quotes belong for ``mid``."""
        half = self.params.spread_bps / BPS / 2
        return {Side.BUY: mid * (1 - half), Side.SELL: mid * (1 + half)}

    def on_quote(self, ev: QuoteTick, view: StoreView) -> Iterable[Output]:
        """Keep one quote per side near its target."""
        p = self.params
        now = self.clock.now_ns()
        mine = [o for o in view.open_orders(self.symbol) if o.strategy == self.id]
        self._canceling &= {o.client_id for o in mine}
        bal = view.balance(self._base)
        total = bal.total if bal else Decimal(0)
        free = bal.free if bal else Decimal(0)
        out: list[Output] = []
        for side, target in self.targets(ev.mid).items():
            live = [o for o in mine if o.side is side]
            if live:
                out += self._maybe_cancel(live, target, total)
                continue
            if not self._may_quote(side, total, free):
                continue
            if now - self._last_new.get(side, -10**20) < p.cooldown_s * NS:
                continue
            self._last_new[side] = now
            out.append(OrderIntent(strategy=self.id, symbol=self.symbol, side=side,
                                   amount=p.amount, order_type=OrderType.LIMIT, price=target))
        return out

    def _may_quote(self, side: Side, total: Decimal, free: Decimal) -> bool:
        if side is Side.BUY:
            return total + self.params.amount <= self.params.max_inventory
        return free >= self.params.amount

    def _maybe_cancel(self, live: list[Order], target: Decimal, total: Decimal) -> list[Output]:
        out: list[Output] = []
        for o in live:
            if o.status not in _CANCELABLE or o.client_id in self._canceling or o.price is None:
                continue
            drift = abs(o.price - target) / target * BPS
            too_much = o.side is Side.BUY and total + o.remaining > self.params.max_inventory
            if drift > self.params.requote_bps or too_much:
                self._canceling.add(o.client_id)
                out.append(CancelIntent(strategy=self.id, symbol=self.symbol,
                                        client_id=o.client_id))
        return out
