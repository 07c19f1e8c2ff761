"""The poller's schedule under freezegun, failing jobs, fast polling while a feed is stale,
refreshes asked from other threads, and fills published every time (applied once)."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import replace
from decimal import Decimal as D

from freezegun import freeze_time

from tests.conftest import balance
from trader.clock import ManualClock
from trader.config import PollerConfig
from trader.errors import ErrorKind, TemporaryError
from trader.events import (
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    Liquidity,
    OrderFilled,
    PollFailed,
    ReconciliationStarted,
)
from trader.feeds.poller import Poller
from trader.model.orders import Side
from trader.model.units import NS
from trader.stats import Stats


class FakeGateway:
    """Counts calls; only stands in for the network (the scheduler is real)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"balances": 0, "tickers": 0, "open_orders": 0}
        self.fail = False
        self.threads: set[str] = set()
        self.fills: list[OrderFilled] = []
        self.trades_since: list[int] = []

    def fetch_balances(self):
        self.calls["balances"] += 1
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise TemporaryError("HTTP 503")
        return [balance("USDT", "100")]

    def fetch_tickers(self, symbols):
        self.calls["tickers"] += 1
        return []

    def fetch_open_orders(self, symbols):
        self.calls["open_orders"] += 1
        return []

    def fetch_my_trades(self, symbol, since_ns):
        self.trades_since.append(since_ns)
        return [f for f in self.fills if f.symbol == symbol and f.ts_event >= since_ns]


def make(cfg: PollerConfig, clock: ManualClock | None = None):
    gw, published = FakeGateway(), []
    poller = Poller(gw, published.append, clock or ManualClock(1), Stats(), cfg, ["BTC/USDT"])
    return poller, gw, published


def fill(trade_id: str, ts_s: float) -> OrderFilled:
    ts = int(ts_s * NS)
    return OrderFilled(
        ts_event=ts,
        ts_recv=ts,
        client_id="c1",
        exchange_id="1",
        trade_id=trade_id,
        symbol="BTC/USDT",
        side=Side.BUY,
        price=D("100"),
        amount=D("1"),
        fee=D("0.1"),
        fee_asset="USDT",
        filled_total=D("1"),
        is_final=False,
    )


def test_balances_at_start_and_every_60_seconds() -> None:
    with freeze_time("2026-01-01 00:00:00") as frozen:
        poller, gw, published = make(PollerConfig(balances_every_s=60, open_orders_every_s=30))
        poller.run_now()
        assert gw.calls["balances"] == 1 and gw.calls["open_orders"] == 1
        assert gw.calls["tickers"] == 0  # tickers_every_s=0 turns the job off
        frozen.tick(30)
        poller.scheduler.run_pending()
        assert gw.calls == {"balances": 1, "tickers": 0, "open_orders": 2}
        frozen.tick(29)
        poller.scheduler.run_pending()
        assert gw.calls["balances"] == 1
        frozen.tick(1)
        poller.scheduler.run_pending()
        assert gw.calls["balances"] == 2
        frozen.tick(60)
        poller.scheduler.run_pending()
        assert gw.calls["balances"] == 3
        assert len([e for e in published if type(e).__name__ == "BalanceUpdate"]) == 3


def test_a_failing_job_becomes_poll_failed_and_keeps_its_schedule() -> None:
    with freeze_time("2026-01-01 00:00:00") as frozen:
        poller, gw, published = make(PollerConfig(balances_every_s=60, open_orders_every_s=0))
        gw.fail = True
        poller.run_now()
        failed = [e for e in published if isinstance(e, PollFailed)]
        assert len(failed) == 1
        assert failed[0].job == "balances" and failed[0].kind is ErrorKind.TEMPORARY
        assert "503" in failed[0].error
        gw.fail = False
        frozen.tick(60)
        poller.scheduler.run_pending()
        assert gw.calls["balances"] == 2
        assert type(published[-1]).__name__ == "BalanceUpdate"


def test_every_job_polls_fast_while_any_feed_is_stale() -> None:
    with freeze_time("2026-01-01 00:00:00") as frozen:
        poller, gw, _ = make(
            PollerConfig(
                balances_every_s=60,
                tickers_every_s=0,
                open_orders_every_s=30,
                trades_every_s=0,
                fast_every_s=5,
            )
        )
        poller.run_now()
        assert gw.calls == {"balances": 1, "tickers": 0, "open_orders": 1}
        asker = threading.Thread(
            target=poller.on_feed_down,
            args=(FeedStale(ts_event=1, ts_recv=1, feed="market", silent_s=D(30)),),
        )
        asker.start()
        asker.join(5)
        assert gw.calls["tickers"] == 0  # nothing runs until the poller thread serves it
        poller.serve_requests()
        assert gw.calls == {"balances": 2, "tickers": 1, "open_orders": 2}  # at once, tickers too
        poller.set_fast("user", True)
        poller.serve_requests()  # a second stale feed adds no second set of jobs
        frozen.tick(5)
        poller.scheduler.run_pending()
        assert gw.calls == {"balances": 3, "tickers": 2, "open_orders": 3}
        poller.on_feed_recovered(FeedRecovered(ts_event=2, ts_recv=2, feed="market"))
        poller.serve_requests()  # the refresh after a reconnect: balances and open orders now
        assert gw.calls == {"balances": 4, "tickers": 2, "open_orders": 4}
        frozen.tick(5)
        poller.scheduler.run_pending()
        assert gw.calls["tickers"] == 3  # "user" is still stale
        poller.set_fast("user", False)
        poller.serve_requests()
        frozen.tick(5)
        poller.scheduler.run_pending()
        assert gw.calls["tickers"] == 3 and gw.calls["balances"] == 5  # normal schedule again
        frozen.tick(15)
        poller.scheduler.run_pending()
        assert gw.calls == {"balances": 5, "tickers": 3, "open_orders": 6}


