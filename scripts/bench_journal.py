#!/usr/bin/env python3
"""What the journal costs the dispatch rate, measured with and without it on this machine.

    python scripts/bench_journal.py [--steps 20000] [--repeats 5] [--json] [--variants]
                                    [--source websocket|simulated]

The events are the simulated market's (quotes, trades, candles of two markets) dispatched through
the full handler table (store, paper matching, strategies, risk) of a backtest-mode app. With
``--source websocket`` (the default, the live path) each event first becomes the Binance
combined-stream message that carries it, and a market listener turns that message into the event
as it does live (decode, parse, the journal frame attached), so the journal writes the messages as
received; ``--source simulated`` dispatches the simulated events themselves (the simulated feed's
path: no messages, every event a JSON line). Dispatched two ways:

- ``engine``: the main thread alone dispatches the pre-built events (the bare dispatch rate);
- ``end_to_end``: a producer thread publishes them on the bus and the main loop takes them off
  (the system's real path; the bus is sized so nothing is conflated).

"With" adds the journal exactly as the live app wires it (the observer plus the writer thread) and
the clock stops only once every event is written. Each rate is the median of ``--repeats`` runs
and each ratio the median of the per-run ratios (with and without back to back), with its range;
the headline ratio is the main thread's (``engine``).
``--variants`` also measures the design not chosen (encode in the observer, write on a main-thread
timer) and ``--timing`` the metrics' sampled handler timing at 1-in-1 and 1-in-16.

The benchmark helper can call :func:`measure` (``importlib`` on this file) and take its dict.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from trader.app import App, RunMode  # noqa: E402
from trader.clock import ManualClock  # noqa: E402
from trader.config import (  # noqa: E402
    BusConfig,
    Config,
    JournalConfig,
    StrategyConfig,
    StreamsConfig,
)
from trader.events import (  # noqa: E402
    Candle,
    Event,
    Heartbeat,
    QuoteTick,
    TradeTick,
    event_to_json,
)
from trader.feeds.binance import BinanceMarketStreams  # noqa: E402
from trader.feeds.simulated import SimulatedMarket  # noqa: E402
from trader.feeds.websocket import Listener  # noqa: E402
from trader.feeds.websocket.connection import Conn  # noqa: E402
from trader.journal import Journal  # noqa: E402
from trader.metrics import DispatchTiming  # noqa: E402
from trader.model.orders import Side  # noqa: E402
from trader.model.units import NS, NS_PER_MS  # noqa: E402
from trader.stats import Stats  # noqa: E402

START_NS = 1_700_000_000 * NS
TARGET = 0.85  # the journal may cost at most 15% of the dispatch rate


def make_events(cfg: Config, steps: int, source: str = "websocket") -> list[Event]:
    """``steps`` steps of the simulated market, 50 ms apart; from ``websocket`` messages (see
    the module docstring) or the ``simulated`` events themselves."""
    clock = ManualClock(START_NS)
    market = SimulatedMarket(cfg.simulated, cfg.trade.markets, clock)
    events: list[Event] = []
    for i in range(steps):
        events.extend(market.step(START_NS + i * 50_000_000))
    return events if source == "simulated" else from_messages(cfg, events)


def binance_message(ev: Event) -> bytes:
    """The Binance combined-stream message that carries ``ev`` (a quote, trade or candle)."""
    ms = ev.ts_event // NS_PER_MS
    name = ev.symbol.replace("/", "") if isinstance(ev, (QuoteTick, TradeTick, Candle)) else ""
    if isinstance(ev, QuoteTick):
        stream, data = (
            "bookTicker",
            {
                "u": ms,
                "s": name,
                "b": str(ev.bid),
                "B": str(ev.bid_size),
                "a": str(ev.ask),
                "A": str(ev.ask_size),
            },
        )
    elif isinstance(ev, TradeTick):
        stream, data = (
            "trade",
            {
                "e": "trade",
                "E": ms,
                "s": name,
                "t": int(ev.trade_id),
                "p": str(ev.price),
                "q": str(ev.size),
                "T": ms,
                "m": ev.aggressor is Side.SELL,
                "M": True,
            },
        )
    elif isinstance(ev, Candle):
        stream = f"kline_{ev.interval}"
        data = {
            "e": "kline",
            "E": ms,
            "s": name,
            "k": {
                "t": ev.start_ns // NS_PER_MS,
                "T": ms,
                "s": name,
                "i": ev.interval,
                "o": str(ev.open),
                "c": str(ev.close),
                "h": str(ev.high),
                "l": str(ev.low),
                "v": str(ev.volume),
                "x": ev.closed,
            },
        }
    else:
        raise TypeError(f"no Binance message for {type(ev).__name__}")
    return json.dumps(
        {"stream": f"{name.lower()}@{stream}", "data": data}, separators=(",", ":")
    ).encode()


class _NoSocket:
    """What a connection's frame reader holds; the messages here are handed over, not read."""

    class sock:  # noqa: N801 - the attribute websocket-client's socket has
        recv = None


