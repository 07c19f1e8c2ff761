"""Replay: a recorded paper session replays to the same state; --until stops at the right event."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from trader.app import App, RunMode
from trader.clock import iso_utc
from trader.config import Config, Mode, config_from_dict
from trader.events import (
    Candle,
    HandlerFailed,
    OrderFilled,
    OrderSubmitted,
    SessionStarted,
    StateRestored,
)
from trader.journal import read_events
from trader.replay import Replayer, Until, offline_config
from trader.trading.strategies import STRATEGIES
from trader.trading.strategy import Strategy


class FastClock:
    """Wall time running ``speed`` times faster: one-second candles close every few ms, so a real
    paper session (real threads, feed, executor, journal) trades within a fraction of a second."""

    def __init__(self, speed: int) -> None:
        self._start = time.time_ns()
        self._t0 = time.monotonic_ns()
        self._speed = speed

    def now_ns(self) -> int:
        return self._start + (time.monotonic_ns() - self._t0) * self._speed


@dataclass(frozen=True)
class BoomParams:
    at: int = 3


class Boom(Strategy):
    """Raises on its ``at``-th closed candle: a strategy bug to reproduce."""

    Params = BoomParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.candles = 0

    def on_candle(self, ev: Candle, view: Any) -> tuple:
        if ev.closed:
            self.candles += 1
            if self.candles == self.params.at:
                raise RuntimeError(f"boom at candle {self.params.at}")
        return ()


WITH_BOOM = {**STRATEGIES, "boom": Boom}


def session_config(tmp_path: Path, boom: bool = False, persist: bool = False) -> dict:
    strategies = [
        {
            "name": "ma_cross",
            "market": "BTC/USDT",
            "params": {"fast": 2, "slow": 3, "amount": 0.01},
        },
        {"name": "ma_cross", "market": "ETH/USDT", "params": {"fast": 2, "slow": 3, "amount": 0.2}},
    ]
    if boom:
        strategies.append({"name": "boom", "market": "BTC/USDT", "params": {"at": 3}})
    return {
        "simulated": {"tick_interval_s": 0.002, "candle_interval_s": 1},
        "poller": {"open_orders_every_s": 1},
        "journal": {"path": str(tmp_path / "journal"), "retention_days": 0},
        "paper": {"persist": persist},
        "strategies": strategies,
    }


def run_until(app: App, done: Callable[[], bool], poll_s: float = 0.005) -> None:
    """Run the started ``app`` on this thread until ``done()`` holds (or 20 s have passed),
    then stop it cleanly."""

    def stop_after() -> None:
        deadline = time.monotonic() + 20
        while not done() and time.monotonic() < deadline:
            app.stop_event.wait(poll_s)
        app.request_stop("test")

    watcher = threading.Thread(target=stop_after, name="test-stopper", daemon=True)
    watcher.start()
    try:
        app.run()
    finally:
        app.shutdown()
    watcher.join(5)


def record_session(
    tmp_path: Path, steps: int = 600, boom: bool = False, speed: int = 200, persist: bool = False
) -> tuple[Path, App]:
    """Run a real paper session until ``steps`` events were dispatched; stop it cleanly."""
    cfg = config_from_dict(session_config(tmp_path, boom, persist), {})
    app = App(cfg, FastClock(speed), strategies=WITH_BOOM)
    app.start()
    run_until(app, lambda: app.stats.snapshot()["dispatched_total"] >= steps)
    return Path(cfg.journal.path), app


def live_state(app: App) -> tuple:
    s = app.store
    return dict(s.balances().balances), dict(s.positions()), s.orders()


def test_replayed_state_equals_the_live_state(tmp_path: Path) -> None:
    journal, app = record_session(tmp_path, steps=600)
    events = read_events(journal)
    assert len(events) == app.totals()["dispatched_total"] == app.journal.written
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert fills, "the session traded"
    replayer = Replayer(app.cfg)
    stats = replayer.run(events)
    assert live_state(replayer.app) == live_state(app)
    assert stats.total == len(events) and stats.sessions == 1
    assert stats.recorded_failures == 0 and not stats.reproduced_failures
    # what the strategies decided again is not dispatched again (it is in the journal already)
    assert stats.suppressed >= 2 * sum(1 for e in events if type(e).__name__ == "SubmitOrder")
    report = replayer.report()
    assert (
        report["state"]["positions"]["BTC/USDT"]["amount"] == app.store.position("BTC/USDT").amount
    )


@pytest.mark.parametrize("persist", [False, True], ids=["fresh-paper", "paper-persist"])
def test_a_second_session_starts_from_the_saved_ledger_as_the_process_did(
    tmp_path: Path, persist: bool
) -> None:
    """Replay equals live across a restart, with the paper account restarting empty or carried
    over (``paper.persist``: the restarted process reconciles against the carried account)."""
    _, first = record_session(tmp_path, steps=200, persist=persist)
    journal, second = record_session(tmp_path, steps=300, persist=persist)
    events = read_events(journal)
    assert sum(isinstance(e, SessionStarted) for e in events) == 2
    restored = [e for e in events if isinstance(e, StateRestored)]
    assert len(restored) == 1  # the first start had nothing saved
    assert restored[0].orders == first.store.orders()
    assert restored[0].positions == tuple(first.store.positions().values())
    replayer = Replayer(second.cfg)
    assert replayer.run(events).sessions == 2
    assert live_state(replayer.app) == live_state(second)
    submitted = [e.client_id for e in events if isinstance(e, OrderSubmitted)]
    assert [o.client_id for o in second.store.orders()] == submitted  # both sessions'
    # The second session alone replays from its StateRestored to the same state.
    alone = Replayer(second.cfg)
    alone.run(
        events[next(i for i, e in enumerate(events) if isinstance(e, SessionStarted) and i) :]
    )
    assert live_state(alone.app) == live_state(second)


def test_until_handler_failed_stops_right_after_the_failing_event(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from scripts.replay import main

    journal, app = record_session(tmp_path, steps=400, boom=True)
    events = read_events(journal)
    index = next(i for i, e in enumerate(events) if isinstance(e, HandlerFailed))
    recorded = events[index]
    assert recorded.handler == "strategy:boom:BTC/USDT"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(session_config(tmp_path, boom=True)))

    assert (
        main(
            [
                str(journal),
                "--config",
                str(config),
                "--until",
                "HandlerFailed",
                "--json",
                "--no-progress",
            ],
            strategies=WITH_BOOM,
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["stopped_at"]["index"] == index
    assert out["stopped_at"]["event"]["error"] == "RuntimeError: boom at candle 3"
    assert "Traceback" in out["stopped_at"]["event"]["traceback"]
    assert out["stats"]["events"] == index
    # the replay ran the strategy on the same candle, and it failed again
    assert out["stats"]["handler_failures_reproduced"] == {"strategy:boom:BTC/USDT": 1}
    assert out["stats"]["handler_failures_recorded"] == 0


def test_until_an_index_or_a_time(tmp_path: Path) -> None:
    journal, app = record_session(tmp_path, steps=150)
    events = read_events(journal)
    r = Replayer(app.cfg)
    assert r.run(events, Until.parse("42")).total == 42
    assert r.stopped_at == (42, events[42])
    stamp = events[100].ts_recv
    r = Replayer(app.cfg)
    r.run(events, Until(ts_ns=stamp))
    assert r.stopped_at is not None and r.stopped_at[1].ts_recv >= stamp
    assert all(e.ts_recv < stamp for e in events[: r.stopped_at[0]])


def test_until_parses_numbers_types_and_times() -> None:
    assert Until.parse("7") == Until(index=7)
    assert Until.parse("HandlerFailed") == Until(type_name="HandlerFailed")
    assert Until.parse("2024-05-01T14:03Z").ts_ns == 1_714_572_180 * 10**9
    with pytest.raises(ValueError, match="expected an event number, an event type"):
        Until.parse("HandlerFailled")


def test_cli_prints_state_and_statistics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from scripts.replay import main

    journal, app = record_session(tmp_path, steps=200)
    with open(next(journal.iterdir()), "a") as fh:  # lines of the right shape, bad types
        fh.write(
            '{"type":"TradeTick","ts_event":1,"ts_recv":"x","symbol":"BTC/USDT","price":'
            '"1","size":"1","aggressor":"buy","trade_id":"t1"}\n'
        )
        fh.write(
            '{"type":"TradeTick","ts_event":1,"ts_recv":2,"symbol":"BTC/USDT","price":'
            '"abc","size":"1","aggressor":"buy","trade_id":"t2"}\n'
        )
        fh.write('{"type":"QuoteTick","ts_event":1,"ts_re')  # a line cut by a crash
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(session_config(tmp_path)))
    assert main([str(journal), "--config", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"replayed {app.journal.written} events, 1 session(s)" in out
    for heading in (
        "balances",
        "positions",
        "open orders:",
        "events by type",
        "handler failures: 0 recorded, 0 reproduced",
        "bad lines skipped: 3",
    ):
        assert heading in out
    assert main([str(tmp_path / "nope"), "--config", str(config)]) == 2

    filled = [e for e in read_events(journal) if isinstance(e, OrderFilled)]
    assert (
        main(
            [
                str(journal),
                "--config",
                str(config),
                "--show",
                "SessionStarted,OrderFilled",
                "--since",
                iso_utc(filled[0].ts_recv),
            ]
        )
        == 0
    )
    shown = [line for line in capsys.readouterr().out.splitlines() if " #" in line]
    assert len(shown) == len(filled) and "SessionStarted" not in shown[0]
    assert shown[0].startswith(iso_utc(filled[0].ts_recv))
    assert f"OrderFilled client_id={filled[0].client_id}" in shown[0]
    assert "=None" not in shown[0]  # fields the source did not send are left out
    assert main([str(journal), "--config", str(config), "--show", "Nope"]) == 2


def test_replay_has_no_worker_journal_or_order_sending() -> None:
    app = App(Config(), mode=RunMode.REPLAY)
    table = app.registry.table()
    assert not any("Executor" in h for hs in table.values() for h in hs)
    assert not any("PaperGateway" in h for hs in table.values() for h in hs)
    assert table["SubmitOrder"] == ["_done_live"]
    assert app.registry.observers() == ()
    assert app.http is None


def test_a_live_config_replays_without_keys(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from scripts.replay import main

    journal, app = record_session(tmp_path, steps=100)
    live = tmp_path / "live.yaml"
    live.write_text("exchange: {name: binance, mode: live}\ntrade: {markets: [BTC/USDT]}\n")
    cfg = offline_config(live, env={})
    assert cfg.exchange.mode is Mode.PAPER and not cfg.secrets.has_keys
    assert main([str(journal), "--config", str(live), "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["events"] == app.journal.written
