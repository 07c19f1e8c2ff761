"""Secrets never leave the process: a full run at DEBUG with known fake secrets (one from a 0600
file, one the Redis password) whose text appears in no output, log, file, or Redis key or value.
The same run shows a second process seeing the first one's balances through Redis."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import start_service
from tests.redis_server import RedisServer
from tests.subproc import read_rest
from tests.test_start import wait_for
from trader.app import App
from trader.config import config_from_dict, load_config
from trader.logsetup import setup_logging

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "fake-api-key-Zq81"
API_SECRET = "fake-api-secret-Wx93"
REDIS_PASSWORD = "fake-redis-password-Pv27"
SECRETS = (API_KEY, API_SECRET, REDIS_PASSWORD)


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Run scripts/start.py at DEBUG with Redis until it traded, then SIGTERM it."""
    pytest.importorskip("redis")
    tmp = tmp_path_factory.mktemp("secrets")
    server = RedisServer(tmp / "redis", password=REDIS_PASSWORD).start()
    data = tmp / "data"
    data.mkdir()
    secret_file = tmp / "api_secret"
    secret_file.write_text(API_SECRET + "\n")
    secret_file.chmod(0o600)
    cfg = data / "config.yaml"
    cfg.write_text(
        "general: {stats_interval_s: 0.5}\n"
        "simulated: {tick_interval_s: 0.01, candle_interval_s: 1}\n"
        f"journal: {{path: {data / 'journal'}}}\n"
        f"storage: {{backend: redis, redis_url: '{server.url}', key_prefix: s}}\n"
        "strategies:\n"
        "  - {name: ma_cross, market: BTC/USDT, params: {fast: 2, slow: 3, amount: 0.01}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER")}
    env.update(
        TRADER_API_KEY=API_KEY,
        TRADER_API_SECRET_FILE=str(secret_file),
        TRADER_REDIS_PASSWORD=REDIS_PASSWORD,
    )
    cmd = [sys.executable, str(ROOT / "scripts" / "start.py"), "--config", str(cfg)]
    proc = subprocess.Popen(
        cmd + ["--log-level", "DEBUG"],
        cwd=data,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = wait_for(proc, "TRADE")
        lines += wait_for(proc, "BALANCE BTC")  # the fill's balance change, logged after it
        proc.send_signal(signal.SIGTERM)
        out = read_rest(proc)
        check = subprocess.run(
            cmd + ["--check-config"], env=env, capture_output=True, text=True, timeout=30
        )
        yield {
            "output": "".join(lines) + out,
            "returncode": proc.returncode,
            "server": server,
            "data": data,
            "check": check.stdout + check.stderr,
            "env": env,
            "config": cfg,
        }
    finally:
        proc.kill()
        server.stop()


def test_the_debug_run_worked(debug_run: dict) -> None:
    out = debug_run["output"]
    assert debug_run["returncode"] == 0, out
    assert " DEBUG " in out and "TRADE BUY" in out and "redis: restored" in out
    assert "Traceback" not in out


def test_no_secret_in_output_files_or_check_config(debug_run: dict) -> None:
    texts = {"output": debug_run["output"], "--check-config": debug_run["check"]}
    for path in debug_run["data"].rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    assert "TRADER_API_SECRET: <set>" in debug_run["check"]
    for name, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} found in {name}"


def test_no_secret_in_any_redis_key_or_value(debug_run: dict) -> None:
    client = debug_run["server"].client()
    keys = list(client.scan_iter("*"))
    assert {"s:events", "s:balances", "s:orders"} <= set(keys)
    dump = []
    for key in keys:
        kind = client.type(key)
        if kind == "hash":
            dump.append(repr(client.hgetall(key)))
        elif kind == "stream":
            dump.append(repr(client.xrange(key)))
        else:
            dump.append(repr(client.dump(key)))
    text = "\n".join(keys + dump)
    assert "OrderFilled" in text
    for secret in SECRETS:
        assert secret not in text


def test_a_second_process_sees_the_same_balances(debug_run: dict) -> None:
    # The run logged every balance change (DEBUG); its last value per asset is what it held.
    last: dict[str, Decimal] = {}
    for asset, total in re.findall(
        r"BALANCE (\w+) free \S+ used \S+ total (\S+)", debug_run["output"]
    ):
        last[asset] = Decimal(total)
    assert "BTC" in last and "USDT" in last, debug_run["output"][-3000:]
    cfg = load_config(debug_run["config"], env={"TRADER_REDIS_PASSWORD": REDIS_PASSWORD})
    second = App(cfg)
    restored = second.storage.restore()
    assert [type(e).__name__ for e in restored] == ["StateRestored"]
    second.engine.dispatch(restored[0])
    restored = second.store.balances().balances
    assert {a: b.total for a, b in restored.items()} == last, debug_run["output"][-3000:]


def test_live_exchange_at_debug_logs_no_signed_request(tmp_path: Path) -> None:
    """ccxt logs every request with its headers (the API key) at DEBUG: its logger stays above."""
    pytest.importorskip("ccxt")
    from tests.doubles.binance_rest import BinanceRestDouble
    from tests.ws_server import FakeExchange

    ws = FakeExchange().start()
    try:
        with BinanceRestDouble(api_key=API_KEY, api_secret=API_SECRET) as double:
            cfg = tmp_path / "config.yaml"
            cfg.write_text(
                "exchange: {name: binance, mode: live, timeout_ms: 3000,\n"
                f"           urls: {{rest: '{double.url}', ws: '{ws.url}'}}}}\n"
                "trade: {markets: [BTC/USDT]}\nstrategies: []\n"
                f"journal: {{path: {tmp_path / 'journal'}}}\n"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER")}
            env.update(TRADER_API_KEY=API_KEY, TRADER_API_SECRET=API_SECRET)
            proc = start_service(cfg, tmp_path, env, "--log-level", "DEBUG")
            try:
                lines = wait_for(proc, "started trader: exchange binance (live)")
                proc.send_signal(signal.SIGINT)
                out = read_rest(proc)
            finally:
                proc.kill()
            signed = double.count("GET", "/api/v3/account")
    finally:
        ws.stop()
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert signed >= 1 and " DEBUG " in text  # signed requests were made, at DEBUG
    assert "ccxt" not in text and "X-MBX-APIKEY" not in text
    assert API_KEY not in text and API_SECRET not in text


def test_ccxt_logger_stays_above_debug_and_secrets_are_scrubbed(capsys, restore_logging) -> None:
    setup_logging("DEBUG", [API_SECRET])
    assert logging.getLogger("ccxt").getEffectiveLevel() > logging.DEBUG
    logging.getLogger("ccxt").debug("signed request %s", API_SECRET)
    logging.getLogger("trader").debug("oops %s", API_SECRET)
    try:
        raise ValueError(API_SECRET)
    except ValueError:
        logging.getLogger("trader").exception("failed")
    err = capsys.readouterr().err
    assert "oops ***" in err and "ValueError: ***" in err
    assert "signed request" not in err and API_SECRET not in err


def test_secrets_are_not_in_reprs() -> None:
    cfg = config_from_dict(
        {},
        {
            "TRADER_API_KEY": API_KEY,
            "TRADER_API_SECRET": API_SECRET,
            "TRADER_REDIS_PASSWORD": REDIS_PASSWORD,
        },
    )
    assert cfg.secrets.values() == (API_KEY, API_SECRET, REDIS_PASSWORD)
    for text in (repr(cfg), str(cfg), repr(cfg.secrets)):
        for secret in SECRETS:
            assert secret not in text
