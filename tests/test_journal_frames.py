"""The journal keeps websocket market data as the messages received, and the replay parses them
again: a session recorded from a real websocket replays to the same state, with and without the
bus conflating; old JSON-line journals and new ones replay alike; a bad frame line is reported
and skipped."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from tests.ws_server import FakeExchange, wait_until
from trader.app import App, RunMode
from trader.clock import ManualClock
from trader.config import Config, config_from_dict
from trader.events import (
    Event,
    Frame,
    MarketUpdated,
    OrderSubmitted,
    QuoteTick,
    TradeTick,
    event_to_json,
)
from trader.feeds.bybit import BybitPublicStreams
from trader.feeds.streams import build_stream_workers, market_parsers
from trader.feeds.websocket import listener_name
from trader.journal import Journal, JournalReader, encode_lines, journal_files, read_events
from trader.replay import Replayer, store_state
from trader.stats import Stats

T0 = 1_700_000_000_000_000_000
MARKETS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture
def server() -> Iterator[FakeExchange]:
    srv = FakeExchange().start()
    yield srv
    srv.stop()


def session_config(tmp_path: Path, ws_url: str, maxsize: int) -> Config:
    return config_from_dict(
        {
            "exchange": {"name": "binance", "urls": {"ws": ws_url}},
            "trade": {"markets": list(MARKETS)},
            "streams": {"kline_interval": "1m"},
            "bus": {"maxsize": maxsize},
            "journal": {"path": str(tmp_path / "journal"), "retention_days": 0},
            "strategies": [
                {
                    "name": "ma_cross",
                    "market": "BTC/USDT",
                    "params": {"fast": 2, "slow": 3, "amount": 0.001},
                },
                {
                    "name": "ma_cross",
                    "market": "ETH/USDT",
                    "params": {"fast": 2, "slow": 3, "amount": 0.01},
                },
            ],
        },
        {},
    )


def messages(n: int, seed: int = 3) -> list[dict[str, Any]]:
    """Quotes, trades and closed one-minute candles of both markets, prices walking."""
    rng = random.Random(seed)
    price = {"BTCUSDT": D("60000"), "ETHUSDT": D("3000")}
    out: list[dict[str, Any]] = []
    for i in range(n):
        sym = "BTCUSDT" if i % 2 else "ETHUSDT"
        price[sym] += D(rng.randint(-40, 40)) / 10
        p, low = str(price[sym]), sym.lower()
        kind = i % 5
        if kind < 2:
            out.append(
                {
                    "stream": f"{low}@bookTicker",
                    "data": {
                        "u": i,
                        "s": sym,
                        "b": p,
                        "B": "1.25",
                        "a": str(price[sym] + D("0.1")),
                        "A": "0.5",
                    },
                }
            )
        elif kind < 4:
            out.append(
                {
                    "stream": f"{low}@trade",
                    "data": {
                        "e": "trade",
                        "E": 1_700_000_000_000 + i,
                        "s": sym,
                        "t": i,
                        "p": p,
                        "q": "0.010",
                        "T": 1_700_000_000_000 + i,
                        "m": bool(i % 3),
                        "M": True,
                    },
                }
            )
        else:
            start = 1_700_000_000_000 + i * 60_000
            out.append(
                {
                    "stream": f"{low}@kline_1m",
                    "data": {
                        "e": "kline",
                        "E": start + 59_999,
                        "s": sym,
                        "k": {
                            "t": start,
                            "T": start + 59_999,
                            "s": sym,
                            "i": "1m",
                            "o": p,
                            "c": p,
                            "h": str(price[sym] + 1),
                            "l": str(price[sym] - 1),
                            "v": "12.5",
                            "x": True,
                        },
                    },
                }
            )
    return out


def record(tmp_path: Path, server: FakeExchange, maxsize: int, n: int) -> tuple[App, list[Event]]:
    """A live websocket session: the configured listener, on the local exchange, publishes into
    the bus; the main loop dispatches through the full handler table with the journal observing,
    once every message is queued (so a small bus conflates). Returns the app and what it
    dispatched."""
    cfg = session_config(tmp_path, server.url, maxsize)
    clock = ManualClock(T0)
    app = App(cfg, clock, RunMode.BACKTEST)
    journal = Journal(cfg.journal, clock, app.bus.publish)
    journal.open()
    dispatched: list[Event] = []
    app.registry.observe(journal.record)
    app.registry.observe(dispatched.append)
    rules = [
        MarketUpdated(
            ts_event=T0,
            ts_recv=T0,
            symbol=m,
            base=m.split("/")[0],
            quote="USDT",
            price_increment=D("0.01"),
            amount_increment=D("0.0001"),
            min_amount=D("0.0001"),
            min_notional=D("5"),
        )
        for m in MARKETS
    ]
    for ev in (*rules, *app.gateway.fetch_balances()):  # the rules as the exchange gave them
        app.engine.dispatch(ev)
    app.engine.drain(float("inf"))
    last: list[str] = []

    def publish(ev: Event) -> None:
        if isinstance(ev, TradeTick):
            last.append(ev.trade_id)
        clock.advance(0.001)  # the next message is received 1 ms later
        app.bus.publish(ev)

    (listener,) = build_stream_workers(cfg, publish, clock, Stats())
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), name="test-listener")
    thread.start()
    try:
        wait_until(lambda: server.messages(key="SUBSCRIBE"))
        server.send_many((0, m) for m in [*messages(n), LAST])
        wait_until(lambda: last and last[-1] == "999999")
        app.engine.drain(float("inf"))
    finally:
        stop.set()
        listener.close()
        thread.join(5)
    journal.finish()
    return app, dispatched


LAST = {
    "stream": "btcusdt@trade",
    "data": {
        "e": "trade",
        "E": 1,
        "s": "BTCUSDT",
        "t": 999_999,
        "p": "60000",
        "q": "0.001",
        "T": 1,
        "m": True,
    },
}


def replay(cfg: Config) -> tuple[Replayer, JournalReader]:
    reader = JournalReader(journal_files([cfg.journal.path]), market_parsers(cfg, ManualClock()))
    replayer = Replayer(cfg)
    replayer.run(reader)
    return replayer, reader


def lines(cfg: Config) -> list[dict[str, Any]]:
    (path,) = journal_files([cfg.journal.path])
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("maxsize", [10_000, 300], ids=["no-conflation", "conflated"])
def test_a_websocket_session_replays_to_the_live_state_from_its_messages(
    tmp_path: Path, server: FakeExchange, maxsize: int
) -> None:
    app, dispatched = record(tmp_path, server, maxsize, n=1500)
    conflated = app.bus.conflated
    assert (conflated > 0) == (maxsize < 1500)
    assert any(isinstance(e, OrderSubmitted) for e in dispatched), "the strategies decided"

    written = lines(app.cfg)
    frames = [line for line in written if "frame" in line]
    market = [e for e in dispatched if isinstance(e, (QuoteTick, TradeTick))]
    # every message whose events were dispatched is its frame line, nothing is encoded twice
    assert len(frames) == len([e for e in dispatched if e.frame is not None]) >= len(market)
    assert len(frames) + len([line for line in written if "type" in line]) == len(written)
    assert {f["frame"] for f in frames} == {"ws-binance-market"}
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) if not conflated else len(set(seqs)) == len(seqs)
    assert not any(line.get("type") in ("QuoteTick", "TradeTick", "Candle") for line in written)

    replayer, reader = replay(app.cfg)
    assert reader.bad_lines == []
    assert replayer.stats.total == len(dispatched)
    assert store_state(replayer.app.store) == store_state(app.store)
    assert (
        read_events(app.cfg.journal.path, parsers=market_parsers(app.cfg, ManualClock()))
        == dispatched
    )


def bybit_trades(ts: int, *ids: int) -> tuple[bytes, list[Event]]:
    """One Bybit message carrying several trades, parsed as the listener parses it."""
    protocol = BybitPublicStreams("wss://bybit.invalid/v5/public/spot", "spot", ["BTC/USDT"], None)
    msg = {
        "topic": "publicTrade.BTCUSDT",
        "type": "snapshot",
        "ts": 1_700_000_000_000,
        "data": [
            {
                "T": 1_700_000_000_000,
                "s": "BTCUSDT",
                "S": "Buy",
                "v": "0.01",
                "p": f"6000{i}.5",
                "i": str(i),
                "BT": False,
            }
            for i in ids
        ],
    }
    raw = json.dumps(msg).encode()
    events = list(protocol.parse(json.loads(raw, parse_float=D), ts))
    frame = Frame(listener_name(protocol).encode(), ts, ids[0], raw, len(events))
    return raw, [replace(e, frame=frame) for e in events]


BYBIT = {
    "ws-bybit-spot": BybitPublicStreams(
        "wss://bybit.invalid/v5/public/spot", "spot", ["BTC/USDT"], None
    ).parse
}


def test_a_message_partly_conflated_keeps_its_dispatched_events_as_json_lines() -> None:
    _, whole = bybit_trades(T0, 1, 2, 3)
    _, cut = bybit_trades(T0 + 1, 4, 5, 6)
    other = QuoteTick(
        ts_event=T0,
        ts_recv=T0 + 2,
        symbol="BTC/USDT",
        bid=D("1"),
        bid_size=D("1"),
        ask=D("2"),
        ask_size=D("1"),
    )
    # the bus kept trades 5 and 6 of the second message only; a quote came between
    dispatched = [*whole, cut[1], other, cut[2]]
    out = [json.loads(line) for line in encode_lines(dispatched)]
    assert [("frame" in line, line.get("type")) for line in out] == [
        (True, None),
        (False, "TradeTick"),
        (False, "QuoteTick"),
        (False, "TradeTick"),
    ]
    assert out[0]["msg"]["data"][2]["i"] == "3" and out[0]["seq"] == 1
    assert [line.get("trade_id") for line in out[1:]] == ["5", None, "6"]


def test_frame_lines_and_json_lines_replay_to_the_events_dispatched(tmp_path: Path) -> None:
    _, first = bybit_trades(T0, 1, 2)
    _, second = bybit_trades(T0 + 5, 3)
    path = tmp_path / "2023-11-14.jsonl"
    path.write_bytes(b"\n".join(encode_lines([*first, *second])) + b"\n")
    assert read_events(path, parsers=BYBIT) == [*first, *second]


def test_old_and_new_journal_files_replay_together(tmp_path: Path) -> None:
    _, frames = bybit_trades(T0 + 10, 7, 8)
    old = [
        TradeTick(
            ts_event=T0,
            ts_recv=T0 + i,
            symbol="BTC/USDT",
            price=D("60000.10"),
            size=D("0.010"),
            aggressor=frames[0].aggressor,
            trade_id=str(i),
        )
        for i in range(3)
    ]
    (tmp_path / "2023-11-13.jsonl").write_text("".join(event_to_json(e) + "\n" for e in old))
    (tmp_path / "2023-11-14.jsonl").write_bytes(b"\n".join(encode_lines(frames)) + b"\n")
    reader = JournalReader(journal_files([tmp_path]), BYBIT)
    assert list(reader) == [*old, *frames] and reader.bad_lines == []
    assert read_events(tmp_path / "2023-11-13.jsonl") == old  # no parsers needed for JSON lines


@pytest.mark.parametrize(
    "garbage",
    [
        b'{"frame":"ws-bybit-spot","ts_recv":1,"seq":1,"msg":{"topic":"publicTr',  # cut by a crash
        b'{"frame":"ws-bybit-spot","ts_recv":1,"seq":2,"msg":{"topic":"nonsense.X"}}',
        b'{"frame":"ws-bybit-spot","ts_recv":1,"seq":3,"msg":{"success":true,"op":"subscribe"}}',
        b'{"frame":"ws-binance-market","ts_recv":1,"seq":4,"msg":{}}',  # no parser for it
    ],
    ids=["cut", "unknown-topic", "control", "unknown-stream"],
)
def test_a_bad_frame_line_is_skipped_and_counted_with_its_place(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # an earlier test may have left the root logger above WARNING (a CLI's --log-level)
    caplog.set_level(logging.WARNING, logger="trader.journal")
    _, first = bybit_trades(T0, 1)
    _, last = bybit_trades(T0 + 1, 2)
    path = tmp_path / "2023-11-14.jsonl"
    path.write_bytes(b"\n".join([*encode_lines(first), garbage, *encode_lines(last)]) + b"\n")
    reader = JournalReader([path], BYBIT)
    assert list(reader) == [*first, *last]
    assert reader.bad_lines == [f"{path}:2"]
    assert f"skipped bad line {path}:2" in caplog.text


def test_the_replay_builds_the_parsers_of_the_recorded_streams(tmp_path: Path) -> None:
    cfg = session_config(tmp_path, "ws://127.0.0.1:1", 100)
    assert list(market_parsers(cfg, ManualClock())) == ["ws-binance-market"]