def from_messages(cfg: Config, events: list[Event]) -> list[Event]:
    """``events`` as a Binance market listener publishes them from their messages."""
    protocol = BinanceMarketStreams("wss://bench.invalid/stream", cfg.trade.markets, "1m")
    out: list[Event] = []
    listener = Listener(protocol, out.append, ManualClock(START_NS), Stats(), StreamsConfig())
    conn = Conn(_NoSocket(), opened=0.0, rotate_at=float("inf"), next_ping=float("inf"))
    for ev in events:
        listener._on_message(conn, binance_message(ev), ev.ts_recv)  # noqa: SLF001
    assert len(out) == len(events), "a bench message did not parse"
    return out


def bench_config(steps: int) -> Config:
    """Two markets, a strategy on each, a bus that never conflates in these runs."""
    return Config(
        strategies=tuple(
            StrategyConfig(name="ma_cross", market=m, params={"fast": 3, "slow": 6, "amount": a})
            for m, a in (("BTC/USDT", "0.01"), ("ETH/USDT", "0.2"))
        ),
        bus=BusConfig(maxsize=steps * 8 + 100),
    )


class _TimerJournal:
    """The design not chosen: encode in the observer, write on a main-thread timer."""

    def __init__(self, folder: Path) -> None:
        self._fh = open(folder / "timer.jsonl", "a", encoding="ascii")  # noqa: SIM115
        self._lines: list[str] = []

    def record(self, ev: Event) -> None:
        self._lines.append(event_to_json(ev))

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            self._fh.write("\n".join(lines) + "\n")
            self._fh.flush()

    def finish(self) -> None:
        self.flush()
        self._fh.close()


def _app(cfg: Config, journal: str, folder: Path, timing: int) -> tuple[App, Callable[[], None]]:
    """A backtest-mode app (no journal of its own) plus the journal under test; returns the app
    and what must run before the clock stops (the final flush)."""
    app = App(cfg, ManualClock(START_NS), RunMode.BACKTEST)
    for ev in (*app.gateway.load_markets(cfg.trade.markets), *app.gateway.fetch_balances()):
        app.engine.dispatch(ev)
    if timing:
        app.engine.set_timing(DispatchTiming(timing))
    if journal == "thread":
        j = Journal(JournalConfig(path=str(folder), retention_days=0), app.clock, app.bus.publish)
        j.open()
        app.registry.observe(j.record)
        app.storage_workers.add(j)
        app.storage_workers.start()

        def finish() -> None:
            app.storage_workers.stop(5.0)
            j.finish()

        return app, finish
    if journal == "timer":
        tj = _TimerJournal(folder)
        app.registry.observe(tj.record)
        app.engine.every(1.0, tj.flush)
        return app, tj.finish
    return app, lambda: None


def run_engine(cfg: Config, events: list[Event], journal: str, timing: int = 0) -> float:
    """Events per second, the main thread dispatching alone."""
    with tempfile.TemporaryDirectory() as tmp:
        app, finish = _app(cfg, journal, Path(tmp), timing)
        dispatch = app.engine.dispatch
        followups = app.engine.discard_followups
        t0 = time.perf_counter()
        for ev in events:
            dispatch(ev)
            followups()
        finish()
        return len(events) / (time.perf_counter() - t0)


def run_end_to_end(cfg: Config, events: list[Event], journal: str, timing: int = 0) -> float:
    """Events per second from a producer thread through the bus and the main loop."""
    with tempfile.TemporaryDirectory() as tmp:
        app, finish = _app(cfg, journal, Path(tmp), timing)
        stop = threading.Event()
        done = Heartbeat(ts_event=0, ts_recv=0, queue_depth=0, dispatched=-1)
        app.registry.register(Heartbeat, lambda e: stop.set() if e is done else None)

        def produce() -> None:
            publish = app.bus.publish
            for ev in events:
                publish(ev)
            publish(done)

        producer = threading.Thread(target=produce, name="bench-producer")
        t0 = time.perf_counter()
        producer.start()
        app.engine.run(stop)
        finish()
        elapsed = time.perf_counter() - t0
        producer.join()
        assert app.bus.conflated == 0, "the bench bus conflated: results would not compare"
        return len(events) / elapsed


