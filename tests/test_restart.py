"""A restart carries positions, open orders, balances and the day's loss exactly, on the memory
store (its state file) and on Redis (a real redis-server)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import running
from tests.redis_server import RedisServer
from trader.app import App
from trader.clock import ManualClock
from trader.config import Config, RiskConfig, StoreConfig, config_from_dict
from trader.events import STOP, OrderFilled, OrderStatusReport
from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.units import DAY_NS
from trader.store.memory import MemoryStore
from trader.trading.daily_loss import DailyLoss, LossLevel


def restart_config(tmp_path: Path, storage: dict) -> Config:
    return config_from_dict(
        {
            "general": {"stats_interval_s": 60},
            "simulated": {"tick_interval_s": 0.002, "volatility_bps": 20},
            "paper": {"persist": True, "latency_ms": 0},
            "poller": {"balances_every_s": 0, "open_orders_every_s": 0},
            "risk": {"daily_loss_limit": 100_000},
            "journal": {"path": str(tmp_path / "journal")},
            "storage": storage,
            "strategies": [
                {
                    "name": "market_maker",
                    "market": "BTC/USDT",
                    "params": {
                        "spread_bps": 40,
                        "amount": 0.002,
                        "requote_bps": 30,
                        "max_inventory": 0.05,
                        "cooldown_s": 0.05,
                    },
                }
            ],
        },
        {},
    )


def wait_until(pred: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def check_restart_carries_the_ledger(tmp_path: Path, cfg: Config) -> None:
    first = App(cfg)
    with running(first):
        s = first.store
        wait_until(
            lambda: (
                any(o.fills for o in s.orders())
                and s.open_orders()
                and first.risk.daily_loss_saved()[0] >= 0
            ),
            "a fill, an open order and a daily loss check",
        )
    orders, positions = first.store.orders(), first.store.positions()
    loss = first.risk.daily_loss_saved()
    assert positions["BTC/USDT"].amount == sum(
        (f.amount if o.side.value == "buy" else -f.amount for o in orders for f in o.fills),
        Decimal(0),
    )

    second = App(cfg)
    second.start()
    try:
        assert second.store.orders() == orders  # each with its fills and status
        assert second.store.open_orders() == first.store.open_orders()
        assert second.store.positions() == positions
        assert second.risk.daily_loss_saved() == loss and loss[0] >= 0  # the same day count
        account = json.loads((tmp_path / "paper-account.json").read_text())["balances"]
        assert {a: (b.free, b.used) for a, b in second.store.balances().balances.items()} == {
            a: (Decimal(b["free"]), Decimal(b["used"])) for a, b in account.items()
        }
    finally:
        second.request_stop("test")
        second.shutdown()


def test_a_restart_carries_the_ledger_on_the_memory_store(tmp_path: Path) -> None:
    check_restart_carries_the_ledger(tmp_path, restart_config(tmp_path, {}))


def test_a_restart_carries_the_ledger_on_redis(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        check_restart_carries_the_ledger(
            tmp_path,
            restart_config(
                tmp_path,
                {
                    "backend": "redis",
                    "redis_url": server.url,
                    "key_prefix": "rs",
                    "flush_interval_s": 0.01,
                },
            ),
        )
    finally:
        server.stop()


@pytest.mark.parametrize("day_offset", [0, 1])
def test_the_daily_loss_goes_on_counting_within_the_day_only(day_offset: int) -> None:
    pnl = [Decimal(-50)]
    clock = ManualClock(10 * DAY_NS + 5)
    before = DailyLoss(RiskConfig(daily_loss_limit=Decimal(60)), clock, lambda: pnl[0])
    before.check()  # the day counts from -50
    pnl[0] = Decimal(-100)
    after = DailyLoss(RiskConfig(daily_loss_limit=Decimal(60)), clock, lambda: pnl[0])
    after.load(*before.saved())
    clock.set(10 * DAY_NS + 6 + day_offset * DAY_NS)
    new_day, level, today = after.check()
    if day_offset:
        assert (new_day, level, today) == (True, LossLevel.WITHIN, 0)
    else:  # the restart did not forget the 50 lost since the day began
        assert (new_day, level, today) == (False, LossLevel.WITHIN, Decimal(-50))


def test_a_fill_seen_before_its_order_was_adopted_completes_the_order_once() -> None:
    """After a kill, a resting order placed in the lost window fills on the first quotes, before
    reconciliation adopts it: the position takes the fill at once, the adopted order takes it
    with its report, and a redelivery is a counted repeat that moves nothing."""
    store = MemoryStore(StoreConfig(), own_prefix="trd-")
    fill = OrderFilled(
        ts_event=5,
        ts_recv=5,
        client_id="trd-x-33",
        exchange_id="paper-33",
        trade_id="paper-33-1",
        symbol="BTC/USDT",
        side=Side.SELL,
        price=Decimal(60_000),
        amount=Decimal("0.002"),
        fee=Decimal(0),
        fee_asset="USDT",
        filled_total=Decimal("0.002"),
        is_final=True,
    )
    assert store.on_order_filled(fill) is None  # unknown order: the position moves
    assert store.position("BTC/USDT").amount == Decimal("-0.002")
    store.on_order_report(
        OrderStatusReport(
            ts_event=4,
            ts_recv=6,
            client_id="trd-x-33",
            exchange_id="paper-33",
            symbol="BTC/USDT",
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            status=OrderStatus.OPEN,
            amount=Decimal("0.002"),
            filled=Decimal(0),
            price=Decimal(60_000),
        )
    )
    order = store.order("trd-x-33")
    assert order.status is OrderStatus.FILLED and order.filled == Decimal("0.002")
    assert [f.trade_id for f in order.fills] == ["paper-33-1"]
    assert store.on_order_filled(fill) is STOP and store.duplicate_fills == 1  # delivered again
    assert store.position("BTC/USDT").amount == Decimal("-0.002")  # not moved twice
