"""The shipped config.yaml as a real process: both example strategies trade on paper with the
risk limits, start-up reconciliation gates trading, and the paper account survives a restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.test_start import ROOT, start, wait_for


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
    out = run_until(cfg, "strategies ma_cross:BTC/USDT, ma_cross:ETH/USDT, "
                         "market_maker:BTC/USDT", "state=active", "TRADE")
    assert out.index("state=halted reason=reconciliation") < out.index("state=active")
    assert "Traceback" not in out
    account = tmp_path / "data" / "paper-account.json"
    data = json.loads(account.read_text())
    strategies = {o["cmd"]["strategy"] for o in data["orders"]}
    assert "market_maker:BTC/USDT" in strategies
    ids = [o["cmd"]["client_id"] for o in data["orders"]]
    assert len(ids) == len(set(ids))

    out = run_until(cfg, "paper: account loaded from", "reconciliation round 1", "state=active")
    assert "starting_balances ignored" in out and "Traceback" not in out
    data2 = json.loads(account.read_text())
    ids2 = [o["cmd"]["client_id"] for o in data2["orders"]]
    assert len(ids2) == len(set(ids2))  # the second session's ids never clash with the first's
