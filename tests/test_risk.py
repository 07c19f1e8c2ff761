"""Risk: every rule passing and denying, rounding, the gate, halt causes, the kill switch and the
daily loss limit. Time comes from a ManualClock."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from tests.conftest import balance, market, quote, trade
from trader.clock import ManualClock
from trader.config import RiskConfig, StoreConfig, config_from_dict
from trader.errors import ConfigError
from trader.events import (
    JOURNAL,
    CancelAllOrders,
    CancelOrder,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    HaltTrading,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    ReconciliationCompleted,
    ReconciliationStarted,
    ResumeTrading,
    StorageFailed,
    StorageRecovered,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)
from trader.model.orders import OrderType, Side
from trader.model.units import NS
from trader.store.memory import MemoryStore
from trader.store.view import ReadOnlyView
from trader.trading.client_ids import ClientIdGenerator
from trader.trading.data_halt import DataHalts
from trader.trading.risk import HaltCause, Risk
from trader.trading.strategy import CancelIntent, OrderIntent

T0 = 1_800_000_000 * NS  # 2027-01-15 08:00:00 UTC


class Setup:
    def __init__(self, **cfg: object) -> None:
        self.clock = ManualClock(T0)
        self.store = MemoryStore(StoreConfig())
        self.risk = Risk(
            ReadOnlyView(self.store), RiskConfig(**cfg), self.clock, ClientIdGenerator("t", 0)
        )
        self.store.on_market(market())  # steps: price 0.01, amount 0.0001; min notional 5
        self.store.on_balance(balance("USDT", "10000"))
        self.quote("100", "101")

    def quote(self, bid: str, ask: str, symbol: str = "BTC/USDT") -> None:
        self.store.on_quote(quote(symbol, bid, ask, ts=self.clock.now_ns()))

    def decide(
        self,
        side: Side = Side.BUY,
        amount: str = "1",
        price: str | None = None,
        symbol: str = "BTC/USDT",
    ) -> str | None:
        """The denial reason, or None when the order went out."""
        events = self.risk.evaluate(self.intent(side, amount, price, symbol))
        denied = [e for e in events if isinstance(e, OrderDenied)]
        if denied:
            return denied[0].reason
        sub = [e for e in events if isinstance(e, OrderSubmitted)]
        assert len(sub) == 1 and isinstance(events[-1], SubmitOrder)
        self.store.on_order_submitted(sub[0])  # in flight until the exchange answers
        return None

    @staticmethod
    def intent(
        side: Side = Side.BUY, amount: str = "1", price: str | None = None, symbol: str = "BTC/USDT"
    ) -> OrderIntent:
        kind = OrderType.LIMIT if price is not None else OrderType.MARKET
        return OrderIntent(
            strategy="s",
            symbol=symbol,
            side=side,
            amount=D(amount),
            order_type=kind,
            price=D(price) if price is not None else None,
        )

    def fill(self, side: Side, amount: str, price: str, n: int = 1) -> list:
        ev = OrderFilled(
            ts_event=1,
            ts_recv=1,
            client_id=f"f{n}",
            exchange_id="x",
            trade_id=f"t{n}",
            symbol="BTC/USDT",
            side=side,
            price=D(price),
            amount=D(amount),
            fee=D(0),
            fee_asset="USDT",
            filled_total=D(amount),
            is_final=True,
        )
        self.store.on_order_filled(ev)
        return self.risk.on_fill(ev)


def test_market_known_and_active() -> None:
    s = Setup()
    assert s.decide(symbol="XRP/USDT") == "unknown market XRP/USDT"
    s.store.on_market(replace(market("ETH/USDT"), active=False))
    assert s.decide(symbol="ETH/USDT") == "market ETH/USDT is not active"
    assert s.decide(amount="0.1") is None


def test_a_price_is_needed() -> None:
    s = Setup()
    s.store.on_market(market("ETH/USDT"))
    assert s.decide(symbol="ETH/USDT") == "no price for ETH/USDT yet"


def test_precision_rounds_amount_down_and_limit_prices_toward_the_passive_side() -> None:
    s = Setup()
    events = s.risk.evaluate(s.intent(Side.BUY, "0.123456", "100.019"))
    sub = events[0]
    assert isinstance(sub, OrderSubmitted)
    assert (sub.amount, sub.price) == (D("0.1234"), D("100.01"))  # buy: never above the ask
    s.store.on_balance(balance("BTC", "1"))
    sub = s.risk.evaluate(s.intent(Side.SELL, "0.5", "100.011"))[0]
    assert (sub.amount, sub.price) == (D("0.5"), D("100.02"))  # sell: never below the ask
    assert s.decide(amount="0.00009") == "amount 0.00009 rounds to 0 at step 0.0001"
    assert s.decide(price="0.001") == "limit price 0.001 is missing or rounds to 0"


def test_stale_quote_and_stale_feed_deny() -> None:
    s = Setup(stale_after_s=10)
    s.clock.advance(9)
    assert s.decide(amount="0.1") is None
    s.clock.advance(2)
    assert s.decide(amount="0.1") == "last quote for BTC/USDT is 11.0s old (stale_after_s 10)"
    s.quote("100", "101")
    assert s.decide(amount="0.1") is None
    now = s.clock.now_ns()
    (halt,) = s.risk.data_halts.on_feed_down(
        FeedStale(ts_event=now, ts_recv=now, feed="ws-binance", silent_s=D(30))
    )
    assert (halt.symbol, halt.halted) == ("*", True)  # a feed not described: every market
    assert s.decide(amount="0.1") == "data halt on BTC/USDT: ws-binance stale (30s without data)"
    (lift,) = s.risk.data_halts.on_feed_recovered(
        FeedRecovered(ts_event=now, ts_recv=now, feed="ws-binance")
    )
    assert (lift.symbol, lift.halted, lift.reason) == ("*", False, "fresh data on ws-binance")
    assert s.decide(amount="0.1") is None
    s.store.on_market(market("ETH/USDT"))
    s.store.on_trade(trade("ETH/USDT", "50"))
    assert s.decide(symbol="ETH/USDT") == "no quote for ETH/USDT: market data is stale"
    assert Setup(stale_after_s=0).decide(amount="0.1") is None  # off


def test_a_disconnected_feed_halts_new_orders_on_its_markets_only_until_fresh_data() -> None:
    s = Setup()
    halts = DataHalts({"ws-market": ("BTC/USDT",), "ws-user": ()})
    s.risk = Risk(
        ReadOnlyView(s.store), RiskConfig(), s.clock, ClientIdGenerator("t", 0), data_halts=halts
    )
    s.store.on_market(market("ETH/USDT"))
    s.quote("50", "51", "ETH/USDT")
    now = s.clock.now_ns()
    assert (
        halts.on_feed_down(
            FeedDisconnected(ts_event=now, ts_recv=now, feed="ws-user", reason="closed")
        )
        == []
    )  # no market data
    (halt,) = halts.on_feed_down(
        FeedDisconnected(ts_event=now, ts_recv=now, feed="ws-market", reason="closed")
    )
    assert (halt.symbol, halt.halted, halt.reason) == (
        "BTC/USDT",
        True,
        "ws-market disconnected (closed)",
    )
    assert (
        halts.on_feed_down(
            FeedDisconnected(ts_event=now, ts_recv=now, feed="ws-market", reason="connect failed")
        )
        == []
    )  # one event
    assert s.decide(amount="0.1") == "data halt on BTC/USDT: ws-market disconnected (closed)"
    assert s.decide(amount="0.1", symbol="ETH/USDT") is None  # another market trades on
    assert s.risk.state is TradingState.ACTIVE  # not a trading-state change
    cancel = s.risk.evaluate(CancelIntent(strategy="s", client_id="t-1", symbol="BTC/USDT"))
    assert [type(e).__name__ for e in cancel] == ["CancelOrder"]  # cancels go through
    (lift,) = halts.on_feed_recovered(FeedRecovered(ts_event=now, ts_recv=now, feed="ws-market"))
    assert (lift.symbol, lift.halted) == ("BTC/USDT", False)
    assert s.decide(amount="0.1") is None


def test_price_band_against_the_last_price() -> None:
    s = Setup(price_band_bps=500)  # last = mid 100.5
    assert s.decide(amount="0.1", price="96") is None  # 448 bps away
    assert (
        s.decide(amount="0.1", price="95")
        == "limit price 95 is 547 bps from the last price 100.5 (price_band_bps 500)"
    )
    assert s.decide(side=Side.BUY, amount="0.1", price="106") is not None  # fat finger up
    assert Setup(price_band_bps=0).decide(amount="0.1", price="50") is None  # off


def test_minimum_amount_and_notional() -> None:
    s = Setup()
    assert s.decide(amount="0.0001") == "notional 0.01 below the minimum 5"
    s.store.on_market(replace(market(), min_amount=D("0.01")))
    assert s.decide(amount="0.005") == "amount 0.005 below the minimum 0.01"
    assert s.decide(amount="0.05") is None  # 5.05 USDT


def test_max_order_notional() -> None:
    s = Setup(max_order_notional=D(1000))
    assert s.decide(amount="10") == "notional 1010.00 above max_order_notional 1000"
    assert s.decide(amount="9") is None  # 909 at the ask


def test_max_position_notional_and_reducing_is_always_fine() -> None:
    s = Setup(max_position_notional=D(500))
    s.fill(Side.BUY, "4", "100")
    s.store.on_balance(balance("BTC", "4"))
    assert s.decide(amount="1") == "position notional 505.00 would exceed max_position_notional 500"
    assert s.decide(side=Side.SELL, amount="1") is None


def test_free_balance_with_reserve_and_orders_in_flight() -> None:
    s = Setup(
        max_order_notional=D(100_000), max_position_notional=D(100_000), buy_reserve_bps=D(20)
    )
    # 99 * 101 * 1.002 = 10018.998 > 10000
    assert s.decide(amount="99") == "free USDT 10000 is less than the 10018.99800000 needed"
    assert s.decide(amount="60") is None  # 6072.12 reserved while in flight
    assert s.decide(amount="60").startswith("free USDT 3927.88")
    assert s.decide(side=Side.SELL, amount="1") == "free BTC 0 is less than the 1.00000000 needed"


def test_order_rate_per_window() -> None:
    s = Setup(max_orders_per_window=2, order_window_s=10)
    assert s.decide(amount="0.1") is None
    s.clock.advance(4)
    s.quote("100", "101")
    assert s.decide(amount="0.1") is None
    assert s.decide(amount="0.1") == "2 orders in the last 10s (max_orders_per_window 2)"
    s.clock.advance(6)  # the first order leaves the window
    s.quote("100", "101")
    assert s.decide(amount="0.1") is None
    assert Setup(max_orders_per_window=0).decide(amount="0.1") is None  # off


def test_gate_halted_and_reducing_but_cancels_always_pass() -> None:
    s = Setup()
    s.risk.set_state(TradingState.HALTED, "test")
    assert s.decide(amount="0.1") == "trading is halted"
    (cancel,) = s.risk.evaluate(CancelIntent(strategy="s", symbol="BTC/USDT", client_id="c9"))
    assert isinstance(cancel, CancelOrder) and cancel.client_id == "c9"
    s.risk.set_state(TradingState.REDUCING, "test")
    s.fill(Side.BUY, "1", "100")
    s.store.on_balance(balance("BTC", "1"))
    assert s.decide(amount="0.1") == "trading is reducing: only orders that reduce a position"
    assert s.decide(side=Side.SELL, amount="2").startswith("trading is reducing")
    assert s.decide(side=Side.SELL, amount="0.5") is None


def test_kill_switch_halts_cancels_everything_and_resume_trades_again() -> None:
    s = Setup()
    now = s.clock.now_ns()
    out = s.risk.on_halt(HaltTrading(ts_event=now, ts_recv=now, reason="ops", cancel_orders=True))
    assert [type(e) for e in out] == [TradingStateChanged, CancelAllOrders]
    assert out[0].state is TradingState.HALTED and out[1].symbol is None
    assert s.decide(amount="0.1") == "trading is halted (operator: ops)"
    out = s.risk.on_halt(HaltTrading(ts_event=now, ts_recv=now, reason="again"))
    assert out == []  # already halted; no cancel asked
    (changed,) = s.risk.on_resume(ResumeTrading(ts_event=now, ts_recv=now, reason="ok"))
    assert changed.state is TradingState.ACTIVE and s.risk.halts == {}
    assert s.decide(amount="0.1") is None


def test_halt_causes_combine_and_reconciliation_gates_trading() -> None:
    s = Setup()
    now = s.clock.now_ns()
    (ev,) = s.risk.on_reconciliation_started(
        ReconciliationStarted(ts_event=now, ts_recv=now, round=1, reason="start-up")
    )
    assert ev.state is TradingState.HALTED
    s.risk.on_halt(HaltTrading(ts_event=now, ts_recv=now, reason="ops"))
    done = ReconciliationCompleted(ts_event=now, ts_recv=now, ok=True, differences=0)
    assert s.risk.on_reconciliation_completed(done) == []  # the operator's halt remains
    assert s.risk.state is TradingState.HALTED and set(s.risk.halts) == {HaltCause.OPERATOR}
    s.risk.on_resume(ResumeTrading(ts_event=now, ts_recv=now, reason="ok"))
    assert s.risk.state is TradingState.ACTIVE
    s.risk.on_reconciliation_started(
        ReconciliationStarted(ts_event=now, ts_recv=now, round=2, reason="reconnect")
    )
    bad = ReconciliationCompleted(ts_event=now, ts_recv=now, ok=False, differences=2)
    assert s.risk.on_reconciliation_completed(bad) == []  # still halted
    assert s.decide(amount="0.1") == "trading is halted (reconciliation: 2 differences)"
    (ev,) = s.risk.on_reconciliation_completed(done)
    assert ev.state is TradingState.ACTIVE


def test_a_failing_journal_halts_until_it_writes_and_a_plain_resume_leaves_it() -> None:
    s = Setup()
    now = s.clock.now_ns()
    assert (
        s.risk.on_storage_failed(
            StorageFailed(ts_event=now, ts_recv=now, component="redis", error="down")
        )
        == []
    )  # memory goes on
    (ev,) = s.risk.on_storage_failed(
        StorageFailed(ts_event=now, ts_recv=now, component=JOURNAL, error="ENOSPC")
    )
    assert ev.state is TradingState.HALTED and "journal failed: ENOSPC" in ev.reason
    assert s.risk.on_resume(ResumeTrading(ts_event=now, ts_recv=now, reason="go")) == []
    assert set(s.risk.halts) == {HaltCause.JOURNAL}
    (ev,) = s.risk.on_storage_recovered(
        StorageRecovered(ts_event=now, ts_recv=now, component=JOURNAL)
    )
    assert ev.state is TradingState.ACTIVE


def test_daily_loss_limit_halts_with_an_event_and_a_new_day_lifts_it() -> None:
    s = Setup(daily_loss_limit=D(100))
    s.quote("100", "100")
    assert s.fill(Side.BUY, "10", "100") == []  # the day's count starts here (PnL 0)
    s.quote("90", "92")  # mark 91: (91 - 100) * 10 = -90
    assert s.risk.check_daily_loss() == []
    s.quote("88", "90")  # mark 89: -110 < -100
    (ev,) = s.risk.check_daily_loss()
    assert isinstance(ev, TradingStateChanged) and ev.state is TradingState.HALTED
    assert "daily_loss" in ev.reason and "-110.00" in ev.reason
    assert s.risk.check_daily_loss() == []  # one event, not one per check
    assert s.decide(amount="0.1").startswith("trading is halted (daily_loss: PnL today -110.00")
    s.clock.advance(86_400)  # next UTC day: the count starts again from -110
    s.quote("88", "90")
    (ev,) = s.risk.check_daily_loss()
    assert ev.state is TradingState.ACTIVE
    s.quote("78", "80")  # -100 more today: not below -100
    assert s.risk.check_daily_loss() == []
    s.quote("77", "79")
    assert s.risk.check_daily_loss()[0].state is TradingState.HALTED


def test_operator_resume_restarts_the_daily_count() -> None:
    s = Setup(daily_loss_limit=D(100))
    s.fill(Side.BUY, "10", "100")
    s.quote("88", "90")
    s.risk.check_daily_loss()
    now = s.clock.now_ns()
    assert s.risk.on_resume(ResumeTrading(ts_event=now, ts_recv=now, reason="just resume")) == []
    assert s.risk.state is TradingState.HALTED  # only the operator's own halt is lifted
    assert set(s.risk.halts) == {HaltCause.DAILY_LOSS}
    s.risk.on_resume(ResumeTrading(ts_event=now, ts_recv=now, reason="accept the loss", force=True))
    assert s.risk.check_daily_loss() == [] and s.risk.state is TradingState.ACTIVE


@pytest.mark.parametrize("limit", [D(0)])
def test_daily_loss_limit_off(limit: D) -> None:
    s = Setup(daily_loss_limit=limit)
    s.fill(Side.BUY, "10", "100")
    s.quote("1", "2")
    assert s.risk.check_daily_loss() == []


def test_soft_daily_loss_reduces_only_then_the_hard_limit_halts() -> None:
    s = Setup(daily_loss_soft_limit=D(50), daily_loss_limit=D(100))
    s.quote("100", "100")
    s.fill(Side.BUY, "10", "100")  # long 10 BTC; the day's count starts here (PnL 0)
    s.store.on_balance(balance("BTC", "10"))
    s.quote("95", "97")  # mark 96: -40, within both limits
    assert s.risk.check_daily_loss() == [] and s.risk.state is TradingState.ACTIVE
    s.quote("93", "95")  # mark 94: -60 < -50: reduce only
    (ev,) = s.risk.check_daily_loss()
    assert isinstance(ev, TradingStateChanged) and ev.state is TradingState.REDUCING
    assert ev.reason == "daily_loss: PnL today -60.00 USD is below -50 (daily_loss_soft_limit)"
    assert s.risk.check_daily_loss() == []  # one event, not one per check
    # a buy adds to the long: denied, saying why
    assert s.decide(amount="0.1", price="94") == (
        "trading is reducing (daily_loss: PnL today -60.00 USD is below -50 "
        "(daily_loss_soft_limit)): only orders that reduce a position"
    )
    assert s.decide(side=Side.SELL, amount="11").startswith("trading is reducing")  # reverses
    assert s.decide(side=Side.SELL, amount="6", price="95") is None  # reduces: sent
    # 4 left to sell once the open sell of 6 is counted
    assert s.decide(side=Side.SELL, amount="5", price="95").startswith("trading is reducing")
    assert s.decide(side=Side.SELL, amount="4", price="95") is None
    s.quote("88", "90")  # mark 89: -110 < -100: halted
    (ev,) = s.risk.check_daily_loss()
    assert ev.state is TradingState.HALTED and "daily_loss_limit" in ev.reason
    assert s.decide(side=Side.SELL, amount="0.1", price="89").startswith("trading is halted")
    s.clock.advance(86_400)  # a new UTC day lifts both
    (ev,) = s.risk.check_daily_loss()
    assert (ev.state, ev.reason) == (TradingState.ACTIVE, "daily_loss: a new UTC day began")
    assert s.risk.reducing is None


def test_reducing_a_short_takes_buys_up_to_the_short() -> None:
    s = Setup(daily_loss_soft_limit=D(50), daily_loss_limit=D(0))  # reduce only, never halt
    s.quote("100", "100")
    s.fill(Side.SELL, "10", "100")  # short 10
    s.quote("106", "108")  # mark 107: -70
    (ev,) = s.risk.check_daily_loss()
    assert ev.state is TradingState.REDUCING
    assert s.decide(side=Side.SELL, amount="0.1", price="108").startswith("trading is reducing")
    assert s.decide(side=Side.BUY, amount="10.5", price="107").startswith("trading is reducing")
    assert s.decide(side=Side.BUY, amount="1", price="107") is None
    s.quote("200", "202")  # no hard limit: still only reducing
    assert s.risk.check_daily_loss() == [] and s.risk.state is TradingState.REDUCING


def test_reducing_waits_under_a_halt_and_the_operator_clears_it() -> None:
    s = Setup(daily_loss_soft_limit=D(50), daily_loss_limit=D(100))
    now = s.clock.now_ns()
    s.fill(Side.BUY, "10", "100")
    s.risk.on_reconciliation_started(
        ReconciliationStarted(ts_event=now, ts_recv=now, round=1, reason="start-up")
    )
    s.quote("93", "95")
    assert s.risk.check_daily_loss() == [] and s.risk.state is TradingState.HALTED
    done = ReconciliationCompleted(ts_event=now, ts_recv=now, ok=True, differences=0)
    (ev,) = s.risk.on_reconciliation_completed(done)  # the halt ends: reduce only remains
    assert ev.state is TradingState.REDUCING
    assert s.risk.on_resume(ResumeTrading(ts_event=now, ts_recv=now, reason="accept")) == []
    assert s.risk.state is TradingState.REDUCING  # reduce-only stays without force
    (ev,) = s.risk.on_resume(ResumeTrading(ts_event=now, ts_recv=now, reason="accept", force=True))
    assert ev.state is TradingState.ACTIVE and s.risk.reducing is None
    assert s.risk.check_daily_loss() == [] and s.decide(amount="0.1", price="94") is None


@pytest.mark.parametrize("soft, hard", [(D(100), D(100)), (D(150), D(100))])
def test_a_soft_limit_at_or_past_the_hard_one_is_refused(soft: D, hard: D) -> None:
    with pytest.raises(ConfigError, match="risk.daily_loss_soft_limit: .* must be below"):
        Setup(daily_loss_soft_limit=soft, daily_loss_limit=hard)
    Setup(daily_loss_soft_limit=soft, daily_loss_limit=D(0))  # no hard limit: fine


def test_the_soft_limit_is_a_config_key() -> None:
    cfg = config_from_dict({"risk": {"daily_loss_soft_limit": 250}}, {})
    assert cfg.risk.daily_loss_soft_limit == D(250)
    with pytest.raises(ConfigError, match="daily_loss_soft_limit"):
        config_from_dict({"risk": {"daily_loss_soft_limit": -1}}, {})


def test_client_ids_are_deterministic_and_within_exchange_limits() -> None:
    ids = ClientIdGenerator("trd", T0)
    first = [ids.next() for _ in range(3)]
    again = ClientIdGenerator("trd", T0)
    assert first == [again.next() for _ in range(3)]
    assert first[0].startswith(ids.prefix) and ids.prefix == "trd-"
    assert len(ClientIdGenerator("abcdefghijklmnop", 2**62).next()) <= 36
    with pytest.raises(ValueError):
        ClientIdGenerator("x" * 30, T0)
