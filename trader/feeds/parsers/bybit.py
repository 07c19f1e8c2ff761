"""Bybit v5 websocket payloads -> events. Pure functions, one per topic.

:func:`parse` dispatches data messages on their ``topic`` prefix (``publicTrade.BTCUSDT`` ->
``publicTrade``) through :data:`TOPICS`, and turns replies to our requests (``op`` auth,
subscribe, ping) into :class:`Control` signals. Numbers are JSON strings and become ``Decimal``
without passing through float; times are milliseconds.

Public messages carry no market category; the connection knows it (one public endpoint per
category) and passes it in ``ctx.category``. Private messages carry ``category`` on every item.

Missing or zero fields: each private topic's parser states its policy (:func:`order`,
:func:`execution`, :func:`wallet`); the rule throughout is that nothing is booked at a price of
0 or a size of 0, an absent optional figure is None on the event, and a figure that cannot be
derived gives an :class:`ExchangeUpdateUnusable` for that item while the message's other items
are still used.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from trader.events import (
    BalanceUpdate,
    Candle,
    ExchangeUpdateUnusable,
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
    opt_dec,
    positive,
)
from trader.model.orders import Side

_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}

# Our candle intervals (Binance's notation, ``streams.kline_interval``) -> Bybit's
# ``kline.<interval>`` (docs v5/websocket/public/kline: 1 3 5 15 30 60 120 240 360 720 D W M).
KLINE_INTERVALS = {
    "1m": "1",
    "3m": "3",
    "5m": "5",
    "15m": "15",
    "30m": "30",
    "1h": "60",
    "2h": "120",
    "4h": "240",
    "6h": "360",
    "12h": "720",
    "1d": "D",
    "1w": "W",
    "1M": "M",
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
    return [
        QuoteTick(
            ts_event=ms_to_ns(msg["ts"]),
            ts_recv=ctx.ts_recv,
            symbol=ctx.symbols.unified(d["symbol"], ctx.category),
            bid=dec(d["bid1Price"]),
            bid_size=dec(d["bid1Size"]),
            ask=dec(d["ask1Price"]),
            ask_size=dec(d["ask1Size"]),
        )
    ]


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
    return [
        QuoteTick(
            ts_event=ms_to_ns(msg["ts"]),
            ts_recv=ctx.ts_recv,
            symbol=ctx.symbols.unified(d["s"], ctx.category),
            bid=dec(bid),
            bid_size=dec(bid_size),
            ask=dec(ask),
            ask_size=dec(ask_size),
        )
    ]


def kline(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Candles of one symbol (the topic names it; the data does not), sent while each forms
    (``confirm`` false) and once closed; intervals in our notation (``"5"`` -> ``"5m"``).

    ``{"topic": "kline.5.BTCUSDT", "data": [{"start": 1672324800000, "end": 1672325099999,
    "interval": "5", "open": "16649.5", "close": "16677", "high": "16677", "low": "16608",
    "volume": "2.081", "turnover": "34666.4005", "confirm": false,
    "timestamp": 1672324988882}], "ts": 1672324988882, "type": "snapshot"}``
    """
    symbol = ctx.symbols.unified(str(msg["topic"]).rpartition(".")[2], ctx.category)
    return [
        Candle(
            ts_event=ms_to_ns(k["timestamp"]),
            ts_recv=ctx.ts_recv,
            symbol=symbol,
            interval=_OUR_INTERVALS.get(str(k["interval"]), str(k["interval"])),
            open=dec(k["open"]),
            high=dec(k["high"]),
            low=dec(k["low"]),
            close=dec(k["close"]),
            volume=dec(k["volume"]),
            start_ns=ms_to_ns(k["start"]),
            closed=bool(k["confirm"]),
        )
        for k in msg["data"]
    ]


