"""Shared test helpers."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

# hypothesis keeps its files under the working directory unless told otherwise
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="hypothesis-"))

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# No test writes into the checkout: hypothesis keeps no example database there, and every test
# is checked for new top-level entries (a journal or state file under a relative default path).
settings.register_profile("trader", database=None)
settings.load_profile("trader")
TOOL_CACHES = {".pytest_cache", ".ruff_cache", ".mypy_cache", "__pycache__"}
_CHECKOUT = set(os.listdir(ROOT))

from trader.config import Config, StoreConfig  # noqa: E402
from trader.events import (  # noqa: E402
    BalanceUpdate,
    MarketUpdated,
    OrderFilled,
    QuoteTick,
    SubmitOrder,
    TradeTick,
)
from trader.model.orders import OrderType, Side  # noqa: E402
from trader.store.memory import MemoryStore  # noqa: E402

D = Decimal


@pytest.fixture(autouse=True)
def _nothing_written_into_the_checkout() -> Iterator[None]:
    yield
    new = set(os.listdir(ROOT)) - _CHECKOUT - TOOL_CACHES
    assert not new, f"the test wrote {sorted(new)} into the checkout: use tmp_path"


def quote(
    symbol: str = "BTC/USDT", bid: str = "100", ask: str = "101", ts: int = 1, size: str = "1"
) -> QuoteTick:
    """A quote with string prices."""
    return QuoteTick(
        ts_event=ts,
        ts_recv=ts,
        symbol=symbol,
        bid=D(bid),
        ask=D(ask),
        bid_size=D(size),
        ask_size=D(size),
    )


def trade(symbol: str = "BTC/USDT", price: str = "100", ts: int = 1) -> TradeTick:
    """A public trade."""
    return TradeTick(
        ts_event=ts,
        ts_recv=ts,
        symbol=symbol,
        price=D(price),
        size=D("1"),
        aggressor=Side.BUY,
        trade_id=str(ts),
    )


def balance(asset: str, total: str, used: str = "0", ts: int = 1) -> BalanceUpdate:
    """A balance update."""
    return BalanceUpdate(
        ts_event=ts, ts_recv=ts, asset=asset, free=D(total) - D(used), used=D(used), total=D(total)
    )


def market(symbol: str = "BTC/USDT", min_notional: str = "5") -> MarketUpdated:
    """Market rules with small increments."""
    base, quote_ = symbol.split("/")
    return MarketUpdated(
        ts_event=1,
        ts_recv=1,
        symbol=symbol,
        base=base,
        quote=quote_,
        price_increment=D("0.01"),
        amount_increment=D("0.0001"),
        min_amount=D("0.0001"),
        min_notional=D(min_notional),
    )


def submit_order(
    cid: str,
    side: Side,
    amount: str,
    kind: OrderType = OrderType.MARKET,
    price: str | None = None,
    symbol: str = "BTC/USDT",
) -> SubmitOrder:
    """An order command with string amount and price."""
    return SubmitOrder(
        ts_event=1,
        ts_recv=1,
        client_id=cid,
        symbol=symbol,
        side=side,
        order_type=kind,
        amount=D(amount),
        price=D(price) if price else None,
    )


def order_filled(
    cid: str,
    trade_id: str,
    amount: str,
    *,
    side: Side = Side.BUY,
    total: str | None = None,
    final: bool = True,
    ts: int = 1,
    exchange_id: str = "1",
    symbol: str = "BTC/USDT",
) -> OrderFilled:
    """A fill of ``amount`` at 100, without a fee; ``total`` (the order's filled amount with
    it) is ``amount`` unless given."""
    return OrderFilled(
        ts_event=ts,
        ts_recv=ts,
        client_id=cid,
        exchange_id=exchange_id,
        trade_id=trade_id,
        symbol=symbol,
        side=side,
        price=D("100"),
        amount=D(amount),
        fee=D("0"),
        fee_asset="USDT",
        filled_total=D(total or amount),
        is_final=final,
    )


class FakeMonotonic:
    """An injectable monotonic clock, so a pause takes no real time: tests move ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> MemoryStore:
    """An empty in-memory store with default bounds."""
    return MemoryStore(StoreConfig())


@pytest.fixture
def config() -> Config:
    """The default configuration."""
    return Config()


@contextmanager
def running(app: Any) -> Iterator[Any]:
    """The app started, its main loop in a thread; stopped and shut down after."""
    app.start()
    loop = threading.Thread(target=app.run, name="test-main-loop")
    loop.start()
    try:
        yield app
    finally:
        app.request_stop("test")
        loop.join(10)
        app.shutdown()


def start_service(
    config: Path, cwd: Path, env: dict[str, str], *args: str
) -> subprocess.Popen[str]:
    """``scripts/start.py --config CONFIG ARGS`` in a child process, stdout and stderr merged."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "start.py"), "--config", str(config), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until(predicate: Any, timeout: float = 10.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and ``threading.excepthook`` back after a test that set them up."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, threading.excepthook
    yield
    root.handlers[:], threading.excepthook = handlers, hook
    root.setLevel(level)
