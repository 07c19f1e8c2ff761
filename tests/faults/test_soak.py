"""The soak (opt-in: ``pytest -m soak``; excluded by default in setup.cfg): two minutes at
5,000 messages/s of Binance market data (quotes and trades of two markets) from a local
websocket server in another process (so it does not share the App's GIL), through the App:
listener, bus, engine, store, the paper gateway's matching, the journal.

Checks: memory is flat (RSS at 30 s vs the end, growth at most 5 %) and the counters add up:
every message the server sent was received (counted where the listener hands market data to
the bus) and every one received was dispatched or conflated, nothing vanished uncounted. The
figures are printed (``pytest -m soak -s``) and recorded as test properties;
``SOAK_DURATION_S=20`` shortens the run for a quick try.
"""

from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.binance_rest import BinanceRestDouble
from tests.faults.conftest import Recorder, Running, binance_config
from trader.app import App
from trader.bus import Bus
from trader.events import Event

RATE = 5_000  # messages per second
DURATION_S = float(os.environ.get("SOAK_DURATION_S", 120))  # shorter for a quick try
FIRST_RSS_S = min(30.0, DURATION_S / 4)
MAX_GROWTH = 0.05

pytestmark = [pytest.mark.soak, pytest.mark.timeout(DURATION_S + 120)]


def _frame(i: int) -> str:
    """Message i: quotes and trades of BTC/USDT and ETH/USDT in turn."""
    symbol = "BTCUSDT" if i % 2 else "ETHUSDT"
    price = 60_000 + i % 1000 if i % 2 else 3_000 + i % 100
    if i % 4 < 2:
        return (
            '{"stream":"%s@bookTicker","data":{"u":%d,"s":"%s","b":"%d.10","B":"1.5",'
            '"a":"%d.30","A":"2.5"}}' % (symbol.lower(), i, symbol, price, price)
        )
    return (
        '{"stream":"%s@trade","data":{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%d.20",'
        '"q":"0.01","T":%d,"m":false}}'
        % (symbol.lower(), 1_700_000_000_000 + i, symbol, i, price, 1_700_000_000_000 + i)
    )


def _serve(port_q: Any, sent: Any, rate: int, duration_s: float) -> None:
    """The server process: acknowledge the subscription, then send ``rate`` messages a second
    for ``duration_s``, counting what was sent in ``sent``; keep the connection open."""
    import asyncio

    from websockets.asyncio.server import serve

    async def handler(ws: Any) -> None:
        msg = json.loads(await ws.recv())
        await ws.send(json.dumps({"result": None, "id": msg.get("id")}))
        loop = asyncio.get_running_loop()
        total = int(rate * duration_s)
        t0 = loop.time()
        i = 0
        while i < total:
            due = min(total, int((loop.time() - t0) * rate) + 1)
            while i < due:
                await ws.send(_frame(i))
                i += 1
            with sent.get_lock():
                sent.value = i
            await asyncio.sleep(0.002)
        await asyncio.Future()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None) as server:
            port_q.put(next(iter(server.sockets)).getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


def rss_bytes() -> int:
    """This process's resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Received:
    """Market data events the listener hands to the bus (one producer thread: a plain int)."""

    count = 0


def test_soak_two_minutes_at_5k_messages_per_second(
    tmp_path: Path, record_property, monkeypatch
) -> None:
    publish = Bus.publish

    def counting_publish(self: Bus, event: Event) -> None:
        if event.conflatable:
            Received.count += 1
        publish(self, event)

    monkeypatch.setattr(Bus, "publish", counting_publish)
    monkeypatch.setattr(Received, "count", 0)
    ctx = mp.get_context("spawn")
    port_q, sent = ctx.Queue(), ctx.Value("q", 0)
    server = ctx.Process(
        target=_serve, args=(port_q, sent, RATE, DURATION_S), daemon=True, name="soak-ws-server"
    )
    server.start()
    try:
        ws_url = f"ws://127.0.0.1:{port_q.get(timeout=30)}"
        with BinanceRestDouble() as double:
            cfg = binance_config(
                tmp_path,
                double.url,
                ws_url,
                exchange={"mode": "paper"},
                trade={"markets": ["BTC/USDT", "ETH/USDT"]},
                streams={"kline_interval": None},
            )
            app = App(cfg)
            app.start()
            run = Running(app, Recorder())  # nothing recorded: the soak must not grow memory
            try:
                figures = soak(run, sent)
            finally:
                totals = run.stop()
    finally:
        server.kill()
        server.join(5)
    figures["left_on_queue"] = totals["left_on_queue"]
    figures["dispatched_total"] = totals["dispatched_total"]  # every event type
    journal = app.journal.counters()
    figures["journal_written"], figures["journal_dropped"] = journal["written"], journal["dropped"]
    for key, value in figures.items():
        record_property(key, value)
    print("\nsoak:", json.dumps(figures, indent=1))
    assert figures["sent"] == figures["received"] == int(RATE * DURATION_S)
    assert figures["received"] == figures["dispatched"] + figures["conflated"]
    assert figures["disconnects"] == 0 and figures["handler_errors"] == 0
    assert figures["journal_dropped"] == 0  # and every dispatched event was journaled:
    assert figures["journal_written"] == figures["dispatched_total"]
    assert figures["rss_growth"] <= MAX_GROWTH, figures


def soak(run: Running, sent: Any) -> dict[str, Any]:
    """Wait out the soak, measuring; return the figures."""
    app = run.app
    stats = app.stats
    tick = threading.Event()
    t0, cpu0 = time.monotonic(), os.times()
    depths: list[int] = []
    while time.monotonic() - t0 < FIRST_RSS_S:
        depths.append(app.bus.depth())
        tick.wait(0.5)
    gc.collect()
    rss_first = rss_bytes()
    total = int(RATE * DURATION_S)

    def handled() -> int:
        return stats.dispatched["QuoteTick"] + stats.dispatched["TradeTick"] + app.bus.conflated

    deadline = t0 + DURATION_S + 30
    while handled() < total and time.monotonic() < deadline:
        depths.append(app.bus.depth())
        tick.wait(0.5)
    elapsed, cpu1 = time.monotonic() - t0, os.times()
    gc.collect()
    rss_end = rss_bytes()
    snap = stats.snapshot()
    dispatched = snap["dispatched"].get("QuoteTick", 0) + snap["dispatched"].get("TradeTick", 0)
    return {
        "rate_per_s": RATE,
        "duration_s": DURATION_S,
        "elapsed_s": round(elapsed, 1),
        # this process (the App, plus the idle REST double); the server runs in another
        "cpu_percent": round(
            100 * (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed, 1
        ),
        "sent": sent.value,
        "received": Received.count,
        "dispatched": dispatched,
        "conflated": app.bus.conflated,
        "queue_depth_max_sampled": max(depths),
        "disconnects": snap.get("ws-binance-market.disconnects", 0),
        "malformed": snap.get("ws-binance-market.malformed", 0),
        "handler_errors": sum(snap["handler_errors"].values()),
        f"rss_at_{FIRST_RSS_S:.0f}s_mb": round(rss_first / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "rss_growth": round(rss_end / rss_first - 1, 4),
    }
