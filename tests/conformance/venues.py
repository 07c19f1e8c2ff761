"""What the conformance suite needs to know of each exchange: its REST double, its websocket
messages (as the exchange sends them) and its own paths and error answers.

A new streamed exchange joins the suite by adding one :class:`Venue` to :data:`VENUES`; every
case in ``test_conformance.py`` then runs against it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.doubles import bybit_rest
from tests.doubles.binance_rest import BinanceRestDouble, Fault
from tests.doubles.bybit_rest import BybitRestDouble
from tests.faults.conftest import book as binance_book
from tests.faults.conftest import execution as binance_execution

Double = Any  # BinanceRestDouble | BybitRestDouble: the suite uses what both offer


def _ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Venue:
    """One exchange as the suite drives it."""

    name: str
    double: Callable[[str, str], Double]  # (api key, secret) -> a started-able double
    feeds: frozenset[str]  # feed names of the market and the private stream
    create_path: tuple[str, str]
    balance_path: tuple[str, str]
    trades_path: tuple[str, str]
    quote: Callable[[str, str], dict[str, Any]]  # bid, ask -> a top-of-book message
    candle: Callable[[int, str, bool], dict[str, Any]]  # start ms, close, closed -> a candle
    private_fill: Callable[[Double, str, str], dict[str, Any]]  # the private stream's report
    rate_limited: Callable[[float], Fault]  # the exchange's own rate-limit answer
    is_market_sub: Callable[[dict[str, Any]], bool]
    is_private_sub: Callable[[dict[str, Any]], bool]

    def client_ids(self, double: Double) -> list[str]:
        """Client ids of every order the exchange holds."""
        key = "clientOrderId" if self.name == "binance" else "orderLinkId"
        return [str(o[key]) for o in list(double.orders.values())]

    def order_status(self, double: Double, exchange_id: str) -> str:
        """The exchange's own status of an order."""
        orders = double.orders
        order = orders[int(exchange_id)] if self.name == "binance" else orders[exchange_id]
        return str(order["status" if self.name == "binance" else "orderStatus"])

    def fill(self, double: Double, exchange_id: str) -> None:
        """A counterparty fills a resting order completely; no stream says so."""
        double.fill(int(exchange_id) if self.name == "binance" else exchange_id)

    def set_balances(self, double: Double, balances: dict[str, str]) -> None:
        """The exchange's balances become ``balances`` (asset -> total, nothing locked)."""
        if self.name == "binance":
            double.balances = [{"asset": a, "free": t, "locked": "0"} for a, t in balances.items()]
        else:
            double.wallet = {a: Decimal(t) for a, t in balances.items()}
            double.locked = {}

    def balances(self, double: Double) -> dict[str, Decimal]:
        """The exchange's balance totals, non-zero ones."""
        if self.name == "binance":
            rows = {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"]) for b in double.balances}
        else:
            rows = dict(double.wallet)
        return {a: t for a, t in rows.items() if t}


# ------------------------------------------------------------------------------ Binance


def _binance_candle(start: int, close: str, closed: bool) -> dict[str, Any]:
    return {
        "stream": "btcusdt@kline_1m",
        "data": {
            "e": "kline",
            "E": _ms(),
            "s": "BTCUSDT",
            "k": {
                "t": start,
                "T": start + 59_999,
                "s": "BTCUSDT",
                "i": "1m",
                "f": 1,
                "L": 2,
                "o": close,
                "c": close,
                "h": close,
                "l": close,
                "v": "1",
                "n": 2,
                "x": closed,
                "q": close,
                "V": "0",
                "Q": "0",
                "B": "0",
            },
        },
    }


def _binance_fill(double: BinanceRestDouble, client_id: str, exchange_id: str) -> dict:
    trade = double.trades[-1]
    return binance_execution(
        client_id,
        int(exchange_id),
        trade["id"],
        trade["qty"],
        trade["price"],
        fee=trade["commission"],
    )


BINANCE = Venue(
    name="binance",
    double=BinanceRestDouble,
    feeds=frozenset({"ws-binance-market", "ws-binance-user"}),
    create_path=("POST", "/api/v3/order"),
    balance_path=("GET", "/api/v3/account"),
    trades_path=("GET", "/api/v3/myTrades"),
    quote=lambda bid, ask: binance_book(bid, ask),
    candle=_binance_candle,
    private_fill=_binance_fill,
    rate_limited=lambda s: Fault.rate_limited(429, str(int(s))),
    is_market_sub=lambda m: m.get("method") == "SUBSCRIBE",
    is_private_sub=lambda m: m.get("method") == "userDataStream.subscribe.signature",
)


# ------------------------------------------------------------------------------ Bybit


def _bybit_quote(bid: str, ask: str) -> dict[str, Any]:
    """``orderbook.1`` as Bybit sends it (docs v5/websocket/public/orderbook)."""
    ts = _ms()
    return {
        "topic": "orderbook.1.BTCUSDT",
        "type": "snapshot",
        "ts": ts,
        "data": {"s": "BTCUSDT", "b": [[bid, "1"]], "a": [[ask, "1"]], "u": 1, "seq": 1},
        "cts": ts,
    }


def _bybit_candle(start: int, close: str, closed: bool) -> dict[str, Any]:
    """``kline.1`` as Bybit sends it (docs v5/websocket/public/kline)."""
    return {
        "topic": "kline.1.BTCUSDT",
        "type": "snapshot",
        "ts": _ms(),
        "data": [
            {
                "start": start,
                "end": start + 59_999,
                "interval": "1",
                "open": close,
                "close": close,
                "high": close,
                "low": close,
                "volume": "1",
                "turnover": close,
                "confirm": closed,
                "timestamp": _ms(),
            }
        ],
    }


def _bybit_fill(double: BybitRestDouble, client_id: str, exchange_id: str) -> dict:
    """The private ``execution`` topic's report of the double's last execution (docs
    v5/websocket/private/execution)."""
    e = dict(double.executions[-1])
    assert (e["orderId"], e["orderLinkId"]) == (exchange_id, client_id)
    return {
        "topic": "execution",
        "id": f"1_{e['execId']}",
        "creationTime": _ms(),
        "data": [e | {"category": "spot"}],
    }


def _bybit_is_market_sub(m: dict[str, Any]) -> bool:
    return m.get("op") == "subscribe" and any(a.startswith("orderbook.") for a in m["args"])


BYBIT = Venue(
    name="bybit",
    double=BybitRestDouble,
    feeds=frozenset({"ws-bybit-spot", "ws-bybit-private"}),
    create_path=("POST", "/v5/order/create"),
    balance_path=("GET", "/v5/account/wallet-balance"),
    trades_path=("GET", "/v5/execution/list"),
    quote=_bybit_quote,
    candle=_bybit_candle,
    private_fill=_bybit_fill,
    rate_limited=bybit_rest.rate_limited,
    is_market_sub=_bybit_is_market_sub,
    is_private_sub=lambda m: m.get("op") == "auth",
)

VENUES = {v.name: v for v in (BINANCE, BYBIT)}
