"""REST faults through the whole system: 429 and 418 with ``Retry-After``, 5xx, timeouts and
malformed JSON, answered by the Binance REST double to the App's real ccxt client.

``tests/test_ccxt_gateway.py`` proves how each answer is translated; here the running App's
consequences: the poll fails as a ``PollFailed`` of the right kind, nothing else is disturbed
(the store keeps its state, the streams keep flowing), the next poll succeeds; and a rate limit
pauses every REST call of the App, order creates included, until ``Retry-After`` has passed.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.doubles.binance_rest import Fault
from tests.faults.conftest import MARKET, book, trigger
from trader.errors import ErrorKind
from trader.events import (
    BalanceUpdate,
    HandlerFailed,
    OrderRejected,
    OrderSubmitted,
    PollFailed,
    WorkerCrashed,
)
from trader.model.orders import OrderStatus

pytestmark = pytest.mark.timeout(30)

ACCOUNT = ("GET", "/api/v3/account")
REST_PATHS = ("/api/v3/account", "/api/v3/openOrders", "/api/v3/myTrades", "/api/v3/order")


@pytest.mark.parametrize(
    "fault,kind,words",
    [
        (Fault.server_error(503), ErrorKind.TEMPORARY, "503"),
        (Fault.server_error(504), ErrorKind.TEMPORARY, "504"),
        (Fault(hang_s=2.0), ErrorKind.TEMPORARY, "RequestTimeout"),
        (Fault.malformed(), ErrorKind.BAD_DATA, "not JSON"),
    ],
    ids=["503", "504", "timeout", "malformed-json"],
)
def test_a_failed_poll_is_reported_with_its_kind_and_the_next_poll_succeeds(
    run_app, double, fault, kind, words
) -> None:
    r = run_app(exchange={"timeout_ms": 500})
    before = r.app.store.balances()
    assert set(before.balances) == {"BTC", "LTC"}
    double.balances = [{"asset": "BTC", "free": "1", "locked": "0"}]
    double.script(*ACCOUNT, fault)
    r.app.poller.request_refresh("balances")
    (failed,) = r.events.wait_for(PollFailed)
    assert (failed.job, failed.kind) == ("balances", kind) and words in failed.error
    assert r.app.store.balances().balances == before.balances  # nothing half-applied
    r.send(MARKET, book("60000.1", "60000.3"))  # the rest of the system is undisturbed
    assert r.events.wait(lambda: r.app.store.last_price("BTC/USDT") == D("60000.2"))
    seen = len(r.events.of(BalanceUpdate))
    r.app.poller.request_refresh("balances")
    assert r.events.wait(lambda: len(r.events.of(BalanceUpdate)) > seen)
    assert r.events.wait(lambda: r.app.store.balance("BTC").total == D(1))
    assert r.app.store.balance("LTC").total == D(0)  # went to zero: reported once
    assert len(r.events.of(PollFailed)) == 1
    assert r.alive and not r.events.of(WorkerCrashed, HandlerFailed)


@pytest.mark.parametrize("status", [429, 418])
def test_a_rate_limit_pauses_every_rest_call_until_retry_after(run_app, double, status) -> None:
    retry_after = 1.0
    r = run_app(
        poller={"balances_every_s": 1, "open_orders_every_s": 1, "trades_every_s": 1},
        **trigger("4"),
    )
    double.script(*ACCOUNT, Fault.rate_limited(status, str(int(retry_after))))
    r.app.poller.request_refresh("balances")
    r.events.wait_for(PollFailed, lambda e: e.kind is ErrorKind.RATE_LIMITED)
    limited = r.requests(*ACCOUNT)[-1]  # the request answered with the rate limit
    # during the pause: the other jobs fail at once without asking, an order is refused unsent
    r.app.poller.request_refresh("open_orders", "trades")
    paused = r.events.wait_for(PollFailed, lambda e: e.job != "balances", n=2)
    assert all(e.kind is ErrorKind.RATE_LIMITED and "paused" in e.error for e in paused)
    rejected = r.quote_until(book("4", "4.000002"), lambda: r.events.of(OrderRejected))
    assert rejected and rejected[0].kind is ErrorKind.RATE_LIMITED, r.events.of(OrderSubmitted)
    cid = rejected[0].client_id
    assert r.events.wait(lambda: r.app.store.order(cid).status is OrderStatus.REJECTED, 1)
    # after Retry-After the scheduled polls go out again and succeed
    seen = len(r.events.of(BalanceUpdate))
    assert r.events.wait(lambda: len(r.events.of(BalanceUpdate)) > seen, 4)
    after = [q for q in double.requests if q.at > limited.at and q.path in REST_PATHS]
    assert after and min(q.at for q in after) >= limited.at + retry_after * 0.9, (
        "a REST call reached the exchange during the pause"
    )
    assert not r.requests("POST", "/api/v3/order") and double.orders == {}
    assert r.alive and not r.events.of(WorkerCrashed, HandlerFailed)
