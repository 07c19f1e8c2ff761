#!/usr/bin/env python3
"""The bench figures of issue 14's items 4-6, registered in scripts/bench.py (``FIGURES``).

backtest  our backtest against backtesting.py on the same generated one-minute bars (a
          deterministic random walk written to a temporary CSV, never a download) and the same
          rules: a moving-average cross buying 1 unit when the fast SMA of closes crosses above
          the slow one and selling up to 1 unit when it crosses below, filled at the bar's
          close, no spread, no slippage. Each side runs in a fresh process, alternated, and
          reports its wall time (reading the CSV included) and peak RSS; the trades must be
          identical (bar, side, size, price) or the figure fails. Targets: time <= 5x and
          memory <= 2x backtesting.py's at 500k bars (ratios: median of 5 pairs, with range);
          time per bar (median of our runs at each size) within +-20 % of the median from 100k
          to 1M bars. backtesting.py is the ``bench`` extra (pip install -e '.[bench]').
persist   events/s dispatched with 200 simulated markets at 1 ms ticks, ``paper.persist`` true
          over false (the account file written by its writer thread), paired runs of
          scripts/start.py, target >= 0.9.
ctrl_c    SIGINT to process exit of scripts/start.py with 500 markets at 1 ms ticks (saturated),
          target <= 1 s (median of 5 runs, with range). That the journal and the account file
          are complete at such an exit is tested by tests/test_start.py.

Run alone: ``python scripts/bench_backtest.py [--quick] [--only backtest,persist,ctrl_c]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000  # s: the first bar's start
FAST, SLOW = 10, 30
CASH = 1_000_000
FEE = 0.001


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    """Median and range of ``values``."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": len(values),
    }


# ------------------------------------------------------------------------------ data


def write_bars(path: Path, n: int, seed: int = 14) -> Path:
    """``n`` one-minute OHLCV bars of a seeded random walk in whole cents (so both sides see
    exactly the same prices), as the CSV ``trader-backtest`` reads."""
    rng = random.Random(seed)
    cents = 10_000
    with open(path, "w") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        for i in range(n):
            close = max(200, cents + rng.randint(-6, 6))
            high = max(cents, close) + rng.randint(0, 3)
            low = min(cents, close) - rng.randint(0, 3)
            fh.write(
                f"{T0 + 60 * i},{cents / 100:.2f},{high / 100:.2f},{low / 100:.2f},"
                f"{close / 100:.2f},1000\n"
            )
            cents = close
    return path


# ------------------------------------------------------------------------------ the two sides


