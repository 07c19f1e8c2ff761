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
P3  one websocket connection from a local `websockets` server (another process): bare
    websocket-client receive + json.loads (skip_utf8_validation, as we use) vs our listener
    producing typed events into the store, messages/s.
P4  websocket -> handler latency p50/p99/p99.9 at 1k and 10k messages/s, ours vs a bare
    websocket-client -> queue.Queue -> handler pipeline; and at 2x our sustainable rate, account
    events interleaved: none lost, market data conflated and counted.
P5  process memory (RSS) after 1M and 10M events through the engine; growth between them.
P6  start to first event, and SIGINT to exit, of scripts/start.py on the default config.
journal  the dispatch rate with and without the journal (scripts/bench_journal.py).
backtest, persist, ctrl_c  see scripts/bench_backtest.py.
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

from trader.app import App, RunMode  # noqa: E402
from trader.clock import LiveClock  # noqa: E402
from trader.config import BusConfig, Config, GeneralConfig, StrategyConfig  # noqa: E402
from trader.events import Heartbeat, QuoteTick  # noqa: E402

from bench_backtest import FIGURES as BACKTEST_FIGURES  # noqa: E402 (backtest, persist, ctrl_c)

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
    """The default system (two MA-cross strategies, paper gateway, the live sampled dispatch
    timing), workers not started and without the journal, whose cost is measured on its own
    (``journal``): built in backtest mode, which differs from live only in those."""
    cfg = Config(
        general=GeneralConfig(stats_interval_s=3600),
        bus=BusConfig(maxsize=maxsize, put_timeout_s=5),
        strategies=(
            StrategyConfig(name="ma_cross", market="BTC/USDT"),
            StrategyConfig(name="ma_cross", market="ETH/USDT"),
        ),
    )
    app = App(cfg, LiveClock(), RunMode.BACKTEST)
    app.engine.set_timing(app.metrics.timing)
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


# ------------------------------------------------------------------------------------- P3/P4

ACCOUNT_EVERY = 50  # in the overload run, every 50th message is an account update


def _ws_server(port_q: Any, plan_q: Any) -> None:
    """Runs in a child process: for each connection, take a plan (count, rate) from ``plan_q``
    and send that many Binance bookTicker messages (combined-stream form) whose bid is the send
    time in perf_counter ns, paced at ``rate`` per second (0 = as fast as possible).

    A threaded (sync) server that busy-waits to each message's send time: an asyncio sleep is
    too coarse at 10k/s and would send bursts, measuring the bursts' queueing, not our path."""
    import socket

    from websockets.sync.server import serve

    def handler(ws: Any) -> None:
        count, rate, with_account = plan_q.get()
        ws.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            msg = json.loads(ws.recv(timeout=0.3))  # our listener subscribes first
            ws.send(json.dumps({"result": None, "id": msg.get("id")}))
        except (TimeoutError, ValueError):
            pass
        send, perf, perf_ns = ws.send, time.perf_counter, time.perf_counter_ns
        t0 = perf()
        for i in range(count):
            if rate:
                due = t0 + i / rate
                while perf() < due:
                    pass
            if with_account and i % ACCOUNT_EVERY == 0:
                payload = {"e": "outboundAccountPosition", "E": 1, "u": i,
                           "B": [{"a": "USDT", "f": f"{i}.0", "l": "0"}]}
                send(json.dumps({"subscriptionId": 0, "event": payload}))
            now = perf_ns()
            send('{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"%d",'
                 '"B":"1.5","a":"%d","A":"2.5"}}' % (i, now, now + 1))
        try:
            ws.recv(timeout=3600)  # keep the connection open until the client closes it
        except Exception:  # noqa: BLE001 - the client went away: that is the end
            pass

    with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None) as server:
        port_q.put(server.socket.getsockname()[1])
        server.serve_forever()


class WsServer:
    """The benchmark's websocket server in a separate process (so it does not share our GIL)."""

    def __enter__(self) -> WsServer:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._port_q, self.plans = ctx.Queue(), ctx.Queue()
        self._proc = ctx.Process(target=_ws_server, args=(self._port_q, self.plans), daemon=True)
        self._proc.start()
        self.url = f"ws://127.0.0.1:{self._port_q.get(timeout=30)}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.join(5)


