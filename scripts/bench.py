#!/usr/bin/env python3
"""Benchmarks: each figure is measured next to its anchor in the same run, on the same machine,
and reported as a ratio. A benchmark, not a test: run it by hand.

    python scripts/bench.py [--quick] [--json PATH] [--only P1,P2,...]

Every ratio is the median of 5 paired runs (the anchor and ours back to back, so both see the
same load from the rest of the machine), printed with its range; rates are medians with their
ranges. ``--quick`` shrinks the sizes, not the number of pairs.

P1  bare queue.Queue hand-off (one producer thread, one consumer) vs our end-to-end dispatch
    (bus -> registry -> store -> paper matching -> strategy runner), events/s.
P2  one thread: build a quote from the exchange's price strings and dispatch it to a handler that
    updates the store; ours vs NautilusTrader (QuoteTick from strings, MessageBus.publish to a
    handler updating a locked dict). Ours alone, with a note, when nautilus_trader is not
    installed (pip install -e '.[bench]').
P3  one websocket connection, messages/s, first to last message: bare websocket-client ``recv`` +
    ``json.loads`` (opened with our socket options) vs our listener -> typed events -> bus ->
    engine -> store. The sender (scripts/bench_ws.py) is another process writing pre-encoded
    frames to a raw socket; its capacity is measured and must be at least 2x the fastest receiver.
P4  websocket -> handler latency p50/p99/p99.9 at 1k and 10k messages/s, ours vs a bare
    websocket-client -> queue.Queue -> handler pipeline, both skipping the first 10 %, with the
    per-pair ratios (quotes our bus conflated are counted and fail the figure); and at 2x
    our P3 rate, account events interleaved: none lost, market data conflated and counted.
P5  process memory (RSS) every 1M fresh events up to 10M (quotes, trades, candles of 50 markets,
    the orders and fills of a strategy on each) through bus, engine, store, paper and journal;
    the growth is measured from the steady state (every bounded collection full), see p5().
P6  start to first event, and SIGINT to exit, of scripts/start.py on the shipped config (free
    port, journal in a temp folder); fails loudly if the first event's line is not seen.
journal  the main thread's dispatch rate with and without the journal (scripts/bench_journal.py).
P7  the whole app as a user runs it (binance paper, one market, journal and strategies on) vs
    a bare websocket-client on the same sender; strategies: each shipped strategy's µs per call
    (both in scripts/bench_ingest.py).

Figures are functions registered with ``@figure("NAME")`` in :data:`FIGURES`.
backtest, persist, ctrl_c  see scripts/bench_backtest.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trader.app import App, RunMode  # noqa: E402
from trader.clock import LiveClock, ManualClock  # noqa: E402
from trader.config import BusConfig, Config, GeneralConfig, StrategyConfig  # noqa: E402
from trader.events import Heartbeat, QuoteTick  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import bench_ingest  # noqa: E402 (P7, strategies)
from bench_backtest import FIGURES as BACKTEST_FIGURES  # noqa: E402 (backtest, persist, ctrl_c)
from bench_ws import ACCOUNT_EVERY, Sender  # noqa: E402

SYMBOLS = ("BTC/USDT", "ETH/USDT")


def make_quotes(n: int) -> list[QuoteTick]:
    """``n`` quotes alternating between two markets, prices moving a little."""
    out = []
    for i in range(n):
        s = SYMBOLS[i & 1]
        base = 60_000 if s == "BTC/USDT" else 3_000
        bid = Decimal(base + (i % 100)) / 1
        out.append(
            QuoteTick(
                ts_event=i,
                ts_recv=i,
                symbol=s,
                bid=bid,
                bid_size=Decimal("1.5"),
                ask=bid + 1,
                ask_size=Decimal("2.5"),
            )
        )
    return out


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _median_range(xs: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(xs), 3),
        "min": round(min(xs), 3),
        "max": round(max(xs), 3),
    }


def paired(runs: int, anchor: Callable[[], float], ours: Callable[[], float]) -> dict[str, Any]:
    """``runs`` pairs of rates, anchor and ours back to back (so both see the same machine
    load): the medians, their ranges, and the median of the per-pair ratios with its range."""
    anchors, our = [], []
    for _ in range(runs):
        anchors.append(anchor())
        our.append(ours())
    ratios = sorted(o / a for o, a in zip(our, anchors, strict=True))
    return {
        "runs": runs,
        "anchor_eps": round(statistics.median(anchors)),
        "anchor_min": round(min(anchors)),
        "anchor_max": round(max(anchors)),
        "ours_eps": round(statistics.median(our)),
        "ours_min": round(min(our)),
        "ours_max": round(max(our)),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
    }


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
    r = paired(runs, lambda: queue_handoff(queue.Queue, events), lambda: our_dispatch(events)[0])
    simple = statistics.median(queue_handoff(queue.SimpleQueue, events) for _ in range(runs))
    return {
        "events": n,
        **r,
        "reference_simple_queue_eps": round(simple),
        "target": 0.8,
        "met": r["ratio"] >= 0.8,
    }


# ------------------------------------------------------------------------------------- P2


def p2(n: int, runs: int) -> dict[str, Any]:
    from trader.bus import Bus
    from trader.clock import LiveClock
    from trader.config import StoreConfig
    from trader.engine import Engine, Registry
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
            dispatch(
                QuoteTick(
                    ts_event=1,
                    ts_recv=2,
                    symbol="BTC/USDT",
                    bid=Decimal(bid),
                    bid_size=Decimal(bs),
                    ask=Decimal(ask),
                    ask_size=Decimal(as_),
                )
            )
        return n / (time.perf_counter() - t0)

    out: dict[str, Any] = {"events": n, "target": 1.0}
    try:
        import nautilus_trader  # noqa: F401
    except ImportError as exc:
        ours_eps = statistics.median(ours() for _ in range(runs))
        out.update(
            ours_eps=round(ours_eps),
            anchor_eps=None,
            ratio=None,
            met=None,
            note=f"nautilus_trader not installed ({exc}); pip install -e '.[bench]'",
        )
        return out
    r = paired(runs, lambda: _nautilus(raw), ours)
    out.update(r, met=r["ratio"] >= 1.0)
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
        q = NQuote(
            iid,
            Price.from_str(bid),
            Price.from_str(ask),
            Quantity.from_str(bs),
            Quantity.from_str(as_),
            1,
            2,
        )
        publish("data.quotes.BINANCE.BTCUSDT", q)
    return n / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------- P3/P4


def _bare_connect(url: str) -> Any:
    """websocket-client with our socket options (``connect``), subscribed as our listener is."""
    from trader.feeds.websocket.connection import connect

    ws = connect(url, 10.0)
    ws.send(json.dumps({"method": "SUBSCRIBE", "params": [], "id": 1}))
    json.loads(ws.recv())  # the subscription reply
    return ws


def _bare_receive(sender: Sender, count: int) -> float:
    """Messages/s of bare websocket-client ``recv`` + ``json.loads``, first to last message."""
    sender.plans.put(("burst", count))
    ws = _bare_connect(sender.url)
    recv, loads = ws.recv, json.loads
    loads(recv())
    t0 = time.perf_counter()
    for _ in range(count - 1):
        loads(recv())
    rate = (count - 1) / (time.perf_counter() - t0)
    ws.shutdown()
    return rate


class OurPipeline:
    """Our listener (real Binance protocol) -> bus -> engine -> store, plus a probe handler."""

    def __init__(self, url: str, maxsize: int = 10_000) -> None:
        from trader.bus import Bus
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
        protocol = BinanceMarketStreams(url, ["BTC/USDT"], None)
        self.listener = Listener(
            protocol, self.bus.publish, LiveClock(), self.stats, StreamsConfig()
        )
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
        t = threading.Thread(
            target=self.listener.run, args=(self._stop_listener,), name="ws-bench", daemon=True
        )
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

    def rate(self) -> float:
        """Quotes/s dispatched, first to last."""
        return (self.quotes - 1) / max((self.last_ns - self.first_ns) / 1e9, 1e-9)


def _ours_receive(sender: Sender, count: int) -> float:
    """Messages/s of our listener -> bus -> engine -> store, first to last quote dispatched."""
    sender.plans.put(("burst", count))
    pipe = OurPipeline(sender.url, maxsize=count + 10)
    pipe.run(lambda: pipe.quotes >= count, 120)
    if pipe.quotes < count or pipe.bus.conflated:
        raise RuntimeError(
            f"P3: {pipe.quotes} of {count} quotes dispatched, {pipe.bus.conflated} conflated"
        )
    return pipe.rate()


def p3(n: int, runs: int) -> dict[str, Any]:
    with Sender() as sender:
        _bare_receive(sender, n // 10)  # warm both paths up (imports, first connection)
        _ours_receive(sender, n // 10)
        r = paired(runs, lambda: _bare_receive(sender, n), lambda: _ours_receive(sender, n))
        capacity = [sender.capacity(n) for _ in range(3)]
    fastest = max(r["anchor_max"], r["ours_max"])
    cap = statistics.median(capacity)
    if cap < 2 * fastest:
        print(
            f"P3: WARNING the sender's capacity {cap:,.0f} msg/s is under twice the fastest "
            f"receiver ({fastest:,.0f} msg/s): the figures are capped by the sender",
            file=sys.stderr,
        )
    return {
        "messages": n,
        **r,
        "sender_capacity_eps": round(cap),
        "sender_over_fastest": round(cap / fastest, 2),
        "sender_ok": cap >= 2 * fastest,
        "target": 1.0,
        "met": r["ratio"] >= 1.0 and cap >= 2 * fastest,
    }


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    xs = sorted(samples_ns)

    def pct(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(p * len(xs)))] / 1000, 1)

    return {"p50_us": pct(0.50), "p99_us": pct(0.99), "p999_us": pct(0.999)}


def _bare_latency(sender: Sender, count: int, rate: int) -> list[int]:
    """Send time -> handler latencies of websocket-client -> ``queue.Queue`` -> handler."""
    sender.plans.put(("paced", count, rate, False))
    ws = _bare_connect(sender.url)
    q: queue.Queue = queue.Queue()
    lat: list[int] = []

    def receive() -> None:
        recv, loads, put = ws.recv, json.loads, q.put
        for _ in range(count):
            put(loads(recv()))
        put(None)

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    while (msg := q.get()) is not None:
        lat.append(time.perf_counter_ns() - int(msg["data"]["b"]))
    t.join(5)
    ws.shutdown()
    return lat


def _ours_latency(sender: Sender, count: int, rate: int) -> tuple[list[int], int]:
    """Send time -> handler latencies of our pipeline, and how many quotes the bus conflated
    (those have no sample: a loaded machine that makes our bus conflate shortens our tail)."""
    sender.plans.put(("paced", count, rate, False))
    pipe = OurPipeline(sender.url)
    pipe.run(lambda: pipe.quotes + pipe.bus.conflated >= count, 120)
    return pipe.latencies, pipe.bus.conflated


def p4(count_per_rate: dict[int, int], sustainable_eps: float, runs: int) -> dict[str, Any]:
    """Latency percentiles, both sides skipping the same first 10 % (connect warm-up); each
    percentile the median of ``runs`` paired runs, with its range."""
    out: dict[str, Any] = {}
    with Sender() as sender:
        for rate, count in count_per_rate.items():
            anchors, ours, conflated = [], [], []
            for _ in range(runs):
                anchors.append(_percentiles(_bare_latency(sender, count, rate)[count // 10 :]))
                latencies, dropped = _ours_latency(sender, count, rate)
                ours.append(_percentiles(latencies[count // 10 :]))
                conflated.append(dropped)
            out[f"{rate}_per_s"] = {
                side: {k: _median_range([s[k] for s in samples]) for k in samples[0]}
                for side, samples in (("ours", ours), ("anchor_bare", anchors))
            }
            out[f"{rate}_per_s"]["ours_conflated"] = conflated
            # per-pair ratios: both sides of a pair saw the same load from the rest of the machine
            out[f"{rate}_per_s"]["ratio_ours_over_anchor"] = {
                k: _median_range([o[k] / a[k] for o, a in zip(ours, anchors, strict=True)])
                for k in ("p50_us", "p99_us")
            }
        rate = int(sustainable_eps * 2)
        count = rate * 2  # two seconds at twice what we sustain
        sender.plans.put(("paced", count, rate, True))
        pipe = OurPipeline(sender.url, maxsize=1_000)
        accounts = (count + ACCOUNT_EVERY - 1) // ACCOUNT_EVERY
        pipe.run(
            lambda: len(pipe.balances) >= accounts and pipe.quotes + pipe.bus.conflated >= count, 60
        )
        out["overload_2x"] = {
            "rate_per_s": rate,
            "quotes_sent": count,
            "quotes_dispatched": pipe.quotes,
            "conflated": pipe.bus.conflated,
            "account_events_sent": accounts,
            "account_events_dispatched": len(pipe.balances),
            "account_events_in_order": pipe.balances == sorted(pipe.balances),
            "counters_add_up": pipe.quotes + pipe.bus.conflated == count,
            "achieved_dispatch_rate_per_s": round(pipe.rate()),
        }
    at10k = out["10000_per_s"]["ours"]
    over = out["overload_2x"]
    met = (
        at10k["p50_us"]["median"] <= 100
        and at10k["p99_us"]["median"] <= 300
        and not any(out["10000_per_s"]["ours_conflated"])  # else our tail lost samples
        and over["account_events_dispatched"] == over["account_events_sent"]
    )
    out.update(
        target={"p50_us_at_10k": 100, "p99_us_at_10k": 300, "overload": "no account event lost"},
        ratio=out["10000_per_s"]["ratio_ours_over_anchor"]["p99_us"]["median"],
        met=met,
    )
    return out


# ------------------------------------------------------------------------------------- P5

P5_SYMBOLS = tuple(f"C{i:02d}/USDT" for i in range(50))


def p5(n_small: int, n_large: int, step: int) -> dict[str, Any]:
    """RSS every ``step`` fresh events up to ``n_large`` (quotes, trades, candles of 50 markets
    from the simulated market, and the orders and fills of a strategy on each) published by a
    producer thread through the bus, the engine, the store, paper matching and the journal.

    The figure is the growth to ``n_large`` from the steady state: the first mark, not before
    ``n_small``, from which every one of the store's collection sizes stays within 1 % of its
    final size. Before it the store's and the paper gateway's bounded collections (orders,
    fills, trade and candle histories) are still filling up to their caps, which is growth by
    design; the window after it must span at least a fifth of the events, else the figure
    fails. The growth from ``n_small``, the collector's object count and the events waiting in
    the bus and for the journal's writer at every mark are reported too."""
    import tempfile

    from trader.config import (
        JournalConfig,
        PaperConfig,
        RiskConfig,
        SimulatedConfig,
        TradeConfig,
    )
    from trader.feeds.simulated import SimulatedMarket
    from trader.journal import Journal

    cfg = Config(
        general=GeneralConfig(stats_interval_s=3600),
        trade=TradeConfig(markets=P5_SYMBOLS),
        simulated=SimulatedConfig(
            start_prices={s: Decimal(100 + i) for i, s in enumerate(P5_SYMBOLS)}
        ),
        paper=PaperConfig(starting_balances={"USDT": Decimal(10_000_000)}),
        bus=BusConfig(maxsize=10_000, put_timeout_s=5),
        risk=RiskConfig(
            max_orders_per_window=1_000_000,
            max_position_notional=Decimal(10**9),
            daily_loss_limit=Decimal(10**9),
        ),
        strategies=tuple(
            StrategyConfig(
                name="ma_cross", market=s, params={"fast": 3, "slow": 6, "amount": "0.1"}
            )
            for s in P5_SYMBOLS
        ),
    )
    logging.disable(logging.CRITICAL)  # the strategies' log lines are not what is measured
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock(time.time_ns())
        app = App(cfg, clock, RunMode.BACKTEST)
        for ev in (*app.gateway.load_markets(cfg.trade.markets), *app.gateway.fetch_balances()):
            app.engine.dispatch(ev)
        journal = Journal(JournalConfig(path=tmp, retention_days=0), app.clock, app.bus.publish)
        journal.open()
        app.registry.observe(journal.record)
        app.storage_workers.add(journal)
        app.storage_workers.start()
        app.executors.start()  # the orders go to the paper gateway from the executor thread
        market = SimulatedMarket(cfg.simulated, P5_SYMBOLS, app.clock)
        # events sent -> (RSS, objects the collector tracks, events dispatched, store sizes,
        # events waiting in the bus and the journal)
        marks: dict[int, tuple[int, int, int, dict[str, int], int]] = {}
        stop = threading.Event()

        def mark(ev: Heartbeat) -> None:
            if ev.queue_depth == -1:  # the producer's markers (dispatched = events sent)
                gc.collect()
                # the events waiting in the bus and for the journal's writer are transient, not
                # the process's state: not counted (the backlog is reported)
                backlog = app.bus.depth() + journal.counters()["pending"]
                marks[ev.dispatched] = (
                    rss_bytes(),
                    len(gc.get_objects()) - backlog,
                    sum(app.stats.dispatched.values()),
                    app.store.sizes(),
                    backlog,
                )
                if ev.dispatched >= n_large:
                    stop.set()

        app.registry.register(Heartbeat, mark)

        def produce() -> None:
            publish, sent, now = app.bus.publish, 0, clock.now_ns()
            for target in range(step, n_large + 1, step):
                while sent < target:
                    # market time moves 50 ms a step (candles close, strategies trade) and the
                    # app's clock with it, so the risk rules see fresh quotes
                    now += 50_000_000
                    clock.set(now)
                    for ev in market.step(now):
                        publish(ev)
                        sent += 1
                publish(Heartbeat(ts_event=0, ts_recv=0, queue_depth=-1, dispatched=sent))

        producer = threading.Thread(target=produce, name="bench-p5-producer", daemon=True)
        t0 = time.perf_counter()
        producer.start()
        app.engine.run(stop)
        elapsed = time.perf_counter() - t0
        app.executors.stop(5.0)
        app.storage_workers.stop(5.0)
        journal.finish()
        producer.join(5)
    logging.disable(logging.NOTSET)
    series = sorted(marks.items())
    last, (rss_last, _, dispatched, sizes_last, _) = series[-1]
    small, (rss_small, *_) = next(m for m in series if m[0] >= n_small)
    steady, (rss_steady, *_) = next(
        m
        for m in series
        if m[0] >= n_small
        and all(
            abs(o[3][k] - v) <= v // 100
            for e, o in series
            if e >= m[0]
            for k, v in sizes_last.items()
        )
    )
    window_ok = last - steady >= last // 5
    growth = rss_last / rss_steady - 1
    counts = app.stats.dispatched
    return {
        "symbols": len(P5_SYMBOLS),
        "events_small": small,
        "events_steady": steady,
        "events_large": last,
        "dispatched": dispatched,
        "conflated": app.bus.conflated,
        "quotes": counts["QuoteTick"],
        "trades": counts["TradeTick"],
        "candles": counts["Candle"],
        "orders": sum(v for k, v in counts.items() if k.startswith("Order")),
        "fills": counts.get("OrderFilled", 0),
        "journal_written": journal.written,
        "rate_eps": round(dispatched / elapsed),
        "rss_mb_by_events": {e: round(m[0] / 2**20, 1) for e, m in series},
        "objects_by_events": {e: m[1] for e, m in series},
        "backlog_by_events": {e: m[4] for e, m in series},
        "store_sizes_at_end": sizes_last,
        "rss_small_mb": round(rss_small / 2**20, 1),
        "rss_steady_mb": round(rss_steady / 2**20, 1),
        "rss_large_mb": round(rss_last / 2**20, 1),
        "growth_from_small": round(rss_last / rss_small - 1, 4),
        "growth": round(growth, 4),
        "ratio": round(rss_last / rss_steady, 4),
        "steady_window_ok": window_ok,
        "target": 0.05,
        "met": window_ok and growth <= 0.05,
    }


