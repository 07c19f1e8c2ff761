"""The dashboard and report.html in a real headless Chromium (Debian's ``chromium``, driven by
Playwright), against a running paper session on the simulated market; the JSON endpoint's
bounds; the history buffers. The browser tests skip only when /usr/bin/chromium is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import running
from tests.redis_server import free_port
from tests.test_backtest import CLOSES, CONFIG, write_bars
from tests.test_replay import record_session, session_config
from trader.app import App
from trader.backtest import read_csv, run_csv, write_report
from trader.clock import ManualClock
from trader.config import StoreConfig, config_from_dict
from trader.events import FeedConnected, FeedDisconnected, FeedStale
from trader.metrics import rss_bytes
from trader.store.memory import MemoryStore
from trader.store.view import ReadOnlyView
from trader.web.dashboard import Dashboard
from trader.web.history import EquitySeries, History
from trader.web.html_report import backtest_report, bar_rows, write_html

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
NS = 1_000_000_000

NO_CHROMIUM = f"{CHROMIUM} is not installed (apt-get install chromium)"
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=NO_CHROMIUM)


def make_app(tmp_path: Path, port: int | None = None) -> App:
    cfg = config_from_dict(
        {
            "general": {"name": "dash-test"},
            "simulated": {"tick_interval_s": 0.01, "candle_interval_s": 1},
            "journal": {"path": str(tmp_path / "journal"), "flush_interval_s": 0.05},
            "metrics": {"port": port or free_port()},
            "reconcile": {"retry_s": 0.2},
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
    return App(cfg)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A page of a fresh headless Chromium; ``page.problems`` collects console errors."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(NO_CHROMIUM)
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            viewport={"width": 1440, "height": 1300},
        )
        pg = context.new_page()
        pg.problems = []
        pg.on("console", lambda m: m.type == "error" and pg.problems.append(m.text))
        pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
        try:
            yield pg
        finally:
            context.close()


def canvas_drawn(page: Any, selector: str) -> int:
    """Pixels of the chart's main canvas that differ from its background."""
    return page.evaluate(
        """sel => {
        const c = document.querySelector(sel + ' canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4)
            if (Math.abs(d[i] - 15) + Math.abs(d[i + 1] - 20) + Math.abs(d[i + 2] - 28) > 60) n++;
        return n;
    }""",
        selector,
    )


@needs_chromium
def test_the_dashboard_shows_the_running_session_and_a_halt_within_2s(
    tmp_path: Path, page: Any
) -> None:
    app = make_app(tmp_path)
    with running(app):
        url = f"http://127.0.0.1:{app.http.port}/"
        page.goto(url)
        page.wait_for_selector("#mode.paper", timeout=5000)
        assert page.inner_text("#mode").upper() == "PAPER TRADING"
        page.wait_for_function(
            "document.querySelector('#state').textContent === 'trading active'", timeout=10000
        )
        page.wait_for_function(
            "document.querySelector('#balances').textContent.includes('USDT')", timeout=5000
        )
        page.wait_for_function(
            "/[0-9],[0-9]{3}\\.[0-9]{2}/.test(document.querySelector('#markets').textContent)",
            timeout=5000,
        )
        fill_row = page.wait_for_selector("#fills span.buy, #fills span.sell", timeout=20000)
        assert fill_row.inner_text() in ("BUY", "SELL")
        page.wait_for_function("document.querySelector('#nfills').textContent !== '0'")
        assert canvas_drawn(page, '.chart[data-symbol="BTC/USDT"]') > 500
        assert canvas_drawn(page, "#equity-chart") > 500
        assert page.is_hidden("#halts")

        ctl = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "ctl.py"),
                "halt",
                "--reason",
                "dashboard check",
                "--port",
                str(app.http.port),
            ],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "TRADER_API_TOKEN": app.http.token},
        )
        t0 = time.monotonic()  # the instance has accepted the halt
        assert ctl.returncode == 0, ctl.stderr
        page.wait_for_function(
            "document.querySelector('#halts').textContent.includes('dashboard check')"
            " && document.querySelector('#state').textContent === 'trading halted'",
            timeout=2000,
        )
        shown_after = time.monotonic() - t0
        assert page.inner_text("#state") == "TRADING HALTED"  # text-transform: uppercase
        assert "operator: dashboard check" in page.inner_text("#halts")
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot))
        print(f"dashboard screenshot: {shot}")
    assert shown_after < 2.0
    assert page.problems == []


@needs_chromium
def test_the_page_says_it_is_reconnecting_and_recovers_after_a_restart(
    tmp_path: Path, page: Any
) -> None:
    port = free_port()
    with running(make_app(tmp_path / "a", port)) as first:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector(".conn.ok", timeout=5000)
        session = first.session
        assert session in page.inner_text("#exchange")
    page.wait_for_selector("#reconnecting", state="visible", timeout=5000)
    assert "reconnecting" in page.inner_text("#reconnecting")
    time.sleep(1.1)  # the next App needs a session id of its own (one per second and pid)
    with running(make_app(tmp_path / "b", port)) as second:
        page.wait_for_selector("#reconnecting", state="hidden", timeout=10000)
        page.wait_for_function(
            f"document.querySelector('#exchange').textContent.includes('{second.session}')",
            timeout=5000,
        )
    assert second.session != session


