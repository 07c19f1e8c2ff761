"""The shipped Grafana dashboard: a valid dashboard on a Prometheus datasource variable, whose
every query names a metric the running process exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import running
from tests.test_metrics import free_port, get, make_app, wait_until
from trader.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "trader.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# What the dashboard must show (issue 16): a panel per topic, named by the metrics it reads.
TOPICS = {
    "events/s": "trader_events_total",
    "dispatch lag": "trader_dispatch_lag_seconds_bucket",
    "queue depth": "trader_queue_depth",
    "high-water mark": "trader_queue_high_water",
    "conflated": "trader_conflated_total",
    "dropped": "trader_dropped_total",
    "feed states": "trader_feed_state",
    "feed ages": "trader_market_data_age_seconds",
    "trading state": "trader_trading_state",
    "equity": "trader_balances_usd",
    "PnL": "trader_pnl_usd",
    "errors by kind": "trader_errors_total",
    "memory": "process_resident_memory_bytes",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dash: dict[str, Any]) -> list[str]:
    """Every PromQL expression of every panel (rows included)."""
    panels = [p for top in dash["panels"] for p in (top, *top.get("panels", ()))]
    return [t["expr"] for p in panels for t in p.get("targets", ())]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions (before
    ``(``), keywords, label names or values (inside ``{...}``), grouping labels or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    names = re.findall(r"(?<![\w$:.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return {n for n in names if n not in {"and", "or", "unless", "offset", "bool"}}


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, handler) (rate(trader_handler_seconds_bucket"
        '{instance=~"$instance", type="trader_not_a_metric"}[$__rate_interval]))) '
        "/ on(instance) trader_queue_depth offset 5m"
    )
    assert metric_names(expr) == {"trader_handler_seconds_bucket", "trader_queue_depth"}


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    dash = dashboard()
    assert dash["title"] and dash["uid"] and dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            # every query follows the instance selector
            assert all(
                'instance=~"$instance"' in m for m in re.findall(r"\{[^}]*\}", target["expr"])
            )
    used = set().union(*map(metric_names, queries(dash)))
    missing = {topic for topic, name in TOPICS.items() if name not in used}
    assert not missing, f"no panel shows {missing}"


def test_every_type_label_in_the_dashboard_is_an_event_type() -> None:
    for expr in queries(dashboard()):
        for values in re.findall(r'\btype=~?"([^"]*)"', expr):
            assert set(values.split("|")) <= set(EVENT_TYPES), expr


def test_every_metric_in_the_dashboard_is_exported(tmp_path: Path) -> None:
    with running(make_app(tmp_path, sample_every=1)) as app:
        wait_until(
            lambda: (
                app.metrics.snapshot["events"].get("Candle", 0) >= 1
                and app.metrics.snapshot["journal"]["written"] > 0
            )
        )
        status, text = get(app, "/metrics")
    assert status == 200
    exported: set[str] = set()
    for family in text_string_to_metric_families(text):
        exported |= {s.name for s in family.samples}
        # a family without samples yet (no errors so far) is still exported, with its suffixes
        exported |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    used = set().union(*map(metric_names, queries(dashboard())))
    assert used, "no metric found in the dashboard's queries"
    unknown = used - exported
    assert not unknown, f"the dashboard reads metrics /metrics does not export: {sorted(unknown)}"


@pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus is not installed (apt-get install prometheus)",
)
def test_a_real_prometheus_scraping_the_process_answers_every_panel(tmp_path: Path) -> None:
    """Prometheus scrapes the running process every 0.5 s; then each panel's query, with the
    dashboard's variables filled in, is valid PromQL and returns series."""
    app = make_app(tmp_path, sample_every=1)
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "global": {"scrape_interval": "500ms", "evaluation_interval": "10s"},
                "scrape_configs": [
                    {
                        "job_name": "trader",
                        "static_configs": [{"targets": [f"127.0.0.1:{app.cfg.metrics.port}"]}],
                    }
                ],
            }
        )
    )
    log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 (closed below)
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def query(expr: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 422):  # a bad query, with Prometheus's reason
                return json.load(exc)
            raise  # 503 while starting

    def answered(expr: str) -> bool:
        try:
            return bool(query(expr)["data"]["result"])
        except OSError:  # not listening or not ready yet
            return False

    try:
        with running(app):
            # enough scrapes for rate() over 5 s, and a fill for the order panels
            # (and two scrapes since the first fill: rate() needs two samples of its series)
            wait_until(
                lambda: (
                    answered("count_over_time(trader_queue_depth[5s]) >= 6")
                    and answered(
                        'count_over_time(trader_events_total{type="OrderFilled"}[5s]) >= 2'
                    )
                ),
                30,
            )
            results = {}
            for expr in queries(dashboard()):
                filled = expr.replace("$instance", ".*").replace("$__rate_interval", "5s")
                results[expr] = query(filled)
    finally:
        prom.terminate()
        prom.wait(10)
        log.close()
    bad = {e: r.get("error") for e, r in results.items() if r["status"] != "success"}
    assert not bad, bad
    empty = {e for e, r in results.items() if not r["data"]["result"]}
    # Nothing went wrong, so no errors, drops or rejections; the rest must show data.
    may_be_empty = (
        "trader_errors_total",
        "trader_handler_errors_total",
        "OrderRejected",
        "OrderDenied",
    )
    assert all(any(word in e for word in may_be_empty) for e in empty), sorted(empty)
