"""The journal's writer: a buffer the main thread appends to, and a thread that writes it.

How it is written (measured with ``scripts/bench_journal.py``; numbers in the README):

- The journal is a registry observer, and the observer is ``deque.append`` itself: a C call, about
  50 ns on the main thread. No encoding, no I/O and no lock there.
- A writer thread (``journal``) wakes every ``flush_interval_s`` (at most 1 s), encodes what is
  pending in chunks and writes each chunk to the OS with one unbuffered ``write``. The write
  releases the GIL, so the main thread gets it back between chunks.
- The alternative, encoding in the observer and writing on a main-thread timer, measured slower
  (end-to-end ratio 0.60-0.68 against 0.66-0.83) and puts disk waits on the main thread.
- What remains is the encoding, paid under the GIL whichever thread does it: about 0.6 us for an
  event's JSON line (``str`` of the Decimals and the 19-digit timestamps; msgspec's C encoder is
  no faster on these), a fraction of that for a frame line (the bytes are there already; only the
  envelope is formatted, by C calls over the whole run of frames). Nothing at rates that leave
  the process idle time (the writer encodes while the main loop waits for events).

What a crash can lose: the events dispatched since the last flush began, at most
``flush_interval_s`` (1 s by default) plus the time that flush takes. Written data is in the OS
(it survives the process being killed, SIGKILL included) but is not fsynced: a power failure can
also lose what the OS had not yet put on disk. A line cut by a crash is reported and skipped by
the reader; at start, a last line cut that way is ended with a newline before anything is
appended, so the new session's ``SessionStarted`` is never glued onto it.

Failures: an unusable folder at start is a ``ConfigError`` (exit code 2, one line). A write that
fails mid-run logs a CRITICAL line and publishes ``StorageFailed`` (risk halts trading on it, a
halt of its own that a plain operator resume does not lift), and keeps the encoded lines in
memory (up to ``MAX_UNWRITTEN_BYTES``; beyond that the oldest are dropped and counted) to retry
at every flush; ``StorageRecovered`` when writing works again.
Events carry no secrets (keys live only in ``Config.secrets``), so neither does the journal.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import repeat, starmap
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO

from trader.clock import Clock
from trader.config import JournalConfig
from trader.errors import BusFullError, ConfigError
from trader.events import JOURNAL, Event, StorageFailed, StorageRecovered, event_to_json
from trader.journal.lines import SUFFIX, encode_lines, utc_day
from trader.workers import Worker

log = logging.getLogger(__name__)

CHUNK = 2_000  # events encoded between two writes (about 0.3 MB, 1.5 ms of encoding)
MAX_UNWRITTEN_BYTES = 64 * 1024 * 1024
_DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")
_TS_RECV = attrgetter("ts_recv")


class JournalBuffer(deque):
    """Events waiting for the writer. The main thread appends, the writer thread pops from the
    other end; both are atomic deque operations, so no lock is needed."""


@dataclass
class _Block:
    day: str
    data: bytes
    events: int


class Journal(Worker):
    """Appends dispatched events to daily JSON-lines files from its own thread."""

    name = "journal"

    def __init__(
        self,
        cfg: JournalConfig,
        clock: Clock,
        publish: Callable[[Event], None],
    ) -> None:
        self.folder = Path(cfg.path)
        self._interval = cfg.flush_interval_s
        self._retention_days = cfg.retention_days
        self.max_pending = cfg.max_pending
        self._lagging = False  # pending above max_pending (set and cleared by check_backlog)
        self._clock = clock
        self._publish = publish
        self._pending = JournalBuffer()
        #: The registry observer: a bound ``deque.append`` (see the module docstring).
        self.record: Callable[[Event], None] = self._pending.append
        self._lock = threading.Lock()  # one writer at a time: the thread, or finish()
        self._enc_day, self._enc_day_end = utc_day(clock.now_ns())
        self._blocks: deque[_Block] = deque()  # encoded, not yet written
        self._file: BinaryIO | None = None
        self._file_day = ""
        self._failure: str | None = None
        self._opened = False
        self.written = 0  # events written to the OS
        self.dropped = 0  # events dropped after a long write failure

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create the folder, open today's file and apply retention; a ``ConfigError`` naming the
        folder if that fails (called at start, before any worker runs)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._open_day(self._enc_day)
            self._end_torn_line()
        except OSError as exc:
            raise ConfigError(
                f"journal.path: cannot write the journal in {self.folder}: {exc.strerror or exc}"
            ) from None
        self._opened = True
        self._apply_retention(self._enc_day)

    def _end_torn_line(self) -> None:
        """End a last line cut by a crash (a kill in the middle of a write) with a newline, so
        this session's first event starts its own line: the cut line stays in the file (the
        reader reports it with its place and skips it) and the sessions stay apart."""
        assert self._file is not None
        path = self.folder / f"{self._file_day}{SUFFIX}"
        with open(path, "rb") as fh:
            if fh.seek(0, 2) == 0:
                return
            fh.seek(-1, 2)
            if fh.read(1) == b"\n":
                return
        self._file.write(b"\n")
        log.warning(
            "journal: %s ended in a line cut by a crash; ended it with a newline (the "
            "replay reports and skips that line)",
            path,
        )

    def run(self, stop: threading.Event) -> None:
        """Flush every ``flush_interval_s`` until stopped."""
        while not stop.wait(self._interval):
            self.flush()

    def finish(self) -> None:
        """Write everything still pending and close the file (the shutdown path, after the last
        drain and once the writer thread is stopped). Failures are only logged here: the loop is
        gone and nothing would act on an event."""
        if not self._opened:
            return  # never started: nothing was promised
        self.flush(report=False)
        with self._lock:
            if self._blocks:
                log.critical(
                    "journal: %d events could not be written at stop",
                    sum(b.events for b in self._blocks),
                )
            self._close_file()

    # ------------------------------------------------------------------ writing

    def flush(self, report: bool = True) -> int:
        """Encode and write what is pending; returns how many events were written."""
        with self._lock:
            before = self.written
            ok = self._write_blocks(report)
            pending = self._pending
            n = len(pending)
            while n:
                take = min(n, CHUNK)
                n -= take
                self._encode(take)
                if ok:
                    ok = self._write_blocks(report)
            if not ok:
                self._bound_memory()
            elif self._failure is not None:
                self._recovered(report)
            return self.written - before

    def _encode(self, count: int) -> None:
        """Pop ``count`` events and encode them into blocks, one per UTC day."""
        batch = list(starmap(self._pending.popleft, repeat((), count)))
        start = 0
        if max(map(_TS_RECV, batch)) >= self._enc_day_end:  # a new UTC day begins in here
            for i, ev in enumerate(batch):
                if ev.ts_recv >= self._enc_day_end:
                    if i > start:
                        self._add_block(self._enc_day, batch[start:i])
                    start = i
                    self._enc_day, self._enc_day_end = utc_day(ev.ts_recv)
        self._add_block(self._enc_day, batch[start:])

    def _add_block(self, day: str, events: list[Event]) -> None:
        dropped = self.dropped
        try:
            lines = encode_lines(events)
        except Exception:  # noqa: BLE001 - one event that cannot be encoded must not lose the rest
            lines = self._encode_each(events)
        if lines:
            lines.append(b"")  # a final newline
            self._blocks.append(
                _Block(day, b"\n".join(lines), len(events) - (self.dropped - dropped))
            )

    def _encode_each(self, events: list[Event]) -> list[bytes]:
        lines = []
        for ev in events:
            try:
                lines.append(event_to_json(ev).encode())
            except Exception:  # noqa: BLE001
                self.dropped += 1
                log.exception("journal: cannot encode %r; skipped", ev)
        return lines

    def _write_blocks(self, report: bool) -> bool:
        """Write the blocks in order; on a failure keep the unwritten rest and return False."""
        blocks = self._blocks
        while blocks:
            block = blocks[0]
            view = memoryview(block.data)
            try:
                if self._file is None or block.day != self._file_day:
                    self._open_day(block.day)
                assert self._file is not None
                while view:
                    view = view[self._file.write(view) :]
            except OSError as exc:
                block.data = bytes(view)  # what is left; a retry continues the cut line
                self._failed(exc, report)
                return False
            blocks.popleft()
            self.written += block.events
        return True

    def _open_day(self, day: str) -> None:
        rolled = bool(self._file_day) and day > self._file_day
        self._close_file()
        self._file = open(self.folder / f"{day}{SUFFIX}", "ab", buffering=0)  # noqa: SIM115
        self._file_day = day
        if rolled:
            self._apply_retention(day)

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.error("journal: closing %s failed: %s", self._file_day, exc)
            self._file = None

    # ------------------------------------------------------------------ failures

    def _failed(self, exc: OSError, report: bool) -> None:
        self._close_file()  # reopened at the next attempt
        first = self._failure is None
        self._failure = f"{type(exc).__name__}: {exc}"
        if not first:
            return
        log.critical(
            "journal: writing to %s failed: %s. Events are kept in memory and retried every "
            "flush; trading is halted until it works again.",
            self.folder,
            self._failure,
        )
        if report:
            self._report_failed(self._failure)

    def _recovered(self, report: bool) -> None:
        log.warning("journal: writing works again after %s", self._failure)
        self._failure = None
        if report and not self._lagging:  # else check_backlog reports it, once caught up
            self._report_recovered()

    def check_backlog(self) -> None:
        """Main-thread timer: the events waiting for the writer against ``journal.max_pending``.

        The buffer is appended to by a C call on every dispatch, so it is not capped there; it
        is watched here instead. Above the cap (a writer stalled on a hung disk, or slower than
        dispatch for long) the journal counts as failed: a CRITICAL line and ``StorageFailed``,
        so risk halts trading as on a write failure, until the writer has caught up and writes.
        Nothing is dropped: the buffer keeps every event (its size is ``trader_journal_pending``).
        Each side sets its own flag before reading the other's, so a recovery is reported at
        least once and only when both are clear (a second report is harmless)."""
        pending = len(self._pending)
        if not self._lagging and pending > self.max_pending:
            self._lagging = True
            log.critical(
                "journal: %d events wait for the writer (journal.max_pending %d); trading is "
                "halted until it catches up",
                pending,
                self.max_pending,
            )
            if self._failure is None:  # else already reported as failed
                self._report_failed(f"{pending} events waiting for the writer")
        elif self._lagging and pending <= self.max_pending // 2:
            self._lagging = False
            log.warning("journal: the writer caught up (%d events waiting)", pending)
            if self._failure is None:
                self._report_recovered()

    def _report_failed(self, error: str) -> None:
        now = self._clock.now_ns()
        self._emit(StorageFailed(ts_event=now, ts_recv=now, component=JOURNAL, error=error))

    def _report_recovered(self) -> None:
        now = self._clock.now_ns()
        self._emit(StorageRecovered(ts_event=now, ts_recv=now, component=JOURNAL))

    def _bound_memory(self) -> None:
        size = sum(len(b.data) for b in self._blocks)
        while size > MAX_UNWRITTEN_BYTES and len(self._blocks) > 1:
            block = self._blocks.popleft()
            size -= len(block.data)
            self.dropped += block.events
            log.error(
                "journal: still failing; dropped the %d oldest unwritten events (%d so far)",
                block.events,
                self.dropped,
            )

    def _emit(self, ev: Event) -> None:
        try:
            self._publish(ev)
        except BusFullError:
            pass  # logged as critical by the bus

    # ------------------------------------------------------------------ retention

    def _apply_retention(self, today: str) -> None:
        """Delete day files older than ``retention_days`` before ``today`` (0 keeps all)."""
        if not self._retention_days:
            return
        cutoff = (date.fromisoformat(today) - timedelta(days=self._retention_days)).isoformat()
        deleted = []
        for path in self.folder.iterdir():
            m = _DAY_FILE.match(path.name)
            if m and m.group(1) < cutoff:
                try:
                    path.unlink()
                    deleted.append(path.name)
                except OSError as exc:
                    log.warning("journal: could not delete %s: %s", path, exc)
        if deleted:
            log.info(
                "journal: deleted %d files older than %s (retention %d days): %s",
                len(deleted),
                cutoff,
                self._retention_days,
                ", ".join(sorted(deleted)),
            )

    # ------------------------------------------------------------------ figures

    def counters(self) -> dict[str, int]:
        """Figures for metrics (read from any thread)."""
        return {
            "written": self.written,
            "pending": len(self._pending) + sum(b.events for b in tuple(self._blocks)),
            "dropped": self.dropped,
            "failing": int(self._failure is not None),
        }
