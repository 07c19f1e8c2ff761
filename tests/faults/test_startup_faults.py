"""Start-up against an exchange in trouble (issue #12): rate limits, 5xx and network errors at
start are waited out (the exchange's ``Retry-After``, else backoff) up to
``exchange.start_deadline_s``; bad keys still stop at once; systemd hears READY only from a
start that succeeded; a failed start leaves a journal that ``trader-replay`` explains."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.doubles.binance_rest import BinanceRestDouble, Fault
from tests.faults.conftest import Recorder, Running, binance_config
from tests.test_systemd import NotifyListener, path_listener  # noqa: F401 - a fixture
from tests.ws_server import API_KEY, API_SECRET, FakeExchange
from trader.app import App
from trader.errors import AuthenticationError, TemporaryError
from trader.events import SessionStarted, ShutdownRequested
from trader.journal import read_events

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent.parent
INFO = ("GET", "/api/v3/exchangeInfo")
ACCOUNT = ("GET", "/api/v3/account")


def test_a_429_at_start_waits_out_retry_after_then_starts(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange, caplog
) -> None:
    double.script(*INFO, Fault.rate_limited(retry_after="1"))
    double.script(*ACCOUNT, Fault.server_error(503), Fault.server_error(502))
    app = App(binance_config(tmp_path, double.url, ws.url, reconcile={"enabled": False}))
    events = Recorder()
    app.registry.observe(events)
    caplog.set_level(logging.WARNING, "trader")
    t0 = time.monotonic()
    app.start()  # before this fix: RateLimitedError, exit 1 after one request
    took = time.monotonic() - t0
    r = Running(app, events, ws, double)
    try:
        info = [q for q in double.requests if (q.method, q.path) == INFO]
        assert len(info) == 2 and info[1].at - info[0].at >= 1.0  # Retry-After honoured
        inside = [q for q in double.requests if info[0].at < q.at < info[1].at]
        assert inside == []  # nothing at all was sent inside the window
        assert double.count(*ACCOUNT) >= 3  # two 5xx, then the balances
        assert app.store.balance("BTC") is not None
        lines = [m for m in caplog.messages if m.startswith("start: ")]
        assert len(lines) == 3, lines  # one line per failure
        assert lines[0].startswith("start: loading markets failed (") and "1.0s" in lines[0]
        assert took < 6
    finally:
        r.stop()


def test_a_start_that_gives_up_is_journaled_never_ready_and_replay_shows_why(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange, path_listener: NotifyListener
) -> None:  # noqa: F811 - the fixture
    double.script(*INFO, *[Fault.server_error(503)] * 20)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "exchange: {name: binance, mode: live, timeout_ms: 2000, start_deadline_s: 1.5,\n"
        f"           urls: {{rest: '{double.url}', ws: '{ws.url}'}}}}\n"
        "trade: {markets: [BTC/USDT]}\nstrategies: []\n"
        f"journal: {{path: {tmp_path / 'journal'}}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env |= {
        "TRADER_API_KEY": API_KEY,
        "TRADER_API_SECRET": API_SECRET,
        "NOTIFY_SOCKET": path_listener.address,
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "start.py"), "--config", str(cfg)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("exchange error at start: ExchangeNotAvailable: binance GET ")
    assert "start gave up after" in last and "exchange.start_deadline_s 1.5" in last
    assert double.count(*INFO) >= 2  # retried before giving up
    path_listener.collect(time.monotonic() + 0.2)
    assert not any("READY=1" in m for _, m in path_listener.messages)
    events = read_events(tmp_path / "journal")  # before this fix: an empty journal
    assert isinstance(events[0], SessionStarted)
    (stop,) = [e for e in events if isinstance(e, ShutdownRequested)]
    assert stop.reason.startswith("start failed: exchange error at start: ")
    replay = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "replay.py"),
            str(tmp_path / "journal"),
            "--config",
            str(cfg),
            "--show",
            "ShutdownRequested",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert replay.returncode == 0, replay.stderr
    assert "start failed: exchange error at start" in replay.stdout


def test_bad_keys_still_stop_the_start_at_once(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange
) -> None:
    app = App(binance_config(tmp_path, double.url, ws.url, exchange={"start_deadline_s": 60}))
    double.api_secret = "another-secret"  # the double refuses our signature: -1022
    t0 = time.monotonic()
    with pytest.raises(AuthenticationError):
        app.start()
    assert time.monotonic() - t0 < 2 and double.count(*ACCOUNT) == 1
    app.abort_start("test")


def test_a_start_interrupted_while_waiting_ends_at_once(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange
) -> None:
    double.script(*INFO, Fault.rate_limited(retry_after="30"))
    app = App(binance_config(tmp_path, double.url, ws.url))
    app.stop_event.set()  # as Ctrl-C does, before or while the start waits
    t0 = time.monotonic()
    with pytest.raises(TemporaryError, match="start gave up"):
        app.start()
    assert time.monotonic() - t0 < 2
    app.abort_start("test")
