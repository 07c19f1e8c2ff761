"""A local Bybit v5 REST double (spot, unified trading account): the real ccxt client is pointed
at it in tests, as at the Binance one (:mod:`tests.doubles.binance_rest`).

What it does like Bybit (docs v5: "Integration Guidance" / authentication, the order, position
and account sections; shapes as the docs' examples, quoted in ccxt's ``bybit.py``):

- every answer is ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``; an error is a
  ``retCode`` other than 0 inside an HTTP 200;
- private endpoints need ``X-BAPI-API-KEY`` (else 10003), ``X-BAPI-TIMESTAMP`` within
  ``X-BAPI-RECV-WINDOW`` of the server's clock (``server - recv_window <= ts < server + 1000``,
  else 10002) and ``X-BAPI-SIGN``, the hex HMAC-SHA256 of ``timestamp + key + recv_window +
  (query string | JSON body)`` (else 10004);
- one account whose wallet moves with every fill (spot fees: in the base coin on a buy, in the
  quote coin on a sell, as Bybit charges them) and locks what resting orders hold; an order
  the wallet cannot pay for is refused with 170131;
- the order lifecycle: ``POST /v5/order/create`` (market orders fill at once at the touch,
  limit orders rest unless they cross; an ``orderLinkId`` already used is refused with
  170141), partial and full fills (:meth:`BybitRestDouble.fill`), ``POST /v5/order/cancel``
  (170213 "Order does not exist." for an unknown or finished order), open orders
  (``GET /v5/order/realtime``), closed orders (``GET /v5/order/history``) and executions
  (``GET /v5/execution/list``), each filtered by ``orderId`` / ``orderLinkId`` / ``symbol``.
  The create answer holds only the ids, as Bybit's does: fills come from executions or the
  private stream.

Faults are scripted per (method, path) with :meth:`BybitRestDouble.script`, as on the Binance
double (both are :class:`~tests.doubles.rest_server.RestDouble`): :func:`rate_limited` (10006 with
``X-Bapi-Limit-Reset-Timestamp``), :func:`error` (any retCode), the shared 5xx / malformed /
accept-then-hang faults. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from tests.doubles.rest_server import Endpoint, Fault, RestDouble, now_ms

FEE_RATE = Decimal("0.001")
OPEN = ("New", "PartiallyFilled")

# Bybit's documented codes and messages (docs v5/error).
MESSAGES = {
    10001: "params error",
    10002: "invalid request, please check your server timestamp or recv_window param",
    10003: "API key is invalid.",
    10004: "error sign! origin_string[...]",
    10006: "Too many visits!",
    170131: "Insufficient balance.",
    170141: "Duplicate clientOrderId",
    170213: "Order does not exist.",
}

INSTRUMENT = {  # docs v5/market/instrument, spot example
    "symbol": "BTCUSDT",
    "baseCoin": "BTC",
    "quoteCoin": "USDT",
    "innovation": "0",
    "status": "Trading",
    "marginTrading": "both",
    "stTag": "0",
    "lotSizeFilter": {
        "basePrecision": "0.000001",
        "quotePrecision": "0.00000001",
        "minOrderQty": "0.000048",
        "maxOrderQty": "71.73956243",
        "minOrderAmt": "1",
        "maxOrderAmt": "2000000",
    },
    "priceFilter": {"tickSize": "0.01"},
    "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
}


def envelope(result: Any, code: int = 0, msg: str = "OK") -> dict[str, Any]:
    """Bybit's answer around ``result``."""
    return {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": now_ms()}


def error(code: int, msg: str | None = None) -> Fault:
    """A documented error: ``retCode`` ``code`` inside an HTTP 200."""
    return Fault(200, json.dumps(envelope({}, code, msg or MESSAGES.get(code, "error"))))


def rate_limited(reset_in_s: float = 1.0) -> Fault:
    """10006 "Too many visits!" with the documented ``X-Bapi-Limit-*`` headers."""
    reset = str(now_ms() + int(reset_in_s * 1000))
    return Fault(
        200,
        json.dumps(envelope({}, 10006, MESSAGES[10006])),
        {"X-Bapi-Limit": "20", "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": reset},
    )


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(MESSAGES.get(code, "error"))
        self.code = code


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


class BybitRestDouble(RestDouble):
    """The server and its state; use as a context manager (or ``start``/``stop``)."""

    def __init__(self, api_key: str = "test-key", api_secret: str = "test-secret") -> None:
        super().__init__(api_key, api_secret, "bybit-double")
        self.instruments = {"BTCUSDT": dict(INSTRUMENT)}
        self.wallet: dict[str, Decimal] = {"BTC": Decimal(10), "USDT": Decimal(100_000)}
        self.locked: dict[str, Decimal] = {}
        self.tickers: dict[str, dict[str, str]] = {
            "BTCUSDT": {
                "bid1Price": "4",
                "bid1Size": "1",
                "ask1Price": "4.01",
                "ask1Size": "1",
                "lastPrice": "4",
            }
        }
        self.orders: dict[str, dict[str, Any]] = {}  # orderId -> order row
        self.executions: list[dict[str, Any]] = []
        self._next_id = 1000
        self._routes = {
            ("GET", "/v5/market/time"): (False, self._time),
            ("GET", "/v5/market/instruments-info"): (False, self._instruments),
            ("GET", "/v5/market/tickers"): (False, self._tickers),
            ("GET", "/v5/asset/coin/query-info"): (True, lambda p: {"rows": []}),
            ("GET", "/v5/user/query-api"): (True, self._query_api),
            ("GET", "/v5/account/info"): (True, self._account_info),
            ("GET", "/v5/account/wallet-balance"): (True, self._wallet_balance),
            ("POST", "/v5/order/create"): (True, self._create),
            ("POST", "/v5/order/cancel"): (True, self._cancel),
            ("GET", "/v5/order/realtime"): (True, self._realtime),
            ("GET", "/v5/order/history"): (True, self._history),
            ("GET", "/v5/execution/list"): (True, self._execution_list),
        }

    # ------------------------------------------------------------------ control

    def fill(
        self, order_id: str, qty: Decimal | None = None, price: Decimal | None = None
    ) -> dict[str, Any]:
        """A counterparty trades against a resting order: ``qty`` (all that is left by
        default) at ``price`` (the order's); returns the execution."""
        with self._lock:
            order = self.orders[order_id]
            return self._fill(
                order,
                qty if qty is not None else Decimal(order["leavesQty"]),
                price if price is not None else Decimal(order["price"]),
                True,
            )

    def cancel_by_exchange(self, order_id: str) -> None:
        """The exchange cancels an order itself (e.g. self-trade prevention)."""
        with self._lock:
            self._finish_cancel(self.orders[order_id], "CancelBySmp")

    def balance(self, coin: str) -> Decimal:
        """The wallet balance of ``coin``."""
        with self._lock:
            return self.wallet.get(coin, Decimal(0))

    # ------------------------------------------------------------------ request handling

    def _params(self, query: str, body: str) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_qsl(query))
        if body:
            params |= json.loads(body)
        return params

    def _no_route(self, path: str) -> Any:
        return envelope({}, 10001, f"no route {path}")

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
                self._check_signature(h, query if method == "GET" else body)
            with self._lock:
                return 200, envelope(endpoint(params))
        except _Refused as exc:
            return 200, envelope({}, exc.code, str(exc))

    def _answer_headers(self) -> dict[str, str] | None:
        return {
            "X-Bapi-Limit": "20",
            "X-Bapi-Limit-Status": "19",
            "X-Bapi-Limit-Reset-Timestamp": str(now_ms()),
        }

    def _check_signature(self, h: BaseHTTPRequestHandler, signed: str) -> None:
        key = h.headers.get("X-BAPI-API-KEY")
        ts = h.headers.get("X-BAPI-TIMESTAMP") or "0"
        window = h.headers.get("X-BAPI-RECV-WINDOW") or "5000"
        if key != self.api_key:
            raise _Refused(10003)
        expected = hmac.new(
            self.api_secret.encode(), f"{ts}{key}{window}{signed}".encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, h.headers.get("X-BAPI-SIGN") or ""):
            raise _Refused(10004)
        now = now_ms()
        if not now - int(window) <= int(ts) < now + 1000:
            raise _Refused(10002)

    # ------------------------------------------------------------------ endpoints (locked)

    def _time(self, p: dict[str, Any]) -> Any:
        now = now_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _instrument(self, symbol: str) -> dict[str, Any]:
        if symbol not in self.instruments:
            raise _Refused(10001)
        return self.instruments[symbol]

    def _instruments(self, p: dict[str, Any]) -> Any:
        rows = [self._instrument(p["symbol"])] if "symbol" in p else list(self.instruments.values())
        return {"category": p.get("category", "spot"), "list": rows, "nextPageCursor": ""}

    def _ticker(self, symbol: str) -> dict[str, Any]:
        self._instrument(symbol)
        t = self.tickers[symbol]
        return {
            "symbol": symbol,
            "prevPrice24h": t["lastPrice"],
            "price24hPcnt": "0",
            "highPrice24h": t["lastPrice"],
            "lowPrice24h": t["lastPrice"],
            "turnover24h": "0",
            "volume24h": "0",
            "usdIndexPrice": t["lastPrice"],
            **t,
        }

    def _tickers(self, p: dict[str, Any]) -> Any:
        symbols = [p["symbol"]] if "symbol" in p else list(self.tickers)
        return {"category": "spot", "list": [self._ticker(s) for s in symbols]}

    def _query_api(self, p: dict[str, Any]) -> Any:
        return {
            "id": "1",
            "note": "test",
            "apiKey": self.api_key,
            "readOnly": 0,
            "secret": "",
            "permissions": {"Spot": ["SpotTrade"], "Wallet": ["AccountTransfer"]},
            "ips": ["*"],
            "type": 1,
            "unified": 0,
            "uta": 1,
            "userID": 1,
        }

    def _account_info(self, p: dict[str, Any]) -> Any:
        return {
            "unifiedMarginStatus": 6,
            "marginMode": "REGULAR_MARGIN",
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
            "updatedTime": str(now_ms()),
        }

    def _wallet_balance(self, p: dict[str, Any]) -> Any:
        if p.get("accountType") != "UNIFIED":
            raise _Refused(10001)
        coins = [
            {
                "coin": coin,
                "equity": _fmt(total),
                "walletBalance": _fmt(total),
                "locked": _fmt(self.locked.get(coin, Decimal(0))),
                "borrowAmount": "0",
                "accruedInterest": "0",
                "totalOrderIM": "0",
                "totalPositionIM": "0",
                "totalPositionMM": "0",
                "unrealisedPnl": "0",
                "cumRealisedPnl": "0",
                "bonus": "0",
                "collateralSwitch": True,
                "marginCollateral": True,
                "spotBorrow": "0",
            }
            for coin, total in sorted(self.wallet.items())
        ]
        return {
            "list": [
                {
                    "accountType": "UNIFIED",
                    "totalEquity": "0",
                    "totalWalletBalance": "0",
                    "accountIMRate": "0",
                    "coin": coins,
                }
            ]
        }

    def _create(self, p: dict[str, Any]) -> Any:
        symbol = p["symbol"]
        inst = self._instrument(symbol)
        link = str(p.get("orderLinkId") or "")
        if link and any(o["orderLinkId"] == link for o in self.orders.values()):
            raise _Refused(170141)
        side, kind, qty = p["side"], p["orderType"], Decimal(str(p["qty"]))
        ticker = self.tickers[symbol]
        touch = Decimal(ticker["ask1Price"] if side == "Buy" else ticker["bid1Price"])
        price = Decimal(str(p.get("price") or touch))
        base, quote = inst["baseCoin"], inst["quoteCoin"]
        need_coin, need = (quote, qty * price) if side == "Buy" else (base, qty)
        if self.wallet.get(need_coin, Decimal(0)) - self.locked.get(need_coin, Decimal(0)) < need:
            raise _Refused(170131)
        now = now_ms()
        self._next_id += 1
        order = {
            "orderId": str(self._next_id),
            "orderLinkId": link,
            "blockTradeId": "",
            "symbol": symbol,
            "price": _fmt(price) if kind == "Limit" else "0",
            "qty": _fmt(qty),
            "side": side,
            "isLeverage": "0",
            "positionIdx": 0,
            "orderStatus": "New",
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": "0",
            "leavesQty": _fmt(qty),
            "leavesValue": _fmt(qty * price),
            "cumExecQty": "0",
            "cumExecValue": "0",
            "cumExecFee": "0",
            "timeInForce": p.get("timeInForce", "GTC"),
            "orderType": kind,
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": ticker["lastPrice"],
            "reduceOnly": False,
            "closeOnTrigger": False,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(now),
            "updatedTime": str(now),
            "marketUnit": p.get("marketUnit", ""),
            "category": "spot",
        }
        self.orders[order["orderId"]] = order
        self._lock_funds(order, need_coin, need)
        crosses = kind == "Market" or (price >= touch if side == "Buy" else price <= touch)
        if crosses:
            self._fill(order, qty, touch, False)
        return {"orderId": order["orderId"], "orderLinkId": link}

    def _find(self, p: dict[str, Any]) -> dict[str, Any] | None:
        for order in self.orders.values():
            if order["symbol"] == p.get("symbol") and (
                order["orderId"] == p.get("orderId")
                or (not p.get("orderId") and link_matches(order, p))
            ):
                return order
        return None

    def _cancel(self, p: dict[str, Any]) -> Any:
        order = self._find(p)
        if order is None or order["orderStatus"] not in OPEN:
            raise _Refused(170213)
        self._finish_cancel(order, "CancelByUser")
        return {"orderId": order["orderId"], "orderLinkId": order["orderLinkId"]}

    def _select(self, p: dict[str, Any], statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        out = [
            o
            for o in self.orders.values()
            if o["orderStatus"] in statuses
            and p.get("symbol") in (None, o["symbol"])
            and p.get("orderId") in (None, o["orderId"])
            and link_matches(o, p)
        ]
        return sorted(out, key=lambda o: -int(o["createdTime"]))

    def _realtime(self, p: dict[str, Any]) -> Any:
        rows = self._select(p, OPEN)  # openOnly=0: open orders only
        return {"category": p["category"], "list": [_public(o) for o in rows], "nextPageCursor": ""}

    def _history(self, p: dict[str, Any]) -> Any:
        closed = ("Filled", "Cancelled", "PartiallyFilledCanceled", "Rejected")
        wanted = (p["orderStatus"],) if p.get("orderStatus") else closed
        rows = self._select(p, tuple(s for s in wanted if s in closed))
        return {
            "category": p["category"],
            "list": [_public(o) for o in rows][:50],
            "nextPageCursor": "",
        }

    def _execution_list(self, p: dict[str, Any]) -> Any:
        start = int(p.get("startTime", 0))
        end = int(p.get("endTime", 2**62))
        rows = [
            e
            for e in reversed(self.executions)  # newest first, as Bybit sorts them
            if p.get("symbol") in (None, e["symbol"])
            and start <= int(e["execTime"]) <= end
            and p.get("orderId") in (None, e["orderId"])
            and link_matches(e, p)
            and p.get("execType") in (None, e["execType"])
        ]
        return {
            "category": p["category"],
            "list": rows[: int(p.get("limit", 50))],
            "nextPageCursor": "",
        }

    # ------------------------------------------------------------------ book internals

    def _lock_funds(self, order: dict[str, Any], coin: str, amount: Decimal) -> None:
        order["_lock"] = (coin, amount)
        self.locked[coin] = self.locked.get(coin, Decimal(0)) + amount

    def _release(self, order: dict[str, Any], share: Decimal) -> None:
        """Release ``share`` (0..1) of what the order locked at create."""
        coin, amount = order["_lock"]
        self.locked[coin] -= amount * share

    def _fill(
        self, order: dict[str, Any], qty: Decimal, price: Decimal, maker: bool
    ) -> dict[str, Any]:
        inst = self.instruments[order["symbol"]]
        base, quote = inst["baseCoin"], inst["quoteCoin"]
        total = Decimal(order["qty"])
        leaves = Decimal(order["leavesQty"]) - qty
        buy = order["side"] == "Buy"
        fee = (qty if buy else qty * price) * FEE_RATE
        self._release(order, qty / total)
        if buy:
            self.wallet[quote] = self.wallet.get(quote, Decimal(0)) - qty * price
            self.wallet[base] = self.wallet.get(base, Decimal(0)) + qty - fee
        else:
            self.wallet[base] = self.wallet.get(base, Decimal(0)) - qty
            self.wallet[quote] = self.wallet.get(quote, Decimal(0)) + qty * price - fee
        cum_qty = Decimal(order["cumExecQty"]) + qty
        cum_value = Decimal(order["cumExecValue"]) + qty * price
        now = now_ms()
        order.update(
            leavesQty=_fmt(leaves),
            cumExecQty=_fmt(cum_qty),
            cumExecValue=_fmt(cum_value),
            cumExecFee=_fmt(Decimal(order["cumExecFee"]) + fee),
            avgPrice=_fmt(cum_value / cum_qty),
            leavesValue=_fmt(leaves * price),
            orderStatus="Filled" if leaves == 0 else "PartiallyFilled",
            updatedTime=str(now),
        )
        self._next_id += 1
        execution = {  # docs v5/position/execution, response example
            "symbol": order["symbol"],
            "orderId": order["orderId"],
            "orderLinkId": order["orderLinkId"],
            "side": order["side"],
            "orderPrice": order["price"],
            "orderQty": order["qty"],
            "leavesQty": _fmt(leaves),
            "createType": "CreateByUser",
            "orderType": order["orderType"],
            "stopOrderType": "",
            "execFee": _fmt(fee),
            "execId": f"e-{self._next_id}",
            "execPrice": _fmt(price),
            "execQty": _fmt(qty),
            "execType": "Trade",
            "execValue": _fmt(qty * price),
            "execTime": str(now),
            "feeCurrency": base if buy else quote,
            "isMaker": maker,
            "feeRate": _fmt(FEE_RATE),
            "tradeIv": "",
            "markIv": "",
            "markPrice": "",
            "indexPrice": "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": "",
            "seq": self._next_id,
            "extraFees": "",
        }
        self.executions.append(execution)
        return execution

    def _finish_cancel(self, order: dict[str, Any], cancel_type: str) -> None:
        leaves, total = Decimal(order["leavesQty"]), Decimal(order["qty"])
        self._release(order, leaves / total)
        filled = leaves < total
        order.update(
            orderStatus="PartiallyFilledCanceled" if filled else "Cancelled",
            cancelType=cancel_type,
            updatedTime=str(now_ms()),
        )


def link_matches(row: dict[str, Any], p: dict[str, Any]) -> bool:
    """True unless ``p`` asks for another ``orderLinkId``."""
    return p.get("orderLinkId") in (None, row["orderLinkId"])


def _public(order: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in order.items() if not k.startswith("_") and k != "category"}
