"""Bybit v5 websocket payloads -> events. Pure functions, one per topic.

:func:`parse` dispatches data messages on their ``topic`` prefix (``publicTrade.BTCUSDT`` ->
``publicTrade``) through :data:`TOPICS`, and turns replies to our requests (``op`` auth,
subscribe, ping) into :class:`Control` signals. Numbers are JSON strings and become ``Decimal``
without passing through float; times are milliseconds.

Public messages carry no market category; the connection knows it (one public endpoint per
category) and passes it in ``ctx.category``. Private messages carry ``category`` on every item.
"""

from __future__ import annotations

from typing import Any

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

_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}

# Our candle intervals (Binance's notation, ``streams.kline_interval``) -> Bybit's
# ``kline.<interval>`` (docs v5/websocket/public/kline: 1 3 5 15 30 60 120 240 360 720 D W M).
KLINE_INTERVALS = {
    "1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
    "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W", "1M": "M",
}
_OUR_INTERVALS = {v: k for k, v in KLINE_INTERVALS.items()}


def parse(msg: Any, ctx: ParseContext) -> Parsed:
    """Parse any Bybit message; raises :class:`UnknownMessage`."""
    if not isinstance(msg, dict):
        raise UnknownMessage(type(msg).__name__)
    topic = msg.get("topic")
    if topic is not None:
        return dispatch(TOPICS, str(topic).partition(".")[0], msg, ctx)
    if "op" in msg:
        return reply(msg, ctx)
    raise UnknownMessage("?")


