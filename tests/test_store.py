"""The store: snapshots, USD valuation, orders, bounds, concurrency."""

from __future__ import annotations

import itertools
import sys
import threading
from dataclasses import replace
from decimal import Decimal as D

import pytest

from tests.conftest import balance, market, quote, trade
from trader.config import StoreConfig
from trader.events import (
    STOP,
    Candle,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderStatusReport,
    OrderSubmitted,
)
from trader.model.orders import OrderStatus, OrderType, Side
from trader.store.memory import MemoryStore
from trader.store.view import ReadOnlyView


def submitted(cid: str = "c1", amount: str = "1") -> OrderSubmitted:
    return OrderSubmitted(
        ts_event=1,
        ts_recv=1,
        client_id=cid,
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        amount=D(amount),
        price=D("100"),
    )


def fill(
    cid: str = "c1", amount: str = "1", final: bool = True, price: str = "100", trade_id: str = ""
) -> OrderFilled:
    return OrderFilled(
        ts_event=2,
        ts_recv=2,
        client_id=cid,
        exchange_id="x1",
        trade_id=trade_id or f"t-{cid}-{amount}-{price}",
        symbol="BTC/USDT",
        side=Side.BUY,
        price=D(price),
        amount=D(amount),
        fee=D("0.1"),
        fee_asset="USDT",
        filled_total=D(amount),
        is_final=final,
    )


def test_usd_value_through_usdt_quote_and_through_btc(store: MemoryStore) -> None:
    store.on_quote(quote("BTC/USDT", "59990", "60010"))
    store.on_quote(quote("ETH/BTC", "0.0499", "0.0501"))
    store.on_trade(trade("SOL/USDC", "150"))
    for ev in (
        balance("BTC", "0.5"),
        balance("ETH", "2"),
        balance("SOL", "10"),
        balance("USDT", "1000"),
        balance("DOGE", "5"),
    ):
        store.on_balance(ev)
    snap = store.balances()
    assert snap.usd_values["BTC"] == D("30000")
    assert snap.usd_values["ETH"] == D("2") * D("0.05") * D("60000")
    assert snap.usd_values["SOL"] == D("1500")
    assert snap.usd_values["USDT"] == D("1000")
    assert snap.usd_values["DOGE"] is None  # no price path: shown, not guessed
    assert snap.total_usd == D("30000") + D("6000") + D("1500") + D("1000")


def test_usd_value_counts_what_open_orders_hold(store: MemoryStore) -> None:
    """An asset's value is its total: funds locked (``used``) by open orders are still ours."""
    store.on_quote(quote("BTC/USDT", "59990", "60010"))
    store.on_balance(balance("BTC", "0.5", used="0.2"))
    store.on_balance(balance("USDT", "1000", used="600"))
    snap = store.balances()
    assert snap.usd_values["BTC"] == D("30000")
    assert snap.usd_values["USDT"] == D("1000")
    assert snap.total_usd == D("31000")


def test_snapshots_are_immutable_and_detached(store: MemoryStore) -> None:
    store.on_balance(balance("USDT", "10"))
    snap = store.balances()
    with pytest.raises(TypeError):
        snap.balances["USDT"] = None  # type: ignore[index]
    store.on_balance(balance("USDT", "20"))
    assert snap.balances["USDT"].total == D("10")  # the old snapshot did not change
    assert store.balance("USDT").total == D("20")


def test_read_only_view_exposes_reads_only(store: MemoryStore) -> None:
    view = ReadOnlyView(store)
    store.on_quote(quote())
    assert view.quote("BTC/USDT").bid == D("100")
    assert not hasattr(view, "on_quote")
    with pytest.raises(AttributeError):
        view.on_quote = lambda e: None  # type: ignore[attr-defined]


def test_order_lifecycle_and_position(store: MemoryStore) -> None:
    store.on_market(market())
    store.on_order_submitted(submitted())
    assert store.order("c1").status is OrderStatus.PENDING
    store.on_order_accepted(OrderAccepted(ts_event=1, ts_recv=1, client_id="c1", exchange_id="x1"))
    store.on_order_filled(fill(amount="0.4", final=False))
    o = store.order("c1")
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled == D("0.4")
    store.on_order_filled(fill(amount="0.6", final=True, price="110"))
    o = store.order("c1")
    assert o.status is OrderStatus.FILLED and o.filled == D("1")
    assert o.avg_price == D("106") and o.fee == D("0.2") and o.exchange_id == "x1"
    pos = store.position("BTC/USDT")
    assert pos.amount == D("1") and pos.avg_price == D("106") and pos.fees == D("0.2")
    assert store.open_orders() == ()


