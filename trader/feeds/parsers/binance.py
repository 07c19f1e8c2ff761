"""Binance spot websocket payloads -> events. Pure functions, one per wire type.

:func:`parse` unwraps the three envelopes Binance uses and dispatches on the wire type through
:data:`EVENTS` (order updates: :mod:`trader.feeds.parsers.binance_orders`):

- combined market streams: ``{"stream": "btcusdt@trade", "data": {...}}``;
- the WebSocket API (user data, server notices): ``{"subscriptionId": 0, "event": {...}}``;
- bare events (raw streams, the legacy listenKey user stream): ``{"e": "trade", ...}``.

``bookTicker`` has no ``e`` field: its wire type comes from the stream name, or from its shape
when bare. Replies to our requests (``{"result": ..., "id": ...}``, WebSocket API
``{"id", "status", ...}``) become :class:`Control` signals. Prices and quantities are JSON
strings and become ``Decimal`` without passing through float; times are milliseconds.

Missing or zero fields: :func:`~trader.feeds.parsers.binance_orders.execution_report` states
the policy for order updates (nothing is booked at a size or price of 0; an order's fill is
stamped with its transaction time ``T``); market data and balances carry every field they use,
and a message without one is counted and logged by the listener as a bad message.
"""

from __future__ import annotations

import functools
from typing import Any

from trader.events import (
    BalanceUpdate,
    Candle,
    QuoteTick,
    TradeTick,
)
from trader.feeds.parsers.binance_orders import execution_report
from trader.feeds.parsers.common import (
    Control,
    ControlKind,
    ParseContext,
    Parsed,
    Parser,
    UnknownMessage,
    dec,
    dispatch,
    ms_to_ns,
)
from trader.model.orders import Side


def parse(msg: Any, ctx: ParseContext) -> Parsed:
    """Unwrap any Binance message and parse it; raises :class:`UnknownMessage`."""
    if not isinstance(msg, dict):
        raise UnknownMessage(type(msg).__name__)
    if "stream" in msg and "data" in msg:
        data = msg["data"]
        wire = data.get("e") or _stream_kind(msg["stream"])
        return dispatch(EVENTS, wire, data, ctx)
    if "event" in msg:
        data = msg["event"]
        return dispatch(EVENTS, data["e"], data, ctx)
    if "e" in msg:
        return dispatch(EVENTS, msg["e"], msg, ctx)
    if "id" in msg and msg.keys() & {"result", "error", "status"}:
        return reply(msg, ctx)
    if {"u", "s", "b", "a"} <= msg.keys():
        return book_ticker(msg, ctx)
    raise UnknownMessage("?")


@functools.lru_cache(maxsize=1024)
def _stream_kind(stream: Any) -> str:
    """``btcusdt@bookTicker`` -> ``bookTicker`` (cached: the same few names every message)."""
    return str(stream).partition("@")[2]