# ------------------------------------------------------------------------------------- P6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_and_stop(tmp: str, timeout_s: float = 30.0) -> tuple[float, float]:
    """One start of scripts/start.py on the shipped config (journal and paper account in
    ``tmp``, the HTTP endpoint on a free port): seconds to the first event's log line, and from
    SIGINT to exit. Raises with the output when the line is not seen or the exit is not clean."""
    env = dict(
        os.environ,
        TRADER__JOURNAL__PATH=f"{tmp}/journal",
        TRADER__PAPER__ACCOUNT_FILE=f"{tmp}/paper-account.json",
        TRADER__METRICS__PORT=str(_free_port()),
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "start.py"),
            "--config",
            str(ROOT / "config.yaml"),
            "--log-level",
            "DEBUG",
        ],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if not started.is_set() and ("BALANCE" in line or "FeedConnected" in line):
                started.set()

    reader = threading.Thread(target=read, name="bench-p6-output", daemon=True)
    reader.start()
    try:
        if not started.wait(timeout_s):
            raise RuntimeError(
                f"P6: no first event within {timeout_s:.0f} s (exit code "
                f"{proc.poll()}); output:\n" + "".join(seen[-30:])
            )
        start_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        stop_s = time.perf_counter() - t1
    finally:
        proc.kill()
        reader.join(5)
    if code != 0:
        raise RuntimeError(f"P6: exit code {code} after SIGINT; output:\n" + "".join(seen[-30:]))
    return start_s, stop_s


