"""Connection rotation, make-before-break: open and subscribe a new connection, buffer what it
sends until it is acknowledged, drain what the old one still has, close the old one, then
replay the buffer, skipping frames identical to ones the old connection already delivered (so
a fill is not applied twice). Binance closes every connection after 24 hours.
"""

from __future__ import annotations

import logging
import threading
import time

from trader.config import StreamsConfig
from trader.feeds.parsers.common import Control, Parsed
from trader.feeds.websocket.connection import Conn, recv
from trader.stats import Stats

log = logging.getLogger(__name__)

DRAIN_WAIT_S = 0.05  # the old connection is drained until it is quiet this long
DRAIN_MAX_S = 1.0  # ... or for at most this long


class Rotation:
    """The rotation half of :class:`~trader.feeds.websocket.listener.Listener` (a mixin): it
    opens, parses and applies through the listener's own methods, declared below."""

    name: str
    _cfg: StreamsConfig
    _stats: Stats

    def _open(self) -> Conn:
        raise NotImplementedError

    def _shut(self, conn: Conn) -> None:
        raise NotImplementedError

    def _now(self) -> int:
        raise NotImplementedError

    def _decode(self, raw: bytes, ts_recv: int) -> Parsed | None:
        raise NotImplementedError

    def _control(self, conn: Conn, c: Control) -> None:
        raise NotImplementedError

    def _apply(self, conn: Conn, items: Parsed) -> None:
        raise NotImplementedError

    def _on_message(self, conn: Conn, raw: bytes, ts_recv: int) -> None:
        raise NotImplementedError

    def _rotate(self, old: Conn, stop: threading.Event) -> Conn:
        """Make before break: return the new connection, or the old one if the new one did not
        come up (then try again after ``backoff_max_s``)."""
        log.info(
            "%s: rotating the connection after %.1fs", self.name, time.monotonic() - old.opened
        )
        try:
            new = self._open()
        except Exception as exc:  # noqa: BLE001
            return self._keep(old, None, f"connect failed: {type(exc).__name__}: {exc}")
        pending: list[tuple[bytes, Parsed]] = []
        deadline = time.monotonic() + self._cfg.connect_timeout_s
        while not (new.subscribed or pending) and new.outcome is None and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            raw = recv(new, left)
            if raw is None:
                continue
            items = self._decode(raw, self._now())
            if items is None:
                continue
            controls = [i for i in items if isinstance(i, Control)]
            for c in controls:
                self._control(new, c)
            if not controls:
                pending.append((raw, items))
        if not (new.subscribed or pending) or new.outcome is not None:
            return self._keep(old, new, (new.outcome or ("not acknowledged in time", False))[0])
        seen = self._drain(old)
        self._shut(old)
        new.ready_at = time.monotonic()
        new.last_data = new.ready_at
        new.dedupe, new.dedupe_until = seen, new.ready_at + self._cfg.connect_timeout_s
        for raw, items in pending:
            if raw in seen:
                seen.discard(raw)
                self._stats.incr(f"{self.name}.rotation_duplicates")
            else:
                self._apply(new, items)
        self._stats.incr(f"{self.name}.rotations")
        log.info("%s: rotated", self.name)
        return new

    def _keep(self, old: Conn, new: Conn | None, why: str) -> Conn:
        if new is not None:
            self._shut(new)
        old.rotate_at = time.monotonic() + self._cfg.backoff_max_s
        self._stats.incr(f"{self.name}.rotation_failed")
        log.warning("%s: rotation failed (%s); keeping the current connection", self.name, why)
        return old

    def _drain(self, old: Conn) -> set[bytes]:
        """Handle what the old connection still holds (until it is quiet for DRAIN_WAIT_S, at
        most DRAIN_MAX_S on a busy stream); return those frames for dedupe."""
        seen: set[bytes] = set()
        end = time.monotonic() + DRAIN_MAX_S
        while old.outcome is None and time.monotonic() < end:
            raw = recv(old, DRAIN_WAIT_S)
            if raw is None:
                if old.outcome is None and time.monotonic() - old.last_frame >= DRAIN_WAIT_S:
                    break
                continue
            seen.add(raw)
            self._on_message(old, raw, self._now())
        return seen