def measure(
    steps: int = 20_000,
    repeats: int = 5,
    variants: bool = False,
    timing: bool = False,
    source: str = "websocket",
) -> dict[str, Any]:
    """Rates with and without the journal, the ratio and whether the target holds."""
    logging.disable(logging.CRITICAL)  # the strategies' log lines are not what is measured
    try:
        cfg = bench_config(steps)
        events = make_events(cfg, steps, source)
        setups: dict[str, tuple[Callable[..., float], str, int]] = {}
        for path, fn in (("engine", run_engine), ("end_to_end", run_end_to_end)):
            setups[f"{path}/none"] = (fn, "none", 0)
            setups[f"{path}/journal"] = (fn, "thread", 0)
            if variants:
                setups[f"{path}/timer_journal"] = (fn, "timer", 0)
        if timing:
            setups["engine/timing_every_1"] = (run_engine, "none", 1)
            setups["engine/timing_every_16"] = (run_engine, "none", 16)
        rates: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(repeats):  # interleaved, so a busy moment hurts every setup alike
            for name, (fn, journal, every) in setups.items():
                rates[name].append(fn(cfg, events, journal, every))
    finally:
        logging.disable(logging.NOTSET)
    out: dict[str, Any] = {
        "events": len(events),
        "repeats": repeats,
        "source": source,
        "machine": f"{platform.machine()} {platform.python_version()}",
    }

    def ratios(name: str, base: str) -> list[float]:  # per pair: the runs were back to back
        return sorted(x / b for x, b in zip(rates[name], rates[base], strict=True))

    for path in ("engine", "end_to_end"):
        base = f"{path}/none"
        pair = ratios(f"{path}/journal", base)
        fig: dict[str, Any] = {
            "without_journal_ev_s": round(statistics.median(rates[base])),
            "with_journal_ev_s": round(statistics.median(rates[f"{path}/journal"])),
            "ratio": round(statistics.median(pair), 3),
            "ratio_range": [round(pair[0], 3), round(pair[-1], 3)],
        }
        if variants:
            timer = ratios(f"{path}/timer_journal", base)
            fig["timer_journal_ev_s"] = round(statistics.median(rates[f"{path}/timer_journal"]))
            fig["timer_journal_ratio"] = round(statistics.median(timer), 3)
        out[path] = fig
    if timing:
        out["timing"] = {
            k.split("/")[1]: round(statistics.median(ratios(k, "engine/none")), 3)
            for k in rates
            if k.startswith("engine/timing")
        }
    # the figure: the main thread dispatching alone, the journal's writer thread beside it
    out["ratio"] = out["engine"]["ratio"]
    out["ratio_range"] = out["engine"]["ratio_range"]
    out["target"] = TARGET
    out["met"] = out["ratio"] >= TARGET
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the figures (or JSON)."""
    parser = argparse.ArgumentParser(description="Journal cost on the dispatch rate.")
    parser.add_argument("--steps", type=int, default=20_000, help="market steps (~3 events each)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", action="store_true", help="also the timer-based design")
    parser.add_argument("--timing", action="store_true", help="also the metrics' handler timing")
    parser.add_argument(
        "--source",
        choices=("websocket", "simulated"),
        default="websocket",
        help="market data from websocket messages (the live path) or the simulated feed's events",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    res = measure(args.steps, args.repeats, args.variants, args.timing, args.source)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"{res['events']} events from {res['source']}, median of {res['repeats']} paired runs, "
        f"{res['machine']}"
    )
    for path in ("engine", "end_to_end"):
        f = res[path]
        line = (
            f"{path:<11} without {f['without_journal_ev_s']:>9,} ev/s   with journal "
            f"{f['with_journal_ev_s']:>9,} ev/s   ratio {f['ratio']:.3f} "
            f"({f['ratio_range'][0]:.3f}-{f['ratio_range'][1]:.3f})"
        )
        if "timer_journal_ratio" in f:
            line += f"   (timer design {f['timer_journal_ratio']:.3f})"
        print(line)
    if "timing" in res:
        print(
            "handler timing (engine ratio): "
            + ", ".join(f"{k} {v:.3f}" for k, v in res["timing"].items())
        )
    print(f"target: main-thread ratio >= {res['target']} -> {'met' if res['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
