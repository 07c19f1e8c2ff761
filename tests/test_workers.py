"""The supervisor restarts crashed workers; the executor never blindly retries a create."""

from __future__ import annotations

import threading

from tests.test_execution import cmd, report, run
from trader.clock import ManualClock
from trader.errors import ErrorKind, InsufficientFundsError, OrderNotFoundError, TemporaryError
from trader.events import (
    OrderAccepted,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    WorkerCrashed,
)
from trader.model.orders import OrderStatus
from trader.stats import Stats
from trader.workers import Supervisor, Worker


class Flaky(Worker):
    name = "flaky"

    def __init__(self) -> None:
        self.runs = 0
        self.running = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.runs += 1
        if self.runs < 3:
            raise RuntimeError(f"crash {self.runs}")
        self.running.set()
        stop.wait()


def test_crashed_worker_is_reported_and_restarted_with_backoff() -> None:
    published: list = []
    sup = Supervisor(
        published.append, ManualClock(1), Stats(), backoff_initial_s=0.01, backoff_max_s=0.05
    )
    worker = Flaky()
    sup.add(worker)
    sup.start()
    assert worker.running.wait(5)
    assert threading.current_thread().name != "flaky"
    assert [t.name for t in threading.enumerate() if t.name == "flaky"] == ["flaky"]
    crashes = [e for e in published if isinstance(e, WorkerCrashed)]
    assert [c.error for c in crashes] == ["RuntimeError: crash 1", "RuntimeError: crash 2"]
    assert crashes[1].restart_in_s == 2 * crashes[0].restart_in_s
    assert sup.stop(2.0) == []


class ScriptedGateway:
    """Stands in for the exchange's answers (the network is what we cannot run here)."""

    def __init__(self, create_exc: Exception | None, lookups: list) -> None:
        self.create_exc = create_exc
        self.lookups = lookups
        self.creates = 0

    def create_order(self, cmd):
        self.creates += 1
        if self.create_exc:
            raise self.create_exc
        return [OrderAccepted(ts_event=1, ts_recv=1, client_id=cmd.client_id, exchange_id="1")]

    def fetch_order(self, client_id, symbol):
        item = self.lookups.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def test_timeout_makes_the_order_unknown_and_it_is_looked_up_not_resent() -> None:
    gw = ScriptedGateway(
        TemporaryError("read timeout"),
        [TemporaryError("503"), OrderNotFoundError("-2013"), report(OrderStatus.FILLED)],
    )
    out = run(gw, [cmd()], lambda p: any(isinstance(e, OrderStatusReport) for e in p))
    assert gw.creates == 1  # never blindly retried
    assert isinstance(out[0], OrderStatusUnknown) and "read timeout" in out[0].reason
    assert out[-1].status is OrderStatus.FILLED


def test_order_never_found_is_rejected_after_the_lookups() -> None:
    gw = ScriptedGateway(TemporaryError("timeout"), [OrderNotFoundError("x")] * 3)
    out = run(gw, [cmd()], lambda p: any(isinstance(e, OrderRejected) for e in p))
    assert gw.creates == 1
    assert out[-1].kind is ErrorKind.UNKNOWN_OUTCOME and "3 lookups" in out[-1].reason


def test_insufficient_funds_is_rejected_at_once() -> None:
    gw = ScriptedGateway(InsufficientFundsError("-2010 insufficient balance"), [])
    out = run(gw, [cmd()], lambda p: bool(p))
    assert isinstance(out[0], OrderRejected) and out[0].kind is ErrorKind.INSUFFICIENT_FUNDS
