#!/usr/bin/env python3
"""Benchmarks: each figure is measured next to its anchor in the same run, on the same machine,
and reported as a ratio. A benchmark, not a test: run it by hand.

    python scripts/bench.py [--quick] [--json PATH] [--only P1,P2,...]

P1  bare queue.Queue hand-off (one producer thread, one consumer) vs our end-to-end dispatch
    (bus -> registry -> store -> paper matching -> strategy runner), events/s.
P2  one thread: build a quote from the exchange's price strings and dispatch it to a handler that
    updates the store; ours vs NautilusTrader (QuoteTick from strings, MessageBus.publish to a
    handler updating a locked dict). Skipped with a note when nautilus_trader is not installed
    (pip install -e '.[bench]').
P5  process memory (RSS) after 1M and 10M events through the engine; growth between them.
P6  start to first event, and SIGINT to exit, of scripts/start.py on the default config.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trader.app import App  # noqa: E402
from trader.config import BusConfig, Config, GeneralConfig, StrategyConfig  # noqa: E402
from trader.events import Heartbeat, QuoteTick  # noqa: E402

SYMBOLS = ("BTC/USDT", "ETH/USDT")


def make_quotes(n: int) -> list[QuoteTick]:
    """``n`` quotes alternating between two markets, prices moving a little."""
    out = []
    for i in range(n):
        s = SYMBOLS[i & 1]
        base = 60_000 if s == "BTC/USDT" else 3_000
        bid = Decimal(base + (i % 100)) / 1
        out.append(QuoteTick(ts_event=i, ts_recv=i, symbol=s, bid=bid, bid_size=Decimal("1.5"),
                             ask=bid + 1, ask_size=Decimal("2.5")))
    return out


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def best_of(runs: int, fn: Callable[[], float]) -> float:
    """The best rate of ``runs`` runs (least disturbed by the rest of the machine)."""
    return max(fn() for _ in range(runs))


# ------------------------------------------------------------------------------------- P1


def queue_handoff(make_q: Callable[[], Any], events: list) -> float:
    """Events/s through a bare queue: one producer thread, the consumer in this thread."""
    q = make_q()
    sentinel = object()

    def produce() -> None:
        put = q.put
        for ev in events:
            put(ev)
        put(sentinel)

    t0 = time.perf_counter()
    t = threading.Thread(target=produce)
    t.start()
    get = q.get
    n = 0
    while get() is not sentinel:
        n += 1
    elapsed = time.perf_counter() - t0
    t.join()
    return n / elapsed


def bench_app(maxsize: int) -> App:
    """The default system (two MA-cross strategies, paper gateway), workers not started."""
    cfg = Config(
        general=GeneralConfig(stats_interval_s=3600),
        bus=BusConfig(maxsize=maxsize, put_timeout_s=5),
        strategies=(
            StrategyConfig(name="ma_cross", market="BTC/USDT"),
            StrategyConfig(name="ma_cross", market="ETH/USDT"),
        ),
    )
    app = App(cfg)
    for ev in app.gateway.load_markets(cfg.trade.markets):
        app.engine.dispatch(ev)
    return app


def our_dispatch(events: list) -> tuple[float, int]:
    """Events/s through our bus and engine with the real handler table."""
    app = bench_app(maxsize=len(events) + 10)
    stop = threading.Event()
    app.registry.register(Heartbeat, lambda e: stop.set())
    end = Heartbeat(ts_event=0, ts_recv=0, queue_depth=0, dispatched=0)

    def produce() -> None:
        publish = app.bus.publish
        for ev in events:
            publish(ev)
        publish(end)

    t0 = time.perf_counter()
    t = threading.Thread(target=produce)
    t.start()
    app.engine.run(stop)
    elapsed = time.perf_counter() - t0
    t.join()
    dispatched = app.stats.dispatched["QuoteTick"]
    assert dispatched + app.bus.conflated == len(events)
    return dispatched / elapsed, app.bus.conflated


def p1(n: int, runs: int) -> dict[str, Any]:
    events = make_quotes(n)
    anchor = best_of(runs, lambda: queue_handoff(queue.Queue, events))
    simple = best_of(runs, lambda: queue_handoff(queue.SimpleQueue, events))
    ours = best_of(runs, lambda: our_dispatch(events)[0])
    return {
        "events": n,
        "anchor_queue_queue_eps": round(anchor),
        "reference_simple_queue_eps": round(simple),
        "ours_eps": round(ours),
        "ratio": round(ours / anchor, 3),
        "target": 0.8,
        "met": ours / anchor >= 0.8,
    }


# ------------------------------------------------------------------------------------- P2


def p2(n: int, runs: int) -> dict[str, Any]:
    from trader.config import StoreConfig
    from trader.engine import Engine, Registry
    from trader.bus import Bus
    from trader.clock import LiveClock
    from trader.stats import Stats
    from trader.store.memory import MemoryStore

    raw = [("60000.%02d" % (i % 100), "1.5", "60001.%02d" % (i % 100), "2.5") for i in range(n)]

    def ours() -> float:
        stats = Stats()
        registry = Registry()
        store = MemoryStore(StoreConfig())
        registry.register(QuoteTick, store.on_quote)
        engine = Engine(Bus(10, 1, stats), registry, stats, LiveClock())
        dispatch = engine.dispatch
        t0 = time.perf_counter()
        for bid, bs, ask, as_ in raw:
            dispatch(QuoteTick(ts_event=1, ts_recv=2, symbol="BTC/USDT", bid=Decimal(bid),
                               bid_size=Decimal(bs), ask=Decimal(ask), ask_size=Decimal(as_)))
        return n / (time.perf_counter() - t0)

    ours_eps = best_of(runs, ours)
    out: dict[str, Any] = {"events": n, "ours_eps": round(ours_eps), "target": 1.0}
    try:
        theirs_eps = best_of(runs, lambda: _nautilus(raw))
    except ImportError as exc:
        out.update(anchor_nautilus_eps=None, ratio=None, met=None,
                   note=f"nautilus_trader not installed ({exc}); pip install -e '.[bench]'")
        return out
    out.update(anchor_nautilus_eps=round(theirs_eps), ratio=round(ours_eps / theirs_eps, 3),
               met=ours_eps / theirs_eps >= 1.0)
    return out


def _nautilus(raw: list[tuple[str, str, str, str]]) -> float:
    from nautilus_trader.common.component import MessageBus, TestClock
    from nautilus_trader.model.data import QuoteTick as NQuote
    from nautilus_trader.model.identifiers import InstrumentId, TraderId
    from nautilus_trader.model.objects import Price, Quantity

    bus = MessageBus(TraderId("TRADER-001"), TestClock())
    lock = threading.Lock()
    cache: dict = {}

    def handler(q: NQuote) -> None:
        with lock:
            cache[q.instrument_id] = q

    bus.subscribe("data.quotes.BINANCE.BTCUSDT", handler)
    iid = InstrumentId.from_str("BTCUSDT.BINANCE")
    publish = bus.publish
    n = len(raw)
    t0 = time.perf_counter()
    for bid, bs, ask, as_ in raw:
        q = NQuote(iid, Price.from_str(bid), Price.from_str(ask), Quantity.from_str(bs),
                   Quantity.from_str(as_), 1, 2)
        publish("data.quotes.BINANCE.BTCUSDT", q)
    return n / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------- P5


def p5(n_small: int, n_large: int) -> dict[str, Any]:
    """RSS after n_small and n_large events through the engine (bounded collections)."""
    app = bench_app(maxsize=10_000)
    batch = make_quotes(10_000)
    dispatch = app.engine.dispatch
    done = 0
    marks: dict[int, int] = {}
    while done < n_large:
        for ev in batch:
            dispatch(ev)
        done += len(batch)
        if done in (n_small, n_large):
            gc.collect()
            marks[done] = rss_bytes()
    growth = marks[n_large] / marks[n_small] - 1
    return {
        "events_small": n_small, "rss_small_mb": round(marks[n_small] / 2**20, 1),
        "events_large": n_large, "rss_large_mb": round(marks[n_large] / 2**20, 1),
        "growth": round(growth, 4), "ratio": round(marks[n_large] / marks[n_small], 4),
        "target": 0.05, "met": growth <= 0.05,
    }


# ------------------------------------------------------------------------------------- P6


def p6(runs: int) -> dict[str, Any]:
    """Start to first event and SIGINT to exit of scripts/start.py (default config)."""
    starts, stops = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "start.py"), "--log-level", "DEBUG"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "BALANCE" in line or "FeedConnected" in line:
                    starts.append(time.perf_counter() - t0)
                    break
            t1 = time.perf_counter()
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=10)
            stops.append(time.perf_counter() - t1)
        finally:
            proc.kill()
    start_s, stop_s = min(starts), min(stops)
    return {
        "start_to_first_event_s": round(start_s, 3), "sigint_to_exit_s": round(stop_s, 3),
        "target_s": 1.0, "met": start_s <= 1.0 and stop_s <= 1.0,
    }


# ------------------------------------------------------------------------------------- main


def main() -> int:
    """Run the benchmarks and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--only", help="comma-separated subset, e.g. P1,P5")
    args = parser.parse_args()
    quick = args.quick
    runs = 1 if quick else 3
    plan: dict[str, Callable[[], dict[str, Any]]] = {
        "P1": lambda: p1(50_000 if quick else 200_000, runs),
        "P2": lambda: p2(50_000 if quick else 200_000, runs),
        "P5": lambda: p5(1_000_000 if not quick else 100_000,
                         10_000_000 if not quick else 1_000_000),
        "P6": lambda: p6(runs),
    }
    only = set(args.only.split(",")) if args.only else set(plan)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
        }
    }
    for name, fn in plan.items():
        if name in only:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results[name] = fn()
    print(f"{'':4} {'ratio':>8} {'target':>7} {'met':>5}  figures")
    for name, r in results.items():
        if name == "machine":
            continue
        figures = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("ratio", "target", "met"))
        print(f"{name:4} {str(r.get('ratio')):>8} {str(r.get('target')):>7} "
              f"{str(r.get('met')):>5}  {figures}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
