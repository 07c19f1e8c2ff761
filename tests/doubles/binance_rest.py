"""A local Binance spot REST double: the real ccxt client is pointed at it in tests.

An ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (a free port) that answers the spot endpoints
ccxt uses with the documented payloads under ``tests/fixtures/binance/rest/``. What it does like
Binance (rest-api.md, "Request Security" and the endpoint sections):

- signed endpoints need the ``X-MBX-APIKEY`` header (else -2015, HTTP 401) and an HMAC-SHA256
  ``signature`` of the query string and body (else -1022, HTTP 400); ``timestamp`` must be within
  ``recvWindow`` (else -1021);
- an in-memory order book: ``POST /api/v3/order`` records the order (market orders fill at once
  against the ticker; limit orders rest unless they cross), and ``GET /api/v3/order`` (by
  ``orderId`` or ``origClientOrderId``), ``DELETE /api/v3/order``, ``GET /api/v3/openOrders`` and
  ``GET /api/v3/myTrades`` all read that book; a ``newClientOrderId`` repeated while the earlier
  order is still open is refused with -2010 "Duplicate order sent.";
- the account moves with every fill (the commission is charged in the quote asset);
- every answer takes the fixture's shape and fills in the book's values.

The server, the fault script and the request log are
:class:`tests.doubles.rest_server.RestDouble`'s. Faults are scripted per (method, path) with
:meth:`BinanceRestDouble.script` and used up in order: 429/418 with ``Retry-After``, 5xx,
malformed JSON, any documented error payload, and "accept the order, then hang past the
client's timeout". ``latency_s`` delays every answer (a slow exchange). Every request is
recorded in ``requests`` so tests can assert what reached the exchange (and what did not).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tests.doubles import rest_server
from tests.doubles.rest_server import Endpoint, RestDouble, now_ms

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "binance" / "rest"
FEE_RATE = Decimal("0.001")


def fixture(name: str) -> Any:
    """One fixture file, parsed."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


class Fault(rest_server.Fault):
    """A scripted answer (:class:`tests.doubles.rest_server.Fault`), plus Binance's documented
    error payloads."""

    @classmethod
    def rate_limited(cls, status: int = 429, retry_after: str | None = "30") -> Fault:
        """429 (or 418, the ban) with the documented -1003 payload and ``Retry-After``."""
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        return cls(
            status, json.dumps(fixture("error.-1003.too-many-requests.COMPOSED.json")), headers
        )

    @classmethod
    def error(cls, name: str, status: int = 400) -> Fault:
        """A documented error payload from the fixtures."""
        return cls(status, json.dumps(fixture(name)))


class _Refused(Exception):
    def __init__(self, status: int, name: str) -> None:
        super().__init__(name)
        self.status = status
        self.name = name


