"""The Redis backend against a real redis-server: state mirrored to hashes, every event on the
stream, restore on restart, Redis killed and restarted mid-run, buffer overflow, the consumer."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.conftest import balance, running
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - fixture
from trader import codec
from trader.app import App
from trader.clock import ManualClock
from trader.config import Config, StorageConfig, StoreConfig, config_from_dict
from trader.events import (
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    QuoteTick,
    StateRestored,
    StreamGap,
    event_from_json,
    event_to_dict,
    event_to_json,
)
from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.records import Balance, Fill, Market, Order, Position
from trader.stats import Stats
from trader.store.memory import MemoryStore

pytest.importorskip("redis")
from trader.store.redis import (  # noqa: E402
    Keys,
    Outbox,
    RedisStore,
    RedisWriter,
    connect,
)
from trader.store.redis import writer as redis_writer  # noqa: E402
from trader.store.redis.store import prices_from_json, prices_to_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "t"


def make_config(url: str, **storage: object) -> Config:
    return config_from_dict(
        {
            "general": {"stats_interval_s": 60},
            "journal": {"path": tempfile.mkdtemp(prefix="journal-")},
            "simulated": {"tick_interval_s": 0.01},
            "poller": {"balances_every_s": 0, "open_orders_every_s": 0},
            "storage": {
                "backend": "redis",
                "redis_url": url,
                "key_prefix": PREFIX,
                "flush_interval_s": 0.01,
                "retry_max_s": 0.2,
                **storage,
            },
        },
        {},
    )


def wait_until(pred: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def writer(app: App) -> RedisWriter:
    (w,) = app.storage.workers
    assert isinstance(w, RedisWriter)
    return w


def dispatched(app: App, name: str) -> int:
    return app.stats.dispatched[name]


def stream_entries(server: RedisServer) -> list[tuple[str, dict[str, str]]]:
    return server.client().xrange(f"{PREFIX}:events")


def session_seqs(entries: list[tuple[str, dict[str, str]]], session: str) -> list[int]:
    return [int(f["seq"].split(":")[1]) for _, f in entries if f["seq"].startswith(session + ":")]


def redis_balances(server: RedisServer) -> dict[str, Balance]:
    raw = server.client().hgetall(f"{PREFIX}:balances")
    return {k: codec.from_json(Balance, v) for k, v in raw.items()}


# ------------------------------------------------------------------------- no server needed


def test_records_round_trip_through_json() -> None:
    records = [
        Market("BTC/USDT", "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("5")),
        Balance("BTC", D("0.50"), D("0"), D("0.50")),
        Order(
            "c1",
            "BTC/USDT",
            Side.BUY,
            OrderType.LIMIT,
            D("1.10"),
            None,
            OrderStatus.OPEN,
            exchange_id="x",
            external=True,
            ts_update=7,
        ),
        Order(
            "c2",
            "BTC/USDT",
            Side.SELL,
            OrderType.MARKET,
            D("1"),
            D("100.5"),
            OrderStatus.FILLED,
            D("1"),
            D("100.25"),
            D("0.1"),
            fills=(Fill("t1", D("100.0"), D("0.5")), Fill("t2", D("100.50"), D("0.5"))),
        ),
        Position("BTC/USDT", D("0.3"), D("60000.1"), D("-2.5"), D("0.01")),
    ]
    for rec in records:
        text = codec.to_json(rec)
        back = codec.from_json(type(rec), text)
        assert back == rec and codec.to_json(back) == text  # every digit kept


def test_prices_round_trip_as_tagged_events_and_bad_ones_are_one_error() -> None:
    q = QuoteTick(
        ts_event=1,
        ts_recv=2,
        symbol="BTC/USDT",
        bid=D("1.10"),
        bid_size=D("2"),
        ask=D("1.20"),
        ask_size=D("3"),
    )
    text = prices_to_json(q, None)
    assert json.loads(text) == {"quote": event_to_dict(q), "trade": None}  # the saved format
    assert prices_from_json(text) == (q, None)
    for bad in (
        '{"quote": 1}',
        '{"quote": {"type": "QuoteTick"}}',
        "[]",
        json.dumps({"trade": event_to_dict(q)}),
    ):
        with pytest.raises(codec.CodecError):
            prices_from_json(bad)


def test_outbox_keeps_the_oldest_run_when_full_and_marks_the_gap(caplog) -> None:
    stats = Stats()
    box = Outbox(3, stats, "t:events")
    with caplog.at_level(logging.ERROR):
        for ts in range(1, 6):
            box.append(balance("USDT", str(ts), ts=ts))
    assert len(box) == 3 and box.dropped == 2 and stats.get("redis_stream_dropped") == 2
    assert sum("left out of the stream" in r.getMessage() for r in caplog.records) == 1
    assert [seq for seq, _ in box.take(10)] == [1, 2, 3]
    box.ack(2)
    box.append(balance("USDT", "6", ts=6))
    entries = box.take(10)
    assert [seq for seq, _ in entries] == [3, 4, 5]
    gap = entries[1][1]
    assert isinstance(gap, StreamGap)
    assert (gap.dropped, gap.first_ts, gap.last_ts, gap.stream) == (2, 4, 5, "t:events")
    assert entries[2][1].total == D(6)


# ------------------------------------------------------------------------- real redis-server


def fill_events(ts: int) -> list:
    return [
        OrderSubmitted(
            ts_event=ts,
            ts_recv=ts,
            client_id="ops-1",
            symbol="BTC/USDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            amount=D("0.5"),
            price=D("100"),
        ),
        OrderAccepted(ts_event=ts, ts_recv=ts, client_id="ops-1", exchange_id="ex-1"),
        OrderFilled(
            ts_event=ts,
            ts_recv=ts,
            client_id="ops-1",
            exchange_id="ex-1",
            trade_id="t1",
            symbol="BTC/USDT",
            side=Side.BUY,
            price=D("100"),
            amount=D("0.2"),
            fee=D("0.02"),
            fee_asset="USDT",
            filled_total=D("0.2"),
            is_final=False,
        ),
        balance("BTC", "0.2", ts=ts),
        balance("USDT", "9979.98", used="30", ts=ts),
    ]


def test_state_is_mirrored_and_a_second_app_restores_it_at_start(redis_server: RedisServer) -> None:
    app = App(make_config(redis_server.url))
    with running(app):
        for ev in fill_events(app.clock.now_ns()):
            app.bus.publish(ev)
        wait_until(
            lambda: (
                app.store.order("ops-1") is not None and app.store.order("ops-1").filled == D("0.2")
            ),
            what="the fill",
        )
        expected = dict(app.store.balances().balances)
        wait_until(lambda: redis_balances(redis_server) == expected, what="balances in redis")
    # Another process's view: Redis holds exactly the stopped app's state.
    client = redis_server.client()
    assert redis_balances(redis_server) == dict(app.store.balances().balances)
    orders = {k: codec.from_json(Order, v) for k, v in client.hgetall("t:orders").items()}
    assert orders == {o.client_id: o for o in app.store.orders()}
    assert orders["ops-1"].status is OrderStatus.PARTIALLY_FILLED
    positions = client.hgetall("t:positions")
    assert codec.from_json(Position, positions["BTC/USDT"]) == app.store.position("BTC/USDT")
    assert set(client.hgetall("t:markets")) == {"BTC/USDT", "ETH/USDT"}
    assert set(client.hgetall("t:prices")) == {"BTC/USDT", "ETH/USDT"}

    # Another instance reading the saved state sees the same balances, orders and positions.
    other_cfg = config_from_dict(
        {
            "journal": {"path": tempfile.mkdtemp(prefix="journal-")},
            "paper": {"starting_balances": {"USDT": 1}},
            "storage": {"backend": "redis", "redis_url": redis_server.url, "key_prefix": PREFIX},
        },
        {},
    )
    reader = App(other_cfg)
    restored = reader.storage.restore()
    assert [type(e) for e in restored] == [StateRestored]  # the ledger, dispatched at start
    reader.engine.dispatch(restored[0])
    assert dict(reader.store.balances().balances) == expected
    assert reader.store.orders() == app.store.orders()
    assert reader.store.positions() == app.store.positions()
    assert reader.store.quotes() == app.store.quotes() and len(app.store.quotes()) == 2

    # A restart: the state is restored first, then the exchange's answers are applied on top
    # (its paper account reports USDT 1; BTC it does not report stays as restored).
    second = App(other_cfg)
    second.start()
    try:
        assert second.store.balance("USDT").total == D(1)
        assert second.store.balance("BTC") == expected["BTC"]
        assert second.store.order("ops-1") == app.store.order("ops-1")
        assert second.store.open_orders() == app.store.open_orders()
        assert second.store.position("BTC/USDT") == app.store.position("BTC/USDT")
        assert second.store.order("ops-1").exchange_id == "ex-1"
        # The same fill delivered again after the restart (a reconciliation) is not re-applied.
        again = fill_events(second.clock.now_ns())[2]
        second.store.on_order_filled(again)
        assert second.store.position("BTC/USDT") == app.store.position("BTC/USDT")
        assert second.store.duplicate_fills == 1
    finally:
        second.request_stop("test")
        second.shutdown()


def test_redis_killed_and_restarted_mid_run_loses_no_acknowledged_event(
    redis_server: RedisServer,
) -> None:
    app = App(make_config(redis_server.url))
    w = writer(app)
    with running(app):
        wait_until(lambda: w.acked >= 100, what="100 acknowledged events")
        acked_before, last_id_before = w.acked, w.last_id
        redis_server.kill()
        wait_until(lambda: dispatched(app, "StorageFailed") == 1, what="StorageFailed")
        wait_until(lambda: len(w.outbox) >= 50, what="events buffered while Redis is down")
        assert app.stats.dispatched["QuoteTick"] > 0  # the process kept running on memory
        redis_server.start()
        wait_until(lambda: dispatched(app, "StorageRecovered") == 1, what="StorageRecovered")
        wait_until(lambda: len(w.outbox) == 0, what="the buffer to drain")
        expected = dict(app.store.balances().balances)
    entries = stream_entries(redis_server)
    seqs = session_seqs(entries, w.session)
    observed = sum(app.stats.dispatched.values()) - sum(app.stats.unhandled.values())
    # Every event of this run is in the stream exactly once, in order: 1..N with no hole.
    assert seqs == list(range(1, observed + 1))
    assert w.acked == observed and len(w.outbox) == 0 and w.outbox.dropped == 0
    assert acked_before <= observed and entries[-1][0] >= last_id_before
    assert app.stats.get("redis_lost_acknowledged") == 0
    types = [f["type"] for _, f in entries]
    assert types.index("StorageFailed") < types.index("StorageRecovered")
    assert "StreamGap" not in types
    # The hashes were rewritten after the restart.
    assert redis_balances(redis_server) == expected
    for _, fields in entries[:5]:
        assert event_from_json(fields["event"]).ts_recv > 0


def test_unreachable_at_start_then_overflow_then_gap_marker(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")  # a port nothing listens on yet
    app = App(make_config(server.url, buffer_max=100, start_empty_if_unreachable=True))
    w = writer(app)
    try:
        with running(app):
            wait_until(lambda: w.outbox.dropped > 50, what="the buffer to overflow")
            assert dispatched(app, "StorageFailed") >= 1
            server.start()
            wait_until(lambda: dispatched(app, "StorageRecovered") == 1, what="recovery")
            wait_until(lambda: len(w.outbox) == 0 and w.acked > 150, what="the drain")
        entries = stream_entries(server)
    finally:
        server.stop()
    seqs = session_seqs(entries, w.session)
    assert seqs == list(range(1, len(seqs) + 1))
    gaps = [event_from_json(f["event"]) for _, f in entries if f["type"] == "StreamGap"]
    assert len(gaps) == 1 and gaps[0].dropped == w.outbox.dropped
    assert app.stats.get("redis_stream_dropped") == w.outbox.dropped
    assert gaps[0].first_ts <= gaps[0].last_ts
    observed = sum(app.stats.dispatched.values()) - sum(app.stats.unhandled.values())
    # Nothing vanished: every event is in the stream or counted in the one gap.
    assert len(seqs) - 1 + gaps[0].dropped == observed
    # The buffer kept the oldest run: the gap comes right after the first 100 events.
    assert [f["seq"] for _, f in entries if f["type"] == "StreamGap"] == [f"{w.session}:101"]


def test_example_consumer_follows_the_stream(redis_server: RedisServer) -> None:
    consumer = [
        sys.executable,
        str(ROOT / "scripts" / "redis_consumer.py"),
        "--url",
        redis_server.url,
        "--prefix",
        PREFIX,
    ]
    app = App(make_config(redis_server.url))
    with running(app):
        wait_until(lambda: writer(app).acked > 0, what="the first entries")
        follow = subprocess.Popen(
            consumer + ["--count", "5", "--type", "QuoteTick"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = follow.communicate(timeout=15)
    assert follow.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 5 and all(" QuoteTick " in line for line in lines), out
    seqs = [int(line.split()[1].split(":")[1]) for line in lines]
    assert seqs == sorted(seqs) and seqs[0] > 1  # followed new entries, not the history
    replay = subprocess.run(
        consumer + ["--from-start", "--count", "3"], capture_output=True, text=True, timeout=15
    )
    assert replay.returncode == 0, replay.stderr
    first = replay.stdout.splitlines()
    assert [line.split()[2] for line in first] == [
        "SessionStarted",
        "MarketUpdated",
        "MarketUpdated",
    ]
    assert first[0].split()[1].endswith(":1") and "symbol=BTC/USDT" in first[1]


def test_every_memory_store_write_is_mirrored() -> None:
    not_persisted = {"on_candle", "on_signal"}  # bounded histories, rebuilt from market data
    writes = {n for n in dir(MemoryStore) if n.startswith("on_")} - not_persisted  # with the base
    assert writes == {n for n in vars(RedisStore) if n.startswith("on_")} - {"on_event"}


def test_orders_and_fills_evicted_from_memory_are_removed_from_redis(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_writer, "TRIM_EVERY", 1)
    stats = Stats()
    box = Outbox(1000, stats, "t:events")
    store = RedisStore(StoreConfig(max_orders=10), box)
    w = RedisWriter(
        lambda: connect(redis_server.url, None),
        Keys(PREFIX),
        box,
        store,
        lambda ev: None,
        ManualClock(1),
        stats,
        StorageConfig(),
    )
    stop = threading.Event()
    for i in range(15):
        store.on_order_submitted(
            OrderSubmitted(
                ts_event=i,
                ts_recv=i,
                client_id=f"c{i}",
                symbol="BTC/USDT",
                side=Side.BUY,
                order_type=OrderType.MARKET,
                amount=D(1),
            )
        )
        store.on_order_rejected(
            OrderRejected(ts_event=i, ts_recv=i, client_id=f"c{i}", reason="test")
        )
        w._step(deadline=time.monotonic() + 1)
    stop.set()
    w.run(stop)
    saved = redis_server.client().hgetall("t:orders")
    assert sorted(saved) == sorted(o.client_id for o in store.orders())
    assert len(saved) == 10 and "c0" not in saved and "c14" in saved


def test_memory_backend_needs_no_redis() -> None:
    app = App(Config())
    assert [w.name for w in app.storage.workers] == ["state-file"]  # a file, no Redis
    assert app.storage.observers == []
    assert type(app.store).__name__ == "MemoryStore"
    assert StoreConfig() == app.cfg.store


def test_a_batch_whose_replies_were_lost_is_not_appended_twice(redis_server: RedisServer) -> None:
    stats, published = Stats(), []
    box = Outbox(100, stats, "t:events")
    store = RedisStore(StoreConfig(), box)
    w = RedisWriter(
        lambda: connect(redis_server.url, None),
        Keys(PREFIX),
        box,
        store,
        published.append,
        ManualClock(1),
        stats,
        StorageConfig(),
    )
    for n in range(1, 6):
        store.on_balance(balance("USDT", str(n), ts=n))
        store.on_event(balance("USDT", str(n), ts=n))
    # Entries 1-3 reached Redis but the connection broke before their replies came back.
    client = redis_server.client()
    for seq, ev in box.take(3):
        client.xadd(
            "t:events",
            {"seq": f"{w.session}:{seq}", "type": "BalanceUpdate", "event": event_to_json(ev)},
        )
    stop = threading.Event()
    stop.set()
    w.run(stop)  # one last step: reconnect, settle the lost replies, flush the rest
    entries = stream_entries(redis_server)
    assert session_seqs(entries, w.session) == [1, 2, 3, 4, 5]
    assert [event_from_json(f["event"]).total for _, f in entries] == [D(n) for n in range(1, 6)]
    assert w.acked == 5 and len(box) == 0 and published == []
    assert redis_balances(redis_server) == {"USDT": store.balance("USDT")}


def test_redis_down_at_start_exits_1_with_one_line_and_leaves_the_saved_state(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = server.client()
        client.hset(f"{PREFIX}:positions", "BTC/USDT", "saved-position")
        client.hset(f"{PREFIX}:orders", "saved-order", "saved")
        saved = {k: client.hgetall(k) for k in client.keys("*")}
        server.kill()
        cfg_path = tmp_path / "config.yaml"
        cfg_path.write_text(
            "simulated: {tick_interval_s: 0.01}\n"
            f"journal: {{path: {tmp_path / 'journal'}}}\n"
            f"storage: {{backend: redis, redis_url: '{server.url}', key_prefix: {PREFIX}}}\n"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "trader", "--config", str(cfg_path)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("storage error at start: redis:"), lines
        assert "start_empty_if_unreachable" in lines[0]
        server.start()
        assert {k: server.client().hgetall(k) for k in server.client().keys("*")} == saved
    finally:
        server.stop()


def test_an_empty_start_when_allowed_never_deletes_saved_records(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = server.client()
        client.hset(f"{PREFIX}:orders", "saved-order", "saved")
        client.hset(f"{PREFIX}:positions", "ETH/USDT", "saved-position")
        server.kill()
        app = App(make_config(server.url, start_empty_if_unreachable=True))
        with running(app):
            wait_until(lambda: dispatched(app, "StorageFailed") >= 1, what="StorageFailed")
            server.start()
            wait_until(lambda: dispatched(app, "StorageRecovered") == 1, what="recovery")
            wait_until(
                lambda: "BTC/USDT" in server.client().hgetall(f"{PREFIX}:prices"),
                what="this run's records",
            )
        client = server.client()
        assert client.hget(f"{PREFIX}:orders", "saved-order") == "saved"
        assert client.hget(f"{PREFIX}:positions", "ETH/USDT") == "saved-position"
    finally:
        server.stop()
