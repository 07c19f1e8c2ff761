"""One conformance suite that every streamed exchange must pass (Binance and Bybit today).

Each case runs the whole App in live mode against the exchange's REST double (real ccxt, real
signatures, the exchange's own answers and error codes) and the websocket double, with orders
coming from a real strategy (``Trigger``, fired by a streamed quote) through risk and the
executor. What differs per exchange (messages, paths, codes) is in ``venues.py``; what is
asserted here is the same for every exchange.
"""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

from tests.conformance.conftest import MARKET, PRIVATE
from tests.doubles.binance_rest import Fault
from tests.faults.conftest import trigger
from trader.errors import ErrorKind
from trader.events import (
    CancelOrder,
    FeedDisconnected,
    FeedRecovered,
    HandlerFailed,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    PollFailed,
    ReconciliationCompleted,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
    WorkerCrashed,
)
from trader.journal import read_events

pytestmark = pytest.mark.timeout(30)

SYMBOL = "BTC/USDT"
FIRE = ("4", "4.01")  # the quote that fires the Trigger (its bid is the trigger bid)
LIMIT = "4.1"  # a limit sell above the bid: it rests


def fire(r, until):
    """Send the firing quote until ``until()`` holds; return its value."""
    return r.quote_until(r.venue.quote(*FIRE), until)


def resting_order(r) -> OrderAccepted:
    """A limit sell of 3 at ``LIMIT``, placed by the strategy and resting on the exchange."""
    assert fire(r, lambda: r.events.of(OrderAccepted)), r.events.of(OrderSubmitted)
    (accepted,) = r.events.of(OrderAccepted)
    assert r.venue.order_status(r.double, accepted.exchange_id) in ("NEW", "New")
    return accepted


def healthy(r) -> None:
    """Nothing crashed, no handler failed, the store never saw an illegal transition."""
    assert r.alive and not r.events.of(WorkerCrashed, HandlerFailed)
    assert r.app.store.illegal_transitions == 0


def test_start_up_loads_markets_and_balances_and_reconciles_to_active(
    run_app, venue, double
) -> None:
    r = run_app()
    market = r.app.store.market(SYMBOL)
    assert market is not None and (market.base, market.quote) == ("BTC", "USDT")
    assert market.price_increment > 0 and market.amount_increment > 0
    stored = {a: b.total for a, b in r.app.store.balances().balances.items() if b.total}
    assert stored == venue.balances(double)
    (done,) = r.events.of(ReconciliationCompleted)
    assert done.ok, done.summary
    assert r.events.wait_for(TradingStateChanged, lambda e: e.state is TradingState.ACTIVE)
    healthy(r)


