"""Binance spot websocket protocols: what to connect to, what to send, how to parse.

- :class:`BinanceMarketStreams`: combined market streams (``/stream``) for the configured
  markets, subscribed with one ``SUBSCRIBE`` request per connect: ``<symbol>@bookTicker``,
  ``@trade`` and ``@kline_<interval>``.
- :class:`BinanceUserStream`: the user data stream over the WebSocket API
  (``/ws-api/v3``), subscribed with ``userDataStream.subscribe.signature`` (the listenKey
  endpoints were removed for spot in February 2026). The request is signed with HMAC-SHA256
  of its parameters, sorted by name, as ``apiKey=...&timestamp=...``.

The server pings every 20 s (websocket-client answers), so neither sends pings of its own.
Both connections are limited to 24 h by Binance; the listener rotates them before that.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from trader.clock import Clock
from trader.feeds.parsers import binance
from trader.feeds.parsers.common import (
    OrderMemory,
    ParseContext,
    Parsed,
    SymbolMap,
    exchange_id,
)
from trader.model.units import NS_PER_MS

MARKET_URL = "wss://stream.binance.com:9443/stream"
USER_URL = "wss://ws-api.binance.com:443/ws-api/v3"
TESTNET_MARKET_URL = "wss://stream.testnet.binance.vision/stream"
TESTNET_USER_URL = "wss://ws-api.testnet.binance.vision/ws-api/v3"
SERVER_PING_S = 20.0  # the server's ping interval: an idle stream's only frames


def sign(secret: str, params: Mapping[str, Any]) -> str:
    """HMAC-SHA256 (hex) of ``params`` sorted by name, as Binance's WebSocket API wants it."""
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class BinanceMarketStreams:
    """Public market data for the configured (spot) markets on one connection."""

    venue = "binance"
    stream = "market"
    watch_data = True
    ping_message: str | None = None

    def __init__(self, url: str, markets: Sequence[str], kline_interval: str | None) -> None:
        self.url = url
        self.data_markets = tuple(markets)
        kinds = ["bookTicker", "trade"] + ([f"kline_{kline_interval}"] if kline_interval else [])
        self.streams = [f"{exchange_id(m).lower()}@{k}" for m in markets for k in kinds]
        self._symbols = SymbolMap(markets)
        self._ids = itertools.count(1)

    def connect_messages(self) -> list[str]:
        """Subscribe at once."""
        return self.subscribe_messages()

    def subscribe_messages(self) -> list[str]:
        """One SUBSCRIBE for every stream."""
        return [json.dumps({"method": "SUBSCRIBE", "params": self.streams, "id": next(self._ids)})]

    def parse(self, msg: Any, ts_recv: int) -> Parsed:
        """See :mod:`trader.feeds.parsers.binance`."""
        return binance.parse(msg, ParseContext(ts_recv, self._symbols))


class BinanceUserStream:
    """Orders, fills and balances of the account, over the WebSocket API."""

    venue = "binance"
    stream = "user"
    watch_data = False  # an idle account sends nothing for hours
    ping_message: str | None = None
    data_markets: tuple[str, ...] = ()  # the account, no market data

    def __init__(
        self, url: str, markets: Sequence[str], api_key: str, api_secret: str, clock: Clock
    ) -> None:
        self.url = url
        self._key = api_key
        self._secret = api_secret
        self._clock = clock
        self._symbols = SymbolMap(markets)
        self._orders = OrderMemory()  # outlives reconnects: fills are read against it
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"BinanceUserStream({self.url!r})"  # never the keys

    def connect_messages(self) -> list[str]:
        """Subscribe at once (the request carries its own signature)."""
        return self.subscribe_messages()

    def subscribe_messages(self) -> list[str]:
        """A freshly signed ``userDataStream.subscribe.signature`` request."""
        params: dict[str, Any] = {
            "apiKey": self._key,
            "timestamp": self._clock.now_ns() // NS_PER_MS,
        }
        params["signature"] = sign(self._secret, params)
        return [
            json.dumps(
                {
                    "id": f"subscribe-{next(self._ids)}",
                    "method": "userDataStream.subscribe.signature",
                    "params": params,
                }
            )
        ]

    def parse(self, msg: Any, ts_recv: int) -> Parsed:
        """See :mod:`trader.feeds.parsers.binance`."""
        return binance.parse(msg, ParseContext(ts_recv, self._symbols, orders=self._orders))