def p6(runs: int) -> dict[str, Any]:
    """Start to first event and SIGINT to exit of scripts/start.py (shipped config), each the
    median of ``runs`` starts with its range."""
    import tempfile

    starts, stops = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            start_s, stop_s = _start_and_stop(tmp)
        starts.append(start_s)
        stops.append(stop_s)
    start, stop = _median_range(starts), _median_range(stops)
    return {
        "runs": runs,
        "start_to_first_event_s": start,
        "sigint_to_exit_s": stop,
        "target": 1.0,
        "met": start["median"] <= 1.0 and stop["median"] <= 1.0,
    }


# ------------------------------------------------------------------------------------- journal


def journal(quick: bool) -> dict[str, Any]:
    """Dispatch rate with and without the journal, from scripts/bench_journal.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_journal", ROOT / "scripts" / "bench_journal.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.measure(steps=5_000 if quick else 20_000, repeats=5)


# ------------------------------------------------------------------------------------- table


@dataclass
class Run:
    """What every figure gets: the run's size and the results measured so far."""

    quick: bool
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        """Paired runs per figure (a ratio is the median of at least 5)."""
        return 5

    def size(self, quick: int, full: int) -> int:
        """``quick`` in a --quick run, else ``full``."""
        return quick if self.quick else full


#: Every figure: its name in the table and the JSON, and the function measuring it. Register a
#: new one with ``@figure("NAME")``; figures run in the order they are registered.
FIGURES: dict[str, Callable[[Run], dict[str, Any]]] = {}


