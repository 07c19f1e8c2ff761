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
- **Cost per quote.** A full evaluation remembers the range of ``bid + ask`` inside which none
  of its quotes (live, or placed and not in the store yet) would move, the balance and orders it
  read, and when the next cooldown ends. A quote inside that range, with the same balance and
  orders in the store and no cooldown ended, is answered from these cached values (a few
  comparisons, no snapshot of the store); anything else (the mid left the range, a fill, an
  order changed, a cooldown ended) is a full evaluation with the rules above, so the quoting is
  the same as evaluating every quote in full.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from trader.events import OrderFilled, QuoteTick
from trader.model.market import split_symbol
from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.records import Balance, Order
from trader.model.units import NS
from trader.store.view import StoreView
from trader.trading.strategy import CancelIntent, OrderIntent, Output, Strategy

BPS = Decimal(10_000)
_CANCELABLE = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
_EDGE = Decimal("1e-12")  # the cached range is narrowed by this much: rounding never widens it
_INF = Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class _Settled:
    """What a full evaluation read: while ``lo <= bid + ask <= hi``, the balance and these
    orders are what the store holds and no cooldown has ended, the evaluation would do nothing."""

    balance: Balance | None
    orders: tuple[Order, ...]
    lo: Decimal
    hi: Decimal
    until_ns: float | None  # a side waits for its cooldown until then


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
        self._placed: dict[Side, Decimal] = {}  # the price of each side's last new quote
        self._settled: _Settled | None = None

    def targets(self, mid: Decimal) -> dict[Side, Decimal]:
        """Where the quotes belong for ``mid``."""
        half = self.params.spread_bps / BPS / 2
        return {Side.BUY: mid * (1 - half), Side.SELL: mid * (1 + half)}

    def on_quote(self, ev: QuoteTick, view: StoreView) -> Iterable[Output]:
        """Keep one quote per side near its target."""
        s = self._settled
        if (
            s is not None
            and s.lo <= ev.bid + ev.ask <= s.hi
            and view.balance(self._base) is s.balance
            and (s.until_ns is None or self.clock.now_ns() < s.until_ns)
        ):
            order = view.order
            for o in s.orders:
                if order(o.client_id) is not o:
                    break
            else:
                return ()
        return self._evaluate(ev, view)

    def on_fill(self, ev: OrderFilled, view: StoreView) -> Iterable[Output]:
        """The inventory moved: the next quote is evaluated in full."""
        self._settled = None
        return ()

    def _evaluate(self, ev: QuoteTick, view: StoreView) -> list[Output]:
        p = self.params
        now = self.clock.now_ns()
        mine = [o for o in view.open_orders(self.symbol) if o.strategy == self.id]
        self._canceling &= {o.client_id for o in mine}
        bal = view.balance(self._base)
        total = bal.total if bal else Decimal(0)
        free = bal.free if bal else Decimal(0)
        out: list[Output] = []
        # A side that may quote but has no live quote waits for its cooldown; the quote it
        # placed last (maybe not in the store yet) is kept near its target like a live one.
        until: float | None = None
        placed: list[tuple[Side, Decimal]] = []
        for side, target in self.targets(ev.mid).items():
            live = [o for o in mine if o.side is side]
            if live:
                out += self._maybe_cancel(live, target, total)
                continue
            if not self._may_quote(side, total, free):
                continue
            ready = self._last_new.get(side, -(10**20)) + p.cooldown_s * NS
            if now >= ready:
                self._last_new[side], self._placed[side] = now, target
                ready = now + p.cooldown_s * NS
                out.append(
                    OrderIntent(
                        strategy=self.id,
                        symbol=self.symbol,
                        side=side,
                        amount=p.amount,
                        order_type=OrderType.LIMIT,
                        price=target,
                    )
                )
            until = ready if until is None else min(until, ready)
            if side in self._placed:
                placed.append((side, self._placed[side]))
        self._settled = self._settle(bal, mine, placed, until)
        return out

    def _settle(
        self,
        bal: Balance | None,
        mine: list[Order],
        placed: list[tuple[Side, Decimal]],
        until: float | None,
    ) -> _Settled:
        """The range of ``bid + ask`` where no live or placed quote drifts more than
        ``requote_bps`` from its target: with ``k`` the target's share of ``bid + ask``, a quote
        at ``P`` stays while ``P / (1 + r) <= k (bid + ask) <= P / (1 - r)``."""
        half = self.params.spread_bps / BPS / 2
        r = self.params.requote_bps / BPS
        lo, hi = Decimal(0), _INF
        quotes = [
            (o.side, o.price)
            for o in mine
            if o.status in _CANCELABLE
            and o.client_id not in self._canceling
            and o.price is not None
        ]
        for side, price in quotes + placed:
            assert price is not None
            k = (1 - half if side is Side.BUY else 1 + half) / 2
            lo = max(lo, price / ((1 + r) * k) * (1 + _EDGE))
            if r < 1:
                hi = min(hi, price / ((1 - r) * k) * (1 - _EDGE))
        return _Settled(bal, tuple(mine), lo, hi, until)

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
                self._placed.pop(o.side, None)  # that quote is going: its price binds no more
                out.append(
                    CancelIntent(strategy=self.id, symbol=self.symbol, client_id=o.client_id)
                )
        return out
