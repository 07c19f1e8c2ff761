"""Binance spot order updates (``executionReport``) -> order events: one pure function per
execution type ``x``, dispatched through :data:`EXECUTIONS`. The user stream's other events
(balances, notices) and the envelopes are in :mod:`trader.feeds.parsers.binance`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trader.errors import ErrorKind
from trader.events import (
    ExchangeUpdateUnusable,
    Liquidity,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from trader.feeds.parsers.common import (
    OrderMemory,
    ParseContext,
    Parsed,
    Parser,
    dec,
    dispatch,
    ms_to_ns,
    opt_dec,
    positive,
)
from trader.model.orders import Side


def execution_report(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """An order update, dispatched on the execution type ``x`` through :data:`EXECUTIONS`.

    ``{"e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW",
    "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410",
    "P": "0.00000000", "C": "", "x": "NEW", "X": "NEW", "r": "NONE", "i": 4293153,
    "l": "0.00000000", "z": "0.00000000", "L": "0.00000000", "n": "0", "N": null,
    "T": 1499405658657, "t": -1, "m": false, "Z": "0.00000000", "Y": "0.00000000", ...}``

    Policy for missing or zero fields, every execution type:

    - times: every event is stamped with the transaction time ``T`` (when the matching engine
      did it), ``E`` (when the message was sent) only if ``T`` is absent;
    - ``C`` empty: the order's id is ``c`` (``C`` is set only when ``c`` is another request's);
    - ``l`` 0: no fill, whatever ``x`` and ``X`` say (never a zero-size ``OrderFilled``);
    - ``L`` 0 with ``l`` above 0: the price comes from elsewhere (see :func:`order_trade`);
      never a price of 0;
    - ``p`` 0 (market order) and ``P`` 0 (no stop): None on the event; ``N`` null: no fee asset
      (then ``n`` is 0); ``eR`` absent: no expiry reason.
    """
    return dispatch(EXECUTIONS, f"executionReport.{d['x']}", d, ctx)


def _client_id(d: dict[str, Any]) -> str:
    # On a cancel, "c" is the cancel request's own id and "C" the id of the order it canceled;
    # an amend that changes the client id reports the order's original id in "C" likewise.
    return str(d["C"] or d["c"])


def _ts(d: dict[str, Any]) -> int:
    return ms_to_ns(d.get("T") or d["E"])


def order_new(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """``x`` NEW: the order is on the book."""
    return [
        OrderAccepted(
            ts_event=_ts(d), ts_recv=ctx.ts_recv, client_id=_client_id(d), exchange_id=str(d["i"])
        )
    ]


def order_trade(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """``x`` TRADE (or CALCULATED, a liquidation's execution, booked the same way): one fill
    of ``l`` at ``L``; ``z``/``Z`` are the order's cumulative filled and quote amounts,
    ``n``/``N`` the fee and its asset, ``X`` the order's status after it.

    ``{"e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvo...", "S": "BUY",
    "x": "TRADE", "X": "PARTIALLY_FILLED", "i": 4293153, "l": "0.50000000",
    "z": "0.50000000", "L": "0.10264410", "n": "0.00050000", "N": "BNB", "T": 1499405658657,
    "t": 77, "m": true, "Z": "0.05132205", "Y": "0.05132205", ...}``

    - ``l`` 0 gives no fill; with ``X`` NEW or PARTIALLY_FILLED nothing at all.
    - ``X`` CANCELED, EXPIRED, EXPIRED_IN_MATCH or REJECTED after the fill (or without one:
      an IOC remainder) also gives the order's end, as its own event.
    - The fill price is ``L``; when ``L`` is 0 (seen live: nautilus_trader issue #3578,
      ``OrderFilled(last_px=0)``) it is the fill's quote amount ``Y`` / ``l``, else the
      order's cumulative quote delta ``(Z - previous Z) / l`` (the previous ``Z`` is 0 for the
      order's first fill, ``z == l``, else read from ``ctx.orders`` if that remembered the
      order's previous fill and its ``z`` adds up), else the order price ``p``. If none is
      there, nothing is booked: an :class:`ExchangeUpdateUnusable` says so (logged as an
      error) and the REST trade poll books the fill with its real price.
    """
    out: Parsed = []
    ts, cid, order_id, status = _ts(d), _client_id(d), str(d["i"]), str(d["X"])
    amount, filled, quote = dec(d["l"]), dec(d["z"]), opt_dec(d.get("Z"))
    if amount > 0:
        price = _fill_price(d, amount, filled, quote, ctx.orders)
        symbol = ctx.symbols.unified(d["s"])
        if price is None:
            out.append(
                ExchangeUpdateUnusable(
                    ts_event=ts,
                    ts_recv=ctx.ts_recv,
                    subject=cid,
                    reason=f"Binance fill {d['t']} of {amount} {symbol} (order {order_id}) has no "
                    "price: L, Y and p are 0 and the cumulative quote Z gives none",
                )
            )
        else:
            out.append(
                OrderFilled(
                    ts_event=ts,
                    ts_recv=ctx.ts_recv,
                    client_id=cid,
                    exchange_id=order_id,
                    trade_id=str(d["t"]),
                    symbol=symbol,
                    side=Side(str(d["S"]).lower()),
                    price=price,
                    amount=amount,
                    fee=dec(d["n"]),
                    fee_asset=d["N"] or "",
                    filled_total=filled,
                    is_final=status == "FILLED",
                    liquidity=Liquidity.MAKER if d["m"] else Liquidity.TAKER,
                    venue_order_type=d.get("o"),
                    time_in_force=d.get("f"),
                    order_price=positive(d.get("p")),
                    order_amount=opt_dec(d.get("q")),
                    stop_price=positive(d.get("P")),
                    cum_quote=quote,
                )
            )
    if ctx.orders is not None:
        if status in _STILL_LIVE:
            if quote is not None:
                ctx.orders.put(order_id, filled, quote)
        else:
            ctx.orders.forget(order_id)
    end = _ENDS.get(status)
    if end is not None:
        out.extend(end(d, ctx))
    return out


def _fill_price(
    d: dict[str, Any],
    amount: Decimal,
    filled: Decimal,
    quote: Decimal | None,
    orders: OrderMemory | None,
) -> Decimal | None:
    """The price of a fill of ``amount`` (see :func:`order_trade`), or None."""
    last = dec(d["L"])
    if last > 0:
        return last
    last_quote = positive(d.get("Y"))
    if last_quote is not None:
        return last_quote / amount
    if quote is not None:
        previous = (
            (Decimal(0), Decimal(0))
            if filled == amount
            else (orders.get(str(d["i"])) if orders is not None else None)
        )
        if previous is not None and previous[0] + amount == filled and quote > previous[1]:
            return (quote - previous[1]) / amount
    return positive(d.get("p"))


def order_amended(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """``x`` REPLACED: the order was amended keeping its priority (Binance "order amend keep
    priority" only lowers the quantity): the same order (``i``), its new quantity ``q``.

    ``{"e": "executionReport", ..., "c": "mUvo...", "C": "", "x": "REPLACED", "X": "NEW",
    "i": 4293153, "q": "0.50000000", "p": "0.10264410", ...}``
    """
    return [
        OrderAmended(
            ts_event=_ts(d),
            ts_recv=ctx.ts_recv,
            client_id=_client_id(d),
            exchange_id=str(d["i"]),
            amount=dec(d["q"]),
            price=positive(d.get("p")),
        )
    ]


def order_canceled(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """``x`` CANCELED: canceled by us or on the exchange's page (``C`` is the order's id)."""
    return [
        OrderCanceled(
            ts_event=_ts(d), ts_recv=ctx.ts_recv, client_id=_client_id(d), reason="canceled"
        )
    ]


def order_expired(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """``x`` EXPIRED (time in force, e.g. an IOC remainder) or TRADE_PREVENTION (self-trade
    prevention expired it); the reason carries Binance's expiry reason ``eR`` when sent."""
    reason = "trade_prevention" if d["x"] == "TRADE_PREVENTION" else "expired"
    if d.get("eR"):
        reason = f"{reason}: {d['eR']}"
    return [
        OrderCanceled(
            ts_event=_ts(d),
            ts_recv=ctx.ts_recv,
            client_id=_client_id(d),
            reason=reason,
            expired=True,
        )
    ]


def order_rejected(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """``x`` REJECTED, with the reason in ``r`` (e.g. INSUFFICIENT_BALANCES)."""
    kind = (
        ErrorKind.INSUFFICIENT_FUNDS
        if d["r"] == "INSUFFICIENT_BALANCES"
        else ErrorKind.INVALID_ORDER
    )
    return [
        OrderRejected(
            ts_event=_ts(d),
            ts_recv=ctx.ts_recv,
            client_id=_client_id(d),
            reason=str(d["r"]),
            kind=kind,
        )
    ]


# Order statuses (X) after a fill: still live, or the end reported with it.
_STILL_LIVE = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW", "PENDING_CANCEL"})
_ENDS: dict[str, Parser] = {
    "CANCELED": order_canceled,
    "EXPIRED": order_expired,
    "EXPIRED_IN_MATCH": order_expired,
    "REJECTED": order_rejected,
}


EXECUTIONS: dict[str, Parser] = {
    "executionReport.NEW": order_new,
    "executionReport.TRADE": order_trade,
    "executionReport.CALCULATED": order_trade,
    "executionReport.REPLACED": order_amended,
    "executionReport.CANCELED": order_canceled,
    "executionReport.EXPIRED": order_expired,
    "executionReport.TRADE_PREVENTION": order_expired,
    "executionReport.REJECTED": order_rejected,
}
