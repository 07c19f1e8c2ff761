"""Registry order, duplicates, unhandled events, failing handlers, follow-ups."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.conftest import balance, quote
from trader.bus import Bus
from trader.clock import ManualClock
from trader.engine import Engine, Registry
from trader.events import STOP, BalanceUpdate, FeedConnected, HandlerFailed, QuoteTick
from trader.stats import Stats


def make_engine() -> tuple[Engine, Registry, Bus, Stats]:
    stats = Stats()
    bus = Bus(100, 0.1, stats)
    registry = Registry()
    return Engine(bus, registry, stats, ManualClock(5), get_timeout=0.01), registry, bus, stats


def test_handlers_run_in_registration_order() -> None:
    engine, registry, _, _ = make_engine()
    calls: list[str] = []
    registry.register(QuoteTick, lambda e: calls.append("a"))
    registry.register(QuoteTick, lambda e: calls.append("b"))
    registry.observe(lambda e: calls.append("observer"))
    engine.dispatch(quote())
    assert calls == ["observer", "a", "b"]


def test_a_gate_runs_first_and_its_stop_keeps_the_event_from_everyone() -> None:
    engine, registry, _, _ = make_engine()
    calls: list[str] = []
    registry.register(QuoteTick, lambda e: calls.append("handler"))
    registry.observe(lambda e: calls.append("observer"))
    registry.gate(QuoteTick, lambda e: calls.append("gate") or (STOP if e.bid < 0 else None))
    engine.dispatch(quote())
    assert calls == ["gate", "observer", "handler"]
    calls.clear()
    engine.dispatch(quote(bid="-1"))
    assert calls == ["gate"]


def test_registering_the_same_pair_twice_is_an_error() -> None:
    registry = Registry()

    def handler(e: object) -> None:
        pass

    registry.register(QuoteTick, handler)
    registry.register(BalanceUpdate, handler)  # another class is fine
    with pytest.raises(ValueError, match="already registered for QuoteTick"):
        registry.register(QuoteTick, handler)


def test_unhandled_event_is_counted_and_logged_once(caplog) -> None:
    engine, _, _, stats = make_engine()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            engine.dispatch(FeedConnected(ts_event=1, ts_recv=1, feed="x"))
    assert stats.unhandled["FeedConnected"] == 3
    assert sum("no handler for FeedConnected" in r.getMessage() for r in caplog.records) == 1


def test_raising_handler_is_reported_and_the_loop_goes_on(caplog) -> None:
    engine, registry, bus, stats = make_engine()
    seen: list = []
    failures: list[HandlerFailed] = []

    def bad(e: QuoteTick) -> None:
        raise RuntimeError("boom")

    registry.register(QuoteTick, bad)
    registry.register(QuoteTick, seen.append)
    registry.register(HandlerFailed, failures.append)
    bus.publish(quote(ts=1))
    bus.publish(quote(ts=2))
    stop = threading.Event()
    registry.register(BalanceUpdate, lambda e: stop.set())
    bus.publish(balance("USDT", "1"))
    engine.run(stop)
    assert [e.ts_event for e in seen] == [1, 2]  # the next handler and next events still ran
    assert len(failures) == 2
    assert failures[0].handler.endswith("bad") and "RuntimeError: boom" in failures[0].error
    assert "Traceback" in failures[0].traceback
    assert stats.handler_errors[failures[0].handler] == 2
    assert any("boom" in (r.exc_text or r.getMessage()) for r in caplog.records)


def test_follow_ups_are_dispatched_before_the_next_queued_event() -> None:
    engine, registry, bus, _ = make_engine()
    order: list[str] = []
    stop = threading.Event()

    def on_quote(e: QuoteTick) -> list:
        order.append(f"quote{e.ts_event}")
        return [FeedConnected(ts_event=e.ts_event, ts_recv=e.ts_event, feed="f")]

    def on_feed(e: FeedConnected) -> None:
        order.append(f"follow{e.ts_event}")
        if e.ts_event == 2:
            stop.set()

    registry.register(QuoteTick, on_quote)
    registry.register(FeedConnected, on_feed)
    bus.publish(quote(ts=1))
    bus.publish(quote(ts=2))
    engine.run(stop)
    assert order == ["quote1", "follow1", "quote2", "follow2"]


def test_drain_dispatches_what_is_left() -> None:
    import time

    engine, registry, bus, stats = make_engine()
    registry.register(QuoteTick, lambda e: None)
    for i in range(10):
        bus.publish(quote(ts=i))
    assert engine.drain(time.monotonic() + 1) == 0
    assert stats.dispatched["QuoteTick"] == 10


def test_observers_see_events_without_handlers_too() -> None:
    engine, registry, _, stats = make_engine()
    seen: list = []
    registry.observe(seen.append)
    ev = FeedConnected(ts_event=1, ts_recv=1, feed="x")
    engine.dispatch(ev)
    assert seen == [ev] and stats.unhandled["FeedConnected"] == 1


def test_timers_run_when_due_on_the_main_loop() -> None:
    engine, registry, bus, _ = make_engine()
    stop = threading.Event()
    ticks: list[int] = []
    engine.every(0.01, lambda: ticks.append(1) if len(ticks) < 3 else stop.set())
    engine.run(stop)  # idle: the loop wakes on its get timeout and runs the timer
    assert len(ticks) == 3
