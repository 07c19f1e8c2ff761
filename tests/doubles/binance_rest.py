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

Faults are scripted per (method, path) with :meth:`BinanceRestDouble.script` and used up in
order: 429/418 with ``Retry-After``, 5xx, malformed JSON, any documented error payload, and
"accept the order, then hang past the client's timeout". ``latency_s`` delays every answer (a
slow exchange). Every request is recorded in ``requests`` so tests can assert what reached the
exchange (and what did not).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "binance" / "rest"
FEE_RATE = Decimal("0.001")


def fixture(name: str) -> Any:
    """One fixture file, parsed."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


@dataclass
class Fault:
    """One scripted answer. ``process`` runs the real endpoint first (the order is recorded),
    then waits ``hang_s`` and answers with ``body`` (or the real answer when ``body`` is None)."""

    status: int = 200
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0
    process: bool = False

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

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        """A 5xx with an HTML body, as a proxy in front of the API would send it."""
        return cls(
            status,
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
            {"Content-Type": "text/html"},
        )

    @classmethod
    def malformed(cls) -> Fault:
        """HTTP 200 with truncated JSON."""
        return cls(200, '{"symbol": "BTCUSDT", "orderId": 7, "status": ')

    @classmethod
    def accept_then_hang(cls, seconds: float) -> Fault:
        """Do what was asked (record the order), then answer only after ``seconds``."""
        return cls(hang_s=seconds, process=True)


@dataclass(frozen=True)
class Request:
    """One request as the double saw it."""

    method: str
    path: str
    params: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when it arrived


class _Refused(Exception):
    def __init__(self, status: int, name: str) -> None:
        super().__init__(name)
        self.status = status
        self.name = name


class BinanceRestDouble:
    """The server and its state; use as a context manager (or ``start``/``stop``)."""

    def __init__(self, api_key: str = "test-key", api_secret: str = "test-secret") -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.exchange_info = fixture("exchangeInfo.captured-2021.json")
        self.symbols = {s["symbol"]: s for s in self.exchange_info["symbols"]}
        self.balances: list[dict[str, str]] = fixture("account.json")["balances"]
        self.tickers: dict[str, dict[str, str]] = {}  # per-symbol overrides of ticker fields
        self.orders: dict[int, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.latency_s = 0.0  # added before every answer
        self._faults: dict[tuple[str, str], deque[Fault]] = {}
        self._lock = threading.Lock()
        self._next_order_id = 1000
        self._next_trade_id = 5000
        self.release = threading.Event()  # ends every hang at stop
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.double = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="binance-double", daemon=True
        )
        self._routes: dict[tuple[str, str], tuple[bool, Callable[[dict[str, str]], Any]]] = {
            ("GET", "/api/v3/ping"): (False, lambda p: {}),
            ("GET", "/api/v3/time"): (False, lambda p: {"serverTime": _now_ms()}),
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

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the value for ``exchange.urls.rest``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> BinanceRestDouble:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End every hang, stop serving, close the socket."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> BinanceRestDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, method: str, path: str, *faults: Fault) -> None:
        """Answer the next requests to ``method path`` with ``faults``, in order."""
        with self._lock:
            self._faults.setdefault((method, path), deque()).extend(faults)

    def count(self, method: str, path: str) -> int:
        """How many requests reached ``method path``."""
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and r.path == path)

    def fill(self, order_id: int, price: Decimal | None = None) -> None:
        """Fill a resting order completely (a counterparty traded against it)."""
        with self._lock:
            order = self.orders[order_id]
            self._fill(order, price if price is not None else Decimal(order["price"]), True)

    # ------------------------------------------------------------------ request handling

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        """Route one request (called on the server's handler thread)."""
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(split.query)) | dict(parse_qsl(body))
        with self._lock:
            self.requests.append(Request(method, split.path, params))
            queued = self._faults.get((method, split.path))
            fault = queued.popleft() if queued else None
        if self.latency_s:
            self.release.wait(self.latency_s)
        if fault is not None and not fault.process:
            self.release.wait(fault.hang_s)
            _respond(h, fault.status, fault.body or "", fault.headers)
            return
        route = self._routes.get((method, split.path))
        if route is None:
            _respond(h, 404, json.dumps({"code": -1000, "msg": f"no route {split.path}"}))
            return
        signed, endpoint = route
        try:
            if signed:
                self._check_signature(h, split.query, body, params)
            with self._lock:
                status, payload = 200, endpoint(params)
        except _Refused as exc:
            status, payload = exc.status, fixture(exc.name)
        if fault is not None:
            self.release.wait(fault.hang_s)
            if fault.body is not None:
                _respond(h, fault.status, fault.body, fault.headers)
                return
        _respond(h, status, json.dumps(payload))

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
        if abs(_now_ms() - int(params.get("timestamp", 0))) > window:
            raise _Refused(400, "error.-1021.timestamp.COMPOSED.json")

    # ------------------------------------------------------------------ endpoints (locked)

    def _exchange_info(self, params: dict[str, str]) -> Any:
        return dict(self.exchange_info, serverTime=_now_ms())

    def _ticker(self, symbol: str) -> dict[str, Any]:
        if symbol not in self.symbols:
            raise _Refused(400, "error.json")
        return dict(
            fixture("ticker_24hr.json"),
            symbol=symbol,
            closeTime=_now_ms(),
            **self.tickers.get(symbol, {}),
        )

    def _ticker_24hr(self, params: dict[str, str]) -> Any:
        if "symbols" in params:
            return [self._ticker(s) for s in json.loads(params["symbols"])]
        if "symbol" in params:
            return self._ticker(params["symbol"])
        return [self._ticker(s) for s in self.symbols]

    def _account(self, params: dict[str, str]) -> Any:
        return dict(fixture("account.json"), balances=self.balances, updateTime=_now_ms())

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
        now = _now_ms()
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
        order["updateTime"] = _now_ms()
        out = fixture("order.delete.json") | self._public(order)
        out |= {
            "origClientOrderId": order["clientOrderId"],
            "clientOrderId": f"cancel-{order['orderId']}",
            "transactTime": _now_ms(),
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
        now = _now_ms()
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


def _now_ms() -> int:
    return int(time.time() * 1000)


def _respond(
    h: BaseHTTPRequestHandler, status: int, body: str, headers: dict[str, str] | None = None
) -> None:
    data = body.encode()
    try:
        h.send_response(status)
        headers = headers or {}
        if "Content-Type" not in headers:
            h.send_header("Content-Type", "application/json;charset=UTF-8")
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (its timeout): nothing to answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.double.handle(self, "GET")  # type: ignore[attr-defined]

    def do_POST(self) -> None:  # noqa: N802
        self.server.double.handle(self, "POST")  # type: ignore[attr-defined]

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.double.handle(self, "DELETE")  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: tests assert on ``requests`` instead."""