def figure(
    name: str,
) -> Callable[[Callable[[Run], dict[str, Any]]], Callable[[Run], dict[str, Any]]]:
    """Register a figure's function under ``name``."""

    def register(fn: Callable[[Run], dict[str, Any]]) -> Callable[[Run], dict[str, Any]]:
        FIGURES[name] = fn
        return fn

    return register


@figure("P1")
def fig_p1(run: Run) -> dict[str, Any]:
    return p1(run.size(50_000, 200_000), run.runs)


@figure("P2")
def fig_p2(run: Run) -> dict[str, Any]:
    return p2(run.size(50_000, 200_000), run.runs)


@figure("P3")
def fig_p3(run: Run) -> dict[str, Any]:
    return p3(run.size(20_000, 100_000), run.runs)


@figure("P4")
def fig_p4(run: Run) -> dict[str, Any]:
    return p4(
        {1_000: run.size(2_000, 5_000), 10_000: run.size(20_000, 50_000)},
        run.results.get("P3", {}).get("ours_eps") or 20_000,
        run.runs,
    )


@figure("P5")
def fig_p5(run: Run) -> dict[str, Any]:
    return p5(
        run.size(100_000, 1_000_000), run.size(1_000_000, 10_000_000), run.size(100_000, 1_000_000)
    )


