"""How one order is found on an exchange, and what a fill says about its order: chosen per
exchange from ccxt's capabilities (``exchange.has``) by :func:`order_lookup`. The params that
carry our client order id on create, lookup and cancel are :func:`client_id_params`.

- :class:`FetchOrderLookup` (Binance and every exchange without the two calls below): ccxt's
  ``fetch_order``, by the exchange's order id once known, else by our client id in the
  exchange's own parameter (``origClientOrderId`` on Binance). A fill (Binance ``myTrades``)
  does not say how much of its order is filled, so the gateway looks the order up.
- :class:`OpenThenClosedLookup` (Bybit v5): where ccxt has a native ``fetchOpenOrder`` and
  ``fetchCanceledAndClosedOrders`` and we know the exchange's id parameters, an order is
  looked for among the open orders (``GET /v5/order/realtime``), then the closed ones
  (``GET /v5/order/history``, written asynchronously: an order just finished may not be there
  yet), then its executions (``GET /v5/execution/list``), each by
  ``orderId`` once known, else by our client id (``orderLinkId``). Every Bybit execution
  carries its order's ``orderQty`` and ``leavesQty``, so fills need no order lookup at all.

Why not ccxt's ``bybit.fetch_order``: on a unified account it reads ``/v5/order/realtime``,
which holds only the account's last 500 orders of any status, and after a Bybit release or
restart no closed order at all ("filled, cancelled, and rejected orders of Unified account
should only be queried through order history", docs v5/order/open-order). ccxt therefore
refuses it unless ``params["acknowledged"]`` is set. We never set it: every lookup here
resolves an order whose fate matters (a lost create answer, a refused cancel, a
reconciliation), and a window that silently forgets orders is not acceptable for any of them.

Limits that remain (docs v5/order/order-list, v5/position/execution): the order history
keeps Cancelled, Rejected and Deactivated orders for 24 hours and other closed orders for 7
days; after 7 days only orders with fills are kept. An order canceled unfilled more than 24
hours ago is therefore reported as not found, which is what it is for our purposes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import ccxt

from trader.errors import OrderNotFoundError

Call = Callable[..., Any]  # the gateway's call: ``call("method", *args)``, locked, translated

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FillState:
    """What one fill says about its order: our client id (None: not carried), the order's
    cumulative filled amount after this fill, and whether the order is then complete."""

    client_id: str | None
    filled_total: Decimal
    final: bool


class OrderLookup(Protocol):
    """Finds one order; reads a fill's order state where the exchange reports it."""

    def find(
        self, call: Call, client_id: str, exchange_id: str | None, symbol: str
    ) -> dict[str, Any]:
        """The ccxt order; raises ``OrderNotFoundError`` when the exchange has none."""
        ...

    def fill_state(self, trade: dict[str, Any]) -> FillState | None:
        """The order state a ccxt trade carries; None when the order must be looked up."""
        ...


class FetchOrderLookup:
    """ccxt's ``fetch_order``; see the module docstring."""

    def __init__(self, client_id_param: str) -> None:
        self._param = client_id_param

    def find(
        self, call: Call, client_id: str, exchange_id: str | None, symbol: str
    ) -> dict[str, Any]:
        """By exchange id when known, else by client id."""
        if exchange_id:
            return call("fetch_order", exchange_id, symbol)
        return call("fetch_order", None, symbol, {self._param: client_id})

    def fill_state(self, trade: dict[str, Any]) -> FillState | None:
        """Never carried: the gateway looks the order up."""
        return None


@dataclass(frozen=True)
class ClientIdParams:
    """The ccxt params that carry our client order id: on create, and on lookup / cancel."""

    create: str = "clientOrderId"
    lookup: str = "clientOrderId"


_CLIENT_ID_PARAMS = {
    "binance": ClientIdParams("newClientOrderId", "origClientOrderId"),
    "bybit": ClientIdParams("clientOrderId", "orderLinkId"),
}


def client_id_params(exchange_id: str) -> ClientIdParams:
    """Where ``exchange_id`` (a ccxt id) takes our client order id."""
    return _CLIENT_ID_PARAMS.get(exchange_id, ClientIdParams())


@dataclass(frozen=True)
class _NativeIds:
    """An exchange's own request parameters for its order id and our client id."""

    order_id: str
    client_id: str


