"""Bybit v5: the ccxt gateway against the local Bybit REST double (signatures, error codes,
order lookups, fills from executions), the error translation of Bybit's codes, and the candle
stream (subscription and the documented ``kline`` payload)."""

from __future__ import annotations

import logging
import time
from decimal import Decimal as D

import pytest

from tests.conftest import FakeMonotonic, submit_order
from tests.doubles.binance_rest import Fault
from tests.doubles.bybit_rest import BybitRestDouble, error, rate_limited
from trader.clock import LiveClock, ManualClock
from trader.config import ExchangeConfig, Mode, Secrets, UrlsConfig, config_from_dict
from trader.errors import (
    AuthenticationError,
    BadResponseError,
    ExchangeError,
    InsufficientFundsError,
    OrderNotFoundError,
    RateLimitedError,
    TemporaryError,
    UnknownOutcomeError,
)
from trader.events import (
    Candle,
    OrderAccepted,
    OrderStatus,
    OrderType,
    Side,
    SubmitOrder,
)
from trader.exchange.ccxt_errors import retry_after_s
from trader.exchange.ccxt_gateway import CcxtGateway
from trader.feeds.bybit import BybitPublicStreams
from trader.feeds.parsers import bybit
from trader.feeds.parsers.common import ParseContext, SymbolMap
from trader.feeds.streams import build_stream_workers
from trader.stats import Stats

KEYS = Secrets(api_key="test-key", api_secret="test-secret")
SYMBOL = "BTC/USDT"
NS = 1_000_000_000


@pytest.fixture
def double():
    with BybitRestDouble() as d:
        yield d


def gateway(
    double: BybitRestDouble, secrets: Secrets = KEYS, monotonic=time.monotonic
) -> CcxtGateway:
    cfg = ExchangeConfig(name="bybit", mode=Mode.LIVE, urls=UrlsConfig(rest=double.url))
    gw = CcxtGateway.from_config(cfg, secrets, LiveClock(), [SYMBOL], monotonic)
    gw.load_markets([SYMBOL])
    return gw


def order(
    cid: str, price: str | None = "4.1", amount: str = "1", side: Side = Side.SELL
) -> SubmitOrder:
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return submit_order(cid, side, amount, kind, price, SYMBOL)


def paths(double: BybitRestDouble, since: int = 0) -> list[str]:
    return [r.path for r in double.requests[since:]]


# ------------------------------------------------------------------ the account and signatures


def test_markets_and_the_unified_wallet_load_through_signed_requests(double) -> None:
    gw = gateway(double)
    balances = {b.asset: (b.free, b.used, b.total) for b in gw.fetch_balances()}
    assert balances == {"BTC": (D(10), D(0), D(10)), "USDT": (D(100_000), D(0), D(100_000))}
    gw.create_order(order("c1", price="5", amount="2"))  # rests: 2 BTC locked
    assert {b.asset: b.used for b in gw.fetch_balances()}["BTC"] == D(2)
    wallet = [r for r in double.requests if r.path == "/v5/account/wallet-balance"]
    assert wallet[-1].params == {"accountType": "UNIFIED"}


@pytest.mark.parametrize(
    "secrets,code",
    [
        (Secrets(api_key="test-key", api_secret="wrong"), "10004"),
        (Secrets(api_key="other-key", api_secret="test-secret"), "10003"),
    ],
    ids=["bad-signature", "unknown-key"],
)
def test_a_bad_key_or_signature_is_an_authentication_error(double, secrets, code) -> None:
    with pytest.raises(AuthenticationError, match=code):
        gateway(double, secrets)  # loading markets already signs a request (coin info)


def test_a_clock_outside_recv_window_is_an_authentication_error(double) -> None:
    gw = gateway(double)
    gw.exchange.options["timeDifference"] = -10_000  # our clock 10 s ahead of the exchange's
    with pytest.raises(AuthenticationError, match="10002"):
        gw.fetch_balances()


def test_insufficient_balance_is_refused_with_170131(double) -> None:
    with pytest.raises(InsufficientFundsError, match="170131"):
        gateway(double).create_order(order("c1", price=None, amount="11"))
    assert double.orders == {}


def test_a_rate_limit_pauses_until_bybits_reset_timestamp(double) -> None:
    clock = FakeMonotonic()
    gw = gateway(double, monotonic=clock)
    double.script("GET", "/v5/account/wallet-balance", rate_limited(reset_in_s=7.0))
    with pytest.raises(RateLimitedError) as err:
        gw.fetch_balances()
    assert 6.0 < err.value.retry_after_s <= 7.0  # from X-Bapi-Limit-Reset-Timestamp
    sent = len(double.requests)
    with pytest.raises(RateLimitedError, match="paused"):
        gw.fetch_open_orders([SYMBOL])
    assert len(double.requests) == sent  # nothing went out during the pause
    clock.now += 7.0
    assert gw.fetch_open_orders([SYMBOL]) == []


