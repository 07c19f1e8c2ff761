"""Strategies through the runner and risk: the MA cross, a raising strategy."""

from __future__ import annotations

from decimal import Decimal as D

from tests.conftest import balance, market, quote
from trader.clock import ManualClock
from trader.config import RiskConfig, StoreConfig
from trader.events import (
    Candle,
    HandlerFailed,
    OrderDenied,
    OrderSubmitted,
    SignalGenerated,
    SignalKind,
    StrategyDisabled,
    SubmitOrder,
    TradingState,
)
from trader.model.orders import Side
from trader.model.units import NS
from trader.store.memory import MemoryStore
from trader.store.view import ReadOnlyView
from trader.trading.client_ids import ClientIdGenerator
from trader.trading.risk import Risk
from trader.trading.strategies.ma_cross import MaCross, MaCrossParams
from trader.trading.strategy import Strategy, StrategyRunner


def candle(i: int, close: str) -> Candle:
    return Candle(
        ts_event=i * NS,
        ts_recv=i * NS,
        symbol="BTC/USDT",
        interval="1s",
        open=D(close),
        high=D(close),
        low=D(close),
        close=D(close),
        volume=D(1),
        start_ns=i * NS,
        closed=True,
    )


def setup(strategies_factory):
    clock = ManualClock(1)
    store = MemoryStore(StoreConfig())
    view = ReadOnlyView(store)
    risk = Risk(view, RiskConfig(), clock, ClientIdGenerator("t", 0))
    runner = StrategyRunner(strategies_factory(clock), view, risk.evaluate, clock)
    store.on_market(market())
    store.on_balance(balance("USDT", "10000"))
    return store, runner, risk


def feed(store: MemoryStore, runner: StrategyRunner, closes: list[str]) -> list:
    out = []
    for i, c in enumerate(closes):
        ev = candle(i, c)
        store.on_candle(ev)
        store.on_quote(quote(bid=c, ask=c))
        out += runner.on_candle(ev)
    return out


def test_ma_cross_buys_on_cross_up_and_sells_holdings_on_cross_down() -> None:
    store, runner, _ = setup(
        lambda clk: [MaCross("ma", "BTC/USDT", MaCrossParams(2, 4, D("1")), clk)]
    )
    down = ["110", "108", "106", "104"]  # fast < slow: initial state, no action
    up = ["106", "112"]  # fast crosses above slow
    out = feed(store, runner, down + up)
    signals = [e for e in out if isinstance(e, SignalGenerated)]
    orders = [e for e in out if isinstance(e, OrderSubmitted)]
    assert [s.kind for s in signals] == [SignalKind.LONG]
    assert len(orders) == 1 and orders[0].side is Side.BUY and orders[0].amount == D("1")
    assert orders[0].client_id == "t-0-1" and orders[0].strategy == "ma"
    assert isinstance(out[-1], SubmitOrder)  # recorded first, then sent
    store.on_balance(balance("BTC", "1"))
    out = feed(store, runner, ["100", "90"])
    sells = [e for e in out if isinstance(e, OrderSubmitted)]
    assert [(o.side, o.amount) for o in sells] == [(Side.SELL, D("1"))]


def test_risk_denies_and_halts() -> None:
    store, runner, risk = setup(
        lambda clk: [MaCross("ma", "BTC/USDT", MaCrossParams(2, 4, D("1000")), clk)]
    )
    out = feed(store, runner, ["110", "108", "106", "104", "106", "112"])
    denied = [e for e in out if isinstance(e, OrderDenied)]
    assert len(denied) == 1 and "max_order_notional" in denied[0].reason
    risk.set_state(TradingState.HALTED, "test")
    from trader.trading.strategy import OrderIntent

    (ev,) = risk.evaluate(
        OrderIntent(strategy="x", symbol="BTC/USDT", side=Side.BUY, amount=D("0.01"))
    )
    assert isinstance(ev, OrderDenied) and ev.reason == "trading is halted"


class Exploding(Strategy):
    Params = MaCrossParams

    def on_candle(self, ev, view):
        raise ZeroDivisionError("strategy bug")


def test_a_raising_strategy_is_reported_then_disabled_and_others_go_on() -> None:
    store, runner, _ = setup(
        lambda clk: [
            Exploding("bad", "BTC/USDT", MaCrossParams(), clk),
            MaCross("ma", "BTC/USDT", MaCrossParams(2, 4, D("1")), clk),
        ]
    )
    out = feed(store, runner, ["110", "108", "106", "104", "106", "112"])
    failures = [e for e in out if isinstance(e, HandlerFailed)]
    assert len(failures) == 3 and failures[0].handler == "strategy:bad"
    assert "ZeroDivisionError" in failures[0].error
    (disabled,) = [e for e in out if isinstance(e, StrategyDisabled)]
    assert disabled.strategy == "bad" and runner.disabled == {"bad"}
    assert any(isinstance(e, OrderSubmitted) for e in out)  # the healthy strategy still traded
