"""Ordering rules for state: facts that race to the store (the executor thread's gateway answers
against the main thread's own follow-ups, a poll fetched before a stream message) never leave
it holding an older balance or re-open a final order."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from tests.conftest import balance, order_filled
from tests.harness import SYMBOL, Harness
from tests.test_paper import NoSource
from tests.test_replay import FastClock, run_until
from trader.app import App
from trader.config import StoreConfig, config_from_dict
from trader.events import (
    BalanceUpdate,
    OrderAccepted,
    OrderFilled,
    OrderStatusReport,
    OrderSubmitted,
    QuoteTick,
    SubmitOrder,
    TradeTick,
)
from trader.exchange.paper import PaperGateway
from trader.journal import read_events
from trader.model.orders import OrderStatus, OrderType, Side
from trader.replay import Replayer
from trader.store.memory import MemoryStore
from trader.trading.strategy import OrderIntent


def test_the_executors_answer_arriving_after_the_main_threads_fill_leaves_the_newest_balance(
    tmp_path: Path,
) -> None:
    """The race of a fast market maker on paper: the executor thread's ``create_order`` answer
    (the buy's funds locked) reaches the bus after the main thread has already matched the
    order against a trade through it (funds spent, the lock released) and dispatched those
    follow-ups. The store must end with the account's balances, not the older locked ones."""
    h = Harness(tmp_path)
    h.quote("59990", "60010")
    app = h.app
    for ev in app.risk.evaluate(
        OrderIntent(
            strategy="mm",
            symbol=SYMBOL,
            side=Side.BUY,
            amount=D("0.01"),
            order_type=OrderType.LIMIT,
            price=D("60000"),
        )
    ):
        app.engine.emit(ev)
    app.engine.drain(time.monotonic() + 5)  # OrderSubmitted recorded, SubmitOrder queued
    app.executor.drain(time.monotonic() + 5)  # the executor thread: answer put on the bus
    now = h.clock.now_ns()
    # The main thread, first: a trade through the resting buy fills it (follow-ups at once).
    app.engine.dispatch(
        TradeTick(
            ts_event=now,
            ts_recv=now,
            symbol=SYMBOL,
            price=D("59900"),
            size=D(1),
            aggressor=Side.SELL,
            trade_id="t1",
        )
    )
    h.pump()  # the follow-ups, then the executor's older answer from the bus
    account = {b.asset: (b.free, b.used) for b in app.gateway.fetch_balances()}
    held = {a: (b.free, b.used) for a, b in app.store.balances().balances.items()}
    assert held == account
    assert account["USDT"][1] == 0 and account["BTC"][0] == D("0.01")
    assert app.store.stale_updates >= 1


def _report(status: OrderStatus, filled: str, avg: str | None = None) -> OrderStatusReport:
    return OrderStatusReport(
        ts_event=1,
        ts_recv=5,
        client_id="c1",
        exchange_id="x1",
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=status,
        amount=D(1),
        filled=D(filled),
        price=D(100),
        avg_price=None if avg is None else D(avg),
    )


def _fill(trade_id: str, amount: str, total: str, final: bool) -> OrderFilled:
    return order_filled(
        "c1", trade_id, amount, total=total, final=final, ts=2, exchange_id="x1", symbol=SYMBOL
    )


def test_a_balance_older_than_the_one_held_is_ignored_per_asset_and_counted() -> None:
    store = MemoryStore(StoreConfig())
    store.on_balance(balance("BTC", "2", ts=20))
    store.on_balance(balance("USDT", "5", ts=10))
    store.on_balance(balance("BTC", "1", ts=15))  # older than BTC's: stale
    store.on_balance(balance("USDT", "6", ts=12))  # USDT has its own time: newer, applied
    store.on_balance(balance("BTC", "3", ts=20))  # the same time: applied (arrival decides)
    assert store.balance("BTC").total == D(3) and store.balance("USDT").total == D(6)
    assert store.stale_updates == 1


def test_the_sources_sequence_orders_balances_of_the_same_time() -> None:
    store = MemoryStore(StoreConfig())
    newer = replace(balance("USDT", "7", ts=10), seq=8)
    store.on_balance(newer)
    store.on_balance(replace(balance("USDT", "9", ts=10), seq=7))
    assert store.balance("USDT").total == D(7) and store.stale_updates == 1


def test_a_stale_open_report_after_the_final_fill_never_reopens_the_order() -> None:
    """Item 4: a poll fetched before the fill (open, filled 0) dispatched after it."""
    store = MemoryStore(StoreConfig())
    store.on_order_submitted(
        OrderSubmitted(
            ts_event=1,
            ts_recv=1,
            client_id="c1",
            symbol=SYMBOL,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            amount=D(1),
            price=D(100),
        )
    )
    store.on_order_accepted(OrderAccepted(ts_event=1, ts_recv=1, client_id="c1", exchange_id="x1"))
    store.on_order_filled(_fill("t1", "1", "1", True))
    store.on_order_report(_report(OrderStatus.OPEN, "0"))
    assert store.order("c1").status is OrderStatus.FILLED and store.open_orders() == ()
    assert store.stale_updates == 1 and store.illegal_transitions == 0


def test_a_report_knowing_fewer_fills_than_applied_is_stale() -> None:
    store = MemoryStore(StoreConfig())
    store.on_order_report(_report(OrderStatus.OPEN, "0"))
    store.on_order_filled(_fill("t1", "0.3", "0.3", False))
    store.on_order_filled(_fill("t2", "0.3", "0.6", False))
    store.on_order_report(_report(OrderStatus.PARTIALLY_FILLED, "0.3", avg="90"))
    order = store.order("c1")
    assert order.filled == D("0.6") and order.avg_price == D(100)  # not the stale average
    assert store.stale_updates == 1
    # A final report is applied even so: it is the exchange's last word on the order.
    store.on_order_report(_report(OrderStatus.CANCELED, "0.6"))
    assert store.order("c1").status is OrderStatus.CANCELED


class WallClock:
    """A wall clock that can be stepped back (ManualClock refuses to)."""

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def now_ns(self) -> int:
        return self.ns


def test_the_paper_accounts_stamps_never_go_back_with_the_clock() -> None:
    """The account's time is taken under its lock and never goes back (a wall clock stepped
    back by NTP, or a thread that read the clock before waiting for the lock): each balance is
    stamped newer than every earlier one, so the store can order them whatever their arrival."""
    clock = WallClock(1_000)
    g = PaperGateway(NoSource(), clock, {"USDT": D(10_000)}, D("0.001"))
    g.on_quote(
        QuoteTick(
            ts_event=1,
            ts_recv=1,
            symbol=SYMBOL,
            bid=D(100),
            ask=D(101),
            bid_size=D(10),
            ask_size=D(10),
        )
    )
    answer = g.create_order(
        SubmitOrder(
            ts_event=1,
            ts_recv=1,
            client_id="b1",
            symbol=SYMBOL,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            amount=D(1),
            price=D(100),
        )
    )
    clock.ns = 500  # the clock went back
    later = g.on_trade(
        TradeTick(
            ts_event=1,
            ts_recv=1,
            symbol=SYMBOL,
            price=D(99),
            size=D(5),
            aggressor=Side.SELL,
            trade_id="t1",
        )
    )
    assert any(isinstance(e, OrderFilled) for e in later)  # the order works on, filled
    stamps = [(e.ts_event, e.seq) for e in answer + later if isinstance(e, BalanceUpdate)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(ts >= 1_000 for ts, _ in stamps)
    store = MemoryStore(StoreConfig())
    for ev in later + answer:  # the executor's answer arrives last
        if isinstance(ev, BalanceUpdate):
            store.on_balance(ev)
    assert {a: (b.free, b.used) for a, b in store.balances().balances.items()} == {
        b.asset: (b.free, b.used) for b in g.fetch_balances()
    }


def test_a_fast_market_maker_on_paper_ends_with_the_accounts_balances(tmp_path: Path) -> None:
    """Item 1 end to end, with the real threads: a market maker requoting on every tick, its
    orders answered on the executor thread while the main thread matches the book. After a
    clean stop the store, and the replay of the journal, hold what the account holds. (Against
    the unfixed store this fails only now and then, when a stale answer is an asset's last
    update; the harness test above reproduces the race every time.)"""
    cfg = config_from_dict(
        {
            "simulated": {"tick_interval_s": 0.001, "candle_interval_s": 1, "volatility_bps": 30},
            "paper": {"latency_ms": 0, "persist": False},
            "journal": {"path": str(tmp_path / "journal"), "retention_days": 0},
            "strategies": [
                {
                    "name": "market_maker",
                    "market": "BTC/USDT",
                    "params": {
                        "spread_bps": 1,
                        "amount": 0.002,
                        "requote_bps": 1,
                        "max_inventory": 1,
                        "cooldown_s": 0,
                    },
                }
            ],
        },
        {},
    )
    app = App(cfg, FastClock(50))
    gw = app.gateway
    create, cancel = gw.create_order, gw.cancel_order
    transit = threading.Event()  # never set: its wait is the answer's way back

    def answered_late(call: Any) -> Any:
        """The answer reaches the executor a moment after the account changed, as a live
        exchange's does; meanwhile the main thread goes on matching the book."""

        def late(*args: Any) -> Any:
            out = call(*args)
            transit.wait(0.002)
            return out

        return late

    gw.create_order = answered_late(create)  # type: ignore[method-assign]
    gw.cancel_order = answered_late(cancel)  # type: ignore[method-assign]
    app.start()
    run_until(
        app, lambda: app.stats.snapshot()["dispatched"].get("OrderFilled", 0) >= 100, poll_s=0.01
    )
    assert app.stats.snapshot()["dispatched"].get("OrderFilled", 0) >= 100, "the maker traded"
    account = {b.asset: (b.free, b.used) for b in app.gateway.fetch_balances()}
    held = {a: (b.free, b.used) for a, b in app.store.balances().balances.items()}
    assert held == account
    assert app.store.stale_updates > 0  # the races happened (about 100 a run), and were ignored
    replayer = Replayer(app.cfg)
    replayer.run(read_events(cfg.journal.path))
    assert replayer.app.store.balances().balances == app.store.balances().balances


def test_a_report_fetched_before_the_fill_of_an_order_not_yet_known_does_not_create_it_open() -> (
    None
):
    """At a restart: an earlier session's working order fills on the first quote (the store
    does not know it yet) before reconciliation's report of it, fetched just before that fill
    (open, filled 0), is dispatched. The order must be recorded filled, with its fill, so that
    the next round finds nothing missing (it used to stay open with its fill "missing", and
    trading halted for good)."""
    store = MemoryStore(StoreConfig(), own_prefix="trd-")
    fill = replace(_fill("t1", "1", "1", True), client_id="trd-a-6")
    store.on_order_filled(fill)
    store.on_order_report(replace(_report(OrderStatus.OPEN, "0"), client_id="trd-a-6"))
    order = store.order("trd-a-6")
    assert order.status is OrderStatus.FILLED and order.filled == D(1)
    assert order.has_fill("t1") and store.open_orders() == ()
    assert store.stale_updates == 1
    assert store.on_order_filled(fill) is not None  # the next round's repeat: applied once
    assert store.position(SYMBOL).amount == D(1)
