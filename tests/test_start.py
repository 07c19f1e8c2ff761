"""scripts/start.py as a subprocess: runs, stops on SIGINT/SIGTERM, rejects bad config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START = [sys.executable, str(ROOT / "scripts" / "start.py")]


def fast_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "general: {stats_interval_s: 0.5}\n"
        "simulated: {tick_interval_s: 0.01, candle_interval_s: 1}\n"
        f"journal: {{path: {tmp_path / 'journal'}}}\n"
        "strategies:\n"
        "  - {name: ma_cross, market: BTC/USDT, params: {fast: 2, slow: 3, amount: 0.01}}\n"
    )
    return cfg


def start(cfg: Path, trader_env: dict[str, str] | None = None) -> subprocess.Popen:
    """scripts/start.py on ``cfg``, its output piped; of the ``TRADER_*`` variables only
    ``trader_env``'s are set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env |= trader_env or {}
    return subprocess.Popen(
        START + ["--config", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(proc: subprocess.Popen, text: str, timeout: float = 30) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} not seen in:\n{''.join(lines)}")


def signal_and_wait(
    proc: subprocess.Popen, sig: signal.Signals, timeout: float = 5
) -> tuple[str, float]:
    """Send ``sig`` and wait for the exit: the rest of the output and the seconds the exit
    took from the signal."""
    sent = time.monotonic()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=timeout)
    return out, time.monotonic() - sent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_runs_trades_and_stops_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    proc = start(fast_config(tmp_path))
    try:
        lines = wait_for(proc, "started trader")
        lines += wait_for(proc, "STATS")
        lines += wait_for(proc, "TRADE")
        out, elapsed = signal_and_wait(proc, sig)
    finally:
        proc.kill()
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert elapsed < 2.0, f"took {elapsed:.2f}s to exit"
    assert "BALANCE USDT" in text
    assert f"reason={sig.name}" in text
    assert "events dispatched" in text and "left on the queue" in text
    assert "Traceback" not in text


def test_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    """The second Ctrl-C skips the clean stop: exit code 130 (the clean stop's is 0), well
    within a bound (measured: under 10 ms; the clean stop takes about 0.2 s here). The second
    signal is sent once the first was handled: two sent back to back are merged by the kernel
    into one, which is a first Ctrl-C."""
    proc = start(fast_config(tmp_path))
    try:
        wait_for(proc, "started trader")
        proc.send_signal(signal.SIGINT)
        wait_for(proc, "ShutdownRequested reason=SIGINT")
        out, elapsed = signal_and_wait(proc, signal.SIGINT)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert elapsed < 1.0, f"took {elapsed:.2f}s to exit"
    assert "stopped in" not in out  # the clean stop did not run to its end


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("exchange: {nmae: binance}\n")
    res = subprocess.run(START + ["--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "config error: unknown key 'exchange.nmae' (did you mean 'name'?)"
    )
    assert "Traceback" not in res.stdout + res.stderr


def test_check_config_prints_the_effective_config_redacted(tmp_path: Path) -> None:
    env = dict(os.environ, TRADER_API_KEY="super-secret-key-123")
    res = subprocess.run(
        START + ["--config", str(ROOT / "config.yaml"), "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert "markets:" in res.stdout and "TRADER_API_KEY: <set>" in res.stdout
    assert "super-secret-key-123" not in res.stdout + res.stderr


def loaded_config(tmp_path: Path, markets: int, persist: bool = True) -> Path:
    """``markets`` simulated markets at 1 ms ticks (more than one core can dispatch), MA crosses
    on 1 s candles and market makers trading on the first ten; the paper account saved to
    ``tmp_path``."""
    symbols = [f"M{i}/USDT" for i in range(markets)]
    strategies = "".join(
        f"  - {{name: ma_cross, market: {s}, params: {{fast: 2, slow: 3, amount: 1}}}}\n"
        f"  - {{name: market_maker, market: {s}, params: {{amount: 1, max_inventory: 5, "
        f"cooldown_s: 0.05}}}}\n"
        for s in symbols[:10]
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "general: {stats_interval_s: 60}\n"
        f"trade: {{markets: [{', '.join(symbols)}]}}\n"
        "simulated: {tick_interval_s: 0.001, candle_interval_s: 1, start_prices: {"
        + ", ".join(f"{s}: 100" for s in symbols)
        + "}}\n"
        f"paper: {{persist: {str(persist).lower()}, account_file: {tmp_path / 'acct.json'}, "
        "starting_balances: {USDT: 1000000}}\n"
        "risk: {max_orders_per_window: 0}\n"
        f"journal: {{path: {tmp_path / 'journal'}}}\n"
        "strategies:\n" + strategies
    )
    return cfg


def test_ctrl_c_at_load_writes_the_journal_and_the_account_file_completely(tmp_path: Path) -> None:
    import json
    import re

    from tests.subproc import read_rest
    from trader.events import OrderAccepted, OrderFilled
    from trader.exchange.paper import persistence
    from trader.journal import read_events

    proc = start(loaded_config(tmp_path, 200))
    try:
        wait_for(proc, "started trader")
        wait_for(proc, "TRADE")
        time.sleep(1)  # trading at load
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out = read_rest(proc, timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert elapsed < 5, f"took {elapsed:.2f}s to exit"
    journaled = int(re.search(r"(\d+) journaled", out).group(1))
    events = read_events(tmp_path / "journal")  # every line whole (a torn one would raise)
    assert journaled and len(events) == journaled, out
    account_file = tmp_path / "acct.json"
    saved = persistence.read(account_file)
    assert not account_file.with_name("acct.json.tmp").exists()
    accepted = [e for e in events if isinstance(e, OrderAccepted)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert accepted and fills
    # The file holds the final state: every order and fill the journal recorded, at least.
    assert saved.seq >= max(int(e.exchange_id.removeprefix("paper-")) for e in accepted)
    assert fills[-1].trade_id in {f.trade_id for f in saved.fills}
    assert json.loads(account_file.read_text())["version"] == persistence.FILE_VERSION