def run_ours(csv_path: str) -> dict[str, Any]:
    """Our backtest of the cross over ``csv_path`` (in this process)."""
    sys.path.insert(0, str(ROOT))
    from trader.backtest import read_csv, run_csv
    from trader.config import config_from_dict

    cfg = config_from_dict(
        {
            "trade": {"markets": ["BTC/USDT"]},
            "paper": {"starting_balances": {"USDT": CASH}, "fee_rate": FEE, "slippage_bps": 0},
            "simulated": {"spread_bps": 0},
            "risk": {"max_position_notional": CASH, "daily_loss_limit": CASH},
            "strategies": [
                {
                    "name": "ma_cross",
                    "market": "BTC/USDT",
                    "params": {"fast": FAST, "slow": SLOW, "amount": 1},
                }
            ],
        },
        {},
    )
    t0 = time.perf_counter()
    result = run_csv(cfg, {"BTC/USDT": read_csv(csv_path)})
    seconds = time.perf_counter() - t0
    trades = [
        [(f.ts_ns // 10**9 - 60 - T0) // 60, f.side, float(f.amount), float(f.price)]
        for f in result.fills
    ]
    return {"seconds": seconds, "trades": trades, "end_equity": float(result.end_equity)}


def run_theirs(csv_path: str) -> dict[str, Any]:
    """backtesting.py's backtest of the same cross (in this process)."""
    import numpy as np
    import pandas as pd
    from backtesting import Backtest, Strategy

    def cross_sign(close: Any) -> Any:
        # Exact: sums of whole cents compared as fast_sum * SLOW vs slow_sum * FAST.
        cents = np.rint(np.asarray(close) * 100).astype(np.int64)
        c = np.concatenate(([0], np.cumsum(cents)))
        out = np.full(len(cents), np.nan)
        idx = np.arange(SLOW - 1, len(cents))
        fast = c[idx + 1] - c[idx + 1 - FAST]
        slow = c[idx + 1] - c[idx + 1 - SLOW]
        out[idx] = np.sign(fast * SLOW - slow * FAST)
        return out

    class Cross(Strategy):
        def init(self) -> None:
            self.sign = self.I(cross_sign, self.data.Close)
            self.last = 0

        def next(self) -> None:
            sign = int(self.sign[-1])
            previous, self.last = self.last, sign
            if previous == 0 or sign == previous or sign == 0:
                return
            if sign > 0:
                self.buy(size=1)
            elif self.position.size > 0:
                self.sell(size=min(1, self.position.size))

    t0 = time.perf_counter()
    df = pd.read_csv(csv_path)
    df.index = pd.to_datetime(df.pop("timestamp"), unit="s")
    df.columns = ["Open", "High", "Low", "Close", "Volume"]
    bt = Backtest(
        df,
        Cross,
        cash=CASH,
        commission=FEE,
        trade_on_close=True,
        exclusive_orders=False,
        finalize_trades=False,
    )
    stats = bt.run()
    seconds = time.perf_counter() - t0
    trades = []
    for t in stats["_trades"].itertuples():
        start = int((t.EntryTime - pd.Timestamp(T0, unit="s")).total_seconds()) // 60
        trades.append([start, "buy", float(abs(t.Size)), float(t.EntryPrice)])
        if not pd.isna(t.ExitTime):
            end = int((t.ExitTime - pd.Timestamp(T0, unit="s")).total_seconds()) // 60
            trades.append([end, "sell", float(abs(t.Size)), float(t.ExitPrice)])
    for t in stats["_strategy"].trades:  # still open at the end, like ours
        start = int((t.entry_time - pd.Timestamp(T0, unit="s")).total_seconds()) // 60
        trades.append([start, "buy", float(abs(t.size)), float(t.entry_price)])
    trades.sort(key=lambda x: (x[0], x[1] == "sell"))
    return {"seconds": seconds, "trades": trades, "end_equity": float(stats["Equity Final [$]"])}


def child(side: str, csv_path: str) -> dict[str, Any]:
    """Run one side in a fresh process; its time, peak RSS and trades."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, csv_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if out.returncode:
        raise RuntimeError(f"{side} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def backtest(quick: bool) -> dict[str, Any]:
    """See the module docstring."""
    sizes = (20_000, 50_000) if quick else (100_000, 200_000, 500_000, 1_000_000)
    compare_at = sizes[-2]
    runs = 1 if quick else 5
    missing = [m for m in ("backtesting", "pandas") if importlib.util.find_spec(m) is None]
    if missing:  # the anchor is an optional bench dependency, as P2's is
        return {
            "ratio": None,
            "target": "time <= 5x, memory <= 2x, per bar +-20 %, identical trades",
            "met": None,
            "note": f"{', '.join(missing)} not installed; pip install -e '.[bench]'",
        }
    out: dict[str, Any] = {
        "rules": f"SMA {FAST}/{SLOW} cross, 1 unit, fill at close",
        "compare_at_bars": compare_at,
    }
    with tempfile.TemporaryDirectory() as tmp:
        per_bar: dict[int, float] = {}
        for n in sizes:
            path = str(write_bars(Path(tmp) / f"bars-{n}.csv", n))
            if n != compare_at:
                alone = [child("ours", path) for _ in range(max(1, runs // 2))]
                seconds = [r["seconds"] for r in alone]
                per_bar[n] = statistics.median(seconds) / n * 1e6
                out[f"ours_{n}"] = {
                    "seconds": summary(seconds, 2),
                    "peak_rss_mb": max(r["rss_mb"] for r in alone),
                }
                continue
            times, mems, seconds, same = [], [], [], True
            for _ in range(runs):
                theirs = child("theirs", path)
                ours = child("ours", path)
                same = same and ours["trades"] == theirs["trades"]
                times.append(ours["seconds"] / theirs["seconds"])
                mems.append(ours["rss_mb"] / theirs["rss_mb"])
                seconds.append(ours["seconds"])
            per_bar[n] = statistics.median(seconds) / n * 1e6
            out[f"at_{n}"] = {
                "ours_s": round(ours["seconds"], 2),
                "ours_peak_rss_mb": ours["rss_mb"],
                "backtesting_py_s": round(theirs["seconds"], 2),
                "backtesting_py_peak_rss_mb": theirs["rss_mb"],
                "time_ratio": summary(times),
                "memory_ratio": summary(mems),
                "trades": len(ours["trades"]),
                "identical_trades": same,
            }
    mid = statistics.median(per_bar.values())
    spread = max(abs(v / mid - 1) for v in per_bar.values())  # flat: within +-20 % of the median
    cmp_ = out[f"at_{compare_at}"]
    out["us_per_bar"] = {str(n): round(v, 2) for n, v in per_bar.items()}
    out["per_bar_deviation_from_median"] = round(spread, 3)
    out["ratio"] = cmp_["time_ratio"]["median"]
    out["target"] = "time <= 5x, memory <= 2x, per bar +-20 %, identical trades"
    out["met"] = (
        cmp_["time_ratio"]["median"] <= 5
        and cmp_["memory_ratio"]["median"] <= 2
        and cmp_["identical_trades"]
        and spread <= 0.2
    )
    return out


# ------------------------------------------------------------------------------ persist, ctrl_c


def loaded_config(folder: Path, markets: int, persist: bool) -> Path:
    """``markets`` simulated markets at 1 ms ticks (more than one core dispatches), MA crosses
    on 1 s candles and market makers on the first ten, the journal and the account file in
    ``folder``."""
    symbols = [f"M{i}/USDT" for i in range(markets)]
    strategies = "".join(
        f"  - {{name: ma_cross, market: {s}, params: {{fast: 2, slow: 3, amount: 1}}}}\n"
        f"  - {{name: market_maker, market: {s}, params: {{amount: 1, max_inventory: 5, "
        f"cooldown_s: 0.05}}}}\n"
        for s in symbols[:10]
    )
    cfg = folder / f"config-{markets}-{persist}.yaml"
    cfg.write_text(
        "general: {stats_interval_s: 60}\n"
        f"trade: {{markets: [{', '.join(symbols)}]}}\n"
        "simulated: {tick_interval_s: 0.001, candle_interval_s: 1, start_prices: {"
        + ", ".join(f"{s}: 100" for s in symbols)
        + "}}\n"
        f"paper: {{persist: {str(persist).lower()}, account_file: {folder / 'acct.json'}, "
        "starting_balances: {USDT: 1000000}}\n"
        "risk: {max_orders_per_window: 0}\n"
        f"journal: {{path: {folder / 'journal'}}}\n"
        "strategies:\n" + strategies
    )
    return cfg


def run_start(cfg: Path, seconds: float) -> dict[str, float]:
    """Run scripts/start.py on ``cfg`` for ``seconds`` after its start line, then SIGINT: the
    events/s it dispatched meanwhile and the SIGINT-to-exit time. Fails loudly when the start
    line or the totals line is not seen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "start.py"), "--config", str(cfg)],
        cwd=cfg.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "started trader" in line:
                break
        else:
            raise RuntimeError("no start line:\n" + "".join(seen[-20:]))
        started = time.monotonic()
        time.sleep(seconds)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        proc.wait(30)
        exited = time.monotonic()
    finally:
        proc.kill()
    found = re.search(r"stopped in ([\d.]+)s: (\d+) events dispatched", rest)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"exit code {proc.returncode}, no totals line:\n{rest[-3000:]}")
    return {
        "eps": int(found.group(2)) / (sent - started),
        "exit_s": exited - sent,
        "logged_stop_s": float(found.group(1)),
    }


