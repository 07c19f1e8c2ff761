"""Metrics over real HTTP: Prometheus text, /health (stuck loop, stale feed), /status and the
operator commands; the minute summary line; sampled dispatch timing."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import quote, running, wait_until
from trader.app import App
from trader.bus import Bus
from trader.clock import ManualClock
from trader.config import config_from_dict
from trader.engine import Engine, Registry
from trader.events import (
    CancelAllOrders,
    FeedRecovered,
    FeedStale,
    HaltTrading,
    QuoteTick,
    ResumeTrading,
    TradeTick,
)
from trader.metrics import DispatchTiming
from trader.stats import Stats

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_app(tmp_path: Any, clock: Any = None, **metrics: Any) -> App:
    cfg = config_from_dict(
        {
            "simulated": {"tick_interval_s": 0.005},
            "journal": {"path": str(tmp_path / "journal"), "flush_interval_s": 0.05},
            "metrics": {"port": free_port(), **metrics},
            "strategies": [
                {
                    "name": "ma_cross",
                    "market": "BTC/USDT",
                    "params": {"fast": 2, "slow": 3, "amount": 0.01},
                }
            ],
        },
        {},
    )
    return App(cfg, clock)


def get(app: App, path: str, headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{app.http.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def post(
    app: App, path: str, body: Any = None, ctype: str = "application/json", token: str | None = None
) -> tuple:
    """POST with the instance's token (unless another is given)."""
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    token = app.http.token if token is None else token
    req = urllib.request.Request(
        f"http://127.0.0.1:{app.http.port}{path}",
        data=data,
        method="POST",
        headers={"Content-Type": ctype, "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_metrics_are_served_as_prometheus_text(tmp_path: Any) -> None:
    with running(make_app(tmp_path, sample_every=1)) as app:
        wait_until(
            lambda: (
                app.metrics.snapshot["events"].get("Candle", 0) >= 1
                and app.metrics.snapshot["journal"]["written"] > 0
            )
        )
        status, text = get(app, "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    events = {s.labels["type"]: s.value for s in families["trader_events"].samples}
    assert events["QuoteTick"] > 0 and events["SessionStarted"] == 1
    lag = families["trader_dispatch_lag_seconds"]
    buckets = [s for s in lag.samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value > 0
    handlers = {s.labels["handler"] for s in families["trader_handler_seconds"].samples}
    assert {"MemoryStore.on_quote", "JournalBuffer.append", "StrategyRunner.on_candle"} <= handlers
    gauges = {
        name: families[name].samples
        for name in (
            "trader_queue_depth",
            "trader_queue_high_water",
            "process_resident_memory_bytes",
            "trader_store_size",
            "trader_feed_state",
            "trader_trading_state",
        )
    }
    assert gauges["process_resident_memory_bytes"][0].value > 10e6
    assert {s.labels["collection"] for s in gauges["trader_store_size"]} >= {"quotes", "orders"}
    # every possible state, 1 for the current one, so a panel can show transitions
    assert {
        (s.labels["feed"], s.labels["state"]): s.value for s in gauges["trader_feed_state"]
    } == {("sim-feed", "connected"): 1, ("sim-feed", "disconnected"): 0, ("sim-feed", "stale"): 0}
    assert {s.labels["state"]: s.value for s in gauges["trader_trading_state"]} == {
        "active": 1,
        "reducing": 0,
        "halted": 0,
    }
    # the standard families of prometheus_client's process and platform collectors
    assert families["process_cpu_seconds"].samples[0].value > 0
    assert families["python_info"].samples[0].labels["implementation"] == "CPython"
    assert "python_gc_collections" in families
    assert families["trader_conflated"].samples[0].value == 0
    assert families["trader_journal_written"].samples[0].value > 0


def test_health_is_503_while_the_main_loop_is_stuck(tmp_path: Any) -> None:
    app = make_app(tmp_path, stuck_after_s=0.2)
    gate = threading.Event()
    app.registry.register(TradeTick, lambda e: gate.wait(10) and None)  # a handler that hangs
    with running(app):
        code, body = wait_until(lambda: (r := get(app, "/health"))[0] == 503 and r)
        doc = json.loads(body)
        assert doc["status"] == "unhealthy" and doc["queue_depth"] > 0
        assert "main loop stuck" in doc["problems"][0]
        gate.set()
        code, body = wait_until(lambda: (r := get(app, "/health"))[0] == 200 and r)
    assert json.loads(body)["status"] == "ok"


def test_health_is_503_while_a_feed_is_stale(tmp_path: Any) -> None:
    with running(make_app(tmp_path)) as app:
        assert get(app, "/health")[0] == 200
        now = time.time_ns()
        app.bus.publish(
            FeedStale(ts_event=now, ts_recv=now, feed="ws-binance", silent_s=Decimal(30))
        )
        code, body = wait_until(lambda: (r := get(app, "/health"))[0] == 503 and r)
        doc = json.loads(body)
        assert doc["feeds"]["ws-binance"]["state"] == "stale"
        since = doc["feeds"]["ws-binance"]["since_s"]
        assert doc["problems"] == [f"feed ws-binance stale for {since:.1f}s"]
        assert feed_states(app, "ws-binance") == {"connected": 0, "disconnected": 0, "stale": 1}
        app.bus.publish(FeedRecovered(ts_event=now, ts_recv=now, feed="ws-binance"))
        wait_until(lambda: get(app, "/health")[0] == 200)
        assert feed_states(app, "ws-binance") == {"connected": 1, "disconnected": 0, "stale": 0}


def feed_states(app: App, feed: str) -> dict[str, float]:
    """``trader_feed_state`` of ``feed`` from ``/metrics``: state -> 0 or 1."""
    families = {f.name: f for f in text_string_to_metric_families(get(app, "/metrics")[1])}
    return {
        s.labels["state"]: s.value
        for s in families["trader_feed_state"].samples
        if s.labels["feed"] == feed
    }


def test_each_app_has_its_own_registry_and_none_is_global(tmp_path: Any) -> None:
    a, b = make_app(tmp_path / "a"), make_app(tmp_path / "b")
    assert a.metrics.registry is not b.metrics.registry
    a.metrics.errors["network"] = 3
    a.metrics.refresh()
    assert 'trader_errors_total{kind="network"} 3.0' in a.metrics.prometheus()
    assert "trader_errors_total{" not in b.metrics.prometheus()
    assert "trader_" not in prometheus_client.generate_latest().decode()


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)"
)
def test_promtool_finds_nothing_to_lint_in_metrics(tmp_path: Any) -> None:
    with running(make_app(tmp_path, sample_every=1)) as app:
        wait_until(lambda: app.metrics.snapshot["events"].get("OrderFilled", 0) >= 1)
        status, text = get(app, "/metrics")
    assert status == 200 and "trader_handler_seconds_bucket" in text
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_health_is_unhealthy_when_a_market_goes_silent(tmp_path: Any) -> None:
    clock = ManualClock(1_700_000_000 * 10**9)
    app = make_app(tmp_path, clock, stale_after_s=60)
    assert app.metrics.health()[0]
    app.engine.dispatch(quote("BTC/USDT", ts=clock.now_ns()))
    clock.advance(61)
    ok, doc = app.metrics.health()
    assert not ok
    assert doc["problems"] == [
        "no data for BTC/USDT for 61.0s",
        "no data for ETH/USDT since start (61s)",
    ]
    assert doc["markets"]["BTC/USDT"] == {"last_data_s": 61.0}


@contextmanager
def serving_http(tmp_path: Any) -> Iterator[App]:
    """The HTTP endpoint alone, no main loop: what it publishes stays on the bus."""
    app = make_app(tmp_path)
    app.http.bind()
    stop = threading.Event()
    thread = threading.Thread(target=app.http.run, args=(stop,), name="metrics")
    thread.start()
    yield app
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


@pytest.fixture
def api(tmp_path: Any) -> Iterator[App]:
    """The HTTP endpoint alone (:func:`serving_http`)."""
    with serving_http(tmp_path) as app:
        yield app


def test_commands_are_published_on_the_bus_and_answered_202(api: App) -> None:
    code, doc = post(api, "/halt", {"reason": "maintenance", "cancel_orders": True})
    assert code == 202 and doc["accepted"] == "HaltTrading"
    halt = api.bus.get(1)
    assert isinstance(halt, HaltTrading) and halt.reason == "maintenance" and halt.cancel_orders
    assert post(api, "/resume")[0] == 202
    resume = api.bus.get(1)
    assert isinstance(resume, ResumeTrading) and resume.reason == "operator"
    assert post(api, "/cancel-all", {"symbol": "BTC/USDT"})[0] == 202
    cancel = api.bus.get(1)
    assert isinstance(cancel, CancelAllOrders) and cancel.symbol == "BTC/USDT"
    assert api.bus.depth() == 0


@pytest.mark.parametrize(
    ("path", "body", "ctype", "code", "error"),
    [
        ("/halt", {"reason": "x"}, "text/plain", 415, "Content-Type: application/json"),
        ("/halt", b"{not json", "application/json", 400, "invalid JSON"),
        ("/halt", {"resaon": "x"}, "application/json", 400, "unknown keys ['resaon']"),
        (
            "/halt",
            {"cancel_orders": "yes"},
            "application/json",
            400,
            "cancel_orders must be a bool",
        ),
        ("/halt", [1], "application/json", 400, "must be a JSON object"),
        ("/status", None, "application/json", 405, "use GET for /status"),
        ("/nope", None, "application/json", 404, "no such endpoint"),
    ],
)
def test_bad_commands_are_refused_and_publish_nothing(
    api: App, path: str, body: Any, ctype: str, code: int, error: str
) -> None:
    got, doc = post(api, path, body, ctype)
    assert got == code and error in doc["error"]
    assert api.bus.depth() == 0


def test_get_on_a_command_and_foreign_hosts_are_refused(api: App) -> None:
    assert get(api, "/halt")[0] == 405
    code, body = get(api, "/status", {"Host": "evil.example:80"})
    assert code == 403 and "not allowed" in body
    assert api.bus.depth() == 0


def test_status_reports_state_balances_orders_and_strategies(tmp_path: Any) -> None:
    with running(make_app(tmp_path)) as app:
        # the main thread republishes the snapshot every second
        code, body = wait_until(
            lambda: (
                (r := get(app, "/status"))[0] == 200
                and json.loads(r[1])["balances_total_usd"] != "0"
                and r
            )
        )
    doc = json.loads(body)
    assert doc["trading_state"] == "active" and doc["exchange"] == "simulated"
    assert Decimal(doc["balances_total_usd"]) == 10000 and doc["open_orders"] == 0
    assert doc["strategies"] == [{"id": "ma_cross:BTC/USDT", "market": "BTC/USDT", "enabled": True}]
    assert doc["session"] == app.session and "events_per_s" in doc and "queue_depth" in doc


def test_a_busy_port_is_an_operational_error_naming_the_holder(tmp_path: Any) -> None:
    import os

    from trader.errors import OperationalError

    app = make_app(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", app.cfg.metrics.port))
        s.listen()
        with pytest.raises(
            OperationalError,
            match=f"metrics.port: cannot listen on 127.0.0.1:"
            f"{app.cfg.metrics.port}: .*; held by pid "
            f"{os.getpid()} ",
        ):
            app.http.bind()


def test_the_summary_line(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(tmp_path, ManualClock(1_700_000_000 * 10**9))
    for i in range(3):
        app.engine.dispatch(quote(ts=i))
    with caplog.at_level(logging.INFO, logger="trader"):
        app.metrics.log_summary()
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("METRICS"))
    assert "3 events" in line and "queue 0, max 0" in line and "rss" in line


def test_timing_samples_one_dispatch_in_n() -> None:
    stats = Stats()
    registry = Registry()
    engine = Engine(Bus(10, 0.1, stats), registry, stats, ManualClock(1_000))
    calls: list[Any] = []
    registry.register(QuoteTick, calls.append)
    timing = DispatchTiming(every=4)
    engine.set_timing(timing)
    for _ in range(12):
        engine.dispatch(quote(ts=400))
    assert len(calls) == 12
    ((name, hist),) = timing.handlers.values()
    assert name == "list.append" and hist.snapshot().count == 3
    lag = timing.lag.snapshot()
    assert lag.count == 3 and lag.sum_s == pytest.approx(3 * 600e-9)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["halt", "--reason", "maintenance", "--cancel-orders"],
            HaltTrading(ts_event=0, ts_recv=0, reason="maintenance", cancel_orders=True),
        ),
        (["resume"], ResumeTrading(ts_event=0, ts_recv=0, reason="operator")),
        (
            ["resume", "--force"],
            ResumeTrading(ts_event=0, ts_recv=0, reason="operator", force=True),
        ),
        (["cancel-all"], CancelAllOrders(ts_event=0, ts_recv=0)),
    ],
)
def test_ctl_py_drives_the_real_endpoint(
    api: App,
    argv: list,
    expected: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the instance's config, ctl finds the port and the token file: no extra flags."""
    import importlib.util
    from dataclasses import replace

    monkeypatch.delenv("TRADER_API_TOKEN", raising=False)
    spec = importlib.util.spec_from_file_location("ctl", ROOT / "scripts" / "ctl.py")
    ctl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ctl)
    config = tmp_path / "ctl.yaml"
    config.write_text(
        f"metrics: {{port: {api.http.port}}}\njournal: {{path: {api.cfg.journal.path}}}\n"
    )
    assert (tmp_path / "api-token").stat().st_mode & 0o777 == 0o600
    assert ctl.main([*argv, "--config", str(config)]) == 0
    got = api.bus.get(1)
    assert replace(got, ts_event=0, ts_recv=0) == expected
    assert ctl.main(["status", "--port", str(api.http.port)]) == 0
    assert "trading_state:" in capsys.readouterr().out


def test_pnl_is_exported_realized_and_unrealized(tmp_path: Any) -> None:
    with running(make_app(tmp_path)) as app:
        wait_until(lambda: app.metrics.snapshot["events"].get("OrderFilled", 0) >= 1)
    app.metrics.refresh()  # stopped: the store no longer moves
    families = {f.name: f for f in text_string_to_metric_families(app.metrics.prometheus())}
    pnl = {s.labels["kind"]: s.value for s in families["trader_pnl_usd"].samples}
    positions = app.store.positions().values()
    assert positions and all(p.symbol.endswith("/USDT") for p in positions)
    # the positions are in USDT, worth 1 USD: the sums of their realized and unrealized PnL
    assert pnl["realized"] == pytest.approx(float(sum(p.realized_pnl for p in positions)))
    marks = {p.symbol: app.store.last_price(p.symbol) for p in positions}
    assert pnl["unrealized"] == pytest.approx(
        float(sum((marks[p.symbol] - p.avg_price) * p.amount for p in positions))
    )
