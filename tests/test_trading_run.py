"""The shipped config.yaml as a real process: both example strategies trade on paper with the
risk limits, start-up reconciliation gates trading, and the paper account survives a restart."""

from __future__ import annotations

import json
import re
import signal
import time
from decimal import Decimal
from pathlib import Path

from tests.test_start import ROOT, start, wait_for
from trader.events import StateRestored, event_from_json


def shipped_config(tmp_path: Path) -> Path:
    text = (ROOT / "config.yaml").read_text()
    text = text.replace("path: data/journal", f"path: {tmp_path / 'data' / 'journal'}")
    text = text.replace("tick_interval_s: 0.25", "tick_interval_s: 0.02")
    text = text.replace("port: 9108", "port: 0")  # a running instance may hold the port
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    return cfg


def run_until(cfg: Path, *texts: str) -> str:
    proc = start(cfg)
    try:
        lines: list[str] = []
        for text in texts:
            lines += wait_for(proc, text)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    return "".join(lines) + out


def test_shipped_config_trades_both_strategies_and_resumes_after_a_restart(
    tmp_path: Path,
) -> None:
    cfg = shipped_config(tmp_path)
    out = run_until(
        cfg,
        "strategies ma_cross:BTC/USDT, ma_cross:ETH/USDT, market_maker:BTC/USDT",
        "state=active",
        "TRADE",
    )
    assert out.index("state=halted reason=reconciliation") < out.index("state=active")
    assert "Traceback" not in out
    account = tmp_path / "data" / "paper-account.json"
    data = json.loads(account.read_text())
    strategies = {o["cmd"]["strategy"] for o in data["orders"]}
    assert "market_maker:BTC/USDT" in strategies
    ids = [o["cmd"]["client_id"] for o in data["orders"]]
    assert len(ids) == len(set(ids))

    # What the first process saved is exactly what the account holds (a clean stop).
    saved = read_state(tmp_path / "data" / "trader-state.json")
    assert {b.asset: (b.free, b.used) for b in saved.balances} == {
        a: (Decimal(b["free"]), Decimal(b["used"])) for a, b in data["balances"].items()
    }
    positions = {p.symbol: p.amount for p in saved.positions}
    assert positions == signed_fills(data["fills"])
    first_fills = {f["trade_id"] for f in data["fills"]}

    proc = start(cfg)
    try:
        lines = wait_for(proc, "paper: account loaded from")
        lines += wait_for(proc, "state: restored")
        lines += wait_for(proc, "reconciliation round 1")
        lines += wait_for(proc, "state=active")
        # Both default strategies trade after the restart: new fills of each, in the account.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not {
            "ma_cross",
            "market_maker",
        } <= new_fill_strategies(account, first_fills):
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    out = "".join(lines) + out
    assert "starting_balances ignored" in out and "Traceback" not in out
    assert {"ma_cross", "market_maker"} <= new_fill_strategies(account, first_fills), out[-3000:]
    # The restored ledger knew the account's orders and fills: nothing adopted, nothing unknown
    # (resting orders filling on the first quotes may still race the first round's fetch).
    assert "reconciliation round 1" in out and "adopted" not in out, out[-3000:]
    assert "fills of orders we do not know" not in out  # the first session's are known
    data2 = json.loads(account.read_text())
    ids2 = [o["cmd"]["client_id"] for o in data2["orders"]]
    assert len(ids2) == len(set(ids2))  # the second session's ids never clash with the first's
    # The first session's fills are not logged again as trades of the second.
    new_orders = {f["client_id"] for f in data2["fills"] if f["trade_id"] not in first_fills}
    traded = set(re.findall(r"TRADE .* order (\S+)\)", out))
    assert traded and traded <= new_orders
    saved2 = read_state(tmp_path / "data" / "trader-state.json")
    assert {p.symbol: p.amount for p in saved2.positions} == signed_fills(data2["fills"])


def read_state(path: Path) -> StateRestored:
    ev = event_from_json(path.read_text())
    assert isinstance(ev, StateRestored)
    return ev


def signed_fills(fills: list[dict]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for f in fills:
        sign = 1 if f["side"] == "buy" else -1
        out[f["symbol"]] = out.get(f["symbol"], Decimal(0)) + sign * Decimal(f["amount"])
    return out


def new_fill_strategies(account: Path, before: set[str]) -> set[str]:
    data = json.loads(account.read_text())
    strategy = {o["cmd"]["client_id"]: o["cmd"]["strategy"].split(":")[0] for o in data["orders"]}
    return {strategy.get(f["client_id"], "?") for f in data["fills"] if f["trade_id"] not in before}
