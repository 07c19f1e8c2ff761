"""End to end: ``scripts/start.py`` in live mode on Binance, every REST request going to the
local Binance REST double (``exchange.urls.rest``) and every websocket to the local websocket
double (``exchange.urls.ws``): nothing leaves 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.doubles.binance_rest import BinanceRestDouble
from tests.test_start import signal_and_wait, wait_for
from tests.test_start import start as start_script
from tests.ws_server import FakeExchange, wait_until, ws  # noqa: F401 - a fixture


@pytest.fixture
def double():
    with BinanceRestDouble() as d:
        yield d


def live_config(tmp_path: Path, url: str, ws_url: str, tickers_every_s: int = 0) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "general: {stats_interval_s: 0.5}\n"
        "exchange: {name: binance, mode: live, timeout_ms: 3000,\n"
        f"           urls: {{rest: '{url}', ws: '{ws_url}'}}}}\n"
        "trade: {markets: [BTC/USDT]}\n"
        f"poller: {{tickers_every_s: {tickers_every_s}}}\n"
        "streams: {backoff_initial_s: 0.05, backoff_max_s: 0.2}\n"
        "strategies: []\n"
        f"journal: {{path: {tmp_path / 'journal'}}}\n"
    )
    return cfg


def start(cfg: Path, secret: str = "test-secret") -> subprocess.Popen:
    return start_script(cfg, {"TRADER_API_KEY": "test-key", "TRADER_API_SECRET": secret})


def test_live_binance_streams_prices_and_balances_survives_a_drop_and_stops_on_sigint(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange
) -> None:
    proc = start(live_config(tmp_path, double.url, ws.url))
    try:
        lines = wait_for(proc, "started trader: exchange binance (live), markets BTC/USDT")
        market = wait_until(lambda: [n for n, m in ws.received if m.get("method") == "SUBSCRIBE"])
        assert market, ws.received
        ws.send(
            {
                "stream": "btcusdt@bookTicker",
                "data": {
                    "u": 1,
                    "s": "BTCUSDT",
                    "b": "60000.10",
                    "B": "1",
                    "a": "60000.30",
                    "A": "2",
                },
            },
            conn=market[0],
        )
        lines += wait_for(proc, "BTC/USDT 60000.20")  # the streamed mid, read from the store
        refreshes = double.count("GET", "/api/v3/account")
        ws.close(market[0])  # the exchange drops the market stream
        assert wait_until(lambda: len(ws.messages(key="SUBSCRIBE")) == 2)  # resubscribed
        ws.send(
            {
                "stream": "btcusdt@bookTicker",
                "data": {
                    "u": 2,
                    "s": "BTCUSDT",
                    "b": "61000.10",
                    "B": "1",
                    "a": "61000.30",
                    "A": "2",
                },
            }
        )
        lines += wait_for(proc, "refreshing balances, open orders and trades")
        assert wait_until(lambda: double.count("GET", "/api/v3/account") > refreshes)
        lines += wait_for(proc, "BTC/USDT 61000.20")
        out, elapsed = signal_and_wait(proc, signal.SIGINT)
    finally:
        proc.kill()
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert elapsed < 2.0, f"took {elapsed:.2f}s to exit"
    assert "BALANCE BTC free 4723846.89208129 used 0.0 total 4723846.89208129" in text
    assert "BALANCE LTC free 4763368.68006011" in text
    assert "reason=SIGINT" in text and "Traceback" not in text
    assert "test-secret" not in text
    assert ws.messages(key="userDataStream.subscribe.signature")  # the signed user stream
    paths = {r.path for r in double.requests}
    assert {
        "/api/v3/exchangeInfo",
        "/api/v3/account",
        "/api/v3/openOrders",
        "/api/v3/myTrades",
    } <= paths


def test_a_rest_only_exchange_gets_prices_from_the_poller(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange
) -> None:
    """With the streams silent, REST tickers still bring prices into the store."""
    proc = start(live_config(tmp_path, double.url, ws.url, tickers_every_s=1))
    try:
        lines = wait_for(proc, "BTC/USDT 4.00")  # the REST ticker's mid (fixture 4 / 4.000002)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0, "".join(lines) + out
    assert double.count("GET", "/api/v3/ticker/24hr") >= 1


def test_keys_the_exchange_refuses_stop_the_start_with_one_line(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange
) -> None:
    proc = start(live_config(tmp_path, double.url, ws.url), secret="wrong-secret")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("authentication failed: AuthenticationError: binance ")
    assert "-1022" in last and "Signature for this request is not valid." in last
    assert "Traceback" not in out and "wrong-secret" not in out
    assert "started trader" not in out


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(
    "market,reachable,code,line",
    [
        (
            "BTC/USDX",
            True,
            2,
            "config error: trade.markets: BTC/USDX is not a market on binance "
            "(did you mean 'BTC/USDT'?)",
        ),
        (
            "BTC/USDT",
            False,
            1,
            "exchange error at start: NetworkError: binance GET http://127.0.0.1",
        ),
    ],
)
def test_a_start_that_cannot_work_exits_with_one_line(
    tmp_path: Path,
    double: BinanceRestDouble,
    ws: FakeExchange,
    market: str,
    reachable: bool,
    code: int,
    line: str,
) -> None:
    cfg = live_config(tmp_path, double.url if reachable else closed_port_url(), ws.url)
    cfg.write_text(
        cfg.read_text()
        .replace("BTC/USDT", market)
        .replace("timeout_ms: 3000", "timeout_ms: 3000, start_deadline_s: 0.5")
    )
    proc = start(cfg)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == code, out
    assert out.strip().splitlines()[-1].startswith(line), out
    assert "Traceback" not in out