def fresh_run(markets: int, persist: bool, seconds: float) -> dict[str, float]:
    """:func:`run_start` in a new folder: no account file or journal from an earlier run."""
    with tempfile.TemporaryDirectory() as tmp:
        return run_start(loaded_config(Path(tmp), markets, persist), seconds)


def persist(quick: bool) -> dict[str, Any]:
    """See the module docstring."""
    runs, seconds = (2, 3.0) if quick else (5, 6.0)
    ratios, on, off = [], [], []
    for _ in range(runs):
        off.append(fresh_run(200, False, seconds)["eps"])
        on.append(fresh_run(200, True, seconds)["eps"])
        ratios.append(on[-1] / off[-1])
    r = summary(ratios)
    return {
        "markets": 200,
        "tick_ms": 1,
        "seconds_per_run": seconds,
        "persist_false_eps": summary(off, 0),
        "persist_true_eps": summary(on, 0),
        "ratio_range": r,
        "ratio": r["median"],
        "target": 0.9,
        "met": r["median"] >= 0.9,
    }


def ctrl_c(quick: bool) -> dict[str, Any]:
    """See the module docstring."""
    runs = 2 if quick else 5
    exits, logged = [], []
    for _ in range(runs):
        r = fresh_run(500, True, 3.0)
        exits.append(r["exit_s"])
        logged.append(r["logged_stop_s"])
    s = summary(exits)
    return {
        "markets": 500,
        "tick_ms": 1,
        "sigint_to_exit_s": s,
        "logged_stop_s": summary(logged),
        "ratio": s["median"],
        "target": 1.0,
        "met": s["median"] <= 1.0,
    }


# ------------------------------------------------------------------------------ registry

FIGURES: dict[str, Callable[[bool], dict[str, Any]]] = {
    "backtest": backtest,
    "persist": persist,
    "ctrl_c": ctrl_c,
}


def main() -> int:
    """Run the figures alone (or one side of the backtest, for the bench's children)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(FIGURES))
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, path = args.child
        result = (run_ours if side == "ours" else run_theirs)(path)
        result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(result))
        return 0
    only = args.only.split(",") if args.only else list(FIGURES)
    for name in only:
        print(json.dumps({name: FIGURES[name](args.quick)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
