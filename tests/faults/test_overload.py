"""Fault injection: the queue overloaded at twice the rate the consumer can sustain."""

from __future__ import annotations

import threading
import time

from tests.conftest import balance, quote
from trader.bus import Bus
from trader.clock import ManualClock
from trader.engine import Engine, Registry
from trader.events import BalanceUpdate, QuoteTick, ShutdownRequested
from trader.stats import Stats


def test_overload_at_twice_the_sustainable_rate_loses_no_account_event() -> None:
    stats = Stats()
    bus = Bus(maxsize=64, put_timeout=5.0, stats=stats)
    registry = Registry()
    engine = Engine(bus, registry, stats, ManualClock(1), get_timeout=0.01)
    per_event_s = 50e-6  # the consumer sustains at most ~20k events/s
    quotes_seen: list[int] = []
    balances_seen: list[int] = []
    stop = threading.Event()

    def slow_quote(ev: QuoteTick) -> None:
        quotes_seen.append(ev.ts_event)
        end = time.perf_counter() + per_event_s
        while time.perf_counter() < end:
            pass

    registry.register(QuoteTick, slow_quote)
    registry.register(BalanceUpdate, lambda ev: balances_seen.append(ev.ts_event))
    registry.register(ShutdownRequested, lambda ev: stop.set())
    n_quotes, n_balances = 20_000, 2_000
    duration = n_quotes * per_event_s / 2  # quotes arrive at twice the sustainable rate

    def market_producer() -> None:
        t0 = time.perf_counter()
        for i in range(n_quotes):
            bus.publish(quote("BTC/USDT" if i % 2 else "ETH/USDT", ts=i))
            while time.perf_counter() < t0 + i * duration / n_quotes:
                pass

    def account_producer() -> None:
        for i in range(n_balances):
            bus.publish(balance("USDT", str(i), ts=i))

    producers = [
        threading.Thread(target=market_producer),
        threading.Thread(target=account_producer),
    ]
    for t in producers:
        t.start()
    consumer = threading.Thread(target=engine.run, args=(stop,))
    consumer.start()
    for t in producers:
        t.join(30)
    bus.publish(ShutdownRequested(ts_event=0, ts_recv=0, reason="done"))
    consumer.join(30)
    assert not consumer.is_alive()
    assert balances_seen == list(range(n_balances))  # every one, in order
    assert bus.conflated > 0  # the overload was real and conflation was counted
    assert len(quotes_seen) + bus.conflated == n_quotes  # nothing vanished uncounted
    for sym_parity in (0, 1):  # per-key order kept: each market's quotes only move forward
        seq = [t for t in quotes_seen if t % 2 == sym_parity]
        assert seq == sorted(seq)
    assert stats.get("bus_put_timeouts") == 0
