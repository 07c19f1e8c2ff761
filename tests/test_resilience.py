"""Issue #12's smaller items: the ``dead_after_s`` trap refused at load, secrets scrubbed from
translated errors, and texts that say what happened (a failed reconciliation fetch is not "0
differences"; lost fills are not promised to a reconciliation that is off)."""

from __future__ import annotations

import time
from pathlib import Path

import ccxt
import pytest

from tests.doubles.binance_rest import BinanceRestDouble, Fault
from trader.clock import ManualClock
from trader.config import ExchangeConfig, Secrets, UrlsConfig, config_from_dict
from trader.errors import ConfigError, TemporaryError, scrub
from trader.events import ReconciliationCompleted, TradingState
from trader.exchange.ccxt_errors import translate
from trader.exchange.ccxt_gateway import CcxtGateway
from trader.registries import check_config

KEY, SECRET = "k3y-0123456789abcdef", "s3cret-0123456789abcdef"


@pytest.mark.parametrize(
    "exchange,dead,words",
    [
        ("binance", 20, "binance's server pings every 20s"),
        ("binance", 5, "binance's server pings every 20s"),
        ("bybit", 20, "bybit answers our pings (streams.ping_interval_s) every 20s"),
    ],
)
def test_dead_after_s_at_or_below_the_ping_interval_is_refused(exchange, dead, words) -> None:
    cfg = config_from_dict({"exchange": {"name": exchange}, "streams": {"dead_after_s": dead}}, {})
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert str(err.value).startswith(f"streams.dead_after_s: {dead}s is not above the 20s")
    assert words in str(err.value)


def test_dead_after_s_above_the_interval_and_streamless_exchanges_pass() -> None:
    check_config(
        config_from_dict({"exchange": {"name": "binance"}, "streams": {"dead_after_s": 21}}, {})
    )
    check_config(
        config_from_dict({"exchange": {"name": "kraken"}, "streams": {"dead_after_s": 5}}, {})
    )


def test_scrub_removes_every_kind_of_secret() -> None:
    text = (
        "binance GET https://api.binance.com/api/v3/account?timestamp=1700000000000&"
        "recvWindow=5000&signature=9f86d081884c7d65 503; headers {'X-MBX-APIKEY': "
        f"'{KEY}', 'Authorization': 'Bearer abc.def'}} wss://x/ws?listenKey=pqrs "
        f"redis://user:hunter2@redis:6379/0 {SECRET}"
    )
    out = scrub(text, [KEY, SECRET, None])
    for secret in (
        "signature=",
        "9f86d081884c7d65",
        KEY,
        SECRET,
        "abc.def",
        "pqrs",
        "hunter2",
        "timestamp=1700000000000",
    ):
        assert secret not in out
    assert "https://api.binance.com/api/v3/account?[signed query ***]" in out
    assert "redis://***@redis:6379/0" in out and "listenKey=***" in out


def test_translate_scrubs_what_ccxt_puts_in_its_message() -> None:
    exc = ccxt.ExchangeNotAvailable(
        f"binance GET http://h/api/v3/account?timestamp=1&recvWindow=5000&signature=abc {KEY}"
    )
    err = translate(exc, secrets=(KEY, SECRET))
    assert isinstance(err, TemporaryError)
    assert "signature" not in str(err) and KEY not in str(err)
    assert (
        str(err) == "ExchangeNotAvailable: binance GET http://h/api/v3/account?"
        "[signed query ***] ***"
    )


def test_a_failed_signed_request_never_shows_its_signature_or_keys() -> None:
    with BinanceRestDouble(KEY, SECRET) as double:
        double.script("GET", "/api/v3/account", Fault.server_error(503))
        cfg = ExchangeConfig(name="binance", mode="live", urls=UrlsConfig(rest=double.url))
        gw = CcxtGateway.from_config(cfg, Secrets(api_key=KEY, api_secret=SECRET), ManualClock(1))
        with pytest.raises(TemporaryError) as err:
            gw.fetch_balances()
        gw.close()
    text = str(err.value)
    assert "/api/v3/account?[signed query ***]" in text  # before this fix: the signed URL
    assert "signature=" not in text and KEY not in text and SECRET not in text


def test_a_failed_reconciliation_fetch_is_not_called_zero_differences(tmp_path: Path) -> None:
    from tests.harness import Harness

    h = Harness(tmp_path)
    now = h.clock.now_ns()
    out = h.app.risk.on_reconciliation_completed(
        ReconciliationCompleted(
            ts_event=now,
            ts_recv=now,
            ok=False,
            differences=0,
            summary="round 1: could not fetch",
            error="TemporaryError: binance 503",
        )
    )
    assert h.app.risk.state is TradingState.HALTED
    assert out[0].reason == (
        "reconciliation: could not fetch the exchange's state (TemporaryError: binance 503)"
    )


def test_lost_fills_are_promised_only_to_what_runs() -> None:
    from trader.app import _fills_later

    on = config_from_dict({}, {})
    off = config_from_dict({"reconcile": {"enabled": False}, "poller": {"trades_every_s": 0}}, {})
    polled = config_from_dict(
        {"reconcile": {"enabled": False}, "poller": {"trades_every_s": 30}}, {}
    )
    assert _fills_later(on) == "reconciliation will bring them"
    assert _fills_later(polled) == "the trades poll (every 30s) will bring them"
    assert _fills_later(off) == ""


def test_the_order_lane_and_the_polls_share_one_rate_limit_budget() -> None:
    from trader.exchange.ccxt_client import SharedRateLimit

    shared = SharedRateLimit(100)  # 100 ms per unit of cost
    poll, order = ccxt.binance(), ccxt.binance()
    shared.install(poll, order)
    t0 = time.monotonic()
    poll.throttle(2)  # the first request goes at once
    assert time.monotonic() - t0 < 0.05
    order.throttle(2)  # the other client's next request waits its spacing: 200 ms
    assert 0.18 < time.monotonic() - t0 < 0.5