def test_a_refresh_asked_from_another_thread_runs_at_once_on_the_poller_thread() -> None:
    poller, gw, published = make(
        PollerConfig(balances_every_s=3600, open_orders_every_s=3600, trades_every_s=0)
    )
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), name="poller")
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while gw.calls["balances"] < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        asked = time.monotonic()
        asker = threading.Thread(target=poller.request_refresh, args=("balances", "open_orders"))
        asker.start()
        asker.join(5)
        while gw.calls["balances"] < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        took = time.monotonic() - asked
    finally:
        stop.set()
        poller.close()
        thread.join(2)
    assert not thread.is_alive()
    assert gw.calls == {"balances": 2, "tickers": 0, "open_orders": 2}
    assert took < 0.5, f"refresh served after {took:.2f}s"
    assert gw.threads == {"poller"}


def test_every_poll_publishes_every_fill_it_gets_repeats_included() -> None:
    """The poller filters nothing: the store drops what an earlier poll or another source
    delivered (see the next test)."""
    clock = ManualClock(1_000 * NS)
    poller, gw, published = make(PollerConfig(trades_every_s=30), clock)
    gw.fills = [fill("t2", 995), fill("t0", 950), fill("t1", 990), fill("t3", 999.5)]
    poller.run_now("trades")
    assert [f.trade_id for f in published] == ["t0", "t1", "t2", "t3"]  # oldest first
    clock.advance(30)
    poller.run_now("trades")
    clock.advance(30)
    poller.run_now("trades")
    assert [f.trade_id for f in published[4:]] == ["t0", "t1", "t2", "t3", "t1", "t2", "t3"]
    # Since the start, then each time since the previous run, with the overlap.
    assert gw.trades_since == [940 * NS, 940 * NS, 970 * NS]


def test_a_fill_from_the_stream_and_twice_from_the_poll_reaches_the_handlers_once() -> None:
    from trader.app import App
    from trader.config import Config

    app = App(Config())
    seen: list[OrderFilled] = []
    app.registry.register(OrderFilled, seen.append)  # after every handler of the table
    streamed = fill("t1", 990)
    polled = replace(streamed, ts_recv=streamed.ts_recv + 5 * NS, liquidity=Liquidity.TAKER)
    for ev in (polled, streamed, polled):
        app.engine.dispatch(ev)
    assert seen == [polled]
    assert app.store.duplicate_fills == 2
    assert app.store.position("BTC/USDT").amount == D("1")


def test_the_wiring_speeds_up_while_a_feed_is_down_and_refreshes_after_a_reconnect() -> None:
    """A reconnect reaches the poller and the reconciler only as events, through the wiring's
    main-thread handlers: fast polling while the feed is down, then a REST refresh and a
    reconciliation round once it delivers again."""
    from trader.app import App
    from trader.config import Config

    app = App(Config())
    stop = threading.Event()
    reconciler = threading.Thread(target=app.reconciler.run, args=(stop,), name="reconciler")
    reconciler.start()
    try:
        app.engine.dispatch(FeedDisconnected(ts_event=1, ts_recv=1, feed="ws-binance", reason="x"))
        app.poller.serve_requests()  # what the poller thread does at its next turn
        assert any("fast" in job.tags for job in app.poller.scheduler.jobs)
        while app.bus.depth():  # what going fast polled at once
            assert not isinstance(app.bus.get(0), ReconciliationStarted)
        app.engine.dispatch(FeedRecovered(ts_event=2, ts_recv=2, feed="ws-binance"))
        app.poller.serve_requests()
        assert not any("fast" in job.tags for job in app.poller.scheduler.jobs)
        published = []
        deadline = time.monotonic() + 5
        # the reconciler thread and the refresh publish concurrently: read until both are seen
        while (
            not {"ReconciliationStarted", "BalanceUpdate"} <= set(published)
            and time.monotonic() < deadline
        ):
            try:
                ev = app.bus.get(0.05)
            except queue.Empty:
                continue
            published.append(type(ev).__name__)
            if isinstance(ev, ReconciliationStarted):
                assert ev.reason == "ws-binance reconnected"
        assert "BalanceUpdate" in published  # the refresh, served by the poller
        assert "ReconciliationStarted" in published
    finally:
        stop.set()
        app.reconciler.close()
        reconciler.join(2)
    assert not reconciler.is_alive()
