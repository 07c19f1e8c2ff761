"""Alerts through real apprise to a loopback JSON receiver (``json://127.0.0.1:PORT/...``): the
text of each kind, batching of a storm, retries while the receiver is down, the daily summary,
and the URL's token kept out of logs, journal and metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import running, wait_until
from tests.redis_server import free_port
from trader.alerts.rules import AlertRules
from trader.alerts.sender import AlertSender, Outbox, apprise_targets
from trader.app import App
from trader.clock import ManualClock
from trader.config import AlertsConfig, StoreConfig, config_from_dict
from trader.errors import ConfigError
from trader.events import FeedStale, OrderFilled, Side
from trader.logsetup import setup_logging
from trader.stats import Stats
from trader.store.memory import MemoryStore
from trader.store.view import ReadOnlyView

NS = 1_000_000_000
TOKEN = "tok3n-8472-SECRET"


class Receiver:
    """A webhook receiver on a fixed loopback port that can go down and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook/{TOKEN}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.messages.append(json.loads(body))
                receiver.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(
            target=self._server.serve_forever, name="test-receiver", daemon=True
        ).start()

    def down(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def lines(self) -> list[str]:
        return [line for m in self.messages for line in m["message"].splitlines()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    if r._server is not None:
        r.down()


def fill(n: int, ts: int = 0, side: Side = Side.BUY) -> OrderFilled:
    return OrderFilled(
        ts_event=ts,
        ts_recv=ts,
        client_id=f"trd-x-{n}",
        exchange_id=str(n),
        trade_id=f"t{n}",
        symbol="BTC/USDT",
        side=side,
        price=Decimal("60000"),
        amount=Decimal("0.01"),
        fee=Decimal("0.6"),
        fee_asset="USDT",
        filled_total=Decimal("0.01"),
        is_final=True,
    )


def test_a_fill_a_halt_and_a_stale_feed_each_arrive_once_and_the_token_stays_secret(
    tmp_path: Path, receiver: Receiver, capfd: Any, restore_logging: None
) -> None:
    env = {"TRADER_ALERT_URLS": receiver.url}
    cfg = config_from_dict(
        {
            "general": {"name": "bot-7"},
            "simulated": {"tick_interval_s": 0.01},
            "journal": {"path": str(tmp_path / "journal"), "flush_interval_s": 0.05},
            "metrics": {"port": free_port()},
            "reconcile": {"enabled": False},
            "alerts": {"batch_s": 0.05, "min_interval_s": 0, "feed_down_after_s": 3},
        },
        env,
    )
    setup_logging("DEBUG", cfg.secrets.values())
    app = App(cfg)
    with running(app):
        now = time.time_ns()
        app.bus.publish(fill(1, now))
        wait_until(lambda: any("FILL" in line for line in receiver.lines()))
        req = urllib.request.Request(
            f"http://127.0.0.1:{app.http.port}/halt",
            method="POST",
            data=b'{"reason": "maintenance window"}',
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {app.http.token}",
            },
        )
        urllib.request.urlopen(req, timeout=5).close()
        wait_until(lambda: any("HALTED" in line for line in receiver.lines()))
        app.bus.publish(
            FeedStale(ts_event=now, ts_recv=time.time_ns(), feed="sim-feed", silent_s=Decimal("5"))
        )
        wait_until(lambda: any("FEED" in line for line in receiver.lines()))
        time.sleep(0.3)  # anything sent twice would arrive now

        def sent_in_metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}/metrics") as resp:
                text = resp.read().decode()
            return text if 'trader_alerts_total{outcome="sent"} 3' in text else ""

        metrics = wait_until(sent_in_metrics)
    lines = receiver.lines()
    assert lines.count("FILL BUY 0.01 BTC/USDT @ 60000 (fee 0.6 USDT, order trd-x-1)") == 1
    assert lines.count("TRADING HALTED: operator: maintenance window") == 1
    assert [line for line in lines if line.startswith("FEED")] == [
        "FEED sim-feed stale (no data) for 5s"
    ]
    assert all(m["title"].startswith("bot-7: ") for m in receiver.messages)
    assert all(p == f"/hook/{TOKEN}" for p in receiver.paths)  # the token did reach apprise
    logs = capfd.readouterr().err
    assert "maintenance window" in logs  # DEBUG logging was on and captured
    journal = "".join(p.read_text() for p in (tmp_path / "journal").glob("*.jsonl"))
    assert "maintenance window" in journal  # the journal was written...
    for text in (logs, journal, metrics):
        assert TOKEN not in text  # ...and holds no token, nor do the logs or /metrics