@pytest.mark.parametrize(
    "fault",
    [
        Fault(
            200,
            error(10018, "Exceeded the IP Rate Limit").body,
            {"X-Bapi-Limit-Reset-Timestamp": str(int(time.time() * 1000))},
        ),  # stamped "now"
        Fault(403, "access too frequent", {"Content-Type": "text/plain"}),
    ],
    ids=["10018", "http-403"],
)
def test_bybits_other_rate_limits_pause_for_the_default_time(double, fault) -> None:
    clock = FakeMonotonic()
    gw = gateway(double, monotonic=clock)
    double.script("GET", "/v5/account/wallet-balance", fault)
    with pytest.raises(RateLimitedError) as err:
        gw.fetch_balances()
    assert err.value.retry_after_s == 10.0  # no reset time given: the gateway's default
    clock.now += 10.0
    assert gw.fetch_balances()


def test_retry_after_reads_bybits_reset_timestamp_in_any_case() -> None:
    assert retry_after_s({"x-bapi-limit-reset-timestamp": "1500"}, now_ms=1000) == 0.5
    assert retry_after_s({"X-Bapi-Limit-Reset-Timestamp": "1000"}, now_ms=1000) is None
    assert retry_after_s({"Retry-After": "3", "X-Bapi-Limit-Reset-Timestamp": "9"}, 1) == 3.0
    assert retry_after_s({"X-Bapi-Limit-Reset-Timestamp": "1500"}) is None  # no clock given


@pytest.mark.parametrize(
    "fault,poll_error,create_error",
    [
        (
            error(10016, "Request timeout, please try again later"),
            TemporaryError,
            UnknownOutcomeError,
        ),
        (Fault.server_error(503), TemporaryError, UnknownOutcomeError),
        (Fault.malformed(), BadResponseError, UnknownOutcomeError),
        (error(99999, "something new"), ExchangeError, ExchangeError),
    ],
    ids=["retCode-timeout", "503", "malformed-json", "unknown-retCode"],
)
def test_failed_answers_are_translated_and_a_failed_create_may_have_placed_the_order(
    double, fault, poll_error, create_error
) -> None:
    gw = gateway(double)
    double.script("GET", "/v5/account/wallet-balance", fault)
    with pytest.raises(poll_error):
        gw.fetch_balances()
    double.script("POST", "/v5/order/create", fault)
    with pytest.raises(create_error):
        gw.create_order(order("c1"))
    assert gw.fetch_balances()  # the next call succeeds


# ------------------------------------------------------------------ order lookups


def test_an_order_is_found_by_client_id_open_then_closed_never_by_fetch_order(double) -> None:
    gw = gateway(double)
    gw.create_order(order("c1"))  # rests
    gw.create_order(order("c2", price=None))  # fills at once
    fresh = gateway(double)  # a new session: no exchange ids known
    start = len(double.requests)
    open_ = fresh.fetch_order("c1", SYMBOL)
    assert (open_.status, open_.exchange_id) == (OrderStatus.OPEN, "1001")
    assert paths(double, start) == ["/v5/order/realtime"]
    assert double.requests[start].params["orderLinkId"] == "c1"
    start = len(double.requests)
    filled = fresh.fetch_order("c2", SYMBOL)
    assert (filled.status, filled.filled, filled.avg_price) == (OrderStatus.FILLED, D(1), D(4))
    assert paths(double, start) == ["/v5/order/realtime", "/v5/order/history"]
    assert all("acknowledged" not in r.params for r in double.requests)
    # once the exchange id is known it is used
    start = len(double.requests)
    fresh.fetch_order("c1", SYMBOL)
    assert double.requests[start].params["orderId"] == "1001"


def test_an_order_gone_from_the_history_is_found_by_its_executions(double) -> None:
    gw = gateway(double)
    gw.create_order(order("c1", amount="2"))
    double.fill("1001", D("0.5"), D("4.2"))
    double.fill("1001", D("1.5"), D("4.4"))
    del double.orders["1001"]  # older than the order history keeps; executions remain
    report = gateway(double).fetch_order("c1", SYMBOL)
    assert (report.status, report.amount, report.filled) == (OrderStatus.FILLED, D(2), D(2))
    assert report.avg_price == D("4.35") and report.exchange_id == "1001"
    assert paths(double)[-3:] == ["/v5/order/realtime", "/v5/order/history", "/v5/execution/list"]
    with pytest.raises(OrderNotFoundError):
        gateway(double).fetch_order("never-sent", SYMBOL)


def test_a_cancel_refused_as_unknown_after_a_partial_fill_is_resolved_by_lookup(double) -> None:
    """The issue's case: the exchange ended an order after a partial fill; our cancel gets
    170213, and the lookup must still say what became of it."""
    gw = gateway(double)
    gw.create_order(order("c1", amount="1"))
    double.fill("1001", D("0.4"))
    double.cancel_by_exchange("1001")
    with pytest.raises(OrderNotFoundError, match="170213"):
        gw.cancel_order("c1", SYMBOL)
    report = gw.fetch_order("c1", SYMBOL)
    assert (report.status, report.filled, report.amount) == (OrderStatus.CANCELED, D("0.4"), D(1))


