"""The whole-app figures of scripts/bench.py (issue 17), registered there with ``@figure``.

P7          ``scripts/start.py`` as a user runs it: paper mode on binance, one market (BTC/USDT),
            REST on the local Binance double (tests/doubles/binance_rest.py), the websocket on
            the local sender of pre-encoded ``bookTicker`` frames (scripts/bench_ws.py, plan
            ``repeat``), journal and the shipped strategies of that market on. The app's rate is
            read from its own STATS lines (one a second: market data taken in per second, the
            share conflated, events dispatched per second) over a timed window after a warm-up,
            against a bare websocket-client ``recv`` + ``json.loads`` loop on the same sender
            over the same window; alternating rounds, the ratio the median of the per-round
            ratios with its range. The per-handler times the app measured itself (sampled, from
            ``/metrics``) are printed with it: what each part costs per quote.
strategies  each shipped strategy's own time per call of each callback it overrides (µs, median
            of 5 runs), fed through the whole handler table (store, paper, risk, execution) so
            its orders live and fill: quotes a random walk of one tick, a closed candle every
            100 quotes.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATS = re.compile(r"STATS (\d+) ev/s .*market data (\d+)/s, conflated ([\d.]+)%")
HANDLER = re.compile(r'trader_handler_seconds_(sum|count)\{handler="([^"]+)"\} ([\d.e+-]+)')
BURST = 100_000  # messages in the sender's repeated blob


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, rest_url: str, ws_url: str, port: int) -> Path:
    """The shipped config, narrowed to what the issue measures: binance paper, one market, the
    shipped strategies of that market, a STATS line a second, everything in ``tmp``."""
    cfg = tmp / "config.yaml"
    cfg.write_text(
        "general: {stats_interval_s: 1}\n"
        "exchange: {name: binance, mode: paper, timeout_ms: 3000,\n"
        f"           urls: {{rest: '{rest_url}', ws: '{ws_url}'}}}}\n"
        "trade: {markets: [BTC/USDT]}\n"
        f"paper: {{account_file: '{tmp / 'paper-account.json'}'}}\n"
        "strategies:\n"
        "  - {name: ma_cross, market: BTC/USDT, params: {fast: 3, slow: 6, amount: 0.01}}\n"
        "  - {name: market_maker, market: BTC/USDT, params: {spread_bps: 30, amount: 0.002,\n"
        "     requote_bps: 20, max_inventory: 0.02, cooldown_s: 2}}\n"
        f"journal: {{path: '{tmp / 'journal'}'}}\n"
        f"storage: {{state_file: '{tmp / 'state.json'}'}}\n"
        f"metrics: {{port: {port}}}\n"
    )
    return cfg


def _handler_us(port: int) -> dict[str, float]:
    """Mean µs per call of each handler, from the app's own (sampled) timing on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for kind, name, value in HANDLER.findall(text):
        (sums if kind == "sum" else counts)[name] = float(value)
    return {n: round(sums[n] / counts[n] * 1e6, 2) for n in sums if counts.get(n)}


def app_round(sender: Any, rest_url: str, warm_s: int, window_s: int) -> dict[str, Any]:
    """One run of scripts/start.py on the sender: market data/s taken in (median of the STATS
    lines in the window), the share conflated and events dispatched/s over it."""
    sender.plans.put(("repeat", BURST))
    port = _free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = _config(Path(d), rest_url, sender.url.rsplit("/", 1)[0], port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "start.py"), "--config", str(cfg)],
            cwd=d,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        seen: list[str] = []
        rows: list[tuple[float, float, float]] = []
        done = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                seen.append(line)
                m = STATS.search(line)
                if m and (rows or int(m.group(2)) > 0):
                    rows.append((float(m.group(2)), float(m.group(3)), float(m.group(1))))
                    if len(rows) >= warm_s + window_s:
                        done.set()

        reader = threading.Thread(target=read, name="bench-p7-output", daemon=True)
        reader.start()
        try:
            if not done.wait(60 + warm_s + window_s):
                raise RuntimeError(
                    "P7: the app did not report market data; output:\n" + "".join(seen[-30:])
                )
            handlers = _handler_us(port)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        finally:
            proc.kill()
            reader.join(5)
    window = rows[warm_s : warm_s + window_s]
    return {
        "in_eps": statistics.median(r[0] for r in window),
        "conflated_share": statistics.median(r[1] for r in window) / 100,
        "dispatched_eps": statistics.median(r[2] for r in window),
        "handlers_us": handlers,
    }


def bare_round(sender: Any, connect: Callable[[str], Any], window_s: float) -> float:
    """Messages/s of websocket-client ``recv`` + ``json.loads`` on the sender over
    ``window_s``."""
    import json

    sender.plans.put(("repeat", BURST))
    ws = connect(sender.url)
    recv, loads, perf = ws.recv, json.loads, time.perf_counter
    for _ in range(10_000):  # warm
        loads(recv())
    n = 0
    t0 = perf()
    end = t0 + window_s
    while True:
        for _ in range(1_000):
            loads(recv())
        n += 1_000
        if perf() >= end:
            break
    rate = n / (perf() - t0)
    ws.shutdown()
    return rate


