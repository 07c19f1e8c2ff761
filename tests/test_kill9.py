"""kill -9 at random moments of a fast paper session: after the restart, the paper account
file (the exchange), the store (its saved ledger at the clean stop that follows) and a replay of
the journal agree exactly. 10 trials here; more with ``pytest -m soak``."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.test_start import start, wait_for
from trader.config import config_from_dict
from trader.events import StateRestored, event_from_json
from trader.journal import read_events
from trader.replay import Replayer

SETTLE_S = 1.2  # the restarted process runs this long after trading resumed (one poller round)


def kill_config(tmp_path: Path, trading: bool = True) -> tuple[Path, dict]:
    """The killed session trades fast; the restarted one (``trading`` off) only restores,
    reconciles, polls and stops, so what it saved at its clean stop is what the restart settled
    on. Resting orders of the killed session still fill on the paper exchange right after the
    restart, racing the start-up fetches (a snapshot fetched before such a fill is dispatched
    after it); the poller's next round, a second later, settles that."""
    data: dict = {
        "general": {"stats_interval_s": 60},
        "simulated": {"tick_interval_s": 0.002, "candle_interval_s": 1, "volatility_bps": 20},
        "paper": {"persist": True, "latency_ms": 0},
        "reconcile": {"retry_s": 0.05},
        "journal": {"path": str(tmp_path / "journal"), "flush_interval_s": 0.05},
        "strategies": [
            {
                "name": "ma_cross",
                "market": "BTC/USDT",
                "params": {"fast": 2, "slow": 3, "amount": 0.01},
            },
            {
                "name": "market_maker",
                "market": "BTC/USDT",
                "params": {
                    "spread_bps": 4,
                    "amount": 0.002,
                    "requote_bps": 2,
                    "max_inventory": 0.05,
                    "cooldown_s": 0.05,
                },
            },
        ],
    }
    if not trading:
        data["strategies"] = []
        data["poller"] = {"balances_every_s": 1, "open_orders_every_s": 1, "trades_every_s": 1}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path, data


def read_state(tmp_path: Path) -> StateRestored:
    ev = event_from_json((tmp_path / "trader-state.json").read_text())
    assert isinstance(ev, StateRestored)
    return ev


def account_view(tmp_path: Path) -> tuple[dict, set[str], dict[str, Decimal]]:
    """The paper account's balances (free, used), open order ids and signed fill sums."""
    path = tmp_path / "paper-account.json"
    if not path.exists():  # killed before the first order: the account never changed
        return {"USDT": (Decimal(10_000), Decimal(0))}, set(), {}
    data = json.loads(path.read_text())
    balances = {a: (Decimal(b["free"]), Decimal(b["used"])) for a, b in data["balances"].items()}
    working = {
        o["cmd"]["client_id"] for o in data["orders"] if o["status"] in ("open", "partially_filled")
    }
    positions: dict[str, Decimal] = {}
    for f in data["fills"]:
        sign = 1 if f["side"] == "buy" else -1
        amount = sign * Decimal(f["amount"])
        positions[f["symbol"]] = positions.get(f["symbol"], Decimal(0)) + amount
    return balances, working, {s: a for s, a in positions.items() if a}


def ledger_view(balances, orders, positions) -> tuple[dict, set[str], dict[str, Decimal]]:
    return (
        {b.asset: (b.free, b.used) for b in balances},
        {o.client_id for o in orders if o.is_open},
        {p.symbol: p.amount for p in positions if p.amount},
    )


def run_trial(tmp_path: Path, rng: random.Random) -> dict:
    cfg_path, data = kill_config(tmp_path)
    first = start(cfg_path)
    try:
        wait_for(first, "state=active")
        time.sleep(rng.uniform(0.05, 1.0))
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=5)
    cfg_path, data = kill_config(tmp_path, trading=False)
    second = start(cfg_path)
    try:
        out = wait_for(second, "reconciliation round 1")
        out += wait_for(second, "state=active", timeout=20)
        time.sleep(SETTLE_S)
        second.send_signal(signal.SIGINT)
        rest, _ = second.communicate(timeout=10)
    finally:
        if second.poll() is None:
            second.kill()
    text = "".join(out) + rest
    assert second.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    state = read_state(tmp_path)
    account = account_view(tmp_path)
    store = ledger_view(state.balances, state.orders, state.positions)
    cfg = config_from_dict(data, {})
    replayer = Replayer(cfg)
    replayer.run(read_events(tmp_path / "journal"))
    s = replayer.app.store
    replayed = ledger_view(s.balances().balances.values(), s.orders(), s.positions().values())
    assert store == account, f"store {store}\naccount {account}\n{text[-3000:]}"
    assert replayed == store, f"replay {replayed}\nstore {store}"
    return {"traded": bool(store[2]) or any(o.fills for o in state.orders)}


def trials(tmp_path: Path, n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    results = []
    for i in range(n):
        results.append(run_trial(tmp_path / f"trial{i}", rng))
    return results


def test_kill_9_at_random_moments_then_restart_agrees_exactly(tmp_path: Path) -> None:
    results = trials(tmp_path, 10, seed=11)
    assert sum(r["traded"] for r in results) >= 7  # most sessions traded before the kill


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_kill_9_soak(tmp_path: Path) -> None:
    n = int(os.environ.get("TRADER_KILL9_TRIALS", "100"))
    rng = random.Random(int(os.environ.get("TRADER_KILL9_SEED", "1")))
    failed = []
    for i in range(n):  # every trial runs; the failures are listed with their folders at the end
        try:
            run_trial(tmp_path / f"trial{i}", rng)
        except AssertionError as exc:
            failed.append(f"trial{i}: {str(exc)[:300]}")
    assert not failed, f"{len(failed)} of {n} trials disagree:\n" + "\n".join(failed)