def test_prices_and_candles_come_from_the_stream(run_app, venue) -> None:
    r = run_app()
    r.send(MARKET, venue.quote("60000.1", "60000.3"))
    assert r.events.wait(lambda: r.app.store.last_price(SYMBOL) == D("60000.2"))
    start = (int(time.time()) // 60 - 1) * 60_000
    r.send(MARKET, venue.candle(start, "60001.5", False))
    r.send(MARKET, venue.candle(start, "60002.5", True))
    closed = r.events.wait(lambda: [c for c in r.app.store.candles(SYMBOL) if c.closed])
    assert closed, r.app.store.candles(SYMBOL)
    (candle,) = closed
    assert (candle.close, candle.interval, candle.start_ns) == (
        D("60002.5"),
        "1m",
        start * 1_000_000,
    )
    healthy(r)


def test_an_order_round_trip_brings_its_fill_fee_and_position(
    run_app, venue, double, tmp_path
) -> None:
    r = run_app(poller={"trades_every_s": 1}, **trigger(FIRE[0]))
    before = venue.balances(double)
    assert fire(r, lambda: r.events.of(OrderAccepted))
    (accepted,) = r.events.of(OrderAccepted)
    cid = accepted.client_id
    # the market sell filled on the exchange; its fill comes back over REST (the trades poll)
    (fill,) = r.events.wait_for(OrderFilled, lambda e: e.client_id == cid, timeout=6)
    assert (fill.amount, fill.price, fill.side.value) == (D(3), D(4), "sell")
    assert fill.fee == D("0.012") and fill.fee_asset == "USDT" and fill.is_final
    assert r.events.wait(lambda: r.app.store.order(cid).status is OrderStatus.FILLED, 2)
    assert r.events.wait(lambda: r.app.store.position(SYMBOL).amount == D(-3), 2)
    # the account moved with the fill, and the store follows the exchange
    after = venue.balances(double)
    assert after["BTC"] == before["BTC"] - 3
    r.app.poller.request_refresh("balances")
    assert r.events.wait(lambda: r.app.store.balance("BTC").total == after["BTC"])
    # a later trades poll changes nothing: the fill is applied once
    polls = len(r.requests(*venue.trades_path))
    r.app.poller.request_refresh("trades")
    assert r.events.wait(lambda: len(r.requests(*venue.trades_path)) > polls, 2)
    assert not r.events.wait(lambda: len(r.events.of(OrderFilled)) > 1, 0.5)
    assert not r.events.of(PollFailed)
    assert r.app.store.position(SYMBOL).amount == D(-3)
    assert venue.client_ids(double) == [cid] and len(r.requests(*venue.create_path)) == 1
    healthy(r)
    r.stop()
    journaled = [e for e in read_events(tmp_path / "journal") if isinstance(e, OrderFilled)]
    assert journaled == [fill]


def test_cancel(run_app, venue, double) -> None:
    r = run_app(**trigger(FIRE[0], price=LIMIT))
    accepted = resting_order(r)
    cid = accepted.client_id
    r.app.bus.publish(CancelOrder(ts_event=1, ts_recv=1, client_id=cid, symbol=SYMBOL))
    r.events.wait_for(OrderCanceled, lambda e: e.client_id == cid)
    assert r.events.wait(lambda: r.app.store.order(cid).status is OrderStatus.CANCELED, 2)
    assert venue.order_status(double, accepted.exchange_id) in ("CANCELED", "Cancelled")
    healthy(r)


def test_a_cancel_of_an_order_the_exchange_no_longer_has_resolves_by_lookup(
    run_app, venue, double
) -> None:
    r = run_app(**trigger(FIRE[0], price=LIMIT))
    accepted = resting_order(r)
    cid = accepted.client_id
    venue.fill(double, accepted.exchange_id)  # filled on the exchange; no stream tells
    r.app.bus.publish(CancelOrder(ts_event=1, ts_recv=1, client_id=cid, symbol=SYMBOL))
    # the exchange answers "unknown order" (-2011 / 170213); the lookup finds it filled
    report = r.events.wait_for(OrderStatusReport, lambda e: e.client_id == cid)[0]
    assert report.status is OrderStatus.FILLED and report.filled == D(3)
    assert r.events.wait(lambda: r.app.store.order(cid).status is OrderStatus.FILLED, 2)
    assert r.events.wait(lambda: r.app.store.position(SYMBOL).amount == D(-3), 2)
    assert not r.events.of(OrderCanceled)
    healthy(r)


@pytest.mark.parametrize(
    "price,status",
    [(None, OrderStatus.FILLED), (LIMIT, OrderStatus.OPEN)],
    ids=["market-fills", "limit-rests"],
)
def test_a_lost_create_answer_is_resolved_by_lookup_without_a_duplicate(
    run_app, venue, double, price, status
) -> None:
    double.script(*venue.create_path, Fault.accept_then_hang(5.0))
    params = {} if price is None else {"price": price}
    r = run_app(exchange={"timeout_ms": 400}, **trigger(FIRE[0], **params))
    submitted = fire(r, lambda: r.events.of(OrderSubmitted))
    assert submitted, "the strategy's order never got through risk"
    cid = submitted[0].client_id
    (unknown,) = r.events.wait_for(OrderStatusUnknown)
    assert unknown.client_id == cid
    report = r.events.wait_for(OrderStatusReport, lambda e: e.client_id == cid)[0]
    assert report.status is status
    assert r.events.wait(lambda: r.app.store.order(cid).status is status, 2)
    assert venue.client_ids(double) == [cid]  # one order: none resent, none accepted twice
    assert len(r.requests(*venue.create_path)) == 1 and len(r.events.of(SubmitOrder)) == 1
    assert not r.events.of(OrderAccepted, OrderRejected)
    healthy(r)


def test_a_stream_drop_is_caught_up_over_rest_and_applies_nothing_twice(
    run_app, venue, double
) -> None:
    r = run_app(poller={"trades_every_s": 1}, **trigger(FIRE[0], price=LIMIT))
    accepted = resting_order(r)
    cid = accepted.client_id
    market, private = r.conn(MARKET), r.conn(PRIVATE)
    r.ws.close(private, 1001, "going away")
    r.ws.close(market, 1001, "going away")
    # while the streams are down the order fills and the balances change; no stream tells
    venue.fill(double, accepted.exchange_id)
    venue.set_balances(double, {"BTC": "97", "USDT": "15"})
    assert {e.feed for e in r.events.wait_for(FeedDisconnected, n=2)} == venue.feeds
    r.wait_subscribed(PRIVATE, 2)
    r.wait_subscribed(MARKET, 2)
    r.quote_until(
        venue.quote("4.2", "4.3"),
        lambda: {e.feed for e in r.events.of(FeedRecovered)} == venue.feeds,
    )
    assert r.events.wait(lambda: (b := r.app.store.balance("USDT")) and b.total == D(15))
    assert r.app.store.balance("BTC").total == D(97)
    fill = r.events.wait_for(OrderFilled, lambda e: e.client_id == cid, timeout=8)[0]
    assert r.events.wait(lambda: r.app.store.order(cid).status is OrderStatus.FILLED, 1)
    # the exchange's own report of that fill arrives late on the new private stream: once
    duplicates = r.app.store.duplicate_fills
    r.send(PRIVATE, venue.private_fill(double, cid, accepted.exchange_id))
    assert r.events.wait(lambda: r.app.store.duplicate_fills > duplicates)
    order = r.app.store.order(cid)
    assert (order.filled, order.avg_price) == (D(3), D(LIMIT)) and fill.price == D(LIMIT)
    assert r.app.store.position(SYMBOL).amount == D(-3)
    assert not r.events.of(PollFailed)
    healthy(r)


def test_a_restart_reconciles_with_the_exchange(run_app, venue, double) -> None:
    first = run_app(**trigger(FIRE[0], price=LIMIT))
    accepted = resting_order(first)
    cid = accepted.client_id
    first.stop()
    venue.set_balances(double, {"BTC": "50", "USDT": "7"})
    second = run_app(reconcile={"retry_s": 0.2})  # no strategy: nothing new is sent
    # round 1 adopts the earlier session's order and sees the new balances; a later round
    # finds store and exchange in agreement and trading resumes
    assert second.events.wait_for(TradingStateChanged, lambda e: e.state is TradingState.ACTIVE)
    assert second.events.of(ReconciliationCompleted)[-1].ok
    order = second.app.store.order(cid)
    assert order is not None and order.status is OrderStatus.OPEN, order
    assert order.exchange_id == accepted.exchange_id and not order.external
    assert second.app.store.balance("BTC").total == D(50)
    assert second.app.store.balance("USDT").total == D(7)
    assert venue.client_ids(double) == [cid] and len(second.requests(*venue.create_path)) == 1
    healthy(second)


def test_a_rate_limit_answer_pauses_rest_until_the_exchange_allows(run_app, venue, double) -> None:
    r = run_app(poller={"balances_every_s": 1}, **trigger(FIRE[0]))
    double.script(*venue.balance_path, venue.rate_limited(1.0))
    r.app.poller.request_refresh("balances")
    (limited,) = r.events.wait_for(PollFailed, lambda e: e.kind is ErrorKind.RATE_LIMITED)
    answered_at = r.requests(*venue.balance_path)[-1].at
    # during the pause an order is refused unsent, as a rate-limited rejection
    rejected = r.quote_until(venue.quote(*FIRE), lambda: r.events.of(OrderRejected))
    assert rejected and rejected[0].kind is ErrorKind.RATE_LIMITED
    assert not r.requests(*venue.create_path)
    # after the pause the next scheduled poll goes out and succeeds
    venue.set_balances(double, {"BTC": "2"})
    assert r.events.wait(lambda: r.app.store.balance("BTC").total == D(2), 4)
    later = [q.at for q in r.requests(*venue.balance_path) if q.at > answered_at]
    assert later and min(later) >= answered_at + 0.8, "REST went out during the pause"
    assert limited.job == "balances"
    healthy(r)
