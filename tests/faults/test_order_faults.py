"""Order faults through the whole system: an order create that times out after the exchange
accepted it.

The unit test (``tests/test_ccxt_gateway.py``) drives the executor alone; here the order starts
as a strategy's intent on a streamed quote, passes risk, is recorded, sent by the executor
through the real ccxt client, accepted by the double, whose answer then hangs past the client's
timeout: the order becomes UNKNOWN, is looked up by its client id, and the store and the
exchange end with exactly one order; its fill reaches the position once.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.doubles.binance_rest import Fault
from tests.faults.conftest import book, trigger
from trader.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    SubmitOrder,
)
from trader.model.orders import OrderStatus

pytestmark = pytest.mark.timeout(30)

ORDER = ("POST", "/api/v3/order")


@pytest.mark.parametrize(
    "price,status",
    [(None, OrderStatus.FILLED), ("4.1", OrderStatus.OPEN)],
    ids=["market-fills", "limit-rests"],
)
def test_a_create_that_times_out_after_the_exchange_accepted_it_makes_one_order(
    run_app, double, price, status
) -> None:
    double.script(*ORDER, Fault.accept_then_hang(5.0))
    params = {} if price is None else {"price": price}
    r = run_app(exchange={"timeout_ms": 400}, **trigger("4", **params))
    # the strategy sells 3 BTC when the bid is 4; the double's book is 4 / 4.000002
    submitted = r.quote_until(book("4", "4.000002"), lambda: r.events.of(OrderSubmitted))
    assert submitted, "the strategy's order never got through risk"
    cid = submitted[0].client_id
    (unknown,) = r.events.wait_for(OrderStatusUnknown)
    assert unknown.client_id == cid and "UnknownOutcomeError" in unknown.reason
    report = r.events.wait_for(OrderStatusReport, lambda e: e.client_id == cid)[0]
    assert report.status is status
    order = r.events.wait(lambda: (o := r.app.store.order(cid)) and o.status is status and o)
    assert order, r.app.store.order(cid)
    assert not order.external and order.strategy == "trigger:BTC/USDT"
    assert order.exchange_id == report.exchange_id
    # exactly one order: one create reached the exchange, none was resent, none accepted twice
    assert [o["clientOrderId"] for o in double.orders.values()] == [cid]
    assert len(r.requests(*ORDER)) == 1
    assert len(r.events.of(SubmitOrder)) == 1
    assert not r.events.of(OrderAccepted, OrderRejected)
    totals = r.stop()
    assert totals["handler_errors"] == 0
    assert r.app.store.illegal_transitions == 0


def test_the_fill_of_an_order_found_by_lookup_reaches_the_position_once(run_app, double) -> None:
    """The create's answer, with the fill, was lost: the fill still reaches the position, once,
    whichever REST path brings it (the lookup, the trades poll, both)."""
    double.script(*ORDER, Fault.accept_then_hang(5.0))
    r = run_app(exchange={"timeout_ms": 400}, poller={"trades_every_s": 1}, **trigger("4"))
    submitted = r.quote_until(book("4", "4.000002"), lambda: r.events.of(OrderSubmitted))
    cid = submitted[0].client_id
    r.events.wait_for(OrderStatusReport, lambda e: e.client_id == cid)
    fill = r.events.wait_for(OrderFilled, lambda e: e.client_id == cid, timeout=6)[0]
    assert fill.amount == D(3) and fill.price == D(4)
    # the observer sees the fill before the store's handler does: give the handler a moment
    position = r.events.wait(lambda: (p := r.app.store.position("BTC/USDT")).amount and p, 1)
    assert position and position.amount == D(-3)
    # a trades poll later (fills 2 s old and more) changes nothing
    polls = len(r.requests("GET", "/api/v3/myTrades"))
    assert r.events.wait(lambda: len(r.requests("GET", "/api/v3/myTrades")) > polls + 1, 4)
    order = r.app.store.order(cid)
    assert order.status is OrderStatus.FILLED and order.filled == D(3)
    assert r.app.store.position("BTC/USDT").amount == D(-3)
    assert r.app.store.illegal_transitions == 0
