"""Handler and strategy exceptions through the whole system.

``tests/test_engine.py`` and ``tests/test_strategy.py`` prove the engine and the runner catch
them; here the running App: every failure becomes a dispatched, logged ``HandlerFailed``, the
main loop goes on with the next events, the store stays right, a strategy that keeps failing is
disabled (``StrategyDisabled``) while the others still trade.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal as D

import pytest

from tests.faults.conftest import MARKET, TEST_STRATEGIES, USER, account, book
from trader.events import (
    BalanceUpdate,
    HandlerFailed,
    OrderAccepted,
    QuoteTick,
    StrategyDisabled,
    WorkerCrashed,
)
from trader.store.view import StoreView
from trader.trading.strategy import Output, Strategy

pytestmark = pytest.mark.timeout(30)


@dataclass(frozen=True)
class BadParams:
    """No parameters."""


class Bad(Strategy):
    """A strategy with a bug: it raises on every quote."""

    Params = BadParams
    calls = 0

    def on_quote(self, ev: QuoteTick, view: StoreView) -> Iterable[Output]:
        """Fail."""
        type(self).calls += 1
        raise ZeroDivisionError("strategy bug")


def test_a_failing_strategy_is_reported_then_disabled_and_the_system_trades_on(
    run_app, double, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(Bad, "calls", 0)
    r = run_app(
        strategy_classes={**TEST_STRATEGIES, "bad": Bad},
        strategies=[
            {"name": "bad", "market": "BTC/USDT"},
            {"name": "trigger", "market": "BTC/USDT", "params": {"bid": "4"}},
        ],
    )
    for i in range(5):
        r.send(MARKET, book(f"60000.{i}", "60001"))
    r.events.wait_for(QuoteTick, n=5)
    failed = r.events.wait_for(HandlerFailed, n=3)
    (disabled,) = r.events.wait_for(StrategyDisabled)
    assert [(f.handler, f.event_type) for f in failed] == [
        ("strategy:bad:BTC/USDT", "QuoteTick")
    ] * 3
    assert all(
        "ZeroDivisionError: strategy bug" in f.error and "Traceback" in f.traceback for f in failed
    )
    assert disabled.strategy == "bad:BTC/USDT" and "3 consecutive errors" in disabled.reason
    assert Bad.calls == 3  # not called once disabled
    assert r.events.wait(lambda: r.app.store.last_price("BTC/USDT") == D("60000.7"))
    # the healthy strategy still trades: its order goes out and is accepted
    assert r.quote_until(book("4", "4.000002"), lambda: r.events.of(OrderAccepted))
    assert len(double.orders) == 1 and r.app.store.orders()[0].strategy == "trigger:BTC/USDT"
    assert len(r.events.of(HandlerFailed)) == 3 and Bad.calls == 3
    logged = [m for m in caplog.messages if m.startswith("HandlerFailed ")]
    assert len(logged) == 3 and "handler=strategy:bad:BTC/USDT" in logged[0]
    assert r.alive and not r.events.of(WorkerCrashed)


def test_a_raising_handler_is_reported_and_the_loop_goes_on(run_app, caplog) -> None:
    caplog.set_level(logging.INFO)

    def audit(ev: BalanceUpdate) -> None:  # a handler with a bug on one asset
        if ev.asset == "XRP":
            raise KeyError(ev.asset)

    r = run_app(setup=lambda app: app.registry.register(BalanceUpdate, audit))
    r.send(USER, account("XRP", "5"))
    r.send(USER, account("USDT", "100"))
    r.send(USER, account("XRP", "7"))
    r.send(MARKET, book("60000.1", "60000.3"))
    failed = r.events.wait_for(HandlerFailed, n=2)
    assert [(f.handler.rsplit(".", 1)[-1], f.event_type, f.error) for f in failed] == [
        ("audit", "BalanceUpdate", "KeyError: 'XRP'")
    ] * 2
    # the handlers before it ran, the events after it were dispatched
    assert r.events.wait(lambda: r.app.store.last_price("BTC/USDT") == D("60000.2"))
    assert r.app.store.balance("XRP").total == D(7)
    assert r.app.store.balance("USDT").total == D(100)
    assert (
        sum("handler" in m and "audit failed on BalanceUpdate" in m for m in caplog.messages) == 2
    )
    totals = r.stop()
    assert totals["handler_errors"] == 2
    assert totals["dispatched"]["HandlerFailed"] == 2
