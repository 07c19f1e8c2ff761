"""The bus's two policies: conflate market data, never drop anything else."""

from __future__ import annotations

import queue
import threading

import pytest

from tests.conftest import balance, quote, trade
from trader.bus import Bus
from trader.errors import BusFullError
from trader.events import FeedConnected
from trader.stats import Stats


def drain(bus: Bus) -> list:
    out = []
    while True:
        try:
            out.append(bus.get_nowait())
        except queue.Empty:
            return out


def test_market_data_is_conflated_per_kind_and_symbol_newest_wins() -> None:
    bus = Bus(maxsize=2, put_timeout=0.1, stats=Stats())
    bus.publish(quote(bid="1", ts=1))
    bus.publish(quote(bid="2", ts=2))  # queue now full
    for i in range(3, 8):
        bus.publish(quote(bid=str(i), ts=i))  # overflow: 3 replaced by 4, ... by 7
    bus.publish(quote("ETH/USDT", bid="50", ts=8))
    bus.publish(trade(price="99", ts=9))
    assert bus.conflated == 4
    events = drain(bus)
    btc = [e.bid for e in events if e.symbol == "BTC/USDT" and type(e).__name__ == "QuoteTick"]
    assert [str(b) for b in btc] == ["1", "2", "7"]  # per-key order kept, newest last
    assert {e.symbol for e in events} == {"BTC/USDT", "ETH/USDT"}
    assert len(events) == 5


def test_no_conflation_while_queue_has_room() -> None:
    bus = Bus(maxsize=100, put_timeout=0.1, stats=Stats())
    for i in range(50):
        bus.publish(quote(ts=i))
    assert bus.conflated == 0
    assert [e.ts_event for e in drain(bus)] == list(range(50))


def test_never_drop_events_from_two_producers_all_arrive_in_order() -> None:
    bus = Bus(maxsize=16, put_timeout=5.0, stats=Stats())
    n = 5_000
    received: list = []
    done = threading.Event()

    def consume() -> None:
        while len(received) < 2 * n:
            try:
                received.append(bus.get(0.5))
            except queue.Empty:
                break
        done.set()

    def produce(asset: str) -> None:
        for i in range(n):
            bus.publish(balance(asset, str(i), ts=i))

    consumer = threading.Thread(target=consume)
    producers = [threading.Thread(target=produce, args=(a,)) for a in ("BTC", "ETH")]
    consumer.start()
    for t in producers:
        t.start()
    for t in producers:
        t.join(30)
    assert done.wait(30)
    for asset in ("BTC", "ETH"):
        seq = [e.ts_event for e in received if e.asset == asset]
        assert seq == list(range(n))


def test_full_queue_timeout_is_a_counted_loud_error_not_a_silent_drop(caplog) -> None:
    stats = Stats()
    bus = Bus(maxsize=1, put_timeout=0.01, stats=stats)
    bus.publish(FeedConnected(ts_event=1, ts_recv=1, feed="a"))
    with pytest.raises(BusFullError):
        bus.publish(FeedConnected(ts_event=2, ts_recv=2, feed="b"))
    assert stats.get("bus_put_timeouts") == 1
    assert any(r.levelname == "CRITICAL" for r in caplog.records)
    assert bus.counters()["put_timeouts"] == 1


def test_get_batch_keeps_order_and_takes_the_overflow_only_when_the_queue_is_empty() -> None:
    bus = Bus(maxsize=3, put_timeout=0.1, stats=Stats())
    for i in range(6):
        bus.publish(quote(bid=str(i), ts=i))  # 0,1,2 queued; 3,4,5 conflate to 5
    bus.publish(quote("ETH/USDT", ts=9))
    first = bus.get_batch(2, 0.1)
    assert [e.ts_event for e in first] == [0, 1]
    rest = bus.get_batch(10, 0.1)
    assert [e.ts_event for e in rest] == [2, 5, 9]
    assert bus.get_batch(10, 0.01) == []
    assert bus.conflated == 2