class BinanceRestDouble(RestDouble):
    """The server and its state; use as a context manager (or ``start``/``stop``)."""

    def __init__(self, api_key: str = "test-key", api_secret: str = "test-secret") -> None:
        super().__init__(api_key, api_secret, "binance-double")
        self.exchange_info = fixture("exchangeInfo.captured-2021.json")
        self.symbols = {s["symbol"]: s for s in self.exchange_info["symbols"]}
        self.balances: list[dict[str, str]] = fixture("account.json")["balances"]
        self.tickers: dict[str, dict[str, str]] = {}  # per-symbol overrides of ticker fields
        self.orders: dict[int, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self._next_order_id = 1000
        self._next_trade_id = 5000
        self._routes = {
            ("GET", "/api/v3/ping"): (False, lambda p: {}),
            ("GET", "/api/v3/time"): (False, lambda p: {"serverTime": now_ms()}),
            ("GET", "/api/v3/exchangeInfo"): (False, self._exchange_info),
            ("GET", "/api/v3/ticker/24hr"): (False, self._ticker_24hr),
            ("GET", "/api/v3/account"): (True, self._account),
            ("POST", "/api/v3/order"): (True, self._create),
            ("GET", "/api/v3/order"): (True, self._get_order),
            ("DELETE", "/api/v3/order"): (True, self._cancel),
            ("GET", "/api/v3/openOrders"): (True, self._open_orders),
            ("GET", "/api/v3/myTrades"): (True, self._my_trades),
        }

    # ------------------------------------------------------------------ control

    def fill(self, order_id: int, price: Decimal | None = None) -> None:
        """Fill a resting order completely (a counterparty traded against it)."""
        with self._lock:
            order = self.orders[order_id]
            self._fill(order, price if price is not None else Decimal(order["price"]), True)

    # ------------------------------------------------------------------ request handling

    def _params(self, query: str, body: str) -> dict[str, Any]:
        return dict(parse_qsl(query)) | dict(parse_qsl(body))

    def _no_route(self, path: str) -> Any:
        return {"code": -1000, "msg": f"no route {path}"}

    def _call(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        query: str,
        body: str,
        params: dict[str, Any],
        signed: bool,
        endpoint: Endpoint,
    ) -> tuple[int, Any]:
        try:
            if signed:
                self._check_signature(h, query, body, params)
            with self._lock:
                return 200, endpoint(params)
        except _Refused as exc:
            return exc.status, fixture(exc.name)

    def _check_signature(
        self, h: BaseHTTPRequestHandler, query: str, body: str, params: dict[str, str]
    ) -> None:
        if h.headers.get("X-MBX-APIKEY") != self.api_key:
            raise _Refused(401, "error.-2015.api-key.COMPOSED.json")
        # totalParams = query string + request body, each without the signature itself.
        signed = "".join(
            "&".join(p for p in part.split("&") if not p.startswith("signature="))
            for part in (query, body)
            if part
        )
        expected = hmac.new(self.api_secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params.get("signature", "")):
            raise _Refused(400, "error.-1022.signature.COMPOSED.json")
        window = int(params.get("recvWindow", 5000))
        if abs(now_ms() - int(params.get("timestamp", 0))) > window:
            raise _Refused(400, "error.-1021.timestamp.COMPOSED.json")

    # ------------------------------------------------------------------ endpoints (locked)

    def _exchange_info(self, params: dict[str, str]) -> Any:
        return dict(self.exchange_info, serverTime=now_ms())

    def _ticker(self, symbol: str) -> dict[str, Any]:
        if symbol not in self.symbols:
            raise _Refused(400, "error.json")
        return dict(
            fixture("ticker_24hr.json"),
            symbol=symbol,
            closeTime=now_ms(),
            **self.tickers.get(symbol, {}),
        )

    def _ticker_24hr(self, params: dict[str, str]) -> Any:
        if "symbols" in params:
            return [self._ticker(s) for s in json.loads(params["symbols"])]
        if "symbol" in params:
            return self._ticker(params["symbol"])
        return [self._ticker(s) for s in self.symbols]

    def _account(self, params: dict[str, str]) -> Any:
        return dict(fixture("account.json"), balances=self.balances, updateTime=now_ms())

    def _create(self, p: dict[str, str]) -> Any:
        symbol = p["symbol"]
        if symbol not in self.symbols:
            raise _Refused(400, "error.json")
        client_id = p.get("newClientOrderId") or f"double-{self._next_order_id}"
        if any(
            o["clientOrderId"] == client_id and o["status"] in ("NEW", "PARTIALLY_FILLED")
            for o in self.orders.values()
        ):
            raise _Refused(400, "error.-2010.duplicate-order.COMPOSED.json")
        now = now_ms()
        self._next_order_id += 1
        order = {
            "symbol": symbol,
            "orderId": self._next_order_id,
            "orderListId": -1,
            "clientOrderId": client_id,
            "price": _fmt(Decimal(p.get("price", "0"))),
            "origQty": _fmt(Decimal(p["quantity"])),
            "executedQty": _fmt(Decimal(0)),
            "cummulativeQuoteQty": _fmt(Decimal(0)),
            "status": "NEW",
            "timeInForce": p.get("timeInForce", "GTC"),
            "type": p["type"],
            "side": p["side"],
            "time": now,
            "updateTime": now,
            "fills": [],
        }
        self.orders[order["orderId"]] = order
        ticker = self._ticker(symbol)
        touch = Decimal(ticker["askPrice"] if p["side"] == "BUY" else ticker["bidPrice"])
        limit = Decimal(p.get("price", "0"))
        crosses = p["type"] == "MARKET" or (
            limit >= touch if p["side"] == "BUY" else limit <= touch
        )
        if crosses:
            self._fill(order, touch, False)
        resp_type = p.get("newOrderRespType", "FULL")
        if resp_type == "ACK":
            return {k: order[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId")} | {
                "transactTime": now
            }
        template = "order.post.full.json" if resp_type == "FULL" else "order.post.result.json"
        out = fixture(template) | self._public(order) | {"transactTime": now, "workingTime": now}
        if resp_type == "FULL":
            out["fills"] = list(order["fills"])
        return out

    def _find(self, p: dict[str, str]) -> dict[str, Any]:
        for order in self.orders.values():
            if order["symbol"] == p.get("symbol") and (
                str(order["orderId"]) == p.get("orderId")
                or order["clientOrderId"] == p.get("origClientOrderId")
            ):
                return order
        raise _Refused(400, "error.-2013.no-such-order.COMPOSED.json")

    def _get_order(self, p: dict[str, str]) -> Any:
        return fixture("order.get.json") | self._public(self._find(p))

    def _cancel(self, p: dict[str, str]) -> Any:
        try:
            order = self._find(p)
        except _Refused:
            raise _Refused(400, "error.-2011.unknown-order.COMPOSED.json") from None
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise _Refused(400, "error.-2011.unknown-order.COMPOSED.json")
        order["status"] = "CANCELED"
        order["updateTime"] = now_ms()
        out = fixture("order.delete.json") | self._public(order)
        out |= {
            "origClientOrderId": order["clientOrderId"],
            "clientOrderId": f"cancel-{order['orderId']}",
            "transactTime": now_ms(),
        }
        for key in ("time", "updateTime"):
            out.pop(key, None)
        return out

    def _open_orders(self, p: dict[str, str]) -> Any:
        template = fixture("openOrders.get.json")[0]
        return [
            template | self._public(o)
            for o in self.orders.values()
            if o["status"] in ("NEW", "PARTIALLY_FILLED") and p.get("symbol") in (None, o["symbol"])
        ]

    def _my_trades(self, p: dict[str, str]) -> Any:
        template = fixture("myTrades.COMPOSED.json")[0]
        start = int(p.get("startTime", 0))
        end = int(p.get("endTime", 2**62))
        out = [
            template | t
            for t in self.trades
            if t["symbol"] == p["symbol"]
            and start <= t["time"] <= end
            and p.get("orderId") in (None, str(t["orderId"]))
        ]
        return out[: int(p.get("limit", 500))]

    # ------------------------------------------------------------------ book internals

    @staticmethod
    def _public(order: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in order.items() if k != "fills"}

    def _fill(self, order: dict[str, Any], price: Decimal, maker: bool) -> None:
        qty = Decimal(order["origQty"]) - Decimal(order["executedQty"])
        quote = self.symbols[order["symbol"]]["quoteAsset"]
        fee = qty * price * FEE_RATE
        self._next_trade_id += 1
        now = now_ms()
        order["fills"].append(
            {
                "price": _fmt(price),
                "qty": _fmt(qty),
                "commission": _fmt(fee),
                "commissionAsset": quote,
                "tradeId": self._next_trade_id,
            }
        )
        self.trades.append(
            {
                "symbol": order["symbol"],
                "id": self._next_trade_id,
                "orderId": order["orderId"],
                "orderListId": -1,
                "price": _fmt(price),
                "qty": _fmt(qty),
                "quoteQty": _fmt(qty * price),
                "commission": _fmt(fee),
                "commissionAsset": quote,
                "time": now,
                "isBuyer": order["side"] == "BUY",
                "isMaker": maker,
                "isBestMatch": True,
            }
        )
        sign = 1 if order["side"] == "BUY" else -1
        self._credit(self.symbols[order["symbol"]]["baseAsset"], sign * qty)
        self._credit(quote, -sign * qty * price - fee)
        order["executedQty"] = order["origQty"]
        order["cummulativeQuoteQty"] = _fmt(Decimal(order["cummulativeQuoteQty"]) + qty * price)
        order["status"] = "FILLED"
        order["updateTime"] = now

    def _credit(self, asset: str, delta: Decimal) -> None:
        """Add ``delta`` to ``asset``'s free balance."""
        row = next((b for b in self.balances if b["asset"] == asset), None)
        if row is None:
            row = {"asset": asset, "free": _fmt(Decimal(0)), "locked": _fmt(Decimal(0))}
            self.balances.append(row)
        row["free"] = _fmt(Decimal(row["free"]) + delta)