@needs_chromium
def test_report_html_opens_from_disk_with_no_server_and_no_network(
    tmp_path: Path, page: Any
) -> None:
    cfg = config_from_dict(CONFIG, {})
    bars = read_csv(write_bars(tmp_path / "btc.csv", CLOSES))
    result = run_csv(cfg, {"BTC/USDT": bars})
    write_report(result, tmp_path / "report")
    path = write_html(backtest_report(result, {"BTC/USDT": bar_rows(bars)}), tmp_path / "report")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_selector("#fills td.buy", timeout=5000)
    assert requests == [path.as_uri()]  # everything is inline
    assert "Backtest BTC/USDT" in page.title()
    summary = page.inner_text("#summary")
    assert "Return\t-0.02%" in summary and "Max drawdown\t0.15%" in summary
    assert "4 fills, 2 round trips" in summary
    assert page.eval_on_selector_all("#fills tr", "rows => rows.length") == 1 + 4
    assert canvas_drawn(page, '.chart[data-symbol="BTC/USDT"]') > 500
    assert canvas_drawn(page, "#equity-chart") > 500
    assert canvas_drawn(page, "#drawdown-chart") > 500
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"report screenshot: {shot}")
    assert page.problems == []


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_endpoint_serves_the_page_and_nothing_beside_it(tmp_path: Path) -> None:
    with running(make_app(tmp_path)) as app:
        port = app.http.port
        status, page = get(port, "/")
        assert status == 200 and b"/static/dashboard.js" in page
        status, js = get(port, "/static/vendor/lightweight-charts.standalone.production.js")
        assert status == 200 and b"Lightweight Charts" in js[:300]
        for path in (
            "/static/../config.py",
            "/static/vendor/LICENSE",
            "/static/nope.js",
            "/static//etc/passwd",
        ):
            assert get(port, path)[0] == 404, path
        status, body = get(port, "/api/dashboard?full=1")
        doc = json.loads(body)
        assert status == 200 and doc["full"] is True
        assert doc["header"]["name"] == "dash-test" and doc["header"]["mode"] == "paper"
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 404  # read-only: nothing to POST to


def test_feed_rows_show_each_streams_last_message_age(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.engine.dispatch(FeedConnected(ts_event=1, ts_recv=1, feed="ws-binance-market"))
    app.metrics.refresh()
    dash = Dashboard(
        app.metrics,
        app.view,
        app.history,
        ["BTC/USDT"],
        app.clock,
        lambda: {"ws-binance-market": 2.345},
    )
    (row,) = [r for r in dash.document(False)["feeds"] if r["feed"] == "ws-binance-market"]
    assert row["message_age_s"] == 2.3 and row["state"] == "connected"


def test_a_page_polling_for_ten_minutes_costs_no_memory_and_no_dispatch_rate(
    tmp_path: Path,
) -> None:
    """600 polls (ten minutes at one a second, sent back to back) after a warm-up: the process
    does not grow and the main loop dispatches as fast as without them."""
    with running(make_app(tmp_path)) as app:
        port = app.http.port

        def rate(seconds: float, poll: bool) -> float:
            start, t0 = app.stats.snapshot()["dispatched_total"], time.monotonic()
            while time.monotonic() - t0 < seconds:
                if poll:
                    get(port, "/api/dashboard")
                else:
                    time.sleep(0.01)
            return (app.stats.snapshot()["dispatched_total"] - start) / seconds

        for _ in range(100):
            get(port, "/api/dashboard?full=1")
        idle = rate(2.0, poll=False)
        before = rss_bytes()
        for n in range(600):
            assert (
                get(port, "/api/dashboard?full=1" if n % 300 == 0 else "/api/dashboard")[0] == 200
            )
        grown = rss_bytes() - before
        busy = rate(2.0, poll=True)
    print(f"600 polls: rss {grown / 1e6:+.2f} MB; dispatch {idle:.0f}/s idle, {busy:.0f}/s polled")
    assert grown < 4_000_000, f"the process grew by {grown / 1e6:.1f} MB"
    assert busy > 0.8 * idle, (idle, busy)


def test_history_is_bounded_and_keeps_the_whole_run() -> None:
    series = EquitySeries(100)
    for second in range(100_000):
        series.add(second, Decimal(second))
    points = series.points()
    assert len(points) < 100
    assert points[0][0] == 0 and points[-1][0] > 99_000  # start to (nearly) now
    assert [t for t, _ in points] == sorted({t for t, _ in points})

    clock = ManualClock(1_800_000_000 * NS)
    history = History(
        ReadOnlyView(MemoryStore(StoreConfig())),
        clock,
        lambda: {"operator": "x"},
        max_fills=10,
        max_denials=5,
    )
    history.on_feed(FeedConnected(ts_event=1, ts_recv=1, feed="ws"))
    history.on_feed(FeedDisconnected(ts_event=2, ts_recv=2, feed="ws", reason="closed 1006"))
    history.on_feed(FeedConnected(ts_event=3, ts_recv=3, feed="ws"))
    history.on_feed(FeedStale(ts_event=4, ts_recv=4, feed="ws", silent_s=Decimal("61")))
    notes = history.feeds()["ws"]
    assert notes.reconnects == 1 and notes.last_error == "stale: no data for 61s"
    history.sample()
    assert history.halts() == (("operator", "x"),)
    assert history.equity() == ((1_800_000_000, Decimal(0)),)


def test_replay_writes_report_html_with_the_recorded_fills(tmp_path: Path) -> None:
    journal, app = record_session(tmp_path, steps=600)
    fills = app.stats.snapshot()["dispatched"].get("OrderFilled", 0)
    assert fills, "the recorded session traded"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(session_config(tmp_path, False)))
    out = tmp_path / "replay-report"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "replay.py"),
            str(journal),
            "--config",
            str(cfg),
            "--report",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert f"report: {out / 'report.html'}" in res.stdout
    text = (out / "report.html").read_text()
    data = json.loads(text.split("const REPORT = ", 1)[1].split(";</script>", 1)[0])
    assert len(data["fills"]) == fills
    assert data["candles"]["BTC/USDT"] and data["equity"]
    assert "LightweightCharts" in text and "<script src" not in text  # all inline