def reply(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """A reply to one of our requests.

    Market streams: ``{"result": null, "id": 1}`` acknowledges SUBSCRIBE (the only request we
    send there); ``{"error": {"code": 2, "msg": "..."}, "id": 1}`` refuses it.
    WebSocket API: ``{"id": "d3df...", "status": 200, "result": {"subscriptionId": 0}}``
    acknowledges ``userDataStream.subscribe.signature``; ``{"id", "status": 400,
    "error": {"code": -2010, "msg": "..."}}`` refuses a request.
    """
    error = msg.get("error")
    if error is not None or msg.get("status", 200) != 200:
        detail = f"{error.get('code')} {error.get('msg')}" if isinstance(error, dict) else str(msg)
        return [Control(ControlKind.FAILED, f"request {msg.get('id')} refused: {detail}")]
    result = msg.get("result")
    if result is None or (isinstance(result, dict) and "subscriptionId" in result):
        return [Control(ControlKind.SUBSCRIBED)]
    return [Control(ControlKind.ACK)]


# ---------------------------------------------------------------------------- market data


def book_ticker(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Top of book; no event time on this stream, so ``ts_event`` is the receipt time.

    ``{"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
    "a": "25.36520000", "A": "40.66000000"}``
    """
    return [
        QuoteTick(
            ts_event=ctx.ts_recv,
            ts_recv=ctx.ts_recv,
            symbol=ctx.symbols.unified(d["s"]),
            bid=dec(d["b"]),
            bid_size=dec(d["B"]),
            ask=dec(d["a"]),
            ask_size=dec(d["A"]),
        )
    ]


def trade(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """One trade (``t`` id) or aggregated trade (``a`` id); ``m`` true means the buyer was the
    maker, so the seller was the aggressor.

    ``{"e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345, "p": "0.001", "q": "100",
    "T": 1672515782136, "m": true, "M": true}``
    """
    trade_id = d["t"] if d["e"] == "trade" else d["a"]
    return [
        TradeTick(
            ts_event=ms_to_ns(d["T"]),
            ts_recv=ctx.ts_recv,
            symbol=ctx.symbols.unified(d["s"]),
            price=dec(d["p"]),
            size=dec(d["q"]),
            aggressor=Side.SELL if d["m"] else Side.BUY,
            trade_id=str(trade_id),
        )
    ]


def kline(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """A candle, sent on every update while it forms (``x`` false) and once closed.

    ``{"e": "kline", "E": 1672515782136, "s": "BNBBTC", "k": {"t": 1672515780000, "i": "1m",
    "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "x": false, ...}}``
    """
    k = d["k"]
    return [
        Candle(
            ts_event=ms_to_ns(d["E"]),
            ts_recv=ctx.ts_recv,
            symbol=ctx.symbols.unified(d["s"]),
            interval=str(k["i"]),
            open=dec(k["o"]),
            high=dec(k["h"]),
            low=dec(k["l"]),
            close=dec(k["c"]),
            volume=dec(k["v"]),
            start_ns=ms_to_ns(k["t"]),
            closed=bool(k["x"]),
        )
    ]


# ---------------------------------------------------------------------------- user data


def account_position(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Absolute balances (free ``f``, locked ``l``) of every asset a change touched; Binance
    sends one after any balance change, whatever caused it.

    ``{"e": "outboundAccountPosition", "E": 1564034571105, "u": 1564034571073,
    "B": [{"a": "ETH", "f": "10000.000000", "l": "0.000000"}]}``
    """
    ts = ms_to_ns(d["E"])
    out: Parsed = []
    for b in d["B"]:
        free, locked = dec(b["f"]), dec(b["l"])
        out.append(
            BalanceUpdate(
                ts_event=ts,
                ts_recv=ctx.ts_recv,
                asset=str(b["a"]),
                free=free,
                used=locked,
                total=free + locked,
            )
        )
    return out


def balance_delta(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """A deposit, withdrawal or transfer (``balanceUpdate``, delta ``d``) or an external lock
    (``externalLockUpdate``): no event. Our ``BalanceUpdate`` holds absolute figures, and
    Binance follows every balance change with an ``outboundAccountPosition`` carrying them;
    applying the delta as well would count the change twice. The REST balance refresh after
    every reconnect, and the periodic balance poll, repair anything a lost message would leave.

    ``{"e": "balanceUpdate", "E": 1573200697110, "a": "BTC", "d": "100.00000000",
    "T": 1573200697068}``
    """
    return []


def list_status(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """An order list's (OCO) status: no event; each order of the list gets its own
    ``executionReport``, which carries everything we track.

    ``{"e": "listStatus", "E": 1564035303637, "s": "ETHBTC", "g": 2, "c": "OCO",
    "l": "EXEC_STARTED", "L": "EXECUTING", "O": [{"s": "ETHBTC", "i": 17, "c": "AJYs..."}]}``
    """
    return []


def stream_terminated(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Our user data subscription ended (e.g. the session logged out): subscribe again.

    ``{"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": 1728973001334}}``
    """
    return [Control(ControlKind.RESUBSCRIBE, "eventStreamTerminated")]


def server_shutdown(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """The server is about to close the connection for maintenance: reconnect now.

    ``{"e": "serverShutdown", "E": 1770123456789}`` (also inside ``stream``/``data`` and
    ``event`` envelopes)
    """
    return [Control(ControlKind.RECONNECT, "serverShutdown")]


def listen_key_expired(d: dict[str, Any], ctx: ParseContext) -> Parsed:
    """The legacy listenKey user stream died. We subscribe through the WebSocket API and hold no
    listen key, so this can only come from an old-style endpoint: reconnect and subscribe anew.

    ``{"e": "listenKeyExpired", "E": 1699596037418, "listenKey": "OfYGbUzi3Pra..."}``
    """
    return [Control(ControlKind.RECONNECT, "listenKeyExpired")]


EVENTS: dict[str, Parser] = {
    "bookTicker": book_ticker,
    "trade": trade,
    "aggTrade": trade,
    "kline": kline,
    "executionReport": execution_report,
    "outboundAccountPosition": account_position,
    "balanceUpdate": balance_delta,
    "externalLockUpdate": balance_delta,
    "listStatus": list_status,
    "eventStreamTerminated": stream_terminated,
    "serverShutdown": server_shutdown,
    "listenKeyExpired": listen_key_expired,
}