def test_illegal_transition_is_ignored_and_counted(store: MemoryStore) -> None:
    store.on_order_submitted(submitted())
    store.on_order_filled(fill())
    store.on_order_canceled(OrderCanceled(ts_event=3, ts_recv=3, client_id="c1"))
    assert store.order("c1").status is OrderStatus.FILLED
    assert store.illegal_transitions == 1 and store.stale_updates == 0


def test_an_acknowledgement_after_the_fill_is_stale_not_illegal(store: MemoryStore) -> None:
    """The executor's answer (accepted) reaches the store after the main thread's fill."""
    store.on_order_submitted(submitted())
    store.on_order_filled(fill())
    store.on_order_accepted(OrderAccepted(ts_event=3, ts_recv=3, client_id="c1", exchange_id="x"))
    assert store.order("c1").status is OrderStatus.FILLED
    assert store.stale_updates == 1 and store.illegal_transitions == 0


def test_orders_we_did_not_place_are_marked_external(store: MemoryStore) -> None:
    store.on_order_report(
        OrderStatusReport(
            ts_event=1,
            ts_recv=1,
            client_id="web-123",
            exchange_id="9",
            symbol="BTC/USDT",
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            status=OrderStatus.OPEN,
            amount=D("1"),
            filled=D("0"),
            price=D("70000"),
        )
    )
    assert store.order("web-123").external


def test_collections_are_bounded() -> None:
    store = MemoryStore(
        StoreConfig(candle_history=3, trade_history=2, max_orders=10, max_symbols=2, max_signals=1)
    )
    for i in range(5):
        store.on_candle(
            Candle(
                ts_event=i,
                ts_recv=i,
                symbol="BTC/USDT",
                interval="1s",
                open=D(1),
                high=D(1),
                low=D(1),
                close=D(i),
                volume=D(1),
                start_ns=i,
                closed=True,
            )
        )
        store.on_trade(trade(ts=i))
    assert [c.close for c in store.candles("BTC/USDT")] == [D(2), D(3), D(4)]
    # a strategy's window: the newest few, oldest first, however long the history
    assert [c.close for c in store.candles("BTC/USDT", last=2)] == [D(3), D(4)]
    assert store.candles("BTC/USDT", last=9) == store.candles("BTC/USDT")
    assert store.candles("BTC/USDT", last=0) == () == store.candles("ETH/USDT", last=2)
    with pytest.raises(ValueError, match="negative"):
        store.candles("BTC/USDT", last=-1)
    assert len(store.trades("BTC/USDT")) == 2
    assert [t.ts_event for t in store.trades("BTC/USDT", last=1)] == [4]
    for s in ("A/USDT", "B/USDT", "C/USDT"):
        store.on_quote(quote(s))
    assert set(store.quotes()) == {"A/USDT", "B/USDT"} and store.dropped == 1
    for i in range(15):
        store.on_order_submitted(submitted(f"c{i}"))
        if i < 12:
            store.on_order_filled(fill(f"c{i}"))
    assert len(store.orders()) <= 10
    assert {o.client_id for o in store.open_orders()} == {"c12", "c13", "c14"}


def test_concurrent_readers_see_consistent_snapshots(store: MemoryStore) -> None:
    """A writer updates bid and ask together; readers must never see a torn quote or a
    balances snapshot whose total disagrees with its parts."""
    stop = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            q = store.quote("BTC/USDT")
            if q is not None and q.ask - q.bid != 1:
                errors.append(f"torn quote {q}")
            snap = store.balances()
            parts = sum((v for v in snap.usd_values.values() if v is not None), D(0))
            if parts != snap.total_usd:
                errors.append("inconsistent balances")

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(20_000):
        store.on_quote(quote(bid=str(100 + i), ask=str(101 + i)))
        store.on_balance(balance("BTC", str(i % 7)))
    stop.set()
    for t in readers:
        t.join(10)
    assert errors == []