def reply(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """A reply to one of our requests.

    ``{"success": true, "ret_msg": "", "op": "auth", "conn_id": "cejreaspqfh3sjdnldmg-p"}``;
    ``{"success": true, "ret_msg": "subscribe", "op": "subscribe", ...}``; pongs come as
    ``{"success": true, "ret_msg": "pong", "op": "ping", ...}`` (public) or
    ``{"req_id": "test", "op": "pong", "args": ["1675418560633"], ...}`` (private).
    """
    op = msg["op"]
    if op in ("ping", "pong"):
        return [Control(ControlKind.ACK)]
    if "success" not in msg:
        raise UnknownMessage(f"op.{op}")  # not a reply: a request echoed back?
    if not msg["success"]:
        return [Control(ControlKind.FAILED, f"{op} refused: {msg.get('ret_msg', '')}")]
    if op == "auth":
        return [Control(ControlKind.AUTHENTICATED)]
    if op == "subscribe":
        return [Control(ControlKind.SUBSCRIBED)]
    return [Control(ControlKind.ACK)]


# ---------------------------------------------------------------------------- public


def tickers(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """A ticker: a quote when it carries the top of book (linear/inverse snapshots). Spot
    tickers carry no bid or ask, and derivative deltas only the fields that changed, so both
    give no event (top of book comes from ``orderbook.1``).

    ``{"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 1760325052630,
    "data": {"symbol": "BTCUSDT", "lastPrice": "66666.60", "bid1Price": "66666.60",
    "bid1Size": "23789.165", "ask1Price": "66666.70", "ask1Size": "23775.469", ...}}``
    """
    d = msg["data"]
    fields = ("bid1Price", "bid1Size", "ask1Price", "ask1Size")
    if not all(d.get(f) for f in fields):
        return []
    return [QuoteTick(
        ts_event=ms_to_ns(msg["ts"]), ts_recv=ctx.ts_recv,
        symbol=ctx.symbols.unified(d["symbol"], ctx.category), bid=dec(d["bid1Price"]),
        bid_size=dec(d["bid1Size"]), ask=dec(d["ask1Price"]), ask_size=dec(d["ask1Size"]),
    )]


def orderbook(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """A book snapshot's best bid and ask as a quote. We subscribe to ``orderbook.1``, which
    Bybit sends as snapshots only; a delta of a deeper book gives no event (its top cannot be
    known without keeping the book).

    ``{"topic": "orderbook.50.BTCUSDT", "type": "snapshot", "ts": 1672304484978,
    "data": {"s": "BTCUSDT", "b": [["16493.50", "0.006"], ...], "a": [["16611.00", "0.029"],
    ...], "u": 18521288, "seq": 7961638724}, "cts": 1672304484976}``
    """
    d = msg["data"]
    if msg["type"] != "snapshot" or not d["b"] or not d["a"]:
        return []
    (bid, bid_size), (ask, ask_size) = d["b"][0], d["a"][0]
    return [QuoteTick(
        ts_event=ms_to_ns(msg["ts"]), ts_recv=ctx.ts_recv,
        symbol=ctx.symbols.unified(d["s"], ctx.category), bid=dec(bid), bid_size=dec(bid_size),
        ask=dec(ask), ask_size=dec(ask_size),
    )]


def kline(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Candles of one symbol (the topic names it; the data does not), sent while each forms
    (``confirm`` false) and once closed; intervals in our notation (``"5"`` -> ``"5m"``).

    ``{"topic": "kline.5.BTCUSDT", "data": [{"start": 1672324800000, "end": 1672325099999,
    "interval": "5", "open": "16649.5", "close": "16677", "high": "16677", "low": "16608",
    "volume": "2.081", "turnover": "34666.4005", "confirm": false,
    "timestamp": 1672324988882}], "ts": 1672324988882, "type": "snapshot"}``
    """
    symbol = ctx.symbols.unified(str(msg["topic"]).rpartition(".")[2], ctx.category)
    return [Candle(
        ts_event=ms_to_ns(k["timestamp"]), ts_recv=ctx.ts_recv, symbol=symbol,
        interval=_OUR_INTERVALS.get(str(k["interval"]), str(k["interval"])), open=dec(k["open"]),
        high=dec(k["high"]), low=dec(k["low"]), close=dec(k["close"]), volume=dec(k["volume"]),
        start_ns=ms_to_ns(k["start"]), closed=bool(k["confirm"]),
    ) for k in msg["data"]]


def public_trade(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Public trades; ``S`` is the taker's side.

    ``{"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868,
    "data": [{"T": 1672304486865, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": "16578.50",
    "i": "20f43950-d8dd-5b31-9112-a178eb6023af", ...}]}``
    """
    return [
        TradeTick(
            ts_event=ms_to_ns(t["T"]), ts_recv=ctx.ts_recv,
            symbol=ctx.symbols.unified(t["s"], ctx.category), price=dec(t["p"]), size=dec(t["v"]),
            aggressor=_SIDES[t["S"]], trade_id=str(t["i"]),
        )
        for t in msg["data"]
    ]


# ---------------------------------------------------------------------------- private


def _client_id(o: dict[str, Any]) -> str:
    # Orders placed without our id (by hand on the website) are known by the exchange's id.
    return str(o["orderLinkId"] or o["orderId"])


def order(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Order status changes: New -> accepted, Rejected, Cancelled/PartiallyFilledCanceled/
    Deactivated -> canceled. Filled and PartiallyFilled give no event: the ``execution`` topic
    carries each fill with its price and fee, and a FILLED status arriving before the fill
    would make the store refuse that fill. Untriggered/Triggered belong to conditional orders,
    which we do not place. Any other status raises :class:`UnknownMessage`.

    ``{"topic": "order", "creationTime": 1672364262474, "data": [{"symbol": "BTCUSDT",
    "orderId": "5cf98598-...", "orderLinkId": "trd-1", "side": "Sell", "orderStatus": "New",
    "rejectReason": "EC_NoError", "category": "spot", ...}]}``
    """
    ts = ms_to_ns(msg["creationTime"])
    out: Parsed = []
    for o in msg["data"]:
        status = o["orderStatus"]
        if status == "New":
            out.append(OrderAccepted(ts_event=ts, ts_recv=ctx.ts_recv, client_id=_client_id(o),
                                     exchange_id=str(o["orderId"])))
        elif status == "Rejected":
            out.append(OrderRejected(ts_event=ts, ts_recv=ctx.ts_recv, client_id=_client_id(o),
                                     reason=str(o["rejectReason"])))
        elif status in ("Cancelled", "PartiallyFilledCanceled", "Deactivated"):
            out.append(OrderCanceled(ts_event=ts, ts_recv=ctx.ts_recv, client_id=_client_id(o),
                                     reason=f"{status}: {o.get('cancelType', '')}"))
        elif status not in ("Filled", "PartiallyFilled", "Untriggered", "Triggered"):
            raise UnknownMessage(f"order.{status}")
    return out


def execution(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Fills (``execType`` Trade): price, quantity, fee and its currency; the order's
    cumulative filled amount is ``orderQty - leavesQty``. Other execution types (funding,
    delivery, ADL) raise :class:`UnknownMessage` so they are seen and counted. ``extraFees``
    (regional taxes) are not part of ``fee``.

    ``{"topic": "execution", "creationTime": 1746270400355, "data": [{"category": "linear",
    "symbol": "BTCUSDT", "execFee": "26.3725275", "execId": "0ab1bdf7-...",
    "execPrice": "95900.1", "execQty": "0.5", "execType": "Trade", "leavesQty": "0",
    "orderId": "9aac161b-...", "orderLinkId": "", "orderQty": "0.5", "side": "Sell",
    "execTime": "1746270400353", "isMaker": false, "feeCurrency": "USDT", ...}]}``
    """
    out: Parsed = []
    for e in msg["data"]:
        if e["execType"] != "Trade":
            raise UnknownMessage(f"execution.{e['execType']}")
        leaves = dec(e["leavesQty"])
        out.append(OrderFilled(
            ts_event=ms_to_ns(e["execTime"]), ts_recv=ctx.ts_recv, client_id=_client_id(e),
            exchange_id=str(e["orderId"]), trade_id=str(e["execId"]),
            symbol=ctx.symbols.unified(e["symbol"], e["category"]), side=_SIDES[e["side"]],
            price=dec(e["execPrice"]), amount=dec(e["execQty"]), fee=dec(e["execFee"]),
            fee_asset=str(e.get("feeCurrency") or ""), filled_total=dec(e["orderQty"]) - leaves,
            is_final=leaves == 0, liquidity=Liquidity.MAKER if e["isMaker"] else Liquidity.TAKER,
        ))
    return out


def wallet(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Balances per coin: total ``walletBalance``, of which ``locked`` is held by open spot
    orders.

    ``{"topic": "wallet", "creationTime": 1700034722104, "data": [{"accountType": "UNIFIED",
    "coin": [{"coin": "BTC", "walletBalance": "0.00102964", "locked": "0", ...}], ...}]}``
    """
    ts = ms_to_ns(msg["creationTime"])
    out: Parsed = []
    for account in msg["data"]:
        for c in account["coin"]:
            total, locked = dec(c["walletBalance"]), dec(c["locked"] or "0")
            out.append(BalanceUpdate(ts_event=ts, ts_recv=ctx.ts_recv, asset=str(c["coin"]),
                                     free=total - locked, used=locked, total=total))
    return out


TOPICS: dict[str, Parser] = {
    "tickers": tickers,
    "orderbook": orderbook,
    "kline": kline,
    "publicTrade": public_trade,
    "order": order,
    "execution": execution,
    "wallet": wallet,
}
