"""Every counter the code keeps is exported in /metrics with a HELP line.

The names are found in the source (every ``incr(...)`` call in ``trader/``), so a counter added
without a /metrics family fails here, not months later on a dashboard nobody filled."""

from __future__ import annotations

import ast
from decimal import Decimal as D
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from trader import counters
from trader.app import App
from trader.config import Config
from trader.events import BalanceUpdate, OrderFilled, Side

TRADER = Path(__file__).resolve().parent.parent / "trader"


def counted_names() -> set[str]:
    """The names passed to ``incr`` anywhere in trader/, formatted parts replaced by ``x1``."""
    names = set()
    for path in TRADER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "incr"
                and node.args
            ):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                names.add(arg.value)
            elif isinstance(arg, ast.JoinedStr):
                names.add(
                    "".join(v.value if isinstance(v, ast.Constant) else "x1" for v in arg.values)
                )
            else:
                raise AssertionError(f"{path}:{node.lineno}: incr() of a computed name")
    return names


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_the_source_counts_the_counters_the_catalogue_knows() -> None:
    names = counted_names()
    assert {"worker_crashes", "x1.connects", "polled.x1", "redis_acked"} <= names  # found
    unknown = [
        n
        for n in names
        if counters.family(n) is not None and counters.family(n)[0] == counters.OTHER[0]
    ]
    assert unknown == [], f"counters without a /metrics family in trader/counters.py: {unknown}"


def test_every_counter_appears_in_metrics_with_help() -> None:
    app = App(Config())
    names = sorted(counted_names())
    for i, name in enumerate(names, 1):
        app.stats.incr(name, i)
    app.metrics.refresh()
    text = app.metrics.prometheus()
    fams = families(text)
    for i, name in enumerate(names, 1):
        spec = counters.family(name)
        if spec is None:  # exported by another family
            continue
        fam, help_, labels = spec
        assert f"# HELP {fam} {help_}" in text
        samples = [s for s in fams[fam.removesuffix("_total")].samples if s.labels == labels]
        assert [s.value for s in samples] == [i], name
    # bus_put_timeouts is exported as a dropped count
    dropped = {s.labels["where"]: s.value for s in fams["trader_dropped"].samples}
    assert dropped["bus_put_timeout"] == names.index("bus_put_timeouts") + 1


def test_counters_kept_outside_stats_are_exported() -> None:
    app = App(Config())
    assert set(app._kept_counters()) == set(counters.KEPT)  # every one the wiring reads
    fill = OrderFilled(
        ts_event=1,
        ts_recv=1,
        client_id="c1",
        exchange_id="e1",
        trade_id="t1",
        symbol="BTC/USDT",
        side=Side.BUY,
        price=D(100),
        amount=D(1),
        fee=D(0),
        fee_asset="USDT",
        filled_total=D(1),
        is_final=True,
    )
    app.store.on_order_filled(fill)
    app.store.on_order_filled(fill)  # the same fill again: applied once, counted
    for ts in (2, 1):  # an older balance after a newer one: ignored, counted
        app.store.on_balance(
            BalanceUpdate(ts_event=ts, ts_recv=ts, asset="BTC", free=D(ts), used=D(0), total=D(ts))
        )
    app.systemd.failures = 2
    app.metrics.refresh()
    text = app.metrics.prometheus()
    fams = families(text)
    for fam, help_ in counters.KEPT.values():
        assert f"# HELP {fam} {help_}" in text
    value = {
        name: fams[fam.removesuffix("_total")].samples[0].value
        for name, (fam, _) in counters.KEPT.items()
    }
    assert value == {
        "store_duplicate_fills": 1,
        "store_late_fills": 0,
        "store_illegal_transitions": 0,
        "store_stale_updates": 1,
        "systemd_notify_failures": 2,
    }


def test_an_unknown_counter_is_still_exported() -> None:
    app = App(Config())
    app.stats.incr("something_new")
    app.metrics.refresh()
    fams = families(app.metrics.prometheus())
    assert [(s.labels, s.value) for s in fams["trader_counter"].samples] == [
        ({"name": "something_new"}, 1)
    ]
