"""The journal: round trip, daily files and retention, flush on stop and after a kill, failures,
no secrets."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import quote, start_service
from tests.test_events import sample_event
from trader.app import App
from trader.clock import ManualClock
from trader.config import JournalConfig, config_from_dict
from trader.errors import ConfigError
from trader.events import (
    EVENT_TYPES,
    Event,
    HandlerFailed,
    QuoteTick,
    ReconciliationCompleted,
    StorageFailed,
    StorageRecovered,
    event_from_json,
)
from trader.journal import Journal, JournalReader, read_events, utc_day
from trader.model.units import DAY_NS
from trader.stats import Stats
from trader.workers import Supervisor

ROOT = Path(__file__).resolve().parent.parent
DAY0 = 19_800 * DAY_NS  # 2024-03-18T00:00Z


def journal(
    folder: Path,
    clock: ManualClock | None = None,
    retention: int = 0,
    published: list | None = None,
    interval: float = 1.0,
) -> Journal:
    sink = published.append if published is not None else (lambda e: None)
    j = Journal(
        JournalConfig(path=str(folder), retention_days=retention, flush_interval_s=interval),
        clock or ManualClock(DAY0),
        sink,
    )
    j.open()
    return j


def q(ts: int) -> QuoteTick:
    return quote(ts=ts)


def test_every_event_type_round_trips_through_the_journal(tmp_path: Path) -> None:
    j = journal(tmp_path)
    events = [
        replace(sample_event(cls), ts_recv=DAY0 + i) for i, cls in enumerate(EVENT_TYPES.values())
    ]
    for ev in events:
        j.record(ev)
    j.finish()
    assert read_events(tmp_path) == events
    assert j.written == len(events) and j.counters()["pending"] == 0


def test_one_file_per_utc_day_in_dispatch_order(tmp_path: Path) -> None:
    j = journal(tmp_path)
    late = q(DAY0 + DAY_NS - 1)  # dispatched after midnight, received before: stays
    for ev in (q(DAY0 + 5), q(DAY0 + DAY_NS + 1), late, q(DAY0 + 2 * DAY_NS)):
        j.record(ev)
    j.finish()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["2024-03-18.jsonl", "2024-03-19.jsonl", "2024-03-20.jsonl"]
    assert [e.ts_recv for e in read_events(tmp_path / "2024-03-19.jsonl")] == [
        DAY0 + DAY_NS + 1,
        DAY0 + DAY_NS - 1,
    ]
    assert utc_day(DAY0 + DAY_NS - 1) == ("2024-03-18", DAY0 + DAY_NS)


def test_retention_at_start_and_at_each_day_roll(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for day in ("2024-02-01", "2024-03-01", "2024-03-10"):
        (tmp_path / f"{day}.jsonl").write_text("")
    (tmp_path / "notes.txt").write_text("kept: not a journal file")
    with caplog.at_level(logging.INFO):
        j = journal(tmp_path, ManualClock(DAY0), retention=10)  # today 2024-03-18
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "2024-03-10.jsonl",
        "2024-03-18.jsonl",
        "notes.txt",
    ]
    assert "deleted 2 files older than 2024-03-08" in caplog.text
    j.record(q(DAY0 + 12 * DAY_NS))  # the day rolls to 2024-03-30
    j.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2024-03-30.jsonl", "notes.txt"]


def test_the_writer_thread_flushes_within_the_interval(tmp_path: Path) -> None:
    j = journal(tmp_path, interval=0.05)
    sup = Supervisor(lambda e: None, ManualClock(), Stats())
    sup.add(j)
    sup.start()
    try:
        j.record(q(DAY0 + 1))
        deadline = time.monotonic() + 5
        while j.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert read_events(tmp_path) == [q(DAY0 + 1)]
    finally:
        sup.stop(1.0)
        j.finish()


def test_a_failing_write_halts_trading_keeps_the_events_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[Event] = []
    j = journal(tmp_path, published=published)
    j.record(q(DAY0 + 1))
    j.flush()
    tomorrow = tmp_path / "2024-03-19.jsonl"
    tomorrow.symlink_to("/dev/full")  # every write fails with ENOSPC: a full disk
    for i in range(3):
        j.record(q(DAY0 + DAY_NS + i))
    with caplog.at_level(logging.CRITICAL):
        assert j.flush() == 0
    assert [type(e) for e in published] == [StorageFailed]  # risk halts trading on it
    assert published[0].component == "journal" and "No space left" in published[0].error
    assert "writing to" in caplog.text and "trading is halted" in caplog.text
    assert j.counters() == {"written": 1, "pending": 3, "dropped": 0, "failing": 1}
    j.record(q(DAY0 + DAY_NS + 3))
    j.flush()
    assert len(published) == 1  # reported once per failure
    tomorrow.unlink()  # space again
    j.flush()
    assert type(published[-1]) is StorageRecovered
    j.finish()
    assert [e.ts_recv for e in read_events(tomorrow)] == [DAY0 + DAY_NS + i for i in range(4)]


def test_a_writer_that_falls_behind_its_cap_halts_trading_until_it_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[Event] = []
    j = journal(tmp_path, published=published)
    j.max_pending = 1_000  # the writer thread never runs here: a stalled writer
    for i in range(1_000):
        j.record(q(DAY0 + i))
    j.check_backlog()
    assert published == []  # at the cap, not above it
    j.record(q(DAY0 + 1_000))
    with caplog.at_level(logging.CRITICAL):
        j.check_backlog()
        j.check_backlog()
    assert [type(e) for e in published] == [StorageFailed]  # once; risk halts trading on it
    assert "1001 events waiting" in published[0].error and "max_pending 1000" in caplog.text
    j.flush()  # the writer catches up: nothing was dropped
    j.check_backlog()
    assert [type(e) for e in published] == [StorageFailed, StorageRecovered]
    j.finish()
    assert len(read_events(tmp_path)) == 1_001


def test_a_write_failure_and_a_backlog_report_one_failure_and_one_recovery(
    tmp_path: Path,
) -> None:
    published: list[Event] = []
    j = journal(tmp_path, published=published)
    j.max_pending = 1_000
    tomorrow = tmp_path / "2024-03-19.jsonl"
    tomorrow.symlink_to("/dev/full")  # a full disk
    j.record(q(DAY0 + DAY_NS))
    j.flush()  # the write fails: reported
    assert [type(e) for e in published] == [StorageFailed]
    for i in range(1_001):
        j.record(q(DAY0 + DAY_NS + 1 + i))
    j.check_backlog()  # and now behind as well: already reported, not again
    assert [type(e) for e in published] == [StorageFailed]
    tomorrow.unlink()
    j.flush()  # writes again, but was behind: the backlog check reports the recovery
    assert [type(e) for e in published] == [StorageFailed]
    j.check_backlog()
    assert [type(e) for e in published] == [StorageFailed, StorageRecovered]
    j.finish()


def test_an_unusable_folder_is_a_config_error_at_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"journal.path: cannot write the journal in .*file/j"):
        journal(tmp_path / "file" / "j")


def test_an_unusable_folder_stops_start_py_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"journal: {{path: {tmp_path / 'file' / 'journal'}}}\n")
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "start.py"), "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"config error: journal.path: cannot write the journal in "
        f"{tmp_path / 'file' / 'journal'}: Not a directory"
    ]


def test_every_dispatched_event_is_journaled_even_unhandled_and_failures(tmp_path: Path) -> None:
    cfg = config_from_dict({"journal": {"path": str(tmp_path)}}, {})
    app = App(cfg, ManualClock(DAY0))
    app.journal.open()

    def broken(ev: QuoteTick) -> None:
        raise ValueError("bad quote")

    app.registry.register(QuoteTick, broken)
    app.engine.dispatch(q(DAY0 + 1))
    app.engine.drain(time.monotonic() + 1)
    app.engine.dispatch(
        ReconciliationCompleted(ts_event=1, ts_recv=DAY0 + 2, ok=True, differences=0)
    )
    app.journal.finish()
    events = read_events(tmp_path)
    assert [type(e).__name__ for e in events] == [
        "QuoteTick",
        "HandlerFailed",
        "ReconciliationCompleted",
    ]
    failed = events[1]
    assert isinstance(failed, HandlerFailed) and "ValueError: bad quote" in failed.error
    assert "Traceback" in failed.traceback


def test_a_killed_process_loses_only_the_last_flush_interval_and_no_secret(tmp_path: Path) -> None:
    secrets = {"TRADER_API_KEY": "key-FAKE-6f1d2c9a", "TRADER_API_SECRET": "secret-FAKE-93be41"}
    folder = tmp_path / "journal"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "simulated: {tick_interval_s: 0.005}\n"
        f"journal: {{path: {folder}, flush_interval_s: 0.5}}\n"
        "strategies:\n"
        "  - {name: ma_cross, market: BTC/USDT, params: {fast: 2, slow: 3, amount: 0.01}}\n"
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}, **secrets}
    proc = start_service(cfg, tmp_path, env, "--log-level", "DEBUG")
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(x) for x in proc.stdout], daemon=True, name="test-reader"
    )
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any(p.stat().st_size for p in folder.glob("*.jsonl")):
            assert time.monotonic() < deadline and proc.poll() is None, "no journal written"
            time.sleep(0.05)
        time.sleep(1.2)  # a few flushes
        killed_ns = time.time_ns()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    reader.join(5)
    log = "".join(lines.queue)
    files = sorted(folder.glob("*.jsonl"))
    raw = b"".join(p.read_bytes() for p in files)
    journal_reader = JournalReader(files)
    events = list(journal_reader)
    assert not journal_reader.bad_lines, "every line written at a flush is whole"
    lost_s = (killed_ns - events[-1].ts_recv) / 1e9
    # the documented window: one flush interval (0.5 s here) plus the time a flush takes
    assert 0 <= lost_s < 0.5 + 0.5, f"lost {lost_s:.2f}s of events; the window is 0.5s"
    assert [type(e).__name__ for e in events[:2]] == ["SessionStarted", "MarketUpdated"]
    for secret in secrets.values():
        assert secret.encode() not in raw
        assert secret not in log
    assert event_from_json(raw.splitlines()[0].decode()) == events[0]


def test_an_event_that_cannot_be_encoded_is_skipped_not_the_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Odd(QuoteTick):
        """An event the codec cannot encode: its class is not a registered event type."""

        __slots__ = ()

    j = journal(tmp_path)
    odd = Odd(
        **{
            f: getattr(q(DAY0 + 2), f)
            for f in ("ts_event", "ts_recv", "symbol", "bid", "bid_size", "ask", "ask_size")
        }
    )
    for ev in (q(DAY0 + 1), odd, q(DAY0 + 3)):
        j.record(ev)
    j.finish()
    assert [e.ts_recv for e in read_events(tmp_path)] == [DAY0 + 1, DAY0 + 3]
    assert j.counters()["dropped"] == 1 and "cannot encode" in caplog.text


def test_a_torn_last_line_is_ended_before_the_next_session_appends(tmp_path: Path) -> None:
    """A kill in the middle of a write leaves half a line; the next start must not glue its
    SessionStarted onto it (replay would see one session and carry positions over)."""
    first = journal(tmp_path)
    first.record(q(DAY0 + 1))
    first.record(q(DAY0 + 2))
    first.finish()
    path = tmp_path / f"{utc_day(DAY0)[0]}.jsonl"
    whole = path.read_bytes()
    path.write_bytes(whole + whole.splitlines(keepends=True)[0][:37])  # the cut third line

    second = journal(tmp_path)
    second.record(q(DAY0 + 3))
    second.finish()

    reader = JournalReader([path])
    assert [e.ts_recv for e in reader] == [DAY0 + 1, DAY0 + 2, DAY0 + 3]
    assert reader.bad_lines == [f"{path}:3"]  # reported with its place, kept in the file
    assert path.read_bytes().startswith(whole + whole.splitlines(keepends=True)[0][:37] + b"\n")


def test_a_whole_last_line_is_left_as_it_is(tmp_path: Path) -> None:
    first = journal(tmp_path)
    first.record(q(DAY0 + 1))
    first.finish()
    path = tmp_path / f"{utc_day(DAY0)[0]}.jsonl"
    before = path.read_bytes()
    journal(tmp_path).finish()
    assert path.read_bytes() == before


def test_lines_with_bad_types_are_skipped_counted_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = (
        '{"type":"TradeTick","ts_event":1,"ts_recv":2,"symbol":"BTC/USDT","price":"1",'
        '"size":"1","aggressor":"buy","trade_id":"t1"}'
    )
    path = tmp_path / "2024-01-01.jsonl"
    path.write_text(
        "\n".join(
            [
                good,
                good.replace('"price":"1"', '"price":"abc"'),
                good.replace('"ts_recv":2', '"ts_recv":"x"'),
                good.replace('"symbol":"BTC/USDT"', '"symbol":3'),
                good.replace('"ts_event":1', '"ts_event":true'),
                good,
            ]
        )
        + "\n"
    )
    reader = JournalReader([path])
    with caplog.at_level(logging.WARNING, logger="trader.journal"):
        events = list(reader)
    assert len(events) == 2 and all(isinstance(e.ts_recv, int) for e in events)
    assert reader.bad_lines == [f"{path}:{n}" for n in (2, 3, 4, 5)]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 4 and all(
        m.startswith(f"journal: skipped bad line {path}:") for m in warned
    )
