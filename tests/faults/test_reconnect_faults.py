"""Reconnects and resubscribes through the whole system (issue #12): trading on a market is
held while its stream is down and resumes with fresh data; every recovery of a stream (a
reconnect or a resubscribe on the same connection) is one journaled event and one REST catch-up
retried until it succeeds; reconciliation converges under a flapping stream; an order never
waits behind a hanging poll."""

from __future__ import annotations

import threading
import time

import pytest

from tests.doubles.binance_rest import Fault
from tests.faults.conftest import MARKET, USER, book, trigger
from trader.errors import ErrorKind
from trader.events import (
    CancelOrder,
    DataHaltChanged,
    FeedDisconnected,
    FeedRecovered,
    OrderDenied,
    OrderSubmitted,
    PollFailed,
    ReconciliationStarted,
    TradingState,
    TradingStateChanged,
)
from trader.model.orders import OrderStatus

pytestmark = pytest.mark.timeout(40)

ACCOUNT = ("GET", "/api/v3/account")
CATCH_UP = ("/api/v3/account", "/api/v3/openOrders", "/api/v3/myTrades")


def test_no_order_while_the_market_stream_is_down_and_trading_resumes_after(
    run_app, double, ws
) -> None:
    # The REST poll keeps quotes fresh while the stream is down: before this fix those quotes
    # let the strategy's order through, with the stream (and its fills) gone.
    r = run_app(poller={"fast_every_s": 1}, **trigger("4"))
    ws.refusing = True  # the exchange's stream endpoint is unreachable
    ws.close(conn=r.conn(MARKET))
    (down,) = r.events.wait_for(FeedDisconnected, lambda e: "market" in e.feed)
    (halt,) = r.events.wait_for(DataHaltChanged)
    assert (halt.symbol, halt.halted) == ("BTC/USDT", True) and "disconnected" in halt.reason
    denied = r.events.wait_for(OrderDenied, timeout=8)  # the REST ticker's bid is 4: fires
    assert denied[0].reason.startswith("data halt on BTC/USDT: ws-binance-market disconnected")
    assert r.app.risk.state is TradingState.ACTIVE  # other markets would trade on
    outage_end = time.monotonic()
    ws.refusing = False
    r.quote_until(book("3.9", "4.1"), lambda: r.events.of(FeedRecovered))
    recovered = r.events.of(FeedRecovered)[0]
    lifted = r.events.wait_for(DataHaltChanged, lambda e: not e.halted)[0]
    assert lifted.reason == "fresh data on ws-binance-market"
    between = r.events.events[r.events.events.index(down) : r.events.events.index(recovered)]
    assert not [e for e in between if isinstance(e, OrderSubmitted)]
    assert time.monotonic() - outage_end < 5
    # trading resumes: the next trigger quote on the stream places the order
    assert r.quote_until(book("4", "4.000002"), lambda: r.events.of(OrderSubmitted), timeout=8)


def test_a_resubscribe_is_journaled_and_caught_up(run_app, double) -> None:
    r = run_app()
    t0 = time.monotonic()
    r.send(USER, {"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": 1}})
    (ev,) = r.events.wait_for(FeedRecovered)  # before this fix: nothing at all
    assert ev.feed == "ws-binance-user" and ev.reason == "resubscribed (eventStreamTerminated)"
    assert r.events.wait(lambda: all(r.requests("GET", p, t0) for p in CATCH_UP))
    started = r.events.wait_for(ReconciliationStarted, lambda e: "reconnected" in e.reason)
    assert started[0].reason == "ws-binance-user reconnected"
    assert r.events.wait(lambda: r.app.poller.catching_up == ())


def test_a_catch_up_failing_twice_is_retried_until_it_succeeds(run_app, double, ws) -> None:
    r = run_app(reconcile={"enabled": False}, poller={"fast_every_s": 30})
    double.script(*ACCOUNT, Fault.server_error(503), Fault.server_error(502))
    double.balances = [{"asset": "BTC", "free": "7", "locked": "0"}]
    ws.close(conn=r.conn(USER))
    r.events.wait_for(FeedRecovered, timeout=5)
    failed = r.events.wait_for(PollFailed, lambda e: e.job == "balances", n=2, timeout=8)
    assert "503" in failed[0].error and "502" in failed[1].error
    assert r.events.wait(lambda: r.app.store.balance("BTC").total == 7, timeout=8)
    assert r.events.wait(lambda: r.app.poller.catching_up == ())
    assert r.events.wait(lambda: not r.app.poller._fast_on)  # normal schedule once caught up


