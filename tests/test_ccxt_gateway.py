"""The ccxt gateway: the real ccxt client against the local Binance REST double."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import pytest

from tests.conftest import FakeMonotonic, submit_order
from tests.doubles.binance_rest import BinanceRestDouble, Fault
from trader.clock import LiveClock
from trader.config import ExchangeConfig, Mode, Secrets, StoreConfig, UrlsConfig
from trader.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigError,
    ErrorKind,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    RateLimitedError,
    TemporaryError,
    UnknownOutcomeError,
)
from trader.events import (
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    SubmitOrder,
)
from trader.exchange.ccxt_gateway import CcxtGateway
from trader.model.orders import OrderStatus, OrderType, Side
from trader.stats import Stats
from trader.store.memory import MemoryStore
from trader.store.view import ReadOnlyView
from trader.trading.execution import Executor

KEYS = Secrets(api_key="test-key", api_secret="test-secret")


@pytest.fixture
def double():
    with BinanceRestDouble() as d:
        yield d


def gateway(
    double: BinanceRestDouble,
    secrets: Secrets = KEYS,
    timeout_ms: int = 5000,
    monotonic=time.monotonic,
) -> CcxtGateway:
    cfg = ExchangeConfig(
        name="binance", mode=Mode.LIVE, urls=UrlsConfig(rest=double.url), timeout_ms=timeout_ms
    )
    return CcxtGateway.from_config(cfg, secrets, LiveClock(), ["BTC/USDT"], monotonic)


def order(
    cid: str,
    kind: OrderType = OrderType.LIMIT,
    price: str | None = "3.5",
    amount: str = "3",
    side: Side = Side.BUY,
) -> SubmitOrder:
    return submit_order(cid, side, amount, kind, price)


def test_markets_load_as_decimal_steps_and_limits(double) -> None:
    (m,) = gateway(double).load_markets(["BTC/USDT"])
    assert (m.symbol, m.base, m.quote, m.active) == ("BTC/USDT", "BTC", "USDT", True)
    assert m.price_increment == D("0.01") and m.amount_increment == D("0.00001")
    assert m.min_amount == D("0.00001") and m.min_notional == D("10")
    assert [r.path for r in double.requests] == ["/api/v3/exchangeInfo"]


def test_a_market_the_exchange_does_not_list_is_a_config_error(double) -> None:
    with pytest.raises(
        ConfigError,
        match=r"BTC/USDX is not a market on binance "
        r"\(did you mean 'BTC/USDT'\?\)",
    ):
        gateway(double).load_markets(["BTC/USDX"])


def test_balances_are_exact_per_asset_and_a_drop_to_zero_is_reported_once(double) -> None:
    gw = gateway(double)
    got = {b.asset: b for b in gw.fetch_balances()}
    assert set(got) == {"BTC", "LTC"}
    assert got["BTC"].free == D("4723846.89208129") and got["BTC"].used == D(0)
    assert got["LTC"].total == D("4763368.68006011")
    double.balances = [
        {"asset": "BTC", "free": "1.5", "locked": "0.5"},
        {"asset": "ETH", "free": "0", "locked": "0"},
    ]
    got = {b.asset: b for b in gw.fetch_balances()}
    assert set(got) == {"BTC", "LTC"}  # ETH never had a balance; LTC went to zero
    assert (got["BTC"].free, got["BTC"].used, got["BTC"].total) == (D("1.5"), D("0.5"), D(2))
    assert got["LTC"].total == D(0)
    assert [b.asset for b in gw.fetch_balances()] == ["BTC"]


def test_tickers_become_quotes_with_exchange_time(double) -> None:
    (q,) = gateway(double).fetch_tickers(["BTC/USDT"])
    assert (q.symbol, q.bid, q.ask) == ("BTC/USDT", D("4"), D("4.000002"))
    assert q.bid_size == D("100") and q.ask_size == D("100")
    assert abs(q.ts_event - time.time_ns()) < 10 * 10**9 and q.ts_event % 1_000_000 == 0


def test_create_fetch_cancel_and_open_orders_by_client_id(double) -> None:
    gw = gateway(double)
    (accepted,) = gw.create_order(order("trd-1"))
    assert isinstance(accepted, OrderAccepted) and accepted.client_id == "trd-1"
    sent = [r for r in double.requests if r.method == "POST"][0].params
    assert sent["newClientOrderId"] == "trd-1" and sent["quantity"] == "3"
    assert sent["price"] == "3.5" and sent["type"] == "LIMIT" and sent["side"] == "BUY"

    fresh = gateway(double)  # knows no exchange id: must look the order up by client id
    report = fresh.fetch_order("trd-1", "BTC/USDT")
    assert double.requests[-1].params["origClientOrderId"] == "trd-1"
    assert isinstance(report, OrderStatusReport)
    assert (report.client_id, report.exchange_id, report.status) == (
        "trd-1",
        accepted.exchange_id,
        OrderStatus.OPEN,
    )
    assert (report.amount, report.filled, report.price) == (D(3), D(0), D("3.5"))
    assert report.side is Side.BUY and report.order_type is OrderType.LIMIT
    # the fields kept for the user, as ccxt reads Binance's answer
    assert (report.venue_order_type, report.time_in_force, report.stop_price, report.cum_quote) == (
        "limit",
        "GTC",
        None,
        D(0),
    )

    (open_,) = gw.fetch_open_orders(["BTC/USDT"])
    assert open_.client_id == "trd-1" and open_.status is OrderStatus.OPEN

    (canceled,) = fresh.cancel_order("trd-1", "BTC/USDT")
    assert isinstance(canceled, OrderCanceled) and canceled.client_id == "trd-1"
    assert gw.fetch_open_orders(["BTC/USDT"]) == []
    assert gw.fetch_order("trd-1", "BTC/USDT").status is OrderStatus.CANCELED


def test_a_market_order_answer_carries_its_fills(double) -> None:
    events = gateway(double).create_order(order("trd-m", OrderType.MARKET, None, "2.5"))
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    fill = events[1]
    assert (fill.client_id, fill.symbol, fill.side) == ("trd-m", "BTC/USDT", Side.BUY)
    assert fill.price == D("4.000002") and fill.amount == D("2.5")
    assert fill.fee == D(double.trades[-1]["commission"]) and fill.fee_asset == "USDT"
    assert fill.filled_total == D("2.5") and fill.is_final
    assert fill.trade_id == str(double.trades[-1]["id"])
    assert fill.exchange_id == events[0].exchange_id


def test_my_trades_carry_client_id_total_and_finality(double) -> None:
    gw = gateway(double)
    since = time.time_ns() - 10**9
    market_fill = gw.create_order(order("trd-m", OrderType.MARKET, None, "2.5"))[1]
    accepted = gw.create_order(order("trd-l", price="3.9", amount="4"))[0]
    double.fill(int(accepted.exchange_id))
    fills = {f.client_id: f for f in gateway(double).fetch_my_trades("BTC/USDT", since)}
    assert set(fills) == {"trd-m", "trd-l"}
    assert fills["trd-m"].trade_id == market_fill.trade_id
    assert fills["trd-l"].price == D("3.9") and fills["trd-l"].amount == D(4)
    assert fills["trd-l"].filled_total == D(4) and fills["trd-l"].is_final
    assert fills["trd-l"].liquidity is Liquidity.MAKER
    assert fills["trd-m"].liquidity is Liquidity.TAKER
    assert gw.fetch_my_trades("BTC/USDT", time.time_ns() + 60 * 10**9) == []


def test_a_wrong_secret_fails_the_signature_check(double) -> None:
    gw = gateway(double, Secrets(api_key="test-key", api_secret="wrong"))
    with pytest.raises(AuthenticationError, match="-1022"):
        gw.fetch_balances()


@pytest.mark.parametrize(
    "fault,pause",
    [
        (Fault.rate_limited(429, "30"), 30.0),
        (Fault.rate_limited(418, "120"), 120.0),
        (Fault.rate_limited(429, None), 10.0),  # no Retry-After: the default pause
    ],
)
def test_a_rate_limit_pauses_every_rest_call_until_retry_after(double, fault, pause) -> None:
    clock = FakeMonotonic()
    gw = gateway(double, monotonic=clock)
    double.script("GET", "/api/v3/account", fault)
    with pytest.raises(RateLimitedError) as err:
        gw.fetch_balances()
    assert err.value.retry_after_s == pause and err.value.kind is ErrorKind.RATE_LIMITED
    sent = len(double.requests)

    errors: list[Exception] = []

    def other_thread() -> None:
        try:
            gw.fetch_open_orders(["BTC/USDT"])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join(5)
    assert isinstance(errors[0], RateLimitedError)
    with pytest.raises(RateLimitedError, match="paused"):
        gw.fetch_tickers(["BTC/USDT"])
    (rejected,) = gw.create_order(order("trd-r"))
    assert isinstance(rejected, OrderRejected) and rejected.kind is ErrorKind.RATE_LIMITED
    assert len(double.requests) == sent  # nothing reached the exchange while paused

    clock.now += pause - 0.5
    with pytest.raises(RateLimitedError):
        gw.fetch_balances()
    clock.now += 0.5
    assert {b.asset for b in gw.fetch_balances()} == {"BTC", "LTC"}
    assert len(double.requests) == sent + 1


def test_a_rate_limited_create_is_rejected_not_left_unknown(double) -> None:
    double.script("POST", "/api/v3/order", Fault.rate_limited(429, "1"))
    (rejected,) = gateway(double, monotonic=FakeMonotonic()).create_order(order("trd-r"))
    assert isinstance(rejected, OrderRejected) and rejected.kind is ErrorKind.RATE_LIMITED
    assert double.orders == {}


def _create(gw: CcxtGateway) -> object:
    return gw.create_order(order("trd-e"))


def _balances(gw: CcxtGateway) -> object:
    return gw.fetch_balances()


def _lookup(gw: CcxtGateway) -> object:
    return gw.fetch_order("nobody", "BTC/USDT")


def _cancel(gw: CcxtGateway) -> object:
    return gw.cancel_order("nobody", "BTC/USDT")


POST, ACCOUNT = ("POST", "/api/v3/order"), ("GET", "/api/v3/account")


@pytest.mark.parametrize(
    "route,fault,call,expected",
    [
        (POST, Fault.error("error.-1013.lot-size.COMPOSED.json"), _create, InvalidOrderError),
        (
            POST,
            Fault.error("error.-2010.insufficient-balance.COMPOSED.json"),
            _create,
            InsufficientFundsError,
        ),
        (
            POST,
            Fault.error("error.-2010.duplicate-order.COMPOSED.json"),
            _create,
            InvalidOrderError,
        ),
        (POST, Fault.error("error.json"), _create, InvalidOrderError),
        (POST, Fault.server_error(503), _create, UnknownOutcomeError),
        (POST, Fault.error("error.-1007.timeout.COMPOSED.json", 500), _create, UnknownOutcomeError),
        (POST, Fault.malformed(), _create, UnknownOutcomeError),
        (
            ACCOUNT,
            Fault.error("error.-2015.api-key.COMPOSED.json", 401),
            _balances,
            AuthenticationError,
        ),
        (
            ACCOUNT,
            Fault.error("error.-1021.timestamp.COMPOSED.json"),
            _balances,
            AuthenticationError,
        ),
        (ACCOUNT, Fault.server_error(503), _balances, TemporaryError),
        (ACCOUNT, Fault.server_error(504), _balances, TemporaryError),
        (ACCOUNT, Fault.error("error.-1007.timeout.COMPOSED.json", 500), _balances, TemporaryError),
        (ACCOUNT, Fault.malformed(), _balances, BadResponseError),
        (
            ("DELETE", "/api/v3/order"),
            Fault.error("error.-1145.invalid-cancelRestrictions.json"),
            _cancel,
            ExchangeError,
        ),
        (None, None, _lookup, OrderNotFoundError),  # the double's own -2013
        (None, None, _cancel, OrderNotFoundError),  # the double's own -2011
    ],
)
def test_each_exchange_error_maps_to_its_exception(double, route, fault, call, expected) -> None:
    if route is not None:
        double.script(*route, fault)
    with pytest.raises(ExchangeError) as err:
        call(gateway(double))
    assert type(err.value) is expected, err.value
    assert "\n" not in str(err.value) and len(str(err.value)) <= 300


def test_an_order_accepted_then_timed_out_is_looked_up_not_resent(double) -> None:
    """The executor marks it UNKNOWN, finds it by client id, and the exchange holds one order."""
    double.script("POST", "/api/v3/order", Fault.accept_then_hang(3.0))
    published: list = []
    got_report = threading.Event()

    def publish(ev) -> None:
        published.append(ev)
        if isinstance(ev, OrderStatusReport):
            got_report.set()

    executor = Executor(
        gateway(double, timeout_ms=300),
        publish,
        ReadOnlyView(MemoryStore(StoreConfig())),
        LiveClock(),
        Stats(),
        lookup_backoff_s=0.05,
    )
    stop = threading.Event()
    thread = threading.Thread(target=executor.run, args=(stop,), name="executor")
    thread.start()
    try:
        executor.submit(order("trd-u", OrderType.MARKET, None, "2.5"))
        assert got_report.wait(10), published
    finally:
        stop.set()
        thread.join(5)
    unknown, fill, report = published  # the lookup also brings the fill the lost answer had
    assert isinstance(unknown, OrderStatusUnknown) and unknown.client_id == "trd-u"
    assert isinstance(fill, OrderFilled) and fill.client_id == "trd-u"
    assert fill.amount == D("2.5")
    assert "UnknownOutcomeError" in unknown.reason
    assert report.client_id == "trd-u" and report.status is OrderStatus.FILLED
    assert report.filled == D("2.5")
    assert double.count("POST", "/api/v3/order") == 1
    assert [o["clientOrderId"] for o in double.orders.values()] == ["trd-u"]


def test_an_answer_with_fields_missing_is_bad_data(double) -> None:
    double.script("GET", "/api/v3/openOrders", Fault(200, '[{"symbol": "BTCUSDT", "orderId": 1}]'))
    with pytest.raises(BadResponseError, match="fetch_open_orders: unexpected answer"):
        gateway(double).fetch_open_orders(["BTC/USDT"])
