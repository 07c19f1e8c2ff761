"""Bybit v5 websocket protocols: what to connect to, what to send, how to parse.

- :class:`BybitPublicStreams`: one connection per market category (``/v5/public/spot``,
  ``/linear``, ``/inverse``) with ``orderbook.1.<symbol>`` (top of book; Bybit sends level 1
  as snapshots only, and spot tickers carry no bid/ask), ``publicTrade.<symbol>`` and, when a
  candle interval is configured, ``kline.<interval>.<symbol>``.
- :class:`BybitPrivateStream`: ``/v5/private``, authenticated with
  ``{"op": "auth", "args": [key, expires, hex(HMAC-SHA256(secret, "GET/realtime" + expires))]}``,
  then subscribed to ``order``, ``execution`` and ``wallet``.

Bybit expects the client to ping (``{"op": "ping"}``, every 20 s by default) on both, and
drops idle connections after 10 minutes otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from trader.clock import Clock
from trader.feeds.parsers import bybit
from trader.feeds.parsers.common import ParseContext, Parsed, SymbolMap, exchange_id
from trader.model.units import NS_PER_MS

PUBLIC_URL = "wss://stream.bybit.com/v5/public/{category}"
PRIVATE_URL = "wss://stream.bybit.com/v5/private"
TESTNET_PUBLIC_URL = "wss://stream-testnet.bybit.com/v5/public/{category}"
TESTNET_PRIVATE_URL = "wss://stream-testnet.bybit.com/v5/private"
PING = json.dumps({"op": "ping"})
MAX_ARGS_PER_REQUEST = 10  # Bybit's limit for spot; applied to every category
AUTH_VALID_MS = 10_000


def auth_signature(secret: str, expires_ms: int) -> str:
    """Hex HMAC-SHA256 of ``GET/realtime{expires}``."""
    payload = f"GET/realtime{expires_ms}"
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class BybitPublicStreams:
    """Top of book and trades for the configured markets of one category."""

    venue = "bybit"
    watch_data = True
    ping_message: str | None = PING

    def __init__(
        self, url: str, category: str, markets: Sequence[str], kline_interval: str | None = None
    ) -> None:
        """``kline_interval`` in our notation (``"1m"``), one of
        :data:`~trader.feeds.parsers.bybit.KLINE_INTERVALS`; None: no candles."""
        self.url = url
        self.stream = category
        self.category = category
        self.data_markets = tuple(markets)
        kinds = ["orderbook.1", "publicTrade"]
        if kline_interval is not None:
            kinds.append(f"kline.{bybit.KLINE_INTERVALS[kline_interval]}")
        self.topics = [f"{kind}.{exchange_id(m)}" for m in markets for kind in kinds]
        self._symbols = SymbolMap(markets)

    def connect_messages(self) -> list[str]:
        """Subscribe at once."""
        return self.subscribe_messages()

    def subscribe_messages(self) -> list[str]:
        """Subscribe requests of at most ten topics each."""
        n = MAX_ARGS_PER_REQUEST
        return [
            json.dumps({"op": "subscribe", "args": self.topics[i : i + n]})
            for i in range(0, len(self.topics), n)
        ]

    def parse(self, msg: Any, ts_recv: int) -> Parsed:
        """See :mod:`trader.feeds.parsers.bybit`."""
        return bybit.parse(msg, ParseContext(ts_recv, self._symbols, self.category))


class BybitPrivateStream:
    """Orders, fills and balances of the account."""

    venue = "bybit"
    stream = "private"
    watch_data = False  # an idle account sends nothing; pongs prove the connection lives
    ping_message: str | None = PING
    data_markets: tuple[str, ...] = ()  # the account, no market data
    topics = ("order", "execution", "wallet")

    def __init__(
        self, url: str, markets: Sequence[str], api_key: str, api_secret: str, clock: Clock
    ) -> None:
        self.url = url
        self._key = api_key
        self._secret = api_secret
        self._clock = clock
        self._symbols = SymbolMap(markets)

    def __repr__(self) -> str:
        return f"BybitPrivateStream({self.url!r})"  # never the keys

    def connect_messages(self) -> list[str]:
        """Authenticate first; the subscriptions follow the server's acknowledgement."""
        expires = self._clock.now_ns() // NS_PER_MS + AUTH_VALID_MS
        return [
            json.dumps(
                {"op": "auth", "args": [self._key, expires, auth_signature(self._secret, expires)]}
            )
        ]

    def subscribe_messages(self) -> list[str]:
        """The private topics."""
        return [json.dumps({"op": "subscribe", "args": list(self.topics)})]

    def parse(self, msg: Any, ts_recv: int) -> Parsed:
        """See :mod:`trader.feeds.parsers.bybit`."""
        return bybit.parse(msg, ParseContext(ts_recv, self._symbols))