def test_snapshots_taken_while_writers_hammer_the_store_are_whole() -> None:
    """Real threads: the main thread's writes (new orders filled and evicted, new assets, new
    markets' trades) against readers taking every snapshot. Without the lock a reader iterates
    a table while it changes ("mutated during iteration") or sees an order in ``open_orders``
    that is not open; with it every snapshot is whole."""
    store = MemoryStore(StoreConfig(max_orders=20, max_assets=400, max_symbols=400))
    stop = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                open_ = store.open_orders()
                if any(not o.is_open for o in open_):
                    errors.append("a final order among the open ones")
                orders = store.orders()
                if len(orders) > 20 + len(open_) + 5:
                    errors.append(f"{len(orders)} orders kept")
                for o in orders:
                    if o.status is OrderStatus.FILLED and o.filled != o.amount:
                        errors.append(f"torn order {o}")
                snap = store.balances()
                if len(snap.balances) != len(snap.usd_values):
                    errors.append("balances and their values disagree")
                store.sizes()
                store.positions()
            except RuntimeError as exc:  # a table changed while it was read
                errors.append(f"{type(exc).__name__}: {exc}")

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    readers = [threading.Thread(target=reader, name=f"reader-{i}") for i in range(3)]
    try:
        for t in readers:
            t.start()
        for i in range(3_000):
            store.on_order_submitted(submitted(f"c{i}"))
            store.on_order_filled(fill(f"c{i}"))
            store.on_balance(balance(f"A{i % 400}", str(i)))
            store.on_trade(trade(f"S{i % 400}/USDT", "1"))
            store.on_quote(quote(f"S{i % 400}/USDT", "1", "2"))
    finally:
        stop.set()
        for t in readers:
            t.join(10)
        sys.setswitchinterval(old)
    assert not any(t.is_alive() for t in readers)
    assert errors == [], errors[:5]


def test_a_fill_delivered_twice_is_applied_once(store: MemoryStore) -> None:
    store.on_order_submitted(submitted())
    assert store.on_order_filled(fill(amount="0.4", final=False)) is None
    # The same trade id from another path: STOP ends its dispatch (no later handler sees it).
    assert store.on_order_filled(fill(amount="0.4", final=False)) is STOP
    assert store.order("c1").filled == D("0.4")
    assert store.position("BTC/USDT").amount == D("0.4")
    assert store.duplicate_fills == 1


def test_a_fill_from_the_stream_the_answer_and_two_polls_is_applied_once_in_any_order() -> None:
    """Sources differ in what they know (receipt time, cumulative total, liquidity): the fill is
    still the same trade of the same order."""
    t1 = fill(amount="0.4", final=False, trade_id="t1")
    t2 = fill(amount="0.6", final=True, trade_id="t2", price="110")
    t1_polled = replace(t1, ts_recv=9, filled_total=D("1"), liquidity=Liquidity.MAKER)
    arrivals = [t1, t1_polled, t1_polled, replace(t2, ts_recv=7), t2]
    results = set()
    for order in itertools.permutations(arrivals):
        store = MemoryStore(StoreConfig())
        store.on_order_submitted(submitted())
        applied = [ev for ev in order if store.on_order_filled(ev) is not STOP]
        assert store.duplicate_fills == 3
        assert sorted(ev.trade_id for ev in applied) == ["t1", "t2"]
        pos = store.position("BTC/USDT")
        assert pos.amount == D("1") and pos.fees == D("0.2")
        results.add((store.order("c1").filled_by_fills, pos.avg_price))
    assert results == {(D("1"), D("106"))}


def test_the_fill_filter_remembers_a_bounded_number_of_fills() -> None:
    store = MemoryStore(StoreConfig(max_orders=10))
    for i in range(100):  # fills of orders the store does not know (no order record to check)
        store.on_order_filled(fill(cid=f"ext-{i}", trade_id=f"t{i}"))
    assert store.sizes()["fills_seen"] == 40  # 4 x max_orders
    store.on_order_filled(fill(cid="ext-99", trade_id="t99"))  # the newest are remembered
    assert store.duplicate_fills == 1