def _bare_receive(url: str, count: int) -> float:
    import websocket

    ws = websocket.create_connection(url + "/stream", skip_utf8_validation=True)
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": [], "id": 1}))
    recv, loads = ws.recv, json.loads
    loads(recv())  # the subscription reply
    t0 = time.perf_counter()
    for _ in range(count):
        loads(recv())
    rate = count / (time.perf_counter() - t0)
    ws.close()
    return rate


class OurPipeline:
    """Our listener (real Binance protocol) -> bus -> engine -> store, plus a probe handler."""

    def __init__(self, url: str, maxsize: int = 10_000) -> None:
        from trader.bus import Bus
        from trader.clock import LiveClock
        from trader.config import StoreConfig, StreamsConfig
        from trader.engine import Engine, Registry
        from trader.events import BalanceUpdate
        from trader.feeds.binance import BinanceMarketStreams
        from trader.feeds.websocket import Listener
        from trader.stats import Stats
        from trader.store.memory import MemoryStore

        self.stats = Stats()
        self.bus = Bus(maxsize, 5.0, self.stats)
        registry = Registry()
        self.store = MemoryStore(StoreConfig())
        registry.register(QuoteTick, self.store.on_quote)
        registry.register(QuoteTick, self._probe)
        registry.register(BalanceUpdate, self.store.on_balance)
        registry.register(BalanceUpdate, lambda ev: self.balances.append(ev.free))
        self.engine = Engine(self.bus, registry, self.stats, LiveClock())
        self.latencies: list[int] = []
        self.balances: list[Decimal] = []
        self.quotes = 0
        self.first_ns = 0
        self.last_ns = 0
        protocol = BinanceMarketStreams(url + "/stream", ["BTC/USDT"], None)
        self.listener = Listener(protocol, self.bus.publish, LiveClock(), self.stats,
                                 StreamsConfig())
        self._stop_listener = threading.Event()
        self.stop = threading.Event()

    def _probe(self, ev: QuoteTick) -> None:
        now = time.perf_counter_ns()
        if not self.quotes:
            self.first_ns = now
        self.quotes += 1
        self.last_ns = now
        self.latencies.append(now - int(ev.bid))

    def run(self, until: Callable[[], bool], timeout_s: float) -> None:
        t = threading.Thread(target=self.listener.run, args=(self._stop_listener,),
                             name="ws-bench", daemon=True)
        t.start()
        deadline = time.monotonic() + timeout_s

        def check() -> None:
            if until() or time.monotonic() > deadline:
                self.stop.set()

        self.engine.every(0.01, check)
        self.engine.run(self.stop)
        self._stop_listener.set()
        self.listener.close()
        t.join(5)


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    xs = sorted(samples_ns)

    def pct(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(p * len(xs)))] / 1000, 1)

    return {"p50_us": pct(0.50), "p99_us": pct(0.99), "p999_us": pct(0.999)}


def _listener_only(url: str, count: int) -> float:
    """Our listener alone (parse + typed events) publishing into a list: no engine thread."""
    from trader.clock import LiveClock
    from trader.config import StreamsConfig
    from trader.feeds.binance import BinanceMarketStreams
    from trader.feeds.websocket import Listener
    from trader.stats import Stats

    got: list = []
    stop = threading.Event()
    marks: list[float] = []

    def publish(ev: Any) -> None:
        if type(ev) is QuoteTick:
            got.append(ev)
            if len(got) == 1:
                marks.append(time.perf_counter())
            elif len(got) >= count:
                marks.append(time.perf_counter())
                stop.set()

    listener = Listener(BinanceMarketStreams(url + "/stream", ["BTC/USDT"], None), publish,
                        LiveClock(), Stats(), StreamsConfig())
    t = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    t.start()
    stop.wait(120)
    listener.close()
    t.join(5)
    return (count - 1) / (marks[1] - marks[0])


def p3(n: int, runs: int) -> dict[str, Any]:
    anchors, ours, alone = [], [], []
    with WsServer() as srv:
        for _ in range(runs):
            srv.plans.put((n, 0, False))
            anchors.append(_bare_receive(srv.url, n))
            srv.plans.put((n, 0, False))
            alone.append(_listener_only(srv.url, n))
            srv.plans.put((n, 0, False))
            pipe = OurPipeline(srv.url, maxsize=n + 10)
            pipe.run(lambda: pipe.quotes >= n, 120)
            assert pipe.bus.conflated == 0
            ours.append((pipe.quotes - 1) / ((pipe.last_ns - pipe.first_ns) / 1e9))
    anchor, our, only = max(anchors), max(ours), max(alone)
    return {"messages": n, "anchor_bare_ws_eps": round(anchor), "ours_eps": round(our),
            "ours_listener_only_eps": round(only),
            "listener_only_ratio": round(only / anchor, 3),
            "ratio": round(our / anchor, 3), "target": 0.7, "met": our / anchor >= 0.7}


