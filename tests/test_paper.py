"""The paper gateway: fills at the opposite side with fees, resting limits, rejections."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.conftest import quote, trade
from trader.clock import ManualClock
from trader.errors import OrderNotFoundError
from trader.events import (
    BalanceUpdate,
    ErrorKind,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderType,
    Side,
    SubmitOrder,
)
from trader.exchange.paper import PaperGateway


class NoSource:
    def load_markets(self, symbols):
        return []

    def fetch_tickers(self, symbols):
        return []


def gw(slippage: str = "0") -> PaperGateway:
    g = PaperGateway(NoSource(), ManualClock(10), {"USDT": D("10000")}, D("0.001"), D(slippage))
    g.on_quote(quote(bid="100", ask="101"))
    return g


def order(cid: str, side: Side, amount: str, kind: OrderType = OrderType.MARKET,
          price: str | None = None) -> SubmitOrder:
    return SubmitOrder(ts_event=1, ts_recv=1, client_id=cid, symbol="BTC/USDT", side=side,
                       order_type=kind, amount=D(amount), price=D(price) if price else None)


def balances(g: PaperGateway) -> dict:
    return {b.asset: (b.free, b.used) for b in g.fetch_balances()}


def test_market_buy_fills_at_the_ask_with_fee_in_quote() -> None:
    g = gw()
    events = g.create_order(order("b1", Side.BUY, "2"))
    assert isinstance(events[0], OrderAccepted)
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert fill.price == D("101") and fill.amount == D("2") and fill.is_final
    assert fill.fee == D("0.202") and fill.fee_asset == "USDT"
    assert fill.liquidity is Liquidity.TAKER
    assert balances(g) == {"USDT": (D("10000") - D("202") - D("0.202"), D(0)),
                           "BTC": (D("2"), D(0))}
    assert {e.asset for e in events if isinstance(e, BalanceUpdate)} == {"BTC", "USDT"}


def test_market_sell_fills_at_the_bid_with_slippage() -> None:
    g = gw(slippage="100")  # 1%
    g.create_order(order("b1", Side.BUY, "1"))
    events = g.create_order(order("s1", Side.SELL, "1"))
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert fill.price == D("99.00")  # bid 100 moved 1% against us
    assert fill.fee == D("0.0990")


def test_limit_rests_locks_funds_and_fills_when_the_market_reaches_it() -> None:
    g = gw()
    events = g.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "95"))
    assert [type(e) for e in events] == [OrderAccepted, BalanceUpdate]
    assert balances(g)["USDT"] == (D("10000") - D("95.095"), D("95.095"))
    assert [r.client_id for r in g.fetch_open_orders(["BTC/USDT"])] == ["l1"]
    assert g.on_quote(quote(bid="96", ask="97")) == []  # not reached
    out = g.on_trade(trade(price="95"))
    fill = next(e for e in out if isinstance(e, OrderFilled))
    assert fill.price == D("95") and fill.liquidity is Liquidity.MAKER
    assert balances(g)["USDT"] == (D("10000") - D("95.095"), D(0))
    assert g.fetch_order("l1", "BTC/USDT").status is OrderStatus.FILLED
    assert g.fetch_open_orders(["BTC/USDT"]) == []


def test_crossing_limit_fills_at_once_at_the_opposite_side() -> None:
    g = gw()
    events = g.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "105"))
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert fill.price == D("101")


def test_cancel_releases_locked_funds() -> None:
    g = gw()
    g.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "90"))
    events = g.cancel_order("l1", "BTC/USDT")
    assert isinstance(events[0], OrderCanceled)
    assert balances(g)["USDT"] == (D("10000"), D(0))
    with pytest.raises(OrderNotFoundError):
        g.cancel_order("nope", "BTC/USDT")


def test_insufficient_funds_and_duplicate_ids_are_rejected() -> None:
    g = gw()
    (rej,) = g.create_order(order("s1", Side.SELL, "1"))
    assert isinstance(rej, OrderRejected) and rej.kind is ErrorKind.INSUFFICIENT_FUNDS
    (rej,) = g.create_order(order("b1", Side.BUY, "1000"))
    assert rej.kind is ErrorKind.INSUFFICIENT_FUNDS
    g.create_order(order("b2", Side.BUY, "1"))
    (dup,) = g.create_order(order("b2", Side.BUY, "1"))
    assert isinstance(dup, OrderRejected) and "duplicate" in dup.reason


def test_no_quote_yet_is_rejected_as_temporary() -> None:
    g = PaperGateway(NoSource(), ManualClock(1), {"USDT": D(100)}, D("0.001"))
    (rej,) = g.create_order(order("b1", Side.BUY, "1"))
    assert rej.kind is ErrorKind.TEMPORARY
