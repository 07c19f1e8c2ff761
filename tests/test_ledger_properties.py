"""Property tests of the ledger: random interleavings of order events, fills (repeated, zero-size,
after the order's end) and balance snapshots (out of order), checked after every event against a
reference model written from the rules, and replayed from their journal lines.

The model is deliberately naive: a few dicts and the rules in words.

- A balance is the newest per asset by (``ts_event``, ``seq``); of equal ones the last arrival.
- A fill counts once per (market, exchange order id, trade id); the position of a market is the
  signed sum of its counted fills.
- An order only moves forward: a final one never changes status; a report of an earlier stage
  or, for a live order, of fewer fills than applied, is ignored; only an order not yet
  acknowledged can be rejected; ``filled`` is the most any source said (fills, reports, their
  sum). Fills of an order the store does not know yet are applied to it, after its report,
  when that report makes it known (a fill is a fact; the report may predate it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.config import Config, StoreConfig
from trader.events import (
    BalanceUpdate,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    event_from_json,
    event_to_json,
)
from trader.model.orders import OrderStatus, OrderType, Side
from trader.replay import Replayer
from trader.store.memory import MemoryStore

S = OrderStatus
# Three orders: two in one market (opposite sides), one in another.
ORDERS = {"c0": ("BTC/USDT", Side.BUY), "c1": ("BTC/USDT", Side.SELL), "c2": ("ETH/USDT", Side.BUY)}
AMOUNTS = [D(0), D("0.1"), D("0.25"), D("0.5")]  # a trade's size, by its number (0: zero-size)
FILLED = [D(0), D("0.25"), D("0.5"), D(1)]
STAGE = {
    S.PENDING: 0,
    S.OPEN: 1,
    S.UNKNOWN: 1,
    S.PARTIALLY_FILLED: 2,
    S.FILLED: 3,
    S.CANCELED: 3,
    S.REJECTED: 3,
    S.EXPIRED: 3,
}

cids = st.sampled_from(sorted(ORDERS))


def _submitted(cid: str) -> OrderSubmitted:
    symbol, side = ORDERS[cid]
    return OrderSubmitted(
        ts_event=0,
        ts_recv=0,
        client_id=cid,
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT,
        amount=D(1),
        price=D(100),
    )


@st.composite
def fills(draw: Any) -> OrderFilled:
    """A trade of an order: the same number is the same trade (a repeat from another source)."""
    cid, n = draw(cids), draw(st.integers(0, 3))
    symbol, side = ORDERS[cid]
    return OrderFilled(
        ts_event=0,
        ts_recv=0,
        client_id=cid,
        exchange_id=f"x-{cid}",
        trade_id=f"t{n}",
        symbol=symbol,
        side=side,
        price=D(100 + n),
        amount=AMOUNTS[n],
        fee=D("0.01"),
        fee_asset="USDT",
        filled_total=draw(st.sampled_from(FILLED)),
        is_final=draw(st.booleans()),
    )


@st.composite
def reports(draw: Any) -> OrderStatusReport:
    cid = draw(cids)
    symbol, side = ORDERS[cid]
    return OrderStatusReport(
        ts_event=0,
        ts_recv=0,
        client_id=cid,
        exchange_id=f"x-{cid}",
        symbol=symbol,
        side=side,
        order_type=OrderType.LIMIT,
        status=draw(st.sampled_from(list(S))),
        amount=D(1),
        filled=draw(st.sampled_from(FILLED)),
        price=D(100),
        avg_price=draw(st.sampled_from([None, D(90), D(95)])),
    )


@st.composite
def balances(draw: Any) -> BalanceUpdate:
    total = draw(st.integers(0, 9))
    used = draw(st.integers(0, total))
    ts = draw(st.integers(1, 4))
    return BalanceUpdate(
        ts_event=ts,
        ts_recv=ts,
        asset=draw(st.sampled_from(["BTC", "USDT"])),
        free=D(total - used),
        used=D(used),
        total=D(total),
        seq=draw(st.integers(0, 3)),
    )


events = st.one_of(
    cids.map(_submitted),
    cids.map(lambda c: OrderAccepted(ts_event=0, ts_recv=0, client_id=c, exchange_id=f"x-{c}")),
    cids.map(lambda c: OrderRejected(ts_event=0, ts_recv=0, client_id=c, reason="no")),
    st.builds(
        lambda c, e: OrderCanceled(ts_event=0, ts_recv=0, client_id=c, expired=e),
        cids,
        st.booleans(),
    ),
    cids.map(lambda c: OrderStatusUnknown(ts_event=0, ts_recv=0, client_id=c, reason="timeout")),
    fills(),
    fills(),
    reports(),
    balances(),
)

# ----------------------------------------------------------------------------------- the model


@dataclass
class ModelOrder:
    status: OrderStatus
    filled: D = D(0)
    avg_price: D | None = None
    fills: dict[str, tuple[D, D]] = field(default_factory=dict)  # trade id -> (price, amount)

    def add_fill(self, trade_id: str, price: D, amount: D, filled_total: D) -> None:
        self.fills[trade_id] = (price, amount)
        total = sum(a for _, a in self.fills.values())
        self.filled = max(self.filled, filled_total, total)
        if total:
            self.avg_price = sum(p * a for p, a in self.fills.values()) / total

    def fill(self, ev: OrderFilled) -> None:
        self.add_fill(ev.trade_id, ev.price, ev.amount, ev.filled_total)
        if not self.status.is_final:
            self.status = S.FILLED if ev.is_final else S.PARTIALLY_FILLED

    def take(self, report: OrderStatusReport) -> None:
        self.status, self.filled = report.status, max(self.filled, report.filled)
        self.avg_price = report.avg_price or self.avg_price


@dataclass
class Model:
    balances: dict[str, tuple[tuple[int, int], tuple[D, D, D]]] = field(default_factory=dict)
    orders: dict[str, ModelOrder] = field(default_factory=dict)
    counted: set[tuple[str, str, str]] = field(default_factory=set)
    unknown_fills: dict[str, list[OrderFilled]] = field(default_factory=dict)
    positions: dict[str, D] = field(default_factory=dict)

    def apply(self, ev: Event) -> None:
        o = self.orders.get(getattr(ev, "client_id", ""))
        final = o is not None and o.status.is_final
        if isinstance(ev, BalanceUpdate):
            held = self.balances.get(ev.asset)
            if held is None or (ev.ts_event, ev.seq) >= held[0]:
                self.balances[ev.asset] = ((ev.ts_event, ev.seq), (ev.free, ev.used, ev.total))
        elif isinstance(ev, OrderSubmitted):
            self.orders.setdefault(ev.client_id, ModelOrder(S.PENDING))
        elif isinstance(ev, OrderFilled):
            key = (ev.symbol, ev.exchange_id, ev.trade_id)
            if key in self.counted:
                return
            self.counted.add(key)
            signed = ev.amount if ev.side is Side.BUY else -ev.amount
            self.positions[ev.symbol] = self.positions.get(ev.symbol, D(0)) + signed
            if o is not None:
                o.fill(ev)
            else:
                self.unknown_fills.setdefault(ev.client_id, []).append(ev)
        elif o is None or final:
            if isinstance(ev, OrderStatusReport) and o is None:
                o = self.orders[ev.client_id] = ModelOrder(ev.status, ev.filled, ev.avg_price)
                for f in self.unknown_fills.pop(ev.client_id, []):
                    o.fill(f)
            elif isinstance(ev, OrderStatusReport) and o is not None and ev.status is o.status:
                o.take(ev)
        elif isinstance(ev, OrderAccepted):
            if STAGE[o.status] <= 1:
                o.status = S.OPEN
        elif isinstance(ev, OrderRejected):
            if not o.status.is_final:  # a live order can end rejected (Bybit, after a fill)
                o.status = S.REJECTED
        elif isinstance(ev, OrderCanceled):
            o.status = S.EXPIRED if ev.expired else S.CANCELED
        elif isinstance(ev, OrderStatusUnknown):
            o.status = S.UNKNOWN
        elif isinstance(ev, OrderStatusReport):
            behind = STAGE[ev.status] < STAGE[o.status] or (
                not ev.status.is_final and ev.filled < o.filled
            )
            if not behind:
                o.take(ev)


# ----------------------------------------------------------------------------------- the store

HANDLERS = {
    BalanceUpdate: MemoryStore.on_balance,
    OrderSubmitted: MemoryStore.on_order_submitted,
    OrderAccepted: MemoryStore.on_order_accepted,
    OrderRejected: MemoryStore.on_order_rejected,
    OrderCanceled: MemoryStore.on_order_canceled,
    OrderStatusUnknown: MemoryStore.on_order_unknown,
    OrderFilled: MemoryStore.on_order_filled,
    OrderStatusReport: MemoryStore.on_order_report,
}


def state(store: MemoryStore) -> dict[str, Any]:
    return {
        "balances": {a: (b.free, b.used, b.total) for a, b in store.balances().balances.items()},
        "orders": {
            o.client_id: (
                o.status,
                o.filled,
                o.avg_price,
                {f.trade_id: (f.price, f.amount) for f in o.fills},
            )
            for o in store.orders()
        },
        "positions": {s: p.amount for s, p in store.positions().items()},
    }


def model_state(m: Model) -> dict[str, Any]:
    return {
        "balances": {a: v for a, (_, v) in m.balances.items()},
        "orders": {c: (o.status, o.filled, o.avg_price, o.fills) for c, o in m.orders.items()},
        "positions": dict(m.positions),
    }


@settings(
    max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(events, max_size=40))
def test_the_store_equals_the_model_after_every_event_and_replays_the_same(
    evs: list[Event],
) -> None:
    evs = [_stamped(ev, i) for i, ev in enumerate(evs, 1)]
    store, model = MemoryStore(StoreConfig()), Model()
    finals: dict[str, OrderStatus] = {}
    for ev in evs:
        HANDLERS[type(ev)](store, ev)
        model.apply(ev)
        got = state(store)
        assert got == model_state(model), ev
        for cid, status in finals.items():  # a final order never moves again
            assert got["orders"][cid][0] is status, (cid, ev)
        finals.update((c, o[0]) for c, o in got["orders"].items() if o[0].is_final)
    # The journal's lines of the same events, replayed through the app's own handlers.
    replayer = Replayer(Config())
    replayer.run(event_from_json(event_to_json(ev)) for ev in evs)
    replayed = replayer.app.store
    assert state(replayed) == state(store)
    assert replayed.positions() == store.positions()  # PnL, fees and prices too
    assert replayed.orders() == store.orders()


def _stamped(ev: Event, i: int) -> Event:
    """Receipt times in arrival order (balances keep their drawn account time)."""
    if isinstance(ev, BalanceUpdate):
        return replace(ev, ts_recv=i)
    return replace(ev, ts_event=i, ts_recv=i)
