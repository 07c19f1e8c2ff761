"""Which listeners each exchange gets, and where they connect; the streams config section."""

from __future__ import annotations

from typing import Any

import pytest

from trader.clock import ManualClock
from trader.config import config_from_dict
from trader.errors import ConfigError
from trader.feeds.streams import build_stream_workers, with_base
from trader.feeds.websocket import Listener
from trader.stats import Stats

KEYS = {"TRADER_API_KEY": "k", "TRADER_API_SECRET": "s"}


def workers(
    exchange: dict[str, Any], markets: list[str] | None = None, env: dict[str, str] | None = None
) -> dict[str, Listener]:
    data = {"exchange": exchange, "trade": {"markets": markets or ["BTC/USDT"]}}
    cfg = config_from_dict(data, env or {})
    out = build_stream_workers(cfg, lambda e: None, ManualClock(0), Stats())
    assert all(isinstance(w, Listener) for w in out)
    return {w.name: w for w in out}  # type: ignore[misc]


def test_binance_paper_streams_market_data_only() -> None:
    got = workers({"name": "binance"}, env=KEYS)  # paper: the real account is not streamed
    assert list(got) == ["ws-binance-market"]
    assert got["ws-binance-market"].protocol.url == "wss://stream.binance.com:9443/stream"


def test_binance_live_adds_the_user_stream_and_honours_sandbox_and_overrides() -> None:
    live = {"name": "binance", "mode": "live"}
    got = workers(live, env=KEYS)
    assert got["ws-binance-user"].protocol.url == "wss://ws-api.binance.com:443/ws-api/v3"
    testnet = workers({**live, "sandbox": True}, env=KEYS)
    assert [w.protocol.url for w in testnet.values()] == [
        "wss://stream.testnet.binance.vision/stream",
        "wss://ws-api.testnet.binance.vision/ws-api/v3",
    ]
    local = workers({**live, "sandbox": True, "urls": {"ws": "ws://127.0.0.1:8765"}}, env=KEYS)
    assert [w.protocol.url for w in local.values()] == [
        "ws://127.0.0.1:8765/stream",
        "ws://127.0.0.1:8765/ws-api/v3",
    ]


def test_binance_streams_spot_markets_only() -> None:
    got = workers({"name": "binance"}, markets=["BTC/USDT", "ETH/USDT:USDT"])
    assert got["ws-binance-market"].protocol.streams == [  # type: ignore[attr-defined]
        "btcusdt@bookTicker",
        "btcusdt@trade",
        "btcusdt@kline_1m",
    ]
    assert workers({"name": "binance"}, markets=["ETH/USDT:USDT"]) == {}


def test_bybit_gets_one_public_connection_per_category_and_a_private_one_in_live() -> None:
    got = workers(
        {"name": "bybit", "mode": "live", "urls": {"ws": "wss://proxy.local:1"}},
        markets=["BTC/USDT", "ETH/USDT:USDT", "BTC/USD:BTC"],
        env=KEYS,
    )
    assert {n: w.protocol.url for n, w in got.items()} == {
        "ws-bybit-spot": "wss://proxy.local:1/v5/public/spot",
        "ws-bybit-linear": "wss://proxy.local:1/v5/public/linear",
        "ws-bybit-inverse": "wss://proxy.local:1/v5/public/inverse",
        "ws-bybit-private": "wss://proxy.local:1/v5/private",
    }
    sandbox = workers({"name": "bybit", "sandbox": True})
    assert sandbox["ws-bybit-spot"].protocol.url == "wss://stream-testnet.bybit.com/v5/public/spot"


def test_only_binance_rotates() -> None:
    assert workers({"name": "binance"})["ws-binance-market"].rotate_after_s == 82_800
    assert workers({"name": "bybit"})["ws-bybit-spot"].rotate_after_s is None


def test_other_exchanges_get_no_listeners() -> None:
    assert workers({"name": "kraken"}) == {}
    assert workers({"name": "simulated"}) == {}


def test_with_base_keeps_path_and_query() -> None:
    assert (
        with_base("wss://a.b:9443/stream?x=1", "ws://127.0.0.1:5") == "ws://127.0.0.1:5/stream?x=1"
    )
    assert with_base("wss://a.b/ws", None) == "wss://a.b/ws"


def test_streams_section_is_strict() -> None:
    cfg = config_from_dict({"streams": {"stale_after_s": 5, "kline_interval": None}}, {})
    assert cfg.streams.stale_after_s == 5.0 and cfg.streams.kline_interval is None
    with pytest.raises(ConfigError, match="unknown key 'streams.stale_after' "):
        config_from_dict({"streams": {"stale_after": 5}}, {})
    with pytest.raises(ConfigError, match="streams.backoff_max_s"):
        config_from_dict({"streams": {"backoff_initial_s": 10, "backoff_max_s": 5}}, {})
    with pytest.raises(ConfigError, match="streams.rotate_after_s: 90000"):
        config_from_dict({"streams": {"rotate_after_s": 90000}}, {})
