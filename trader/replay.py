"""Replay: feed journaled events through the same registry and handlers, with a simulated clock.

The app is built in ``RunMode.REPLAY`` (see :meth:`trader.app.App.replay_table`): the same store,
portfolio, strategies, risk and reporter, without the executor and the paper matching, without
workers, journal or network. Each event is dispatched after the :class:`ManualClock` is set to
its ``ts_recv``; whatever the handlers return is discarded, because the journal already holds the
follow-ups the live run produced, right after the event that caused them. So:

- the store (balances, orders, positions and their PnL) is rebuilt from recorded facts and
  equals the live store at the same point;
- strategies see the same events and the same store, so a strategy or handler that raised live
  raises again here, logging its traceback; ``HandlerFailed`` follow-ups produced this way are
  counted as *reproduced* failures next to the *recorded* ones;
- ``SessionStarted`` starts a fresh app, as the restarted process did, and the session's
  ``StateRestored`` right after it loads the ledger the process restored (from its state file or
  Redis), whatever the journal before it held: so a session replays from exactly what the
  process started from, even when a kill lost the previous session's last flush window, and one
  session's journal replays on its own.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from trader.app import App, RunMode
from trader.clock import ManualClock, iso_utc
from trader.config import Config, Mode, Secrets, load_config
from trader.events import EVENT_TYPES, Event, HandlerFailed, SessionStarted, event_to_dict
from trader.model.fills import unrealized_pnl
from trader.model.units import NS
from trader.registries import Strategies
from trader.store.memory import MemoryStore
from trader.trading.strategies import STRATEGIES


@dataclass(frozen=True)
class Until:
    """Where to stop: before event number ``index`` (0-based, across all files), before the first
    event of ``type_name``, or before the first event received at or after ``ts_ns``."""

    index: int | None = None
    type_name: str | None = None
    ts_ns: int | None = None

    @classmethod
    def parse(cls, text: str) -> Until:
        """``N``, an event type (``HandlerFailed``) or a UTC time (``2024-05-01T14:03``)."""
        if text.isdigit():
            return cls(index=int(text))
        if text in EVENT_TYPES:
            return cls(type_name=text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"--until {text!r}: expected an event number, an event type "
                f"(e.g. HandlerFailed) or a UTC time (e.g. 2024-05-01T14:03)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return cls(ts_ns=int(when.timestamp()) * NS + when.microsecond * 1000)

    def matches(self, index: int, ev: Event) -> bool:
        """True for the event to stop before."""
        if self.index is not None:
            return index >= self.index
        if self.type_name is not None:
            return type(ev).__name__ == self.type_name
        return self.ts_ns is not None and ev.ts_recv >= self.ts_ns


@dataclass
class ReplayStats:
    """What a replay saw."""

    events: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    recorded_failures: int = 0
    reproduced_failures: Counter[str] = field(default_factory=Counter)
    suppressed: int = 0  # follow-ups discarded
    first_ts: int | None = None
    last_ts: int | None = None

    @property
    def total(self) -> int:
        """Events dispatched."""
        return sum(self.events.values())


def offline_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """The config a journal was recorded with, as a replay or a backtest uses it: paper mode and
    no secrets, since they send nothing. A live config requires keys only to be present, so
    placeholders stand in while it is validated; they are dropped with the mode."""
    env = dict(os.environ if env is None else env)
    for var in ("TRADER_API_KEY", "TRADER_API_SECRET"):
        env.setdefault(var, "offline")
    cfg = load_config(path, env)
    return replace(cfg, exchange=replace(cfg.exchange, mode=Mode.PAPER), secrets=Secrets())


class Replayer:
    """Replays events into a replay-mode :class:`App`; read the state from :attr:`app`."""

    def __init__(self, cfg: Config, strategies: Strategies = STRATEGIES) -> None:
        self.cfg = cfg
        self.strategies = strategies
        self.clock = ManualClock()
        self.app = App(cfg, self.clock, RunMode.REPLAY, strategies)
        self.stats = ReplayStats()
        self.stopped_at: tuple[int, Event] | None = None

    def run(
        self,
        events: Iterable[Event],
        until: Until | None = None,
        on_event: Callable[[int, Event], None] | None = None,
    ) -> ReplayStats:
        """Dispatch ``events`` in order; stop before the one ``until`` matches."""
        stats = self.stats
        for index, ev in enumerate(events):
            if until is not None and until.matches(index, ev):
                self.stopped_at = (index, ev)
                break
            if isinstance(ev, SessionStarted):
                if stats.total:
                    self.app = App(self.cfg, self.clock, RunMode.REPLAY, self.strategies)
                stats.sessions += 1
            if isinstance(ev, HandlerFailed):
                stats.recorded_failures += 1
            self.clock.set(ev.ts_recv)
            self.app.engine.dispatch(ev)
            for follow in self.app.engine.discard_followups():
                stats.suppressed += 1
                if isinstance(follow, HandlerFailed):
                    stats.reproduced_failures[follow.handler] += 1
            stats.events[type(ev).__name__] += 1
            if stats.first_ts is None:
                stats.first_ts = ev.ts_recv
            stats.last_ts = ev.ts_recv
            if on_event is not None:
                on_event(index, ev)
        return stats

    # ------------------------------------------------------------------ output

    def state(self) -> dict[str, Any]:
        """Balances, positions with PnL, and open orders, as plain data."""
        return store_state(self.app.store)

    def report(self) -> dict[str, Any]:
        """The whole result as plain data (``--json``)."""
        s = self.stats
        out: dict[str, Any] = {
            "state": self.state(),
            "stats": {
                "events": s.total,
                "by_type": dict(sorted(s.events.items())),
                "sessions": s.sessions,
                "first": None if s.first_ts is None else iso_utc(s.first_ts),
                "last": None if s.last_ts is None else iso_utc(s.last_ts),
                "handler_failures_recorded": s.recorded_failures,
                "handler_failures_reproduced": dict(s.reproduced_failures),
                "followups_suppressed": s.suppressed,
            },
        }
        if self.stopped_at is not None:
            index, ev = self.stopped_at
            out["stopped_at"] = {"index": index, "event": event_to_dict(ev)}
        return out


def describe(index: int, ev: Event) -> str:
    """One readable line: ``2024-05-01T14:03:12.345Z #41235 SignalGenerated strategy=...``."""
    fields = event_to_dict(ev)
    del fields["type"], fields["ts_recv"]
    if fields["ts_event"] == ev.ts_recv:
        del fields["ts_event"]
    fields.pop("traceback", None)
    text = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)  # None: not sent
    return f"{iso_utc(ev.ts_recv)} #{index} {type(ev).__name__} {text}"