@figure("P6")
def fig_p6(run: Run) -> dict[str, Any]:
    return p6(run.runs)


@figure("journal")
def fig_journal(run: Run) -> dict[str, Any]:
    return journal(run.quick)


@figure("P7")
def fig_p7(run: Run) -> dict[str, Any]:
    return bench_ingest.p7(3 if run.quick else 5, 2, run.size(3, 8), _bare_connect)


@figure("strategies")
def fig_strategies(run: Run) -> dict[str, Any]:
    return bench_ingest.strategy_costs(run.size(5_000, 20_000), run.runs)


# ------------------------------------------------------------------------------------- main


# backtest, persist, ctrl_c: whole runs of their own, in scripts/bench_backtest.py
FIGURES.update({name: (lambda run, f=f: f(run.quick)) for name, f in BACKTEST_FIGURES.items()})


def main() -> int:
    """Run the benchmarks and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--only", help="comma-separated subset, e.g. " + ",".join(FIGURES))
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(FIGURES)
    unknown = only - set(FIGURES)
    if unknown:
        parser.error(f"--only: unknown figures {sorted(unknown)}; known: {', '.join(FIGURES)}")
    run = Run(quick=args.quick)
    results = run.results
    results["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    print(f"{'':4} {'ratio':>8} {'target':>7} {'met':>5}  figures", flush=True)
    for name, fn in FIGURES.items():
        if name not in only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        r = results[name] = fn(run)
        # each row as soon as it is measured, and the JSON so far: a figure that fails later
        # (a missing optional anchor, a port in use) does not cost the ones already measured
        figures = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("ratio", "target", "met"))
        print(
            f"{name:4} {str(r.get('ratio')):>8} {str(r.get('target')):>7} "
            f"{str(r.get('met')):>5}  {figures}",
            flush=True,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