_NATIVE_IDS = {"bybit": _NativeIds("orderId", "orderLinkId")}


class OpenThenClosedLookup:
    """Open orders, then closed orders, then executions; see the module docstring."""

    def __init__(self, ids: _NativeIds) -> None:
        self._ids = ids

    def find(
        self, call: Call, client_id: str, exchange_id: str | None, symbol: str
    ) -> dict[str, Any]:
        """The order as the first of the three places that has it reports it."""
        params = (
            {self._ids.order_id: exchange_id} if exchange_id else {self._ids.client_id: client_id}
        )
        for method in ("fetch_open_orders", "fetch_canceled_and_closed_orders"):
            found = call(method, symbol, None, None, dict(params))
            if found:
                return _bybit_status(found[0])
        trades = call("fetch_my_trades", symbol, None, None, dict(params))
        if trades:
            return self._from_executions(trades, symbol)
        raise OrderNotFoundError(
            f"{symbol} order {exchange_id or client_id}: not open, not in the order history, "
            "no executions"
        )

    def fill_state(self, trade: dict[str, Any]) -> FillState | None:
        """From the execution's ``orderQty`` and ``leavesQty``."""
        info = trade.get("info") or {}
        if info.get("orderQty") in (None, "") or info.get("leavesQty") in (None, ""):
            return None
        leaves = Decimal(str(info["leavesQty"]))
        return FillState(
            client_id=str(info.get("orderLinkId") or "") or None,
            filled_total=Decimal(str(info["orderQty"])) - leaves,
            final=leaves == 0,
        )

    def _from_executions(self, trades: list[dict[str, Any]], symbol: str) -> dict[str, Any]:
        """An order known only by its fills (not in the order history: not yet, as Bybit
        writes it asynchronously, or no longer): filled as far as its last fill says; not open
        (it was not among the open orders), so a remainder was canceled."""
        states = [(s, t) for t in trades if (s := self.fill_state(t)) is not None]
        if not states:
            raise OrderNotFoundError(f"{symbol}: executions without the order's quantities")
        # the latest fill is the one leaving the least (fills of one millisecond tie on time)
        state, last = max(states, key=lambda st: st[0].filled_total)
        info = last.get("info") or {}
        amount = Decimal(str(info["orderQty"]))
        limit = Decimal(str(info.get("orderPrice") or 0))  # 0 or none: a market order
        cost = sum(
            (
                Decimal(str(t.get("price") or 0)) * Decimal(str(t.get("amount") or 0))
                for t in trades
            ),
            ZERO,
        )
        filled = sum((Decimal(str(t.get("amount") or 0)) for t in trades), ZERO)
        return {
            "id": str(last.get("order") or ""),
            "clientOrderId": state.client_id,
            "symbol": symbol,
            "side": last.get("side"),
            "type": last.get("type"),
            "status": "closed" if state.final else "canceled",
            "amount": str(amount),
            "filled": str(state.filled_total),
            "price": str(limit) if limit else None,
            "average": str(cost / filled) if filled else None,
            "timestamp": last.get("timestamp"),
            "lastUpdateTimestamp": last.get("timestamp"),
        }


def _bybit_status(order: dict[str, Any]) -> dict[str, Any]:
    """ccxt reports Bybit's ``PartiallyFilledCanceled`` as ``closed`` (ccxt issue 18685), the
    status it gives a filled order: here it is what it is, canceled with a partial fill."""
    if (order.get("info") or {}).get("orderStatus") == "PartiallyFilledCanceled":
        return {**order, "status": "canceled"}
    return order


def order_lookup(exchange: ccxt.Exchange, client_id_param: str) -> OrderLookup:
    """The lookup for ``exchange`` (``client_id_param``: its ``fetch_order`` client id
    parameter), from ccxt's capabilities; see the module docstring."""
    has = exchange.has
    ids = _NATIVE_IDS.get(exchange.id)
    if (
        ids
        and has.get("fetchOpenOrder") is True
        and has.get("fetchCanceledAndClosedOrders") is True
        and has.get("fetchMyTrades") is True
    ):
        return OpenThenClosedLookup(ids)
    return FetchOrderLookup(client_id_param)
