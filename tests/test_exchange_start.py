"""End to end: ``scripts/start.py`` in live mode on Binance, every REST request going to the
local Binance double through ``exchange.urls.rest``."""

from __future__ import annotations

import os
import socket
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.doubles.binance_rest import BinanceRestDouble
from tests.test_start import START, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def double():
    with BinanceRestDouble() as d:
        yield d


def live_config(tmp_path: Path, url: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "general: {stats_interval_s: 0.5}\n"
        f"exchange: {{name: binance, mode: live, urls: {{rest: '{url}'}}, timeout_ms: 3000}}\n"
        "trade: {markets: [BTC/USDT]}\n"
        "poller: {tickers_every_s: 1}\n"
        "strategies: []\n"
        f"journal: {{path: {tmp_path / 'journal'}}}\n"
    )
    return cfg


def start(cfg: Path, secret: str = "test-secret") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env |= {"TRADER_API_KEY": "test-key", "TRADER_API_SECRET": secret}
    return subprocess.Popen(START + ["--config", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_live_binance_balances_and_prices_reach_the_store_and_sigint_stops(
    tmp_path: Path, double: BinanceRestDouble
) -> None:
    proc = start(live_config(tmp_path, double.url))
    try:
        lines = wait_for(proc, "started trader: exchange binance (live), markets BTC/USDT")
        lines += wait_for(proc, "STATS")
        lines += wait_for(proc, "BTC/USDT 4.00")  # the REST ticker's mid, from the store
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert elapsed < 2.0, f"took {elapsed:.2f}s to exit"
    assert "BALANCE BTC free 4723846.89208129 used 0.0 total 4723846.89208129" in text
    assert "BALANCE LTC free 4763368.68006011" in text
    assert "reason=SIGINT" in text and "Traceback" not in text
    assert "test-secret" not in text
    paths = {r.path for r in double.requests}
    assert {"/api/v3/exchangeInfo", "/api/v3/account", "/api/v3/ticker/24hr",
            "/api/v3/openOrders", "/api/v3/myTrades"} <= paths


def test_keys_the_exchange_refuses_stop_the_start_with_one_line(
    tmp_path: Path, double: BinanceRestDouble
) -> None:
    proc = start(live_config(tmp_path, double.url), secret="wrong-secret")
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


@pytest.mark.parametrize("market,reachable,code,line", [
    ("BTC/USDX", True, 2,
     "config error: trade.markets: BTC/USDX is not a market on binance "
     "(did you mean 'BTC/USDT'?)"),
    ("BTC/USDT", False, 1, "exchange error at start: NetworkError: binance GET http://127.0.0.1"),
])
def test_a_start_that_cannot_work_exits_with_one_line(
    tmp_path: Path, double: BinanceRestDouble, market: str, reachable: bool, code: int, line: str
) -> None:
    cfg = live_config(tmp_path, double.url if reachable else closed_port_url())
    cfg.write_text(cfg.read_text().replace("BTC/USDT", market))
    proc = start(cfg)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == code, out
    assert out.strip().splitlines()[-1].startswith(line), out
    assert "Traceback" not in out
