"""Exchange message shapes the parsers once misread (issue #11), each as its raw message, parsed
and, where the ledger is what went wrong, applied to a real store.

Binance messages are the documented ``executionReport`` (tests/fixtures/.../executionReport.json)
with the fields of each case set as Binance sends them; Bybit messages are the documented v5
``order``/``execution``/``wallet`` fixtures likewise."""

from __future__ import annotations

import copy
import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from trader.clock import ManualClock
from trader.config import StoreConfig
from trader.events import (
    BalanceUpdate,
    ExchangeUpdateUnusable,
    Liquidity,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from trader.feeds.binance import BinanceUserStream
from trader.feeds.parsers import binance, bybit
from trader.feeds.parsers.common import OrderMemory, ParseContext, SymbolMap, UnknownMessage
from trader.model.orders import OrderStatus, OrderType, Side
from trader.store.memory import MemoryStore

FIXTURES = Path(__file__).parent / "fixtures" / "exchange-messages"
SYMBOLS = SymbolMap(("ETH/BTC", "BTC/USDT", "BTC/USDT:USDT", "BTC/USD:BTC"))
RECV = 1_700_000_000_000_000_000
MS = 1_000_000
T = 1499405658657 * MS  # the documented report's transaction time (E is 1 ms later)
CID = "mUvoqJxFIILMdfAW5iGSOW"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes(), parse_float=D)


def ctx(orders: OrderMemory | None = None, category: str = "spot") -> ParseContext:
    return ParseContext(RECV, SYMBOLS, category, orders)


def er(**fields: Any) -> dict[str, Any]:
    """The documented executionReport (WebSocket API envelope) with ``fields`` as sent."""
    msg = copy.deepcopy(load("binance/user/executionReport.json"))
    msg["event"].update(fields)
    return msg


def store_with_order(amount: str = "1.00000000", client_id: str = CID) -> MemoryStore:
    store = MemoryStore(StoreConfig())
    store.on_order_submitted(
        OrderSubmitted(
            ts_event=1,
            ts_recv=1,
            client_id=client_id,
            symbol="ETH/BTC",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            amount=D(amount),
            price=D("0.10264410"),
        )
    )
    return store


def apply(store: MemoryStore, events: list[Any]) -> None:
    handlers = {
        OrderAccepted: store.on_order_accepted,
        OrderFilled: store.on_order_filled,
        OrderCanceled: store.on_order_canceled,
        OrderRejected: store.on_order_rejected,
        OrderAmended: store.on_order_amended,
        BalanceUpdate: store.on_balance,
    }
    for ev in events:
        handlers[type(ev)](ev)


PARTIAL = dict(
    x="TRADE",
    X="PARTIALLY_FILLED",
    l="0.40000000",
    z="0.40000000",
    L="0.10264400",
    n="0.00040000",
    N="BNB",
    t=77,
    m=True,
    Z="0.04105760",
    Y="0.04105760",
)

# ------------------------------------------------------------------ Binance: no zero-size fills


@pytest.mark.parametrize(("status", "expired"), [("CANCELED", False), ("EXPIRED", True)])
def test_trade_report_with_a_final_status_and_no_quantity_ends_the_order(
    status: str, expired: bool
) -> None:
    # x TRADE carrying the order's end with l 0: the cancel/expiry, never a 0-size fill
    msg = er(
        x="TRADE", X=status, l="0.00000000", z="0.40000000", L="0.00000000", Z="0.04105760", t=-1
    )
    events = binance.parse(msg, ctx())
    assert events == [
        OrderCanceled(
            ts_event=T,
            ts_recv=RECV,
            client_id=CID,
            reason="expired" if expired else "canceled",
            expired=expired,
        )
    ]
    store = store_with_order()
    apply(store, binance.parse(er(x="NEW", X="NEW"), ctx()))
    apply(store, binance.parse(er(**PARTIAL), ctx()))
    assert store.order(CID).status is OrderStatus.PARTIALLY_FILLED
    apply(store, events)
    order = store.order(CID)
    assert order.status is (OrderStatus.EXPIRED if expired else OrderStatus.CANCELED)
    assert not order.is_open and order.filled == D("0.4") and len(order.fills) == 1
    assert store.position("ETH/BTC").amount == D("0.4")


