"""The paper account file: the account as one JSON object (the one codec), written atomically
by a writer thread.

**Writer.** The gateway only marks the account changed (:meth:`AccountWriter.request`, a flag and
an event: no encoding, no I/O on the main thread). The ``paper-account`` thread then takes a
snapshot under the gateway's lock, encodes and writes it, and waits ``WRITE_INTERVAL_S`` before
the next write: every change in between goes into that one next write (coalesced). At stop
(after the executor and the main loop are done with the gateway) it writes the final state.

**Crash guarantees.** Each write goes to ``<file>.tmp``, is fsynced, renamed over the file, and
the folder is fsynced: after a crash (kill -9, power loss) the file is always one whole,
consistent account (a snapshot taken under the lock), never a torn or half-applied one. It is
the account as of the last completed write: at most ``WRITE_INTERVAL_S`` plus one write behind
the memory. A clean stop (Ctrl-C, SIGTERM) writes the final state before the process exits.

Version 2 writes each order's command and each fill in the codec's nested form (no ``type``
field); version 1 files, which carried it, still load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader import codec
from trader.clock import Clock
from trader.errors import BusFullError
from trader.events import Event, OrderFilled, StorageFailed, StorageRecovered
from trader.exchange.paper.orders import PaperOrder
from trader.store.state_file import write_atomically
from trader.workers import Worker

log = logging.getLogger(__name__)

FILE_VERSION = 2
WRITE_INTERVAL_S = 1.0  # the least time between two writes (the journal flushes as often)
COMPONENT = "paper-account"


@dataclass(frozen=True)
class SavedBalance:
    """One asset's balance in the file."""

    free: Decimal
    used: Decimal


@dataclass(frozen=True, kw_only=True)
class SavedAccount:
    """The account file's content."""

    version: int = FILE_VERSION
    seq: int  # exchange ids handed out so far
    balances: dict[str, SavedBalance]
    orders: tuple[PaperOrder, ...]  # the last closed orders, then the working ones
    fills: tuple[OrderFilled, ...]  # the last fills


def write(path: Path, account: SavedAccount) -> None:
    """Write atomically (:func:`~trader.store.state_file.write_atomically`): a crash leaves
    either the old or the new file, never a torn one. Raises ``OSError``."""
    write_atomically(path, codec.to_json(account))


class AccountWriter(Worker):
    """The ``paper-account`` thread: writes snapshots of the account, coalesced (see the module
    docstring). A failed write is logged and reported once (``StorageFailed``), retried at the
    next change, and ``StorageRecovered`` is reported when writing works again; the account in
    memory stays right throughout."""

    name = COMPONENT

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], SavedAccount],
        publish: Callable[[Event], None],
        clock: Clock,
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self._publish = publish
        self._clock = clock
        self._dirty = False
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()  # the thread's flush and a direct one never overlap
        self._failed = False
        self.writes = 0

    def request(self) -> None:
        """The account changed (any thread, cheap): the next write will include it."""
        self._dirty = True
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Write when asked, at most every ``WRITE_INTERVAL_S``; write the last state at stop."""
        while not stop.is_set():
            self._wake.wait()
            self._wake.clear()
            self.flush()
            stop.wait(WRITE_INTERVAL_S)
        self.flush()

    def close(self) -> None:
        """Wake the thread so that it sees the stop."""
        self._wake.set()

    def flush(self) -> None:
        """Write the account now if it changed since the last write."""
        with self._flush_lock:
            if not self._dirty:
                return
            # Cleared before the snapshot: a change made after it sets it again.
            self._dirty = False
            try:
                write(self.path, self._snapshot())
            except OSError as exc:
                self._dirty = True  # retried at the next change, or at stop
                self._fail(exc)
                return
            self.writes += 1
            if self._failed:
                self._failed = False
                log.warning("paper: the account file %s is written again", self.path)
                self._emit(
                    StorageRecovered(ts_event=self._now(), ts_recv=self._now(), component=COMPONENT)
                )

    def _fail(self, exc: OSError) -> None:
        if self._failed:
            return
        self._failed = True
        log.error("paper: cannot write the account file %s: %s", self.path, exc)
        now = self._now()
        self._emit(
            StorageFailed(
                ts_event=now, ts_recv=now, component=COMPONENT, error=f"{self.path}: {exc}"
            )
        )

    def _now(self) -> int:
        return self._clock.now_ns()

    def _emit(self, ev: Event) -> None:
        try:
            self._publish(ev)
        except BusFullError:
            pass  # logged as critical by the bus


def read(path: Path) -> SavedAccount:
    """The saved account; raises ``OSError`` or :class:`~trader.codec.CodecError` (also for a
    file that is not UTF-8, or a balance that is not a finite number >= 0)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise codec.CodecError(f"not UTF-8 text (byte {exc.start})") from None
    data = codec.from_json(dict[str, Any], text)
    version = data.get("version")
    if version == 1:
        data = _from_v1(data)
    elif version != FILE_VERSION:
        raise codec.CodecError(f"version {version!r}, expected {FILE_VERSION} (or 1)")
    account = codec.from_plain(SavedAccount, data)
    for asset, balance in account.balances.items():
        for name, value in (("free", balance.free), ("used", balance.used)):
            if not value.is_finite() or value < 0:
                raise codec.CodecError(f"balance {asset}.{name} is {value}, not a number >= 0")
    return account


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 wrote commands and fills as tagged event objects."""
    try:
        orders = [{**o, "cmd": _untag(o["cmd"], "SubmitOrder")} for o in data["orders"]]
        fills = [_untag(f, "OrderFilled") for f in data["fills"]]
    except (KeyError, TypeError) as exc:
        raise codec.CodecError(f"version 1: {type(exc).__name__}: {exc}") from None
    return {**data, "version": FILE_VERSION, "orders": orders, "fills": fills}


def _untag(obj: dict[str, Any], expected: str) -> dict[str, Any]:
    if obj.get("type") != expected:
        raise codec.CodecError(f"version 1: expected a {expected}, got {obj.get('type')!r}")
    return {k: v for k, v in obj.items() if k != "type"}