def store_state(store: MemoryStore) -> dict[str, Any]:
    """A store's balances, positions (with unrealized PnL at the last price) and open orders."""
    bal = store.balances()
    positions = {}
    for symbol, pos in sorted(store.positions().items()):
        mark = store.last_price(symbol)
        positions[symbol] = {
            "amount": pos.amount,
            "avg_price": pos.avg_price,
            "realized_pnl": pos.realized_pnl,
            "fees": pos.fees,
            "unrealized_pnl": None if mark is None else unrealized_pnl(pos, mark),
        }
    return {
        "balances": {
            a: {"free": b.free, "used": b.used, "total": b.total, "usd": bal.usd_values.get(a)}
            for a, b in sorted(bal.balances.items())
        },
        "total_usd": bal.total_usd,
        "positions": positions,
        "open_orders": [
            {
                "client_id": o.client_id,
                "symbol": o.symbol,
                "side": o.side.value,
                "type": o.order_type.value,
                "amount": o.amount,
                "price": o.price,
                "status": o.status.value,
                "filled": o.filled,
                "strategy": o.strategy,
            }
            for o in store.open_orders()
        ],
    }


def print_report(report: dict[str, Any], out: TextIO | None = None) -> None:
    """The human-readable form of :meth:`Replayer.report` (to stdout by default)."""
    st, state = report["stats"], report["state"]
    w = (out or sys.stdout).write
    w(
        f"replayed {st['events']} events, {st['sessions']} session(s), "
        f"{st['first'] or '-'} .. {st['last'] or '-'}\n"
    )
    stop = report.get("stopped_at")
    if stop:
        ev = dict(stop["event"])
        tb = ev.pop("traceback", "")
        w(
            f"\nstopped before event #{stop['index']} ({ev['type']} at {iso_utc(ev['ts_recv'])}):\n"
            f"  {ev}\n"
        )
        if tb:
            w("  recorded traceback:\n" + "".join(f"    {line}\n" for line in tb.splitlines()))
    w("\nbalances\n")
    for asset, b in state["balances"].items():
        usd = "-" if b["usd"] is None else f"{b['usd']:.2f}"
        w(
            f"  {asset:<8} free {b['free']:<16} used {b['used']:<14} total {b['total']:<16} "
            f"usd {usd}\n"
        )
    w(f"  total {state['total_usd']:.2f} USD\n")
    w("\npositions (PnL in the quote asset, net of fees)\n")
    if not state["positions"]:
        w("  none\n")
    realized = unrealized = Decimal(0)
    for symbol, p in state["positions"].items():
        upnl = p["unrealized_pnl"]
        realized += p["realized_pnl"]
        unrealized += upnl or 0
        w(
            f"  {symbol:<10} amount {p['amount']:<12} avg {p['avg_price']:.8g} "
            f"realized {p['realized_pnl']:.4f} unrealized {'-' if upnl is None else f'{upnl:.4f}'} "
            f"fees {p['fees']:.4f}\n"
        )
    if state["positions"]:
        w(
            f"  PnL realized {realized:.4f} + unrealized {unrealized:.4f} = "
            f"{realized + unrealized:.4f}\n"
        )
    w(f"\nopen orders: {len(state['open_orders'])}\n")
    for o in state["open_orders"]:
        w(
            f"  {o['client_id']} {o['symbol']} {o['side']} {o['type']} {o['amount']} @ "
            f"{o['price'] or 'market'} {o['status']} filled {o['filled']} ({o['strategy']})\n"
        )
    w("\nevents by type\n")
    for name, n in sorted(st["by_type"].items(), key=lambda kv: -kv[1]):
        w(f"  {name:<24} {n}\n")
    reproduced = st["handler_failures_reproduced"]
    w(
        f"\nhandler failures: {st['handler_failures_recorded']} recorded, "
        f"{sum(reproduced.values())} reproduced"
        + "".join(f"\n  {h}: {n}" for h, n in reproduced.items())
        + "\n"
    )
    w(f"follow-ups suppressed (already in the journal): {st['followups_suppressed']}\n")