def test_a_fill_with_its_end_in_one_report_gives_both() -> None:
    # an IOC order: part fills, the rest expires, in one report
    msg = er(
        x="TRADE",
        X="EXPIRED",
        l="0.40000000",
        z="0.40000000",
        L="0.10264400",
        t=77,
        Z="0.04105760",
        f="IOC",
        eR="INSUFFICIENT_LIQUIDITY",
    )
    fill, end = binance.parse(msg, ctx())
    assert isinstance(fill, OrderFilled) and fill.amount == D("0.4") and not fill.is_final
    assert fill.time_in_force == "IOC"
    assert end == OrderCanceled(
        ts_event=T,
        ts_recv=RECV,
        client_id=CID,
        reason="expired: INSUFFICIENT_LIQUIDITY",
        expired=True,
    )


def test_trade_report_without_quantity_on_a_new_order_is_nothing() -> None:
    msg = er(x="TRADE", X="NEW", l="0.00000000", z="0.00000000", L="0.00000000", t=-1)
    assert binance.parse(msg, ctx()) == []
    store = store_with_order()
    apply(store, binance.parse(er(x="NEW", X="NEW"), ctx()))
    apply(store, binance.parse(msg, ctx()))
    assert store.order(CID).status is OrderStatus.OPEN  # not PARTIALLY_FILLED
    assert store.order(CID).fills == () and store.position("ETH/BTC").amount == 0


# ------------------------------------------------------------------ Binance: never a price of 0


def fill_price(msg: dict[str, Any], orders: OrderMemory | None = None) -> D:
    (fill,) = binance.parse(msg, ctx(orders))
    assert isinstance(fill, OrderFilled)
    return fill.price


def test_a_fill_without_last_price_takes_the_last_quote_amount() -> None:
    # L "0" with l > 0 (nautilus_trader#3578, OrderFilled(last_px=0) on live Binance)
    msg = er(**{**PARTIAL, "L": "0.00000000", "Y": "0.04105760"})
    assert fill_price(msg) == D("0.1026440")


def test_a_first_fill_without_prices_takes_the_cumulative_quote() -> None:
    msg = er(**{**PARTIAL, "L": "0.00000000", "Y": "0.00000000", "p": "0.00000000", "o": "MARKET"})
    assert fill_price(msg) == D("0.1026440")  # z == l: Z is this fill's quote


def test_a_later_fill_without_prices_takes_the_cumulative_quote_delta() -> None:
    orders = OrderMemory()
    market = dict(o="MARKET", p="0.00000000")
    assert fill_price(er(**PARTIAL, **market), orders) == D("0.10264400")
    second = er(
        x="TRADE",
        X="FILLED",
        l="0.60000000",
        z="1.00000000",
        L="0.00000000",
        Y="0.00000000",
        Z="0.10264406",
        t=78,
        **market,
    )
    assert fill_price(second, orders) == D("0.1026441")  # (0.10264406 - 0.04105760) / 0.6
    assert len(orders) == 0  # a final order is forgotten


def test_without_the_previous_report_the_order_price_is_used() -> None:
    second = er(
        x="TRADE",
        X="FILLED",
        l="0.60000000",
        z="1.00000000",
        L="0.00000000",
        Y="0.00000000",
        Z="0.10264406",
        t=78,
    )
    assert fill_price(second) == D("0.10264410")  # p
    # a remembered report that does not add up (a report was lost) is not used either
    orders = OrderMemory()
    orders.put("4293153", D("0.2"), D("0.02"))
    assert fill_price(second, orders) == D("0.10264410")


def test_a_fill_with_no_price_anywhere_is_not_booked_and_is_reported() -> None:
    second = er(
        x="TRADE",
        X="FILLED",
        l="0.60000000",
        z="1.00000000",
        L="0.00000000",
        Y="0.00000000",
        Z="0.10264406",
        t=78,
        o="MARKET",
        p="0.00000000",
    )
    (ev,) = binance.parse(second, ctx(OrderMemory()))
    assert isinstance(ev, ExchangeUpdateUnusable) and ev.subject == CID
    assert "fill 78" in ev.reason and "no price" in ev.reason


def test_the_user_stream_protocol_remembers_orders_across_messages() -> None:
    proto = BinanceUserStream("wss://x/ws-api/v3", ["ETH/BTC"], "k", "s", ManualClock(0))
    market = dict(o="MARKET", p="0.00000000", L="0.00000000", Y="0.00000000")
    (first,) = proto.parse(er(**{**PARTIAL, **market}), RECV)
    (second,) = proto.parse(
        er(x="TRADE", X="FILLED", l="0.60000000", z="1.00000000", Z="0.10264406", t=78, **market),
        RECV,
    )
    assert (first.price, second.price) == (D("0.1026440"), D("0.1026441"))