def public_trade(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Public trades; ``S`` is the taker's side.

    ``{"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868,
    "data": [{"T": 1672304486865, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": "16578.50",
    "i": "20f43950-d8dd-5b31-9112-a178eb6023af", ...}]}``
    """
    return [
        TradeTick(
            ts_event=ms_to_ns(t["T"]),
            ts_recv=ctx.ts_recv,
            symbol=ctx.symbols.unified(t["s"], ctx.category),
            price=dec(t["p"]),
            size=dec(t["v"]),
            aggressor=_SIDES[t["S"]],
            trade_id=str(t["i"]),
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

    Rejected also comes after a partial fill (the rest of an IOC or market order refused): the
    order ends REJECTED with its fills kept (the order state machine allows a live order to end
    so). Missing or empty ``orderLinkId``: the order is known by ``orderId``; ``rejectReason``
    and ``cancelType`` are carried as they come.

    ``{"topic": "order", "creationTime": 1672364262474, "data": [{"symbol": "BTCUSDT",
    "orderId": "5cf98598-...", "orderLinkId": "trd-1", "side": "Sell", "orderStatus": "New",
    "rejectReason": "EC_NoError", "category": "spot", ...}]}``
    """
    ts = ms_to_ns(msg["creationTime"])
    out: Parsed = []
    for o in msg["data"]:
        status = o["orderStatus"]
        if status == "New":
            out.append(
                OrderAccepted(
                    ts_event=ts,
                    ts_recv=ctx.ts_recv,
                    client_id=_client_id(o),
                    exchange_id=str(o["orderId"]),
                )
            )
        elif status == "Rejected":
            out.append(
                OrderRejected(
                    ts_event=ts,
                    ts_recv=ctx.ts_recv,
                    client_id=_client_id(o),
                    reason=str(o["rejectReason"]),
                )
            )
        elif status in ("Cancelled", "PartiallyFilledCanceled", "Deactivated"):
            out.append(
                OrderCanceled(
                    ts_event=ts,
                    ts_recv=ctx.ts_recv,
                    client_id=_client_id(o),
                    reason=f"{status}: {o.get('cancelType', '')}",
                )
            )
        elif status not in ("Filled", "PartiallyFilled", "Untriggered", "Triggered"):
            raise UnknownMessage(f"order.{status}")
    return out


def execution(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Executions: each one that changes the position is a fill, with its price, quantity,
    fee and fee currency; the order's cumulative filled amount is ``orderQty - leavesQty``.
    ``extraFees`` (regional taxes) are not part of ``fee``.

    ``{"topic": "execution", "creationTime": 1746270400355, "data": [{"category": "linear",
    "symbol": "BTCUSDT", "execFee": "26.3725275", "execId": "0ab1bdf7-...",
    "execPrice": "95900.1", "execQty": "0.5", "execType": "Trade", "leavesQty": "0",
    "orderId": "9aac161b-...", "orderLinkId": "", "orderQty": "0.5", "orderPrice": "94942.5",
    "orderType": "Market", "feeRate": "0.00055", "side": "Sell", "execTime": "1746270400353",
    "isMaker": false, "feeCurrency": "USDT", ...}]}``

    ``execType`` (Bybit v5 enum): Trade, and the executions the exchange makes on the account's
    behalf that move the position as a trade does, AdlTrade (auto-deleveraging), BustTrade
    (liquidation), BlockTrade, MovePosition and Delivery (a future or option settled at expiry),
    are fills (the system's orders are not involved: their ``orderLinkId`` is empty, so they
    count on the position only). Funding and Settle move cash, not the position: no fill (the
    ``wallet`` message that follows carries the new balance). Any other type raises
    :class:`UnknownMessage`, so it is seen and counted.

    Policy for missing or zero fields: ``execQty`` 0 gives no fill; ``execPrice`` 0 or absent
    books nothing and gives an :class:`ExchangeUpdateUnusable` (never a price of 0; the REST
    trade poll books the fill); ``feeCurrency`` absent or empty is derived from the market:
    on spot Bybit takes the fee from what the trade pays in, the base asset on a buy and the
    quote asset on a sell; on derivatives it is the settle asset (``BTC/USDT:USDT`` -> USDT,
    ``BTC/USD:BTC`` -> BTC); an unknown market leaves it empty. ``orderPrice``,
    ``orderType`` and ``feeRate`` absent or empty give None on the event.
    """
    out: Parsed = []
    for e in msg["data"]:
        kind = e["execType"]
        if kind in _CASH_MOVES:
            continue
        if kind not in _FILLS:
            raise UnknownMessage(f"execution.{kind}")
        amount = dec(e["execQty"])
        if amount <= 0:
            continue
        ts, cid = ms_to_ns(e["execTime"]), _client_id(e)
        symbol, side = ctx.symbols.unified(e["symbol"], e["category"]), _SIDES[e["side"]]
        price = positive(e.get("execPrice"))
        if price is None:
            out.append(
                ExchangeUpdateUnusable(
                    ts_event=ts,
                    ts_recv=ctx.ts_recv,
                    subject=cid,
                    reason=f"Bybit {kind} execution {e['execId']} of {amount} {symbol} (order "
                    f"{e['orderId']}) has no price",
                )
            )
            continue
        leaves = dec(e["leavesQty"])
        out.append(
            OrderFilled(
                ts_event=ts,
                ts_recv=ctx.ts_recv,
                client_id=cid,
                exchange_id=str(e["orderId"]),
                trade_id=str(e["execId"]),
                symbol=symbol,
                side=side,
                price=price,
                amount=amount,
                fee=dec(e["execFee"]),
                fee_asset=e.get("feeCurrency") or _fee_asset(symbol, side),
                filled_total=dec(e["orderQty"]) - leaves,
                is_final=leaves == 0,
                liquidity=Liquidity.MAKER if e["isMaker"] else Liquidity.TAKER,
                venue_order_type=e.get("orderType") or None,
                order_price=positive(e.get("orderPrice")),
                order_amount=positive(e.get("orderQty")),
                fee_rate=opt_dec(e.get("feeRate")),
            )
        )
    return out


_FILLS = frozenset({"Trade", "AdlTrade", "BustTrade", "BlockTrade", "MovePosition", "Delivery"})
_CASH_MOVES = frozenset({"Funding", "Settle"})


def _fee_asset(symbol: str, side: Side) -> str:
    """The fee currency Bybit uses when it does not say (see :func:`execution`)."""
    pair, _, settle = symbol.partition(":")
    base, slash, quote = pair.partition("/")
    if settle:
        return settle
    if not slash:
        return ""
    return base if side is Side.BUY else quote


def wallet(msg: dict[str, Any], ctx: ParseContext) -> Parsed:
    """Balances per coin: total ``walletBalance``, split into free and used by what the coin
    says, in this order (Bybit v5 ``wallet`` topic):

    - ``locked`` ("locked balance due to the spot open order"): used = locked;
    - else ``free`` ("available balance for spot wallet", classic accounts): used = total - free;
    - else ``availableToWithdraw``: used = total - availableToWithdraw.

    An empty string counts as absent. A coin with none of the three gets no balance but an
    :class:`ExchangeUpdateUnusable` (nothing says how much is free, and guessing "all of it"
    could let risk spend what orders hold); the other coins of the message are used, and the
    REST balance poll fills the gap.

    ``{"topic": "wallet", "creationTime": 1700034722104, "data": [{"accountType": "UNIFIED",
    "coin": [{"coin": "BTC", "walletBalance": "0.00102964", "locked": "0", ...}], ...}]}``
    """
    ts = ms_to_ns(msg["creationTime"])
    out: Parsed = []
    for account in msg["data"]:
        for c in account["coin"]:
            asset, total = str(c["coin"]), dec(c["walletBalance"])
            used = _used(c, total)
            if used is None:
                out.append(
                    ExchangeUpdateUnusable(
                        ts_event=ts,
                        ts_recv=ctx.ts_recv,
                        subject=asset,
                        reason=f"Bybit wallet {account.get('accountType', '')}: {asset} has "
                        "walletBalance but none of locked, free, availableToWithdraw",
                    )
                )
                continue
            out.append(
                BalanceUpdate(
                    ts_event=ts,
                    ts_recv=ctx.ts_recv,
                    asset=asset,
                    free=total - used,
                    used=used,
                    total=total,
                )
            )
    return out


def _used(coin: dict[str, Any], total: Decimal) -> Decimal | None:
    locked = opt_dec(coin.get("locked"))
    if locked is not None:
        return locked
    for field in ("free", "availableToWithdraw"):
        free = opt_dec(coin.get(field))
        if free is not None:
            return total - free
    return None


TOPICS: dict[str, Parser] = {
    "tickers": tickers,
    "orderbook": orderbook,
    "kline": kline,
    "publicTrade": public_trade,
    "order": order,
    "execution": execution,
    "wallet": wallet,
}