def _bare_latency(url: str, count: int, plans: Any, rate: int) -> list[int]:
    import websocket

    plans.put((count, rate, False))
    ws = websocket.create_connection(url + "/stream", skip_utf8_validation=True)
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": [], "id": 1}))
    q: queue.Queue = queue.Queue()
    lat: list[int] = []

    def receive() -> None:
        recv, loads, put = ws.recv, json.loads, q.put
        loads(recv())
        for _ in range(count):
            put(loads(recv()))
        put(None)

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    while (msg := q.get()) is not None:
        lat.append(time.perf_counter_ns() - int(msg["data"]["b"]))
    ws.close()
    return lat


def p4(count_per_rate: dict[int, int], sustainable_eps: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with WsServer() as srv:
        for rate, count in count_per_rate.items():
            anchor = _percentiles(_bare_latency(srv.url, count, srv.plans, rate))
            srv.plans.put((count, rate, False))
            pipe = OurPipeline(srv.url)
            pipe.run(lambda: pipe.quotes >= count, 120)
            ours = _percentiles(pipe.latencies[count // 10:])  # skip the connect warm-up
            out[f"{rate}_per_s"] = {"ours": ours, "anchor_bare": anchor}
        rate = int(sustainable_eps * 2)
        count = rate * 2  # two seconds at twice what we sustain
        srv.plans.put((count, rate, True))
        pipe = OurPipeline(srv.url, maxsize=1_000)
        accounts = (count + ACCOUNT_EVERY - 1) // ACCOUNT_EVERY
        pipe.run(lambda: len(pipe.balances) >= accounts
                 and pipe.quotes + pipe.bus.conflated >= count, 60)
        achieved = (pipe.quotes - 1) / max((pipe.last_ns - pipe.first_ns) / 1e9, 1e-9)
        out["overload_2x"] = {
            "rate_per_s": rate, "quotes_sent": count, "quotes_dispatched": pipe.quotes,
            "conflated": pipe.bus.conflated, "account_events_sent": accounts,
            "account_events_dispatched": len(pipe.balances),
            "account_events_in_order": pipe.balances == sorted(pipe.balances),
            "counters_add_up": pipe.quotes + pipe.bus.conflated == count,
            "achieved_dispatch_rate_per_s": round(achieved),
        }
    at10k = out.get("10000_per_s", {}).get("ours", {})
    over = out["overload_2x"]
    met = (at10k.get("p50_us", 1e9) <= 100 and at10k.get("p99_us", 1e9) <= 300
           and over["account_events_dispatched"] == over["account_events_sent"])
    out.update(target={"p50_us_at_10k": 100, "p99_us_at_10k": 300,
                       "overload": "no account event lost"},
               ratio=round(at10k["p99_us"] / out["10000_per_s"]["anchor_bare"]["p99_us"], 3)
               if at10k else None, met=met)
    return out


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


# ------------------------------------------------------------------------------------- journal


def journal(quick: bool) -> dict[str, Any]:
    """Dispatch rate with and without the journal, from scripts/bench_journal.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_journal",
                                                  ROOT / "scripts" / "bench_journal.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.measure(steps=5_000 if quick else 20_000, repeats=1 if quick else 3)


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
        "P3": lambda: p3(20_000 if quick else 100_000, runs),
        "P4": lambda: p4({1_000: 2_000 if quick else 5_000, 10_000: 20_000 if quick else 50_000},
                         results.get("P3", {}).get("ours_eps") or 20_000),
        "P5": lambda: p5(1_000_000 if not quick else 100_000,
                         10_000_000 if not quick else 1_000_000),
        "P6": lambda: p6(runs),
        "journal": lambda: journal(quick),
    }
    plan.update({name: (lambda f=f: f(quick)) for name, f in BACKTEST_FIGURES.items()})
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