# ------------------------------------------------------------------ Binance: amend, liquidation


def test_an_amended_order_keeps_its_id_with_the_new_quantity() -> None:
    msg = er(x="REPLACED", X="NEW", q="0.50000000")
    events = binance.parse(msg, ctx())
    assert events == [
        OrderAmended(
            ts_event=T,
            ts_recv=RECV,
            client_id=CID,
            exchange_id="4293153",
            amount=D("0.50000000"),
            price=D("0.10264410"),
        )
    ]
    store = store_with_order()
    apply(store, binance.parse(er(x="NEW", X="NEW"), ctx()))
    apply(store, events)
    order = store.order(CID)
    assert (order.amount, order.status, order.exchange_id) == (
        D("0.5"),
        OrderStatus.OPEN,
        "4293153",
    )
    assert len(store.orders()) == 1


def test_an_amendment_of_a_final_order_is_ignored_and_counted() -> None:
    store = store_with_order()
    apply(store, binance.parse(er(x="CANCELED", X="CANCELED"), ctx()))
    apply(store, binance.parse(er(x="REPLACED", X="NEW", q="0.50000000"), ctx()))
    assert store.order(CID).amount == D(1) and store.illegal_transitions == 1


def test_a_calculated_execution_is_a_fill() -> None:
    # x CALCULATED: a liquidation's execution (margin accounts)
    msg = er(**{**PARTIAL, "x": "CALCULATED"})
    (fill,) = binance.parse(msg, ctx())
    assert isinstance(fill, OrderFilled) and fill.amount == D("0.4")
    assert fill.price == D("0.10264400") and fill.trade_id == "77"


def test_fills_are_stamped_with_the_transaction_time_and_keep_the_order_fields() -> None:
    msg = er(
        **{
            **PARTIAL,
            "E": 1499405659999,
            "T": 1499405658000,
            "o": "STOP_LOSS_LIMIT",
            "P": "0.10000000",
            "f": "FOK",
        }
    )
    (fill,) = binance.parse(msg, ctx())
    assert fill.ts_event == 1499405658000 * MS
    assert (
        fill.venue_order_type,
        fill.time_in_force,
        fill.order_price,
        fill.order_amount,
        fill.stop_price,
        fill.cum_quote,
    ) == (
        "STOP_LOSS_LIMIT",
        "FOK",
        D("0.10264410"),
        D("1.00000000"),
        D("0.10000000"),
        D("0.04105760"),
    )
    plain = er(**PARTIAL)  # P "0.00000000": no stop price
    assert binance.parse(plain, ctx())[0].stop_price is None


# ------------------------------------------------------------------ Bybit


def bybit_msg(name: str, **fields: Any) -> dict[str, Any]:
    msg = copy.deepcopy(load(f"bybit/{name}"))
    msg["data"][0].update(fields)
    return msg


def linear_fill(**fields: Any) -> dict[str, Any]:
    return bybit_msg("execution.json", **fields)


def test_bybit_rejected_after_a_partial_fill_closes_the_order() -> None:
    oid = "5cf98598-39a7-459e-97bf-76ca765ee020"
    spot = dict(symbol="BTCUSDT", category="spot", orderLinkId="trd-1", orderId=oid, side="Buy")
    store = MemoryStore(StoreConfig())
    store.on_order_submitted(
        OrderSubmitted(
            ts_event=1,
            ts_recv=1,
            client_id="trd-1",
            symbol="BTC/USDT",
            side=Side.BUY,
            order_type=OrderType.MARKET,
            amount=D("0.5"),
        )
    )
    apply(store, bybit.parse(bybit_msg("order.json", orderStatus="New", **spot), ctx()))
    apply(
        store,
        bybit.parse(
            linear_fill(execQty="0.2", orderQty="0.5", leavesQty="0.3", execId="e1", **spot), ctx()
        ),
    )
    assert store.order("trd-1").status is OrderStatus.PARTIALLY_FILLED
    rejected = bybit.parse(
        bybit_msg(
            "order.json",
            orderStatus="Rejected",
            cumExecQty="0.2",
            rejectReason="EC_NoImmediateQtyToFill",
            **spot,
        ),
        ctx(),
    )
    apply(store, rejected)
    order = store.order("trd-1")
    assert order.status is OrderStatus.REJECTED and not order.is_open
    assert order.filled == D("0.2") and store.illegal_transitions == 0
    assert store.position("BTC/USDT").amount == D("0.2")


