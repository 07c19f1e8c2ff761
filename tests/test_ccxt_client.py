"""Building the ccxt instance: exchange ids, testnets, URL overrides, and the venue choice."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from urllib.parse import urlsplit

import ccxt
import pytest

from tests.doubles.binance_rest import BinanceRestDouble
from trader.clock import LiveClock
from trader.config import (
    Config,
    ExchangeConfig,
    Mode,
    Secrets,
    TradeConfig,
    UrlsConfig,
    config_from_dict,
)
from trader.errors import ConfigError
from trader.events import SubmitOrder
from trader.exchange.ccxt_client import make_exchange
from trader.exchange.ccxt_gateway import CcxtGateway
from trader.exchange.paper import PaperGateway
from trader.logsetup import setup_logging
from trader.model.orders import OrderType, Side
from trader.registries import check_config
from trader.wiring.venue import build_venue

BASE = "http://127.0.0.1:18080"


def all_urls(api) -> list[str]:
    if isinstance(api, dict):
        return [u for v in api.values() for u in all_urls(v)]
    return [api]


def paths(api) -> list[str]:
    return [urlsplit(u).path for u in all_urls(api)]


@pytest.mark.parametrize("name", ["binance", "bybit", "okx", "kraken"])
def test_the_rest_override_sends_every_api_url_to_its_host(name: str) -> None:
    plain = make_exchange(ExchangeConfig(name=name), None)
    ex = make_exchange(ExchangeConfig(name=name, urls=UrlsConfig(rest=BASE)), None)
    urls = all_urls(ex.urls["api"])
    assert len(urls) == len(all_urls(plain.urls["api"]))
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("http", "127.0.0.1:18080"), url
    assert paths(ex.urls["api"]) == paths(plain.urls["api"])  # every path kept
    assert ex.session.trust_env is False  # no proxy from the environment either


def test_sandbox_uses_the_testnet_and_an_override_keeps_its_paths() -> None:
    testnet = make_exchange(ExchangeConfig(name="binance", sandbox=True), None)
    assert urlsplit(testnet.urls["api"]["public"]).netloc == "testnet.binance.vision"
    both = make_exchange(
        ExchangeConfig(name="binance", sandbox=True, urls=UrlsConfig(rest=BASE)), None
    )
    assert all(u.startswith(BASE + "/") for u in all_urls(both.urls["api"]))
    assert paths(both.urls["api"]) == paths(testnet.urls["api"])


def test_an_exchange_without_a_testnet_cannot_use_sandbox() -> None:
    with pytest.raises(ConfigError, match="no testnet for 'kraken'"):
        make_exchange(ExchangeConfig(name="kraken", sandbox=True), None)


def test_the_instance_rate_limits_times_out_and_never_retries() -> None:
    ex = make_exchange(
        ExchangeConfig(name="binance", timeout_ms=1234), Secrets(api_key="k", api_secret="s")
    )
    assert ex.enableRateLimit is True and ex.timeout == 1234
    assert ex.rateLimit == ccxt.binance().rateLimit  # never lowered
    assert ex.options["maxRetriesOnFailure"] == 0
    assert (ex.apiKey, ex.secret) == ("k", "s")
    assert make_exchange(ExchangeConfig(name="binance"), None).apiKey in (None, "")


def test_an_unknown_exchange_id_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^exchange.name: unknown exchange 'binanse' "
        r"\(did you mean 'binance'\?\)$",
    ):
        check_config(config_from_dict({"exchange": {"name": "binanse"}}, {}))
    kraken = config_from_dict({"exchange": {"name": "kraken"}}, {})
    check_config(kraken)  # a known id passes
    assert kraken.exchange.name == "kraken"


def test_ccxt_never_logs_signed_requests_even_at_debug() -> None:
    root, ccxt_log = logging.getLogger(), logging.getLogger("ccxt")
    saved = (root.handlers[:], root.level, ccxt_log.level, threading.excepthook)
    setup_logging("DEBUG")
    try:
        assert root.getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("ccxt.base.exchange").getEffectiveLevel() > logging.DEBUG
    finally:
        root.handlers[:], root.level, ccxt_log.level, threading.excepthook = saved


def test_paper_mode_trades_on_paper_with_public_ccxt_market_data() -> None:
    with BinanceRestDouble() as double:
        cfg = Config(
            exchange=ExchangeConfig(
                name="binance", mode=Mode.PAPER, urls=UrlsConfig(rest=double.url)
            ),
            trade=TradeConfig(markets=("BTC/USDT",)),
            secrets=Secrets(api_key="test-key", api_secret="test-secret"),
        )
        venue = build_venue(cfg, lambda ev: None, LiveClock())
        assert isinstance(venue.gateway, PaperGateway)
        assert [w.name for w in venue.feeds] == ["ws-binance-market"]  # no account stream
        (market,) = venue.gateway.load_markets(["BTC/USDT"])
        (quote,) = venue.gateway.fetch_tickers(["BTC/USDT"])
        venue.gateway.on_quote(quote)
        assert {b.asset for b in venue.gateway.fetch_balances()} == {"USDT"}  # the paper account
        assert market.min_notional == 10 and quote.ask > 0
        # public endpoints only: the paper account never signs a request
        assert {r.path for r in double.requests} == {"/api/v3/exchangeInfo", "/api/v3/ticker/24hr"}


def test_live_mode_uses_the_ccxt_gateway_with_the_keys_and_the_streams() -> None:
    with BinanceRestDouble() as double:
        cfg = Config(
            exchange=ExchangeConfig(
                name="binance", mode=Mode.LIVE, urls=UrlsConfig(rest=double.url)
            ),
            trade=TradeConfig(markets=("BTC/USDT",)),
            secrets=Secrets(api_key="test-key", api_secret="test-secret"),
        )
        venue = build_venue(cfg, lambda ev: None, LiveClock())
        assert isinstance(venue.gateway, CcxtGateway) and venue.handlers == []
        assert venue.gateway.exchange.apiKey == "test-key"
        assert [w.name for w in venue.feeds] == ["ws-binance-market", "ws-binance-user"]
        events = venue.gateway.create_order(
            SubmitOrder(
                ts_event=1,
                ts_recv=1,
                client_id="trd-1",
                symbol="BTC/USDT",
                side=Side.BUY,
                order_type=OrderType.MARKET,
                amount=Decimal("3"),
            )
        )
        # the answer reports its fill too (the user stream and the poller will report it
        # again: the store applies it once, see test_store and test_poller)
        assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
        assert events[1].trade_id == str(double.trades[0]["id"]) and len(double.trades) == 1
