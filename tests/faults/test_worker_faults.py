"""Crashed workers through the whole system: the supervisor reports and restarts them.

``tests/test_workers.py`` proves the supervisor alone on a toy worker; here real workers of the
running App crash on an exception nothing inside them expected (a bug), and the App reports a
``WorkerCrashed`` through the main loop, restarts the worker in the same named thread, and the
worker does its job again while the rest of the system never stopped.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest

from tests.faults.conftest import MARKET, USER, account, book
from trader.events import (
    BalanceUpdate,
    FeedConnected,
    HandlerFailed,
    PollFailed,
    WorkerCrashed,
)
from trader.exchange.ccxt_gateway import CcxtGateway
from trader.feeds.binance import BinanceUserStream

pytestmark = pytest.mark.timeout(30)


def test_a_poller_crashing_outside_its_job_wrapper_is_restarted(
    run_app, double, monkeypatch
) -> None:
    """The gateway hands back a lazy answer that fails while the poller publishes it, outside
    the try around the fetch: only the supervisor can catch that."""
    armed = threading.Event()
    real = CcxtGateway.fetch_open_orders

    def fetch_open_orders(self: CcxtGateway, symbols):  # type: ignore[no-untyped-def]
        answer = real(self, symbols)
        if not armed.is_set() or threading.current_thread().name != "poller":
            return answer

        def lazy():  # type: ignore[no-untyped-def]
            armed.clear()
            yield from answer
            raise RuntimeError("gateway bug: its answer failed while being read")

        return lazy()

    monkeypatch.setattr(CcxtGateway, "fetch_open_orders", fetch_open_orders)
    r = run_app(poller={"balances_every_s": 60, "open_orders_every_s": 60})
    poller = [t for t in threading.enumerate() if t.name == "poller"]
    assert len(poller) == 1
    armed.set()
    r.app.poller.request_refresh("open_orders")
    (crash,) = r.events.wait_for(WorkerCrashed)
    crashed_at = time.monotonic()
    after_crash = r.events.events.index(crash)
    assert crash.worker == "poller" and crash.error == (
        "RuntimeError: gateway bug: its answer failed while being read"
    )
    assert crash.restart_in_s == D("0.5")
    # restarted: it polls everything at once again, in the same thread
    assert r.events.wait(lambda: r.requests("GET", "/api/v3/account", after=crashed_at), 3)
    assert r.events.wait(
        lambda: any(isinstance(e, BalanceUpdate) for e in r.events.events[after_crash:])
    )
    assert [t for t in threading.enumerate() if t.name == "poller"] == poller
    r.app.poller.request_refresh("open_orders")  # and serves requests as before
    n = len(r.requests("GET", "/api/v3/openOrders"))
    assert r.events.wait(lambda: len(r.requests("GET", "/api/v3/openOrders")) > n)
    assert r.app.stats.get("worker_crashes") == 1
    assert r.alive and not r.events.of(PollFailed, HandlerFailed)
    assert len(r.events.of(WorkerCrashed)) == 1


def test_a_crashed_listener_is_restarted_and_its_stream_flows_again(run_app, monkeypatch) -> None:
    """Signing the resubscription after ``eventStreamTerminated`` raises (a bug): the user
    stream's thread crashes, is restarted, connects and subscribes again."""
    calls = []
    real = BinanceUserStream.subscribe_messages

    def subscribe_messages(self: BinanceUserStream) -> list[str]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("signing failed")
        return real(self)

    monkeypatch.setattr(BinanceUserStream, "subscribe_messages", subscribe_messages)
    r = run_app()
    first = r.conn(USER)
    r.send(USER, account("USDT", "100"))
    assert r.events.wait(lambda: r.app.store.balance("USDT"))
    r.send(USER, {"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": 1}})
    (crash,) = r.events.wait_for(WorkerCrashed)
    assert crash.worker == "ws-binance-user" and crash.error == "RuntimeError: signing failed"
    second = r.wait_subscribed(USER, 2)
    assert second != first
    assert r.events.wait(lambda: first in r.ws.closed), "the crashed listener's socket leaked"
    r.send(USER, account("USDT", "250"))
    assert r.events.wait(lambda: r.app.store.balance("USDT").total == D(250))
    assert [e.feed for e in r.events.of(FeedConnected)].count("ws-binance-user") == 2
    # the market stream never noticed
    r.send(MARKET, book("60000.1", "60000.3"))
    assert r.events.wait(lambda: r.app.store.last_price("BTC/USDT") == D("60000.2"))
    assert r.app.stats.get("ws-binance-market.disconnects") == 0
    assert r.alive and len(r.events.of(WorkerCrashed)) == 1
