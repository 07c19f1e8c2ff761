"""Every exchange message fixture parses into the right events with the payload's exact Decimal
values; requests we send match the documented request fixtures."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from trader.clock import ManualClock
from trader.errors import ErrorKind
from trader.events import (
    BalanceUpdate,
    Candle,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    QuoteTick,
    TradeTick,
)
from trader.feeds.binance import BinanceMarketStreams, BinanceUserStream, sign
from trader.feeds.bybit import BybitPrivateStream, BybitPublicStreams, auth_signature
from trader.feeds.parsers import binance, bybit
from trader.feeds.parsers.common import (
    Control,
    ControlKind,
    ParseContext,
    SymbolMap,
    UnknownMessage,
    market_category,
)
from trader.model.orders import Side

FIXTURES = Path(__file__).parent / "fixtures" / "exchange-messages"
MARKETS = ("BNB/BTC", "BNB/USDT", "ETH/BTC", "BTC/USDT", "BTC/USDT:USDT")
SYMBOLS = SymbolMap(MARKETS)
RECV = 1_700_000_000_000_000_000
MS = 1_000_000


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes(), parse_float=D)


def ctx(category: str = "spot") -> ParseContext:
    return ParseContext(RECV, SYMBOLS, category)


def control(kind: ControlKind, detail: str = "") -> Control:
    return Control(kind, detail)


TRADE = TradeTick(
    ts_event=1672515782136 * MS,
    ts_recv=RECV,
    symbol="BNB/BTC",
    price=D("0.001"),
    size=D("100"),
    aggressor=Side.SELL,
    trade_id="12345",
)
ETH_POSITION = [
    BalanceUpdate(
        ts_event=1564034571105 * MS,
        ts_recv=RECV,
        asset="ETH",
        free=D("10000.000000"),
        used=D("0.000000"),
        total=D("10000.000000"),
    )
]
NEW_ORDER = [
    OrderAccepted(
        ts_event=1499405658657 * MS,
        ts_recv=RECV,  # T, not E
        client_id="mUvoqJxFIILMdfAW5iGSOW",
        exchange_id="4293153",
    )
]
SHUTDOWN = [control(ControlKind.RECONNECT, "serverShutdown")]

BINANCE: dict[str, list[Any]] = {
    "trade.json": [TRADE],
    "aggTrade.json": [TRADE],
    "combined.aggTrade.COMPOSED.json": [TRADE],
    "bookTicker.json": [
        QuoteTick(
            ts_event=RECV,
            ts_recv=RECV,
            symbol="BNB/USDT",
            bid=D("25.35190000"),
            bid_size=D("31.21000000"),
            ask=D("25.36520000"),
            ask_size=D("40.66000000"),
        )
    ],
    "kline.json": [
        Candle(
            ts_event=1672515782136 * MS,
            ts_recv=RECV,
            symbol="BNB/BTC",
            interval="1m",
            open=D("0.0010"),
            high=D("0.0025"),
            low=D("0.0015"),
            close=D("0.0020"),
            volume=D("1000"),
            start_ns=1672515780000 * MS,
            closed=False,
        )
    ],
    "serverShutdown.raw.json": SHUTDOWN,
    "serverShutdown.combined.json": SHUTDOWN,
    "wsapi/serverShutdown.json": SHUTDOWN,
    "control.subscribe.response.json": [control(ControlKind.SUBSCRIBED)],
    "control.unsubscribe.response.json": [control(ControlKind.SUBSCRIBED)],  # we never unsubscribe
    "control.list_subscriptions.response.json": [control(ControlKind.ACK)],
    "wsapi/userDataStream.subscribe.response.json": [control(ControlKind.SUBSCRIBED)],
    "wsapi/userDataStream.subscribe.signature.response.json": [control(ControlKind.SUBSCRIBED)],
    "wsapi/response.success.json": [control(ControlKind.ACK)],
    "wsapi/response.error.json": [
        control(
            ControlKind.FAILED,
            "request e2a85d9f-07a5-4f94-8d5f-789dc3deb097 refused: -2010 "
            "Account has insufficient balance for requested action.",
        )
    ],
    "user/executionReport.json": NEW_ORDER,
    "user-legacy-listenkey/executionReport.json": NEW_ORDER,
    "user/outboundAccountPosition.json": ETH_POSITION,
    "user-legacy-listenkey/outboundAccountPosition.json": ETH_POSITION,
    "wsapi/event.outboundAccountPosition.json": [
        BalanceUpdate(
            ts_event=1728972148778 * MS,
            ts_recv=RECV,
            asset="BTC",
            free=D("11818.00000000"),
            used=D("182.00000000"),
            total=D("12000.00000000"),
        ),
        BalanceUpdate(
            ts_event=1728972148778 * MS,
            ts_recv=RECV,
            asset="USDT",
            free=D("10580.00000000"),
            used=D("70.00000000"),
            total=D("10650.00000000"),
        ),
    ],
    # deltas: the absolute figures follow in outboundAccountPosition (see balance_delta)
    "user/balanceUpdate.json": [],
    "user-legacy-listenkey/balanceUpdate.json": [],
    "user/externalLockUpdate.json": [],
    "user/listStatus.json": [],
    "user-legacy-listenkey/listStatus.json": [],
    "user/eventStreamTerminated.json": [control(ControlKind.RESUBSCRIBE, "eventStreamTerminated")],
    "user-legacy-listenkey/listenKeyExpired.json": [
        control(ControlKind.RECONNECT, "listenKeyExpired")
    ],
}

# Streams we do not subscribe to: counted and logged once as unknown, never an error.
BINANCE_UNKNOWN = {
    "depthUpdate.json": "depthUpdate",
    "partialDepth.json": "?",
    "24hrTicker.json": "24hrTicker",
    "24hrMiniTicker.json": "24hrMiniTicker",
    "avgPrice.json": "avgPrice",
}

BYBIT: dict[str, tuple[str, list[Any]]] = {
    "ticker.spot.json": ("spot", []),  # spot tickers carry no bid/ask
    "ticker.linear-perpetual.json": (
        "linear",
        [
            QuoteTick(
                ts_event=1760325052630 * MS,
                ts_recv=RECV,
                symbol="BTC/USDT:USDT",
                bid=D("66666.60"),
                bid_size=D("23789.165"),
                ask=D("66666.70"),
                ask_size=D("23775.469"),
            )
        ],
    ),
    "orderbook.snapshot.json": (
        "spot",
        [
            QuoteTick(
                ts_event=1672304484978 * MS,
                ts_recv=RECV,
                symbol="BTC/USDT",
                bid=D("16493.50"),
                bid_size=D("0.006"),
                ask=D("16611.00"),
                ask_size=D("0.029"),
            )
        ],
    ),
    "orderbook.delta.json": ("spot", []),
    "publicTrade.json": (
        "spot",
        [
            TradeTick(
                ts_event=1672304486865 * MS,
                ts_recv=RECV,
                symbol="BTC/USDT",
                price=D("16578.50"),
                size=D("0.001"),
                aggressor=Side.BUY,
                trade_id="20f43950-d8dd-5b31-9112-a178eb6023af",
            )
        ],
    ),
    "execution.json": (
        "spot",
        [
            OrderFilled(
                ts_event=1746270400353 * MS,
                ts_recv=RECV,
                # no orderLinkId: the exchange's id
                client_id="9aac161b-8ed6-450d-9cab-c5cc67c21784",
                exchange_id="9aac161b-8ed6-450d-9cab-c5cc67c21784",
                trade_id="0ab1bdf7-4219-438b-b30a-32ec863018f7",
                symbol="BTC/USDT:USDT",
                side=Side.SELL,
                price=D("95900.1"),
                amount=D("0.5"),
                fee=D("26.3725275"),
                fee_asset="USDT",
                filled_total=D("0.5"),
                is_final=True,
                liquidity=Liquidity.TAKER,
                venue_order_type="Market",
                order_price=D("94942.5"),
                order_amount=D("0.5"),
                fee_rate=D("0.00055"),
            )
        ],
    ),
    "order.json": ("spot", []),  # Filled: the fill comes from the execution topic
    "wallet.json": (
        "spot",
        [
            BalanceUpdate(
                ts_event=1700034722104 * MS,
                ts_recv=RECV,
                asset="BTC",
                free=D("0.00102964"),
                used=D("0"),
                total=D("0.00102964"),
            )
        ],
    ),
    "auth.response.json": ("spot", [control(ControlKind.AUTHENTICATED)]),
    "subscribe.response.private.json": ("spot", [control(ControlKind.SUBSCRIBED)]),
    "subscribe.response.public-spot.json": ("spot", [control(ControlKind.SUBSCRIBED)]),
    "pong.private.json": ("spot", [control(ControlKind.ACK)]),
    "pong.public-linear.json": ("spot", [control(ControlKind.ACK)]),
    "pong.public-spot.json": ("spot", [control(ControlKind.ACK)]),
}

# Requests we send: checked against what our protocols produce (tests below).
REQUESTS = {
    "binance/control.subscribe.request.json",
    "binance/control.unsubscribe.request.json",
    "binance/control.list_subscriptions.request.json",
    "binance/wsapi/userDataStream.subscribe.request.json",
    "binance/wsapi/userDataStream.subscribe.signature.request.json",
    "binance/wsapi/userDataStream.unsubscribe.request.json",
    "bybit/auth.request.json",
    "bybit/ping.request.COMPOSED.json",
    "bybit/subscribe.request.json",
    "bybit/unsubscribe.request.json",
    "bybit/order.subscribe.request.json",
}


def test_every_fixture_is_covered() -> None:
    files = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json")}
    covered = (
        {f"binance/{n}" for n in (*BINANCE, *BINANCE_UNKNOWN)}
        | {f"bybit/{n}" for n in BYBIT}
        | REQUESTS
    )
    assert len(files) == 57
    assert files == covered


@pytest.mark.parametrize("name", sorted(BINANCE))
def test_binance_fixture_parses_to_exact_events(name: str) -> None:
    assert binance.parse(load(f"binance/{name}"), ctx()) == BINANCE[name]


@pytest.mark.parametrize("name", sorted(BINANCE_UNKNOWN))
def test_binance_streams_we_do_not_use_are_unknown(name: str) -> None:
    with pytest.raises(UnknownMessage) as err:
        binance.parse(load(f"binance/{name}"), ctx())
    assert err.value.wire_type == BINANCE_UNKNOWN[name]


@pytest.mark.parametrize("name", sorted(BYBIT))
def test_bybit_fixture_parses_to_exact_events(name: str) -> None:
    category, expected = BYBIT[name]
    assert bybit.parse(load(f"bybit/{name}"), ctx(category)) == expected


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_requests_echoed_back_are_not_mistaken_for_replies(name: str) -> None:
    msg = load(name)
    parser = binance.parse if name.startswith("binance") else bybit.parse
    if msg.get("op") == "ping":
        assert parser(msg, ctx()) == [control(ControlKind.ACK)]
        return
    with pytest.raises(UnknownMessage):
        parser(msg, ctx())


def test_bookticker_from_a_combined_stream_takes_its_type_from_the_stream_name() -> None:
    wrapped = {"stream": "bnbusdt@bookTicker", "data": load("binance/bookTicker.json")}
    assert binance.parse(wrapped, ctx()) == BINANCE["bookTicker.json"]


# ------------------------------------------------------------------ Binance executionReport


def report(**changes: Any) -> dict[str, Any]:
    """The documented executionReport (wrapped), with some fields changed."""
    msg = copy.deepcopy(load("binance/user/executionReport.json"))
    msg["event"].update(changes)
    return msg


def test_execution_report_trade_is_a_fill_with_fee_and_cumulative_amount() -> None:
    partial = report(
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
    )
    final = report(
        x="TRADE",
        X="FILLED",
        l="0.60000000",
        z="1.00000000",
        L="0.10264410",
        n="0.00006000",
        N="ETH",
        t=78,
        m=False,
        Z="0.10264406",
    )
    # stamped with the transaction time T, not the event time E; the order's fields kept
    base = dict(
        ts_event=1499405658657 * MS,
        ts_recv=RECV,
        client_id="mUvoqJxFIILMdfAW5iGSOW",
        exchange_id="4293153",
        symbol="ETH/BTC",
        side=Side.BUY,
        venue_order_type="LIMIT",
        time_in_force="GTC",
        order_price=D("0.10264410"),
        order_amount=D("1.00000000"),
    )
    assert binance.parse(partial, ctx()) == [
        OrderFilled(
            **base,
            trade_id="77",
            price=D("0.10264400"),
            amount=D("0.40000000"),
            fee=D("0.00040000"),
            fee_asset="BNB",
            filled_total=D("0.40000000"),
            is_final=False,
            liquidity=Liquidity.MAKER,
            cum_quote=D("0.04105760"),
        )
    ]
    assert binance.parse(final, ctx()) == [
        OrderFilled(
            **base,
            trade_id="78",
            price=D("0.10264410"),
            amount=D("0.60000000"),
            fee=D("0.00006000"),
            fee_asset="ETH",
            filled_total=D("1.00000000"),
            is_final=True,
            liquidity=Liquidity.TAKER,
            cum_quote=D("0.10264406"),
        )
    ]


def test_execution_report_cancel_expiry_and_rejection() -> None:
    ts = 1499405658657 * MS  # T
    # a cancel: "c" is the cancel request's id, "C" the canceled order's
    canceled = report(x="CANCELED", X="CANCELED", c="cancel-req-1", C="mUvoqJxFIILMdfAW5iGSOW")
    assert binance.parse(canceled, ctx()) == [
        OrderCanceled(
            ts_event=ts, ts_recv=RECV, client_id="mUvoqJxFIILMdfAW5iGSOW", reason="canceled"
        )
    ]
    assert binance.parse(report(x="EXPIRED", X="EXPIRED"), ctx()) == [
        OrderCanceled(
            ts_event=ts,
            ts_recv=RECV,
            client_id="mUvoqJxFIILMdfAW5iGSOW",
            reason="expired",
            expired=True,
        )
    ]
    assert binance.parse(report(x="TRADE_PREVENTION", X="EXPIRED_IN_MATCH"), ctx()) == [
        OrderCanceled(
            ts_event=ts,
            ts_recv=RECV,
            client_id="mUvoqJxFIILMdfAW5iGSOW",
            reason="trade_prevention",
            expired=True,
        )
    ]
    assert binance.parse(report(x="REJECTED", X="REJECTED", r="INSUFFICIENT_BALANCES"), ctx()) == [
        OrderRejected(
            ts_event=ts,
            ts_recv=RECV,
            client_id="mUvoqJxFIILMdfAW5iGSOW",
            reason="INSUFFICIENT_BALANCES",
            kind=ErrorKind.INSUFFICIENT_FUNDS,
        )
    ]
    with pytest.raises(UnknownMessage) as err:
        binance.parse(report(x="AMENDMENT"), ctx())
    assert err.value.wire_type == "executionReport.AMENDMENT"


# ------------------------------------------------------------------ Bybit order statuses


def bybit_order(**changes: Any) -> dict[str, Any]:
    msg = copy.deepcopy(load("bybit/order.json"))
    msg["data"][0].update(changes)
    return msg


def test_bybit_order_statuses() -> None:
    ts = 1672364262474 * MS
    oid = "5cf98598-39a7-459e-97bf-76ca765ee020"
    assert bybit.parse(bybit_order(orderStatus="New", orderLinkId="trd-1"), ctx()) == [
        OrderAccepted(ts_event=ts, ts_recv=RECV, client_id="trd-1", exchange_id=oid)
    ]
    assert bybit.parse(
        bybit_order(
            orderStatus="Rejected", orderLinkId="trd-1", rejectReason="EC_NoImmediateQtyToFill"
        ),
        ctx(),
    ) == [
        OrderRejected(
            ts_event=ts, ts_recv=RECV, client_id="trd-1", reason="EC_NoImmediateQtyToFill"
        )
    ]
    assert bybit.parse(bybit_order(orderStatus="Cancelled", cancelType="CancelByUser"), ctx()) == [
        OrderCanceled(ts_event=ts, ts_recv=RECV, client_id=oid, reason="Cancelled: CancelByUser")
    ]
    assert bybit.parse(bybit_order(orderStatus="PartiallyFilled"), ctx()) == []
    with pytest.raises(UnknownMessage):
        bybit.parse(bybit_order(orderStatus="Weird"), ctx())


def test_bybit_refusals_and_other_execution_types() -> None:
    refused = {"success": False, "ret_msg": "Params Error", "op": "auth", "conn_id": "x"}
    assert bybit.parse(refused, ctx()) == [
        control(ControlKind.FAILED, "auth refused: Params Error")
    ]
    funding = copy.deepcopy(load("bybit/execution.json"))
    funding["data"][0]["execType"] = "Funding"
    assert bybit.parse(funding, ctx()) == []  # a cash flow, not a fill (see test_parser_shapes)
    funding["data"][0]["execType"] = "Weird"
    with pytest.raises(UnknownMessage) as err:
        bybit.parse(funding, ctx())
    assert err.value.wire_type == "execution.Weird"


# ------------------------------------------------------------------ symbols


def test_symbol_map_uses_configured_markets_then_known_quotes() -> None:
    symbols = SymbolMap(["BTC/USDT", "BTC/USDT:USDT", "1000PEPE/USDC"])
    assert symbols.unified("BTCUSDT") == "BTC/USDT"
    assert symbols.unified("BTCUSDT", "linear") == "BTC/USDT:USDT"
    assert symbols.unified("1000PEPEUSDC") == "1000PEPE/USDC"
    assert symbols.unified("ETHBTC") == "ETH/BTC"  # not configured: split on a known quote
    assert symbols.unified("BTCUSDC") == "BTC/USDC"  # USDC, not USD + C
    assert symbols.unified("BTCUSD", "inverse") == "BTC/USD:BTC"
    assert symbols.unified("ETH-30DEC22-1400-C", "option") == "ETH-30DEC22-1400-C"
    assert [market_category(m) for m in ("BTC/USDT", "BTC/USDT:USDT", "BTC/USD:BTC")] == [
        "spot",
        "linear",
        "inverse",
    ]


# ------------------------------------------------------------------ requests we send


def test_binance_subscribe_request_matches_the_documented_shape() -> None:
    doc = load("binance/control.subscribe.request.json")
    proto = BinanceMarketStreams("wss://x/stream", ["BTC/USDT", "ETH/BTC"], "1m")
    (first,), (second,) = proto.connect_messages(), proto.subscribe_messages()
    msg = json.loads(first)
    assert msg.keys() == doc.keys()
    assert msg["method"] == doc["method"] == "SUBSCRIBE"
    assert msg["params"] == [
        "btcusdt@bookTicker",
        "btcusdt@trade",
        "btcusdt@kline_1m",
        "ethbtc@bookTicker",
        "ethbtc@trade",
        "ethbtc@kline_1m",
    ]
    assert json.loads(second)["id"] == msg["id"] + 1
    no_klines = BinanceMarketStreams("wss://x/stream", ["BTC/USDT"], None)
    assert no_klines.streams == ["btcusdt@bookTicker", "btcusdt@trade"]


def test_binance_user_subscription_is_signed_like_the_documented_request() -> None:
    doc = load("binance/wsapi/userDataStream.subscribe.signature.request.json")
    clock = ManualClock(1747385641636 * MS)
    proto = BinanceUserStream("wss://x/ws-api/v3", ["BTC/USDT"], "my-key", "my-secret", clock)
    (text,) = proto.subscribe_messages()
    msg = json.loads(text)
    assert msg.keys() == doc.keys()
    assert msg["method"] == doc["method"]
    assert msg["params"].keys() == doc["params"].keys()
    assert msg["params"]["apiKey"] == "my-key"
    assert msg["params"]["timestamp"] == doc["params"]["timestamp"] == 1747385641636
    expected = hmac.new(
        b"my-secret", b"apiKey=my-key&timestamp=1747385641636", hashlib.sha256
    ).hexdigest()
    assert (
        msg["params"]["signature"]
        == expected
        == sign("my-secret", {"timestamp": 1747385641636, "apiKey": "my-key"})
    )
    assert "my-secret" not in text and "my-key" not in repr(proto)


def test_bybit_requests_match_the_documented_shapes() -> None:
    clock = ManualClock(1662350390000 * MS)
    private = BybitPrivateStream("wss://x/v5/private", ["BTC/USDT"], "api_key", "s3cret", clock)
    (auth,) = [json.loads(t) for t in private.connect_messages()]
    doc = load("bybit/auth.request.json")
    assert auth["op"] == doc["op"] == "auth"
    assert auth["args"][:2] == doc["args"][:2] == ["api_key", 1662350400000]
    assert (
        auth["args"][2]
        == hmac.new(b"s3cret", b"GET/realtime1662350400000", hashlib.sha256).hexdigest()
    )
    assert auth["args"][2] == auth_signature("s3cret", 1662350400000)
    (sub,) = [json.loads(t) for t in private.subscribe_messages()]
    assert sub == {"op": "subscribe", "args": ["order", "execution", "wallet"]}
    assert sub["op"] == load("bybit/order.subscribe.request.json")["op"]
    assert json.loads(private.ping_message)["op"] == load("bybit/ping.request.COMPOSED.json")["op"]
    markets = [f"C{i}/USDT" for i in range(6)]
    public = BybitPublicStreams("wss://x/v5/public/spot", "spot", markets)
    subs = [json.loads(t) for t in public.subscribe_messages()]
    assert [len(s["args"]) for s in subs] == [10, 2]  # Bybit takes at most 10 args per request
    assert subs[0]["args"][:2] == ["orderbook.1.C0USDT", "publicTrade.C0USDT"]
    assert subs[0].keys() <= load("bybit/subscribe.request.json").keys()