def test_fifty_fills_in_a_second_arrive_as_a_few_messages(receiver: Receiver) -> None:
    stats = Stats()
    cfg = AlertsConfig(batch_s=0.3, min_interval_s=0.5)
    outbox = Outbox(cfg.max_pending, stats)
    rules = AlertRules(cfg, outbox, ReadOnlyView(MemoryStore(StoreConfig())), ManualClock(0))
    sender = AlertSender(cfg, outbox, apprise_targets([receiver.url]), "bot", stats)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), name="alerts")
    thread.start()
    try:
        for n in range(50):
            rules.on_fill(fill(n))
            time.sleep(0.02)  # 50 fills over one second
        wait_until(lambda: len(receiver.lines()) >= 50)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(5)
    assert sorted(receiver.lines()) == sorted(
        f"FILL BUY 0.01 BTC/USDT @ 60000 (fee 0.6 USDT, order trd-x-{n})" for n in range(50)
    )
    assert len(receiver.messages) <= 3
    assert (
        receiver.messages[0]["title"].startswith("bot: ")
        and "fill" in receiver.messages[0]["title"]
    )
    assert stats.get("alerts.sent") == 50 and stats.get("alerts.messages") == len(receiver.messages)


def test_receiver_down_loses_nothing_and_never_slows_the_caller(
    receiver: Receiver, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="trader.alerts")
    stats = Stats()
    cfg = AlertsConfig(batch_s=0.01, min_interval_s=0, retry_initial_s=0.05, retry_max_s=0.2)
    outbox = Outbox(cfg.max_pending, stats)
    sender = AlertSender(cfg, outbox, apprise_targets([receiver.url]), "bot", stats)
    receiver.down()
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), name="alerts")
    thread.start()
    rules = AlertRules(cfg, outbox, ReadOnlyView(MemoryStore(StoreConfig())), ManualClock(0))
    slowest = 0.0
    try:
        for n in range(20):  # while the receiver is down (short intervals stand for 10 s)
            t0 = time.perf_counter()
            rules.on_fill(fill(n))
            slowest = max(slowest, time.perf_counter() - t0)
            time.sleep(0.05)
        wait_until(lambda: stats.get("alerts.failed") >= 3)
        receiver.up()
        wait_until(lambda: len(receiver.lines()) >= 20)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(5)
    assert sorted(receiver.lines()) == sorted(
        f"FILL BUY 0.01 BTC/USDT @ 60000 (fee 0.6 USDT, order trd-x-{n})" for n in range(20)
    )
    assert slowest < 0.005  # the main thread only appends
    failures = [r for r in caplog.records if "delivery failed" in r.getMessage()]
    assert len(failures) == 1  # logged once for the whole outage
    assert any("delivered again" in r.getMessage() for r in caplog.records)
    assert stats.get("alerts.sent") == 20 and stats.get("alerts.dropped") == 0


def test_the_daily_summary_comes_once_at_its_time_with_pnl_trades_and_fees() -> None:
    day = 1_800_000_000 // 86_400 * 86_400  # a UTC midnight
    clock = ManualClock((day + 86_400 - 30) * NS)  # 23:59:30
    store = MemoryStore(StoreConfig())
    outbox = Outbox(100, Stats())
    rules = AlertRules(AlertsConfig(daily_summary_utc="00:00"), outbox, ReadOnlyView(store), clock)
    rules.check()
    rules.on_fill(fill(1))
    rules.on_fill(fill(2, side=Side.SELL))
    assert [a.kind for a in outbox.take(10)] == ["fill", "fill"]
    clock.advance(60)  # 00:00:30
    rules.check()
    rules.check()
    (summary,) = outbox.take(10)
    assert summary.kind == "summary"
    assert summary.text.startswith("DAILY SUMMARY ")
    assert "00:00 UTC: equity 0.00 USD; PnL realized +0.00 USD" in summary.text
    assert "2 trade(s) and fees 1.2 USDT" in summary.text
    clock.advance(86_400)
    rules.check()
    (second,) = outbox.take(10)
    assert "(+0.00 since the last summary)" in second.text and "0 trade(s)" in second.text


def test_a_full_outbox_drops_the_oldest_and_counts_them() -> None:
    stats = Stats()
    outbox = Outbox(10, stats)
    rules = AlertRules(
        AlertsConfig(), outbox, ReadOnlyView(MemoryStore(StoreConfig())), ManualClock(0)
    )
    for n in range(15):
        rules.on_fill(fill(n))
    kept = outbox.take(100)
    assert len(kept) == 10 and kept[0].text.endswith("order trd-x-5)")
    assert stats.get("alerts.dropped") == 5


def test_bad_alert_settings_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alerts.daily_summary_utc: '25:00' is not HH:MM"):
        config_from_dict({"alerts": {"daily_summary_utc": "25:00"}}, {})
    with pytest.raises(ConfigError, match="URL #2 is not an apprise URL") as err:
        apprise_targets([f"json://127.0.0.1:1/{TOKEN}", f"nosuchservice://{TOKEN}"])
    assert TOKEN not in str(err.value)
    secret = tmp_path / "urls"
    secret.write_text(f"json://127.0.0.1:1/{TOKEN}\ntgram://123:abc/456\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match="must be readable by its owner only"):
        config_from_dict({}, {"TRADER_ALERT_URLS_FILE": str(secret)})
    secret.chmod(0o600)
    cfg = config_from_dict({}, {"TRADER_ALERT_URLS_FILE": str(secret)})
    assert cfg.secrets.alert_url_list() == (f"json://127.0.0.1:1/{TOKEN}", "tgram://123:abc/456")
    assert f"json://127.0.0.1:1/{TOKEN}" in cfg.secrets.values()  # scrubbed from every log line