def test_a_catch_up_during_a_rate_limit_waits_for_retry_after(run_app, double, ws) -> None:
    # Before this fix the failed refresh was dropped and the fast schedule cleared at once:
    # balances were never fetched again.
    r = run_app(reconcile={"enabled": False}, poller={"fast_every_s": 30})
    double.script(*ACCOUNT, Fault.rate_limited(retry_after="1"))
    double.balances = [{"asset": "BTC", "free": "9", "locked": "0"}]
    ws.close(conn=r.conn(USER))
    r.events.wait_for(FeedRecovered, timeout=5)
    assert r.events.wait(lambda: r.app.store.balance("BTC").total == 9, timeout=8)
    limited, ok = r.requests(*ACCOUNT)[-2:]
    assert ok.at - limited.at >= 1.0
    assert [q for q in double.requests if limited.at < q.at < limited.at + 1.0] == []
    assert r.events.wait(lambda: r.app.poller.catching_up == ())
    assert {e.kind for e in r.events.of(PollFailed)} == {ErrorKind.RATE_LIMITED}


def test_reconciliation_reaches_active_under_a_stream_dropping_every_2s(
    run_app, double, ws
) -> None:
    # Each round takes longer than the stream stays up: before this fix every round was
    # thrown away by the reconnect that came while it ran, and trading stayed halted.
    r = run_app(reconcile={"retry_s": 0.2})
    double.latency_s = 0.8  # a round: open orders, trades, balances: ~2.4 s
    t0 = time.monotonic()
    stop = threading.Event()

    def flap() -> None:
        while not stop.wait(2.0):
            ws.close(conn=r.conn(USER))

    flapper = threading.Thread(target=flap, name="flapper", daemon=True)
    since = len(r.events.events)
    flapper.start()
    try:
        active = r.events.wait(
            lambda: [
                e
                for e in r.events.events[since:]
                if isinstance(e, TradingStateChanged) and e.state is TradingState.ACTIVE
            ],
            timeout=15,
        )
        assert active, "never ACTIVE again under the flapping stream"
        assert len(r.events.of(FeedDisconnected)) >= 2  # it did flap meanwhile
        assert r.events.of(ReconciliationStarted)[-1].round >= 3
    finally:
        stop.set()
        flapper.join(5)
        double.latency_s = 0.0
    assert time.monotonic() - t0 < 15


def test_a_cancel_does_not_wait_behind_a_hanging_poll(run_app, double) -> None:
    r = run_app(exchange={"timeout_ms": 5000}, **trigger("4", price="4.1"))
    submitted = r.quote_until(book("4", "4.000002"), lambda: r.events.of(OrderSubmitted))
    cid = submitted[0].client_id
    assert r.events.wait(lambda: (o := r.app.store.order(cid)) and o.status is OrderStatus.OPEN)
    double.script("GET", "/api/v3/openOrders", Fault(hang_s=4.0))
    t0 = time.monotonic()
    r.app.poller.request_refresh("open_orders")
    assert r.events.wait(lambda: r.requests("GET", "/api/v3/openOrders", t0))  # hanging now
    sent = time.monotonic()
    now = r.app.clock.now_ns()
    r.app.bus.publish(CancelOrder(ts_event=now, ts_recv=now, client_id=cid, symbol="BTC/USDT"))
    assert r.events.wait(lambda: r.requests("DELETE", "/api/v3/order", sent), timeout=3)
    (cancel,) = r.requests("DELETE", "/api/v3/order", sent)
    assert cancel.at - sent < 1.0  # before this fix: after the poll's 4 s hang
    assert r.events.wait(lambda: r.app.store.order(cid).status is OrderStatus.CANCELED)
