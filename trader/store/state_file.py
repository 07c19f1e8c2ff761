"""The memory backend's saved ledger: one JSON file (a :class:`~trader.events.StateRestored`
event) written atomically by its own thread, read at start.

What it holds: balances, orders (each with the fills applied to it), positions, and the daily
loss count. Market rules and prices are not saved: the exchange and the feeds give them again at
start. The ``state-file`` writer thread looks at the store every ``storage.flush_interval_s`` and
writes only when something changed (the records are immutable, so "changed" is a cheap identity
comparison); the main thread never waits on the disk. Each write goes to a temporary file, is
fsynced, then renamed over the old one, so a crash leaves the old or the new file, never a torn
one. The last write happens at stop, after the last event was handled.

What a crash can lose: the changes of the last ``flush_interval_s`` (50 ms by default) before a
kill. Start-up reconciliation settles them against the exchange (see
``docs/journal-replay-backtest.md``, "What is guaranteed").
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from trader.clock import Clock
from trader.errors import ConfigError
from trader.events import (
    Event,
    StateRestored,
    StorageFailed,
    StorageRecovered,
    event_from_json,
    event_to_json,
)
from trader.store.memory import MemoryStore
from trader.workers import Worker

log = logging.getLogger(__name__)

COMPONENT = "state-file"

DailyLossSaved = Callable[[], tuple[int, Decimal]]


def read_state(path: Path, clock: Clock) -> list[Event]:
    """The saved ledger as a ``StateRestored`` event to dispatch at start; nothing when there is
    no file yet (a first start). A file that cannot be read stops the start with a
    ``ConfigError`` naming it, rather than being replaced by an empty state."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.info("state: no saved state at %s; starting empty (a first start)", path)
        return []
    except OSError as exc:
        raise ConfigError(f"storage.state_file: cannot read {path}: {exc}") from None
    try:
        saved = event_from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"storage.state_file: {path} is not a saved state ({exc}); move it away to start empty"
        ) from None
    if not isinstance(saved, StateRestored):
        raise ConfigError(
            f"storage.state_file: {path} holds a {type(saved).__name__}, not a saved state"
        )
    now = clock.now_ns()
    log.info(
        "state: restored %d balances, %d orders (%d open), %d positions from %s",
        len(saved.balances),
        len(saved.orders),
        sum(o.is_open for o in saved.orders),
        len(saved.positions),
        path,
    )
    return [
        StateRestored(
            ts_event=saved.ts_event,
            ts_recv=now,
            source=f"state file {path}",
            balances=saved.balances,
            orders=saved.orders,
            positions=saved.positions,
            loss_day=saved.loss_day,
            loss_day_start=saved.loss_day_start,
        )
    ]


class StateFileWriter(Worker):
    """The ``state-file`` thread: writes the ledger when it changed; see the module docstring."""

    name = "state-file"

    def __init__(
        self,
        path: Path,
        store: MemoryStore,
        daily_loss: DailyLossSaved,
        clock: Clock,
        publish: Callable[[Event], None],
        interval_s: float,
    ) -> None:
        self.path = path
        self._store = store
        self._daily_loss = daily_loss
        self._clock = clock
        self._publish = publish
        self._interval = interval_s
        self._last: tuple[object, ...] | None = None
        self._failure: str | None = None
        self.writes = 0
        #: Flushed before each write: files that must never be older than the ledger. The paper
        #: account is a paper run's exchange; were the ledger saved ahead of it, a kill would
        #: leave the store holding fills the exchange never made.
        self.flush_first: list[Callable[[], object]] = []

    def run(self, stop: threading.Event) -> None:
        """Write on change every interval; once more at stop."""
        while not stop.wait(self._interval):
            self.write()
        self.write()

    def write(self) -> bool:
        """Write the ledger if it changed since the last write; False when writing failed."""
        store = self._store
        parts = (store.balances().balances, store.orders(), store.positions(), self._daily_loss())
        if parts == self._last:
            return True
        for flush in self.flush_first:
            flush()
        balances, orders, positions, (day, day_start) = parts
        now = self._clock.now_ns()
        text = event_to_json(
            StateRestored(
                ts_event=now,
                ts_recv=now,
                source="saved",
                balances=tuple(balances.values()),
                orders=orders,
                positions=tuple(positions.values()),
                loss_day=day,
                loss_day_start=day_start,
            )
        )
        try:
            write_atomically(self.path, text)
        except OSError as exc:
            self._failed(exc)
            return False
        self._last = parts
        self.writes += 1
        if self._failure is not None:
            log.warning("state: writing %s works again", self.path)
            self._failure = None
            self._emit(StorageRecovered(ts_event=now, ts_recv=now, component=COMPONENT))
        return True

    def _failed(self, exc: OSError) -> None:
        first = self._failure is None
        self._failure = f"{type(exc).__name__}: {exc}"
        if first:
            log.error(
                "state: cannot write %s: %s; retried at every change", self.path, self._failure
            )
            now = self._clock.now_ns()
            self._emit(
                StorageFailed(ts_event=now, ts_recv=now, component=COMPONENT, error=self._failure)
            )

    def _emit(self, ev: Event) -> None:
        try:
            self._publish(ev)
        except Exception:  # noqa: BLE001 - the bus logs a full queue; the file is what matters
            log.exception("state: could not publish %s", type(ev).__name__)


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file, fsync it, rename it over ``path``: a crash leaves either the
    old or the new file, never a torn one. Raises ``OSError``."""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
