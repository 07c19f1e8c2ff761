"""Which websocket listeners an exchange gets.

Binance (spot) and Bybit (v5) stream; every other exchange gets none and is covered by REST
polling. Public market data streams for ``trade.markets``. The private stream (orders, fills,
balances) runs only in live mode with keys set: in paper mode the account is simulated, and
the real account's orders and balances must not overwrite it.

``exchange.sandbox`` selects the testnet hosts; ``exchange.urls.ws`` then replaces the scheme
and host of every websocket URL, keeping its path, so nothing connects anywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from trader.clock import Clock
from trader.config import Config, Mode
from trader.errors import ConfigError
from trader.events import Event
from trader.feeds import binance, bybit
from trader.feeds.parsers.bybit import KLINE_INTERVALS
from trader.feeds.parsers.common import INVERSE, LINEAR, SPOT, Parsed, market_category
from trader.feeds.websocket import Listener, StreamProtocol, listener_name
from trader.stats import Stats
from trader.workers import Worker

log = logging.getLogger(__name__)


def with_base(url: str, base: str | None) -> str:
    """``url`` with its scheme and host (and port) taken from ``base``, path kept."""
    if base is None:
        return url
    parts, new = urlsplit(url), urlsplit(base)
    return urlunsplit((new.scheme, new.netloc, parts.path, parts.query, parts.fragment))


def _private(cfg: Config) -> bool:
    return cfg.exchange.mode is Mode.LIVE and cfg.secrets.has_keys


def _binance(cfg: Config, clock: Clock) -> list[StreamProtocol]:
    ex = cfg.exchange
    market_url = binance.TESTNET_MARKET_URL if ex.sandbox else binance.MARKET_URL
    user_url = binance.TESTNET_USER_URL if ex.sandbox else binance.USER_URL
    spot = [m for m in cfg.trade.markets if market_category(m) == SPOT]
    other = [m for m in cfg.trade.markets if m not in spot]
    if other:
        log.warning(
            "binance streams cover spot markets only; %s polled over REST", ", ".join(other)
        )
    out: list[StreamProtocol] = []
    if spot:
        out.append(
            binance.BinanceMarketStreams(
                with_base(market_url, ex.urls.ws), spot, cfg.streams.kline_interval
            )
        )
    if _private(cfg):
        s = cfg.secrets
        out.append(
            binance.BinanceUserStream(
                with_base(user_url, ex.urls.ws),
                cfg.trade.markets,
                s.api_key or "",
                s.api_secret or "",
                clock,
            )
        )
    return out


def _bybit(cfg: Config, clock: Clock) -> list[StreamProtocol]:
    ex = cfg.exchange
    public_url = bybit.TESTNET_PUBLIC_URL if ex.sandbox else bybit.PUBLIC_URL
    private_url = bybit.TESTNET_PRIVATE_URL if ex.sandbox else bybit.PRIVATE_URL
    interval = cfg.streams.kline_interval
    if interval is not None and interval not in KLINE_INTERVALS:
        log.warning(
            "bybit has no %s candles (it has %s): no candle stream, so candle "
            "strategies (ma_cross) cannot trade",
            interval,
            ", ".join(KLINE_INTERVALS),
        )
        interval = None
    out: list[StreamProtocol] = []
    for category in (SPOT, LINEAR, INVERSE):
        markets = [m for m in cfg.trade.markets if market_category(m) == category]
        if markets:
            url = with_base(public_url.format(category=category), ex.urls.ws)
            out.append(bybit.BybitPublicStreams(url, category, markets, interval))
    if _private(cfg):
        s = cfg.secrets
        out.append(
            bybit.BybitPrivateStream(
                with_base(private_url, ex.urls.ws),
                cfg.trade.markets,
                s.api_key or "",
                s.api_secret or "",
                clock,
            )
        )
    return out


_VENUES: dict[str, Callable[[Config, Clock], list[StreamProtocol]]] = {
    "binance": _binance,
    "bybit": _bybit,
}

# Binance closes every connection after 24 hours; Bybit has no such limit.
_ROTATES = frozenset({"binance"})


def frame_interval_s(cfg: Config) -> tuple[float, str] | None:
    """How often an idle stream of ``cfg.exchange.name`` gets a frame, and from what: Binance's
    server pings every 20 s; Bybit answers our pings (``streams.ping_interval_s``). None for an
    exchange without streams."""
    if cfg.exchange.name == "binance":
        return binance.SERVER_PING_S, "binance's server pings every"
    if cfg.exchange.name == "bybit":
        return (
            cfg.streams.ping_interval_s,
            "bybit answers our pings (streams.ping_interval_s) every",
        )
    return None


def check_streams(cfg: Config) -> None:
    """Refuse a ``streams.dead_after_s`` an idle stream cannot meet: at or below the interval
    of its only frames (pings or pongs), every quiet stream would reconnect forever."""
    interval = frame_interval_s(cfg)
    if interval is not None and cfg.streams.dead_after_s <= interval[0]:
        seconds, source = interval
        raise ConfigError(
            f"streams.dead_after_s: {cfg.streams.dead_after_s:g}s is not above the "
            f"{seconds:g}s between an idle stream's frames ({source} {seconds:g}s): a quiet "
            f"stream would reconnect forever; set it above {seconds:g} (60 is usual)"
        )


def data_markets(feeds: list[Worker]) -> dict[str, tuple[str, ...]]:
    """Feed name -> the markets whose market data it carries, for the websocket listeners among
    ``feeds`` (an account stream carries none)."""
    return {f.name: f.protocol.data_markets for f in feeds if isinstance(f, Listener)}


def market_parsers(cfg: Config, clock: Clock) -> dict[str, Callable[[Any, int], Parsed]]:
    """Listener name -> ``parse`` of each market stream ``cfg`` opens: what the journal reader
    needs to turn its frame lines back into the events the listeners published."""
    venue = _VENUES.get(cfg.exchange.name)
    if venue is None:
        return {}
    return {listener_name(p): p.parse for p in venue(cfg, clock) if p.data_markets}


def build_stream_workers(
    cfg: Config,
    publish: Callable[[Event], None],
    clock: Clock,
    stats: Stats,
) -> list[Worker]:
    """The websocket listeners for ``cfg.exchange.name``; ``[]`` if it has no stream support.

    They report reconnects only as events (``FeedConnected``, ``FeedRecovered``): the wiring's
    handlers of those ask the poller and the reconciler for the REST refresh.
    """
    venue = _VENUES.get(cfg.exchange.name)
    if venue is None:
        return []
    rotate = cfg.streams.rotate_after_s if cfg.exchange.name in _ROTATES else None
    return [
        Listener(p, publish, clock, stats, cfg.streams, rotate_after_s=rotate)
        for p in venue(cfg, clock)
    ]