def test_a_duplicate_order_link_id_is_an_unknown_outcome_resolved_by_lookup(double) -> None:
    gw = gateway(double)
    (accepted,) = gw.create_order(order("c1"))
    assert isinstance(accepted, OrderAccepted)
    with pytest.raises(UnknownOutcomeError, match="170141"):
        gateway(double).create_order(order("c1"))  # a resend of the very same order
    assert len(double.orders) == 1
    assert gateway(double).fetch_order("c1", SYMBOL).status is OrderStatus.OPEN


def test_a_duplicate_code_outside_a_create_is_not_an_unknown_outcome(double) -> None:
    double.script("GET", "/v5/order/realtime", error(170141))
    with pytest.raises(Exception) as err:
        gateway(double).fetch_open_orders([SYMBOL])
    assert not isinstance(err.value, UnknownOutcomeError)


# ------------------------------------------------------------------ fills from executions


def test_fills_come_from_executions_without_any_order_lookup(double) -> None:
    gw = gateway(double)
    since = time.time_ns() - NS
    gw.create_order(order("c1", amount="1"))
    double.fill("1001", D("0.4"))
    double.fill("1001", D("0.6"), D("4.2"))
    gw.create_order(order("c2", price=None, side=Side.BUY, amount="2"))
    start = len(double.requests)
    fills = gw.fetch_my_trades(SYMBOL, since)
    assert paths(double, start) == ["/v5/execution/list"]  # no order lookups at all
    got = [(f.client_id, f.amount, f.filled_total, f.is_final, f.fee, f.fee_asset) for f in fills]
    assert sorted(got) == sorted(
        [
            ("c1", D("0.4"), D("0.4"), False, D("0.00164"), "USDT"),
            ("c1", D("0.6"), D(1), True, D("0.00252"), "USDT"),
            ("c2", D(2), D(2), True, D("0.002"), "BTC"),  # a spot buy pays its fee in base
        ]
    )
    # the wallet moved with the fills
    assert double.balance("BTC") == D(10) - 1 + 2 - D("0.002")
    assert double.balance("USDT") == D(100_000) + D("1.64") + D("2.52") - D("0.00416") - D("8.02")


# ------------------------------------------------------------------ candles


KLINE = {  # docs v5/websocket/public/kline, Response Example
    "topic": "kline.5.BTCUSDT",
    "data": [
        {
            "start": 1672324800000,
            "end": 1672325099999,
            "interval": "5",
            "open": "16649.5",
            "close": "16677",
            "high": "16677",
            "low": "16608",
            "volume": "2.081",
            "turnover": "34666.4005",
            "confirm": False,
            "timestamp": 1672324988882,
        }
    ],
    "ts": 1672324988882,
    "type": "snapshot",
}


def test_a_bybit_kline_parses_to_a_candle_in_our_interval_notation() -> None:
    ctx = ParseContext(7, SymbolMap([SYMBOL]), "spot")
    assert bybit.parse(KLINE, ctx) == [
        Candle(
            ts_event=1672324988882 * 1_000_000,
            ts_recv=7,
            symbol=SYMBOL,
            interval="5m",
            open=D("16649.5"),
            high=D("16677"),
            low=D("16608"),
            close=D("16677"),
            volume=D("2.081"),
            start_ns=1672324800000 * 1_000_000,
            closed=False,
        )
    ]


def test_the_candle_topic_is_subscribed_with_bybits_interval() -> None:
    streams = BybitPublicStreams("wss://x/v5/public/spot", "spot", [SYMBOL], "1h")
    assert streams.topics == ["orderbook.1.BTCUSDT", "publicTrade.BTCUSDT", "kline.60.BTCUSDT"]
    assert BybitPublicStreams("wss://x", "spot", [SYMBOL]).topics == [
        "orderbook.1.BTCUSDT",
        "publicTrade.BTCUSDT",
    ]


@pytest.mark.parametrize("interval,topic", [("1m", "kline.1.BTCUSDT"), ("8h", None)])
def test_a_candle_interval_bybit_lacks_is_said_at_start_up(caplog, interval, topic) -> None:
    cfg = config_from_dict(
        {
            "exchange": {"name": "bybit"},
            "trade": {"markets": [SYMBOL]},
            "streams": {"kline_interval": interval},
        },
        {},
    )
    with caplog.at_level(logging.WARNING, "trader.feeds.streams"):
        (spot,) = build_stream_workers(cfg, lambda e: None, ManualClock(0), Stats())
    kline = [t for t in spot.protocol.topics if t.startswith("kline")]  # type: ignore[attr-defined]
    assert kline == ([topic] if topic else [])
    warned = "bybit has no 8h candles" in caplog.text and "ma_cross" in caplog.text
    assert warned is (topic is None)