def p7(rounds: int, warm_s: int, window_s: int, connect: Callable[[str], Any]) -> dict[str, Any]:
    """Alternating rounds of the bare client and the whole app on the same sender."""
    sys.path.insert(0, str(ROOT))
    from bench_ws import Sender

    from tests.doubles.binance_rest import BinanceRestDouble

    bare: list[float] = []
    apps: list[dict[str, Any]] = []
    with Sender() as sender, BinanceRestDouble() as rest:
        for _ in range(rounds):
            bare.append(bare_round(sender, connect, window_s))
            apps.append(app_round(sender, rest.url, warm_s, window_s))
    ratios = sorted(a["in_eps"] / b for a, b in zip(apps, bare, strict=True))
    ins = [a["in_eps"] for a in apps]
    shares = [a["conflated_share"] for a in apps]
    handlers = apps[-1]["handlers_us"]
    return {
        "rounds": rounds,
        "window_s": window_s,
        "bare_eps": round(statistics.median(bare)),
        "bare_range": [round(min(bare)), round(max(bare))],
        "app_in_eps": round(statistics.median(ins)),
        "app_in_range": [round(min(ins)), round(max(ins))],
        "app_dispatched_eps": round(statistics.median(a["dispatched_eps"] for a in apps)),
        "conflated_share": round(statistics.median(shares), 3),
        "conflated_range": [round(min(shares), 3), round(max(shares), 3)],
        "ratio": round(statistics.median(ratios), 3),
        "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
        "handler_us_last_round": handlers,
        "target": 0.8,
        "met": statistics.median(ratios) >= 0.8,
    }


# ------------------------------------------------------------------------------ strategies


def _timed(fn: Callable[..., Any], into: list[int]) -> Callable[..., Any]:
    perf = time.perf_counter_ns

    def call(*args: Any) -> Any:
        t0 = perf()
        out = fn(*args)
        into.append(perf() - t0)
        return out

    return call


def _feed(steps: int, seed: int) -> list[Any]:
    """Quotes on a one-tick random walk around 60000, a closed one-minute candle every 100."""
    from trader.events import Candle, QuoteTick

    rng = random.Random(seed)
    tick = Decimal("0.01")
    bid = Decimal(60_000)
    out: list[Any] = []
    for i in range(steps):
        bid += tick * rng.choice((-1, 0, 1))
        ts = i * 10_000_000  # 10 ms apart
        out.append(
            QuoteTick(
                ts_event=ts,
                ts_recv=ts,
                symbol="BTC/USDT",
                bid=bid,
                bid_size=Decimal("1.5"),
                ask=bid + tick,
                ask_size=Decimal("2.5"),
            )
        )
        if i % 100 == 99:
            start = ts - 60_000_000_000
            out.append(
                Candle(
                    ts_event=ts,
                    ts_recv=ts,
                    symbol="BTC/USDT",
                    interval="1m",
                    open=bid,
                    high=bid + 1,
                    low=bid - 1,
                    close=bid,
                    volume=Decimal(1),
                    start_ns=start,
                    closed=True,
                )
            )
    return out


def _strategy_run(
    name: str, params: dict[str, Any], steps: int, seed: int
) -> dict[str, tuple[float, float]]:
    """µs per call of each callback ``name`` overrides, with the timer's own cost taken off: the
    median call and the mean (which carries the rare full evaluations a median hides)."""
    from trader.backtest import Backtest
    from trader.config import Config, StrategyConfig
    from trader.trading.strategies import STRATEGIES
    from trader.trading.strategy import Strategy

    cls = STRATEGIES[name]
    cfg = Config(strategies=(StrategyConfig(name=name, market="BTC/USDT", params=params),))
    bt = Backtest(cfg, ["BTC/USDT"], {"BTC/USDT": Decimal(60_000)}, 0)
    (strat,) = bt.app.runner.strategies
    times: dict[str, list[int]] = {}
    for method in ("on_quote", "on_trade", "on_candle"):
        if getattr(cls, method) is not getattr(Strategy, method):
            times[method] = []
            setattr(strat, method, _timed(getattr(strat, method), times[method]))
    events = _feed(steps, seed)
    bt.run(events, 60 * 10**9)
    empty: list[int] = []
    noop = _timed(lambda *a: None, empty)
    for ev in events:
        noop(ev, None)
    overhead = statistics.median(empty)
    return {
        m: ((statistics.median(t) - overhead) / 1000, (statistics.fmean(t) - overhead) / 1000)
        for m, t in times.items()
        if t
    }


def strategy_costs(steps: int, runs: int) -> dict[str, Any]:
    """Each shipped strategy (the shipped config's BTC/USDT params), µs per call."""
    params = {
        "ma_cross": {"fast": 3, "slow": 6, "amount": 0.01},
        "market_maker": {
            "spread_bps": 30,
            "amount": 0.002,
            "requote_bps": 20,
            "max_inventory": 0.02,
            "cooldown_s": 2,
        },
    }
    out: dict[str, Any] = {}
    for name, p in params.items():
        per_run = [_strategy_run(name, p, steps, seed) for seed in range(runs)]
        out[name] = {
            m: {
                "median_us": round(statistics.median(r[m][0] for r in per_run), 2),
                "range_us": [
                    round(min(r[m][0] for r in per_run), 2),
                    round(max(r[m][0] for r in per_run), 2),
                ],
                "mean_us": round(statistics.median(r[m][1] for r in per_run), 2),
            }
            for m in per_run[0]
        }
    mm = out["market_maker"]["on_quote"]["median_us"]
    return {**out, "target": "market_maker on_quote < 3 us", "met": mm < 3}
