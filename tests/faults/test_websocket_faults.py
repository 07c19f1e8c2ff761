"""Websocket faults through the whole system: a dropped connection, a stalled stream, garbage
frames and a slow consumer.

``tests/test_websocket.py`` proves what one listener does (reconnects, goes stale, counts
garbage); here the consequences for the running App: the store stays right, what was missed
while a stream was down comes back over REST exactly once, REST covers prices while the market
stream is silent, and overload conflates market data but loses no account or order event.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal as D

import pytest

from tests.faults.conftest import (
    MARKET,
    TEST_STRATEGIES,
    USER,
    account,
    book,
    execution,
    trigger,
)
from trader.events import (
    BalanceUpdate,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    HandlerFailed,
    OrderAccepted,
    OrderFilled,
    PollFailed,
    QuoteTick,
    WorkerCrashed,
)
from trader.model.orders import OrderStatus
from trader.store.view import StoreView
from trader.trading.strategy import Output, Strategy

pytestmark = pytest.mark.timeout(30)

FEEDS = {"ws-binance-market", "ws-binance-user"}


def test_a_dropped_connection_loses_nothing_and_applies_nothing_twice(run_app, double) -> None:
    r = run_app(poller={"trades_every_s": 1}, **trigger("4", price="4.1"))
    # a resting limit sell (bid 4 < 4.1), placed through strategy, risk and executor
    r.quote_until(book("4", "4.000002"), lambda: r.events.of(OrderAccepted))
    (accepted,) = r.events.of(OrderAccepted)
    cid = accepted.client_id
    market, user = r.conn(MARKET), r.conn(USER)
    r.ws.close(user, 1001, "going away")
    r.ws.close(market, 1001, "going away")
    # while the streams are down the order fills and the balances change on the exchange; no
    # stream will ever tell
    double.fill(int(accepted.exchange_id))
    double.balances = [
        {"asset": "BTC", "free": "97", "locked": "0"},
        {"asset": "USDT", "free": "15", "locked": "0"},
    ]
    down = r.events.wait_for(FeedDisconnected, n=2)
    assert {e.feed for e in down} == FEEDS
    r.wait_subscribed(USER, 2)
    r.wait_subscribed(MARKET, 2)
    r.quote_until(book("4.1", "4.2"), lambda: {e.feed for e in r.events.of(FeedRecovered)} == FEEDS)
    # REST after the reconnect (the refresh, the reconciliation round, the trades poll) brings
    # the balances and the fill
    assert r.events.wait(lambda: (b := r.app.store.balance("USDT")) and b.total == D(15))
    assert r.app.store.balance("BTC").total == D(97)
    fill = r.events.wait_for(OrderFilled, lambda e: e.client_id == cid, timeout=8)[0]
    assert r.events.wait(lambda: r.app.store.order(cid).status is OrderStatus.FILLED, 1)
    # the exchange's own report of that fill arrives late on the new stream: applied once
    trade = double.trades[-1]
    assert fill.trade_id == str(trade["id"])
    duplicates = r.app.store.duplicate_fills
    r.send(USER, execution(cid, int(accepted.exchange_id), trade["id"], "3", "4.1"))
    assert r.events.wait(lambda: r.app.store.duplicate_fills > duplicates)
    order = r.app.store.order(cid)
    assert (order.filled, order.avg_price) == (D(3), D("4.1"))
    assert r.app.store.position("BTC/USDT").amount == D(-3)
    assert r.quote_until(
        book("4.3", "4.4"),  # streaming again
        lambda: r.app.store.last_price("BTC/USDT") == D("4.35"),
    )
    assert r.alive and not r.events.of(WorkerCrashed, HandlerFailed, PollFailed)


def test_a_stalled_market_stream_goes_stale_and_rest_covers_prices(run_app, double) -> None:
    # (reconciled=False: a stream going stale every 0.5 s restarts reconciliation rounds)
    r = run_app(streams={"stale_after_s": 0.5}, reconciled=False)
    assert r.quote_until(
        book("60000.1", "60000.3"), lambda: r.app.store.last_price("BTC/USDT") == D("60000.2")
    )
    # the server stays silent (it still answers pings): stale, reconnect, REST fast polling
    stale = r.events.wait_for(FeedStale)
    assert all(e.feed == "ws-binance-market" and e.silent_s >= D("0.5") for e in stale)
    assert r.events.wait(lambda: r.app.store.last_price("BTC/USDT") == D("4.000001"), 3), (
        "the REST ticker (4 / 4.000002) did not reach the store while the stream was stale"
    )
    assert r.requests("GET", "/api/v3/ticker/24hr")  # tickers_every_s is 0: only fast polling
    # data flows again on the new connection: recovered, back to the normal schedule
    # (kept flowing: silence again would be stale again)
    fast = [j for j in r.app.poller.scheduler.jobs if "fast" in j.tags]
    assert fast
    assert r.quote_until(
        book("61000.1", "61000.3"),
        lambda: (
            r.events.of(FeedRecovered)
            and not [j for j in r.app.poller.scheduler.jobs if "fast" in j.tags]
        ),
    )
    assert r.quote_until(
        book("61000.5", "61000.7"), lambda: r.app.store.last_price("BTC/USDT") == D("61000.6")
    )
    assert r.app.stats.get("ws-binance-market.stale") >= 1
    assert {e.feed for e in r.events.of(FeedStale)} == {"ws-binance-market"}  # user stream: no
    assert r.alive and not r.events.of(WorkerCrashed, HandlerFailed, PollFailed)


def test_garbage_frames_are_counted_and_change_nothing(run_app) -> None:
    r = run_app()
    r.send(MARKET, book("60000.1", "60000.3"))
    r.send(USER, account("USDT", "100"))
    assert r.events.wait(lambda: r.app.store.balance("USDT") and r.app.store.last_price("BTC/USDT"))
    garbage = [
        (MARKET, "not json {"),
        (MARKET, b"\xff\xfe garbage"),  # a binary frame, not UTF-8
        (MARKET, {"e": "weird", "E": 1}),
        (MARKET, book("abc", "60000.3")),
        (USER, '{"subscriptionId": 0, "event": {"e": "executionReport"'),
        (
            USER,
            {
                "subscriptionId": 0,
                "event": {"e": "executionReport", "x": "TRADE", "s": "BTCUSDT", "c": "trd-x-1"},
            },
        ),
        (
            USER,
            {
                "subscriptionId": 0,
                "event": {
                    "e": "outboundAccountPosition",
                    "E": 1,
                    "B": [{"a": "USDT", "f": "NaN?", "l": "0"}],
                },
            },
        ),
    ]
    for kind, frame in garbage:
        r.send(kind, frame)
    r.send(MARKET, book("60001.1", "60001.3"))
    r.send(USER, account("USDT", "123"))
    assert r.events.wait(lambda: r.app.store.balance("USDT").total == D(123))
    assert r.events.wait(lambda: r.app.store.last_price("BTC/USDT") == D("60001.2"))
    stats = r.app.stats.snapshot()
    assert {
        k: v for k, v in stats.items() if k.endswith(("malformed", "unknown", "bad_message"))
    } == {
        "ws-binance-market.malformed": 2,
        "ws-binance-market.unknown": 1,
        "ws-binance-market.bad_message": 1,
        "ws-binance-user.malformed": 1,
        "ws-binance-user.bad_message": 2,
    }
    quotes = [(q.bid, q.ask) for q in r.events.of(QuoteTick)]
    assert quotes == [(D("60000.1"), D("60000.3")), (D("60001.1"), D("60001.3"))]
    assert [b.total for b in r.events.of(BalanceUpdate) if b.asset == "USDT"][-2:] == [
        D(100),
        D(123),
    ]
    assert r.app.store.orders() == ()
    assert len(r.ws.conns) == 2 and not r.events.of(FeedDisconnected)  # the same connections
    assert r.alive and not r.events.of(WorkerCrashed, HandlerFailed)


# ------------------------------------------------------------------------------ slow consumer

WORK_S = 0.001  # what the slow strategy spends on each BTC quote


@dataclass(frozen=True)
class SlowParams:
    """No parameters."""


class Slow(Strategy):
    """A strategy that spends WORK_S of CPU on every quote of its market, on the main thread."""

    Params = SlowParams

    def on_quote(self, ev: QuoteTick, view: StoreView) -> Iterable[Output]:
        """Work."""
        end = time.perf_counter() + WORK_S
        while time.perf_counter() < end:
            pass
        return ()


def test_a_slow_consumer_conflates_market_data_and_loses_no_account_or_order_event(run_app) -> None:
    r = run_app(
        strategy_classes={**TEST_STRATEGIES, "slow": Slow},
        trade={"markets": ["BTC/USDT", "ETH/USDT"]},
        bus={"maxsize": 10},
        strategies=[{"name": "slow", "market": "BTC/USDT"}],
    )
    market, user = r.conn(MARKET), r.conn(USER)
    n_quotes, every = 6000, 20
    frames: list = []
    for i in range(n_quotes):
        frames.append(
            (market, book(str(1000 + i), str(1001 + i), "btcusdt" if i % 2 else "ethusdt", u=i))
        )
        if i % every == 0:  # account and order events interleaved, on the user stream
            k = i // every
            frames.append((user, account("TST", str(k), u=k)))
            frames.append((user, execution("ext-1", 77, 9000 + k, "0.001", "1000", final=False)))
    t0 = time.monotonic()
    r.ws.send_many(frames)
    sent_s = time.monotonic() - t0
    n_account = n_quotes // every
    bus, dispatched = r.app.bus, r.app.stats.dispatched
    assert r.events.wait(lambda: dispatched["QuoteTick"] + bus.conflated == n_quotes, 20), (
        dispatched["QuoteTick"],
        bus.conflated,
    )
    assert r.events.wait(lambda: len(r.events.of(OrderFilled)) == n_account, 10)
    fills = [int(f.trade_id) for f in r.events.of(OrderFilled)]
    balances = [int(b.free) for b in r.events.of(BalanceUpdate) if b.asset == "TST"]
    assert balances == list(range(n_account))  # every one, in order
    assert fills == [9000 + k for k in range(n_account)]
    assert r.app.store.position("BTC/USDT").amount == D("0.001") * -n_account
    assert bus.conflated > 0, f"no overload: {n_quotes} quotes sent in {sent_s:.2f}s"
    for symbol in ("BTC/USDT", "ETH/USDT"):  # per market: only forward, the newest kept
        bids = [q.bid for q in r.events.of(QuoteTick) if q.symbol == symbol]
        assert bids == sorted(bids) and len(set(bids)) == len(bids)
        assert r.app.store.quote(symbol).bid == bids[-1]
    assert r.app.store.quote("BTC/USDT").bid == D(1000 + n_quotes - 1)
    assert r.app.store.quote("ETH/USDT").bid == D(1000 + n_quotes - 2)
    assert r.app.stats.get("bus_put_timeouts") == 0
    assert not r.events.of(FeedDisconnected, WorkerCrashed, HandlerFailed)
    assert r.alive