def wallet(*coins: dict[str, Any]) -> dict[str, Any]:
    msg = copy.deepcopy(load("bybit/wallet.json"))
    msg["data"][0]["coin"] = list(coins)
    return msg


def balance(asset: str, free: str, used: str, total: str) -> BalanceUpdate:
    return BalanceUpdate(
        ts_event=1700034722104 * MS,
        ts_recv=RECV,
        asset=asset,
        free=D(free),
        used=D(used),
        total=D(total),
    )


def test_bybit_wallet_without_locked_uses_free_then_available_to_withdraw() -> None:
    classic = {"coin": "USDT", "walletBalance": "100", "free": "70"}  # classic spot: no locked
    contract = {"coin": "BTC", "walletBalance": "2", "availableToWithdraw": "1.5", "locked": ""}
    unified = {"coin": "ETH", "walletBalance": "3", "locked": "1", "free": "9"}
    assert bybit.parse(wallet(classic, contract, unified), ctx()) == [
        balance("USDT", "70", "30", "100"),
        balance("BTC", "1.5", "0.5", "2"),
        balance("ETH", "2", "1", "3"),
    ]  # locked first: it is what orders hold


def test_bybit_wallet_coin_without_any_free_figure_is_reported_and_the_rest_kept() -> None:
    bare = {"coin": "SOL", "walletBalance": "10"}
    ok = {"coin": "USDT", "walletBalance": "100", "locked": "20"}
    unusable, usdt = bybit.parse(wallet(bare, ok), ctx())
    assert isinstance(unusable, ExchangeUpdateUnusable) and unusable.subject == "SOL"
    assert usdt == balance("USDT", "80", "20", "100")


@pytest.mark.parametrize(
    "kind", ["AdlTrade", "BustTrade", "BlockTrade", "Delivery", "MovePosition"]
)
def test_bybit_executions_that_move_the_position_are_fills(kind: str) -> None:
    (fill,) = bybit.parse(linear_fill(execType=kind), ctx())
    assert isinstance(fill, OrderFilled)
    assert (fill.symbol, fill.side, fill.price, fill.amount) == (
        "BTC/USDT:USDT",
        Side.SELL,
        D("95900.1"),
        D("0.5"),
    )
    store = MemoryStore(StoreConfig())
    store.on_order_filled(fill)  # no order of ours: the position takes it
    assert store.position("BTC/USDT:USDT").amount == D("-0.5")


@pytest.mark.parametrize("kind", ["Funding", "Settle"])
def test_bybit_cash_flows_are_not_fills(kind: str) -> None:
    assert bybit.parse(linear_fill(execType=kind), ctx()) == []


def test_bybit_execution_without_price_or_quantity_books_nothing() -> None:
    assert bybit.parse(linear_fill(execQty="0"), ctx()) == []
    (ev,) = bybit.parse(linear_fill(execPrice="0"), ctx())
    assert isinstance(ev, ExchangeUpdateUnusable) and "no price" in ev.reason


@pytest.mark.parametrize(
    ("category", "symbol", "side", "asset"),
    [
        ("spot", "BTCUSDT", "Buy", "BTC"),  # a spot buy pays its fee in what it receives
        ("spot", "BTCUSDT", "Sell", "USDT"),
        ("linear", "BTCUSDT", "Buy", "USDT"),  # derivatives: the settle asset
        ("inverse", "BTCUSD", "Sell", "BTC"),
    ],
)
def test_bybit_fee_currency_absent_is_derived_from_the_market(
    category: str, symbol: str, side: str, asset: str
) -> None:
    msg = linear_fill(category=category, symbol=symbol, side=side)
    del msg["data"][0]["feeCurrency"]
    (fill,) = bybit.parse(msg, ctx())
    assert fill.fee_asset == asset and fill.fee == D("26.3725275")
    msg["data"][0]["feeCurrency"] = ""
    assert bybit.parse(msg, ctx())[0].fee_asset == asset


def test_bybit_fills_keep_the_order_fields() -> None:
    (fill,) = bybit.parse(
        linear_fill(orderType="Limit", orderPrice="95000", feeRate="0.0002", isMaker=True), ctx()
    )
    assert (
        fill.venue_order_type,
        fill.order_price,
        fill.order_amount,
        fill.fee_rate,
        fill.liquidity,
    ) == ("Limit", D("95000"), D("0.5"), D("0.0002"), Liquidity.MAKER)
    with pytest.raises(UnknownMessage):
        bybit.parse(linear_fill(execType="Weird"), ctx())
