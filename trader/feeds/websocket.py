"""The websocket listener: one worker thread per connection, with our own reconnect loop.

websocket-client's ``run_forever(reconnect=N)`` waits a fixed time and gives up after a clean
close, so the loop is ours (``websocket.create_connection`` and a read loop with a short socket
timeout, so the watchdogs run between frames):

- **Reconnect** with capped exponential backoff and jitter (:class:`Backoff`); a connection that
  stayed up ``healthy_after_s`` resets it. ``serverShutdown`` (a ``RECONNECT`` control) skips
  the wait, once per ``healthy_after_s``. Every connect sends the protocol's subscriptions
  again.
- **Data watchdog** (market streams): no data message for ``stale_after_s`` -> ``FeedStale``,
  then reconnect. Pings, pongs and replies to our requests are not data. The first data message
  after any trouble (stale, disconnect, failed connect) publishes ``FeedRecovered``; the
  wiring's handlers of that event refresh balances and open orders over REST (the listener
  calls nothing else across threads); streams without a data watchdog (user data can be quiet
  for hours) recover when their subscription is acknowledged instead.
- **Dead connection**: no frame at all (data, ping or pong) for ``dead_after_s`` -> reconnect.
- **Rotation** before Binance's 24 h limit, make-before-break: open and subscribe a new
  connection, buffer what it sends until it is acknowledged, drain what the old one still has,
  close the old one, then replay the buffer, skipping frames identical to ones the old
  connection already delivered (so a fill is not applied twice).
- **Keepalive**: protocols that need it (Bybit) get ``ping_message`` every ``ping_interval_s``.
  Server pings are answered by websocket-client inside ``recv``; that is why handling a message
  never blocks on anything but ``publish``.

Handling a message is parse + ``publish`` only. Market data goes through the bus's conflating
path (``event.conflatable``); account and order events use the never-drop path, and if the bus
stays full past its timeout the listener reconnects, which triggers the REST refresh that
fills the gap. Malformed JSON, unknown message types and parser errors are counted and logged
(unknown types once each) and never stop the listener.

``close()`` aborts every open socket, so a blocked read returns at once; all waits are
``stop.wait()``. A TCP connect in progress is bounded by ``connect_timeout_s``. A bug that
escapes the read loop closes every socket of the listener before the supervisor restarts it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Protocol

import websocket

from trader.backoff import Backoff
from trader.clock import Clock
from trader.config import StreamsConfig
from trader.errors import BusFullError
from trader.events import Event, FeedConnected, FeedDisconnected, FeedRecovered, FeedStale
from trader.feeds.parsers.common import Control, ControlKind, Parsed, UnknownMessage
from trader.stats import Stats
from trader.workers import Worker

log = logging.getLogger(__name__)

OPCODE_TEXT = websocket.ABNF.OPCODE_TEXT
# One decoder, built once: json.loads(..., parse_float=...) builds a new one per call.
_DECODE = json.JSONDecoder(parse_float=Decimal).decode
READ_AHEAD = 65536  # bytes asked of the socket per read
MAX_READ_WAIT_S = 1.0  # the read loop re-checks its deadlines at least this often
DRAIN_WAIT_S = 0.05  # rotation: the old connection is drained until it is quiet this long
DRAIN_MAX_S = 1.0  # ... or for at most this long
LOG_PAYLOAD_CHARS = 200
MAX_UNKNOWN_TYPES_LOGGED = 1000


class StreamProtocol(Protocol):
    """The venue-specific side of one connection: where, what to send, how to parse."""

    venue: str  # "binance"
    stream: str  # "market", "user", ...: the thread is named ws-<venue>-<stream>
    url: str
    watch_data: bool  # market data: the data watchdog applies
    ping_message: str | None  # sent every ping_interval_s (Bybit); None if the server pings

    def connect_messages(self) -> list[str]:
        """Sent right after every connect (the subscriptions, or an auth request first)."""
        ...

    def subscribe_messages(self) -> list[str]:
        """The subscriptions: sent on connect (after auth where needed) and on RESUBSCRIBE."""
        ...

    def parse(self, msg: Any, ts_recv: int) -> Parsed:
        """Decoded payload -> events and controls; raises ``UnknownMessage``."""
        ...


@dataclass
class _Conn:
    """One open connection and its watchdog state (times are ``time.monotonic()``)."""

    ws: Any
    opened: float
    rotate_at: float
    next_ping: float
    last_frame: float = 0.0
    last_data: float = 0.0
    subscribed: bool = False
    ready_at: float | None = None
    outcome: tuple[str, bool] | None = None  # (reason, reconnect immediately)
    dedupe: set[bytes] = field(default_factory=set)  # frames the previous connection delivered
    dedupe_until: float = 0.0

    def end(self, reason: str, immediate: bool = False) -> None:
        """Mark the connection finished (the first reason wins)."""
        if self.outcome is None:
            self.outcome = (reason, immediate)


def _connect(url: str, timeout: float) -> Any:
    ws = websocket.create_connection(
        url, timeout=timeout, skip_utf8_validation=True, enable_multithread=True
    )
    # Read ahead: websocket-client asks the socket for exactly the bytes of the next header or
    # payload, two syscalls per frame, each releasing the GIL and handing it to the main thread
    # (bench P3 measured that hand-off as most of our cost). Asking for up to READ_AHEAD bytes
    # reads a burst of frames at once; frame_buffer keeps what it did not need for the next.
    read = ws.frame_buffer.recv
    ws.frame_buffer.recv = lambda _size: read(READ_AHEAD)
    return ws


def _close(ws: Any) -> None:
    """Send a close frame if the socket still takes one, then close it."""
    try:
        ws.send_close()
    except Exception:  # noqa: BLE001 - the socket may already be gone
        pass
    ws.shutdown()


def _truncate(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text if len(text) <= LOG_PAYLOAD_CHARS else text[:LOG_PAYLOAD_CHARS] + "..."


class Listener(Worker):
    """One websocket connection (two, briefly, while rotating) in its own thread."""

    def __init__(
        self,
        protocol: StreamProtocol,
        publish: Callable[[Event], None],
        clock: Clock,
        stats: Stats,
        cfg: StreamsConfig,
        rotate_after_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``rotate_after_s`` None never rotates; ``rng`` drives the backoff's jitter."""
        self.name = f"ws-{protocol.venue}-{protocol.stream}"
        self.protocol = protocol
        self._publish = publish
        self._clock = clock
        self._stats = stats
        self._cfg = cfg
        self.rotate_after_s = rotate_after_s
        # Jitter at most half the delay: a venue that closes every connection at once gets them
        # back spread out, but never in a storm of instant reconnects (Binance bans IPs for that).
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s, jitter=0.5, rng=rng)
        self._recovering = False
        self._last_immediate = -float("inf")
        self._unknown: set[str] = set()
        self._sockets: set[Any] = set()
        self._sockets_lock = threading.Lock()
        self._closing = False

    # ------------------------------------------------------------------ worker interface

    def run(self, stop: threading.Event) -> None:
        """Connect, serve, reconnect with backoff, until ``stop`` is set."""
        while not stop.is_set():
            try:
                conn = self._open()
            except Exception as exc:  # noqa: BLE001 - any connect failure: back off, retry
                if stop.is_set():
                    return
                self._recovering = True
                self._disconnected(f"connect failed: {type(exc).__name__}: {exc}", stop)
                continue
            now = self._now()
            self._emit(FeedConnected(ts_event=now, ts_recv=now, feed=self.name))
            try:
                conn = self._serve(conn, stop)
            except BaseException:
                # A bug escaped (the supervisor reports it and calls run() again): close every
                # socket this listener holds, or the exchange keeps a connection nobody reads.
                self._shut_all()
                raise
            self._shut(conn)
            if stop.is_set():
                return
            self._recovering = True
            if conn.ready_at is not None and time.monotonic() - conn.ready_at >= \
                    self._cfg.healthy_after_s:
                self.backoff.reset()
            reason, immediate = conn.outcome or ("closed", False)
            if immediate:
                # at most once per healthy period: a server that keeps saying "reconnect now"
                # gets the backoff, not a connection storm (Binance bans IPs for those)
                now_m = time.monotonic()
                immediate = now_m - self._last_immediate >= self._cfg.healthy_after_s
                if immediate:
                    self._last_immediate = now_m
            self._disconnected(reason, stop, immediate)

    def close(self) -> None:
        """Abort every open socket so a blocked read returns now."""
        with self._sockets_lock:
            self._closing = True
            sockets = list(self._sockets)
        for ws in sockets:
            ws.abort()

    # ------------------------------------------------------------------ connections

    def _open(self) -> _Conn:
        ws = _connect(self.protocol.url, self._cfg.connect_timeout_s)
        with self._sockets_lock:
            self._sockets.add(ws)
            closing = self._closing
        if closing:
            ws.abort()
        now = time.monotonic()
        rotate = self.rotate_after_s if self.rotate_after_s is not None else float("inf")
        conn = _Conn(ws, opened=now, rotate_at=now + rotate, last_frame=now, last_data=now,
                     next_ping=now + self._cfg.ping_interval_s)
        try:
            for text in self.protocol.connect_messages():
                ws.send(text)
        except BaseException:
            self._shut(conn)
            raise
        self._stats.incr(f"{self.name}.connects")
        log.info("%s: connected to %s", self.name, self.protocol.url)
        return conn

    def _shut(self, conn: _Conn) -> None:
        with self._sockets_lock:
            self._sockets.discard(conn.ws)
        _close(conn.ws)

    def _shut_all(self) -> None:
        with self._sockets_lock:
            sockets, self._sockets = list(self._sockets), set()
        for ws in sockets:
            _close(ws)

    def _disconnected(self, reason: str, stop: threading.Event, immediate: bool = False) -> None:
        self._stats.incr(f"{self.name}.disconnects")
        delay = 0.0 if immediate else self.backoff.next_delay()
        log.warning("%s: disconnected (%s); reconnecting in %.2fs", self.name, reason, delay)
        now = self._now()
        self._emit(FeedDisconnected(ts_event=now, ts_recv=now, feed=self.name, reason=reason))
        stop.wait(delay)

    def _serve(self, conn: _Conn, stop: threading.Event) -> _Conn:
        """Read frames and run the watchdogs until the connection ends; return the connection
        in use at the end (a rotation replaces it).

        The watchdogs run when the next deadline is due or a read times out, not per frame:
        on a busy stream the per-frame cost is the read, the parse and the publish only.
        """
        cfg = self._cfg
        watch_data = self.protocol.watch_data
        ping = self.protocol.ping_message
        on_message = self._on_message
        now_ns = self._clock.now_ns
        monotonic = time.monotonic
        next_check = 0.0
        wait = 0.0
        while conn.outcome is None and not stop.is_set():
            now = monotonic()
            if now >= next_check:
                if watch_data and now - conn.last_data >= cfg.stale_after_s:
                    silent = now - conn.last_data
                    self._stats.incr(f"{self.name}.stale")
                    ts = self._now()
                    self._emit(FeedStale(ts_event=ts, ts_recv=ts, feed=self.name,
                                         silent_s=Decimal(str(round(silent, 3)))))
                    conn.end(f"no data for {silent:.1f}s")
                    break
                if now - conn.last_frame >= cfg.dead_after_s:
                    conn.end(f"no frames for {now - conn.last_frame:.1f}s")
                    break
                if ping is not None and now >= conn.next_ping:
                    conn.next_ping = now + cfg.ping_interval_s
                    self._send(conn, ping)
                if now >= conn.rotate_at:
                    conn = self._rotate(conn, stop)
                    next_check, wait = 0.0, -1.0  # a new socket: set its timeout afresh
                    continue
                deadlines = [conn.last_frame + cfg.dead_after_s, conn.rotate_at]
                if watch_data:
                    deadlines.append(conn.last_data + cfg.stale_after_s)
                if ping is not None:
                    deadlines.append(conn.next_ping)
                next_check = min(min(deadlines), now + MAX_READ_WAIT_S)
                wait = self._set_wait(conn, next_check - now, wait)
            frame = self._recv(conn)
            if frame is not None:
                on_message(conn, frame, now_ns())
            else:
                next_check = 0.0  # a timeout or a control frame: re-check the deadlines now
        return conn

    @staticmethod
    def _set_wait(conn: _Conn, wait: float, current: float) -> float:
        """Set the socket's read timeout if it changed enough to matter (a syscall saved)."""
        wait = min(max(wait, 0.001), MAX_READ_WAIT_S)
        if abs(wait - current) > 0.01 or wait < current:
            conn.ws.settimeout(wait)
            return wait
        return current

    def _recv(self, conn: _Conn, wait: float | None = None) -> bytes | None:
        """One frame's payload if it is a data frame; None on timeout, control frames, or the
        end of the connection (then ``conn.outcome`` says why). ``wait`` sets the read
        timeout first (the main loop sets it only when it changes, see ``_set_wait``)."""
        try:
            if wait is not None:
                conn.ws.settimeout(min(max(wait, 0.001), MAX_READ_WAIT_S))
            opcode, frame = conn.ws.recv_data_frame(True)
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as exc:
            conn.end(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return None
        conn.last_frame = time.monotonic()
        if opcode == OPCODE_TEXT:
            return frame.data
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
            text = frame.data[2:].decode("utf-8", "replace")
            conn.end(f"closed by the server (code {code}{', ' + text if text else ''})")
            return None
        if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return None
        return frame.data

    def _send(self, conn: _Conn, text: str) -> None:
        try:
            conn.ws.send(text)
        except (websocket.WebSocketException, OSError) as exc:
            conn.end(f"send failed: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ messages

    def _on_message(self, conn: _Conn, raw: bytes, ts_recv: int) -> None:
        if conn.dedupe:
            if raw in conn.dedupe:
                conn.dedupe.discard(raw)
                self._stats.incr(f"{self.name}.rotation_duplicates")
                return
            if time.monotonic() > conn.dedupe_until:
                conn.dedupe.clear()
        items = self._decode(raw, ts_recv)
        if items is not None:
            self._apply(conn, items)

    def _decode(self, raw: bytes, ts_recv: int) -> Parsed | None:
        """Parse one frame; None (counted, logged) when it is malformed or unknown."""
        try:
            msg = _DECODE(raw.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError included
            self._stats.incr(f"{self.name}.malformed")
            log.warning("%s: malformed JSON (%s): %r", self.name, exc, _truncate(raw))
            return None
        try:
            return self.protocol.parse(msg, ts_recv)
        except UnknownMessage as exc:
            self._stats.incr(f"{self.name}.unknown")
            kind = exc.wire_type
            if kind not in self._unknown and len(self._unknown) < MAX_UNKNOWN_TYPES_LOGGED:
                self._unknown.add(kind)
                log.warning("%s: unknown message type %r (logged once, counted as %s.unknown): %s",
                            self.name, kind, self.name, _truncate(raw))
            return None
        except Exception as exc:  # noqa: BLE001 - a bad payload must not stop the listener
            self._stats.incr(f"{self.name}.bad_message")
            log.warning("%s: cannot parse message (%s: %s): %s", self.name, type(exc).__name__,
                        exc, _truncate(raw))
            return None

    def _apply(self, conn: _Conn, items: Parsed) -> None:
        """Act on a parsed message: controls steer the connection, events go to the bus."""
        if len(items) == 1 and not isinstance(items[0], Control):  # the common case, fast
            conn.last_data = time.monotonic()
            if conn.ready_at is None and self.protocol.watch_data:
                self._ready(conn)
            try:
                self._publish(items[0])
            except BusFullError:  # logged as critical by the bus
                conn.end("bus full: events lost; reconnecting to resynchronise")
            return
        controls = [i for i in items if isinstance(i, Control)]
        if not controls:
            conn.last_data = time.monotonic()
            if self.protocol.watch_data:
                self._ready(conn)
        for item in items:
            if isinstance(item, Control):
                self._control(conn, item)
            elif not self._emit(item):
                conn.end("bus full: events lost; reconnecting to resynchronise")
                return

    def _control(self, conn: _Conn, c: Control) -> None:
        kind = c.kind
        if kind is ControlKind.AUTHENTICATED:
            for text in self.protocol.subscribe_messages():
                self._send(conn, text)
        elif kind is ControlKind.SUBSCRIBED:
            conn.subscribed = True
            if not self.protocol.watch_data:
                self._ready(conn)
        elif kind is ControlKind.RESUBSCRIBE:
            self._stats.incr(f"{self.name}.resubscribes")
            log.warning("%s: subscription ended (%s); subscribing again", self.name, c.detail)
            for text in self.protocol.subscribe_messages():
                self._send(conn, text)
        elif kind is ControlKind.RECONNECT:
            log.warning("%s: %s: reconnecting now", self.name, c.detail)
            conn.end(c.detail, immediate=True)
        elif kind is ControlKind.FAILED:
            self._stats.incr(f"{self.name}.refused")
            log.error("%s: %s", self.name, c.detail)
            conn.end(c.detail)

    def _ready(self, conn: _Conn) -> None:
        """The connection delivers: after trouble, that is a recovery."""
        if conn.ready_at is not None:
            return
        conn.ready_at = time.monotonic()
        if not self._recovering:
            return
        self._recovering = False
        self._stats.incr(f"{self.name}.recovered")
        log.info("%s: recovered", self.name)
        ts = self._now()
        self._emit(FeedRecovered(ts_event=ts, ts_recv=ts, feed=self.name))

    def _emit(self, event: Event) -> bool:
        try:
            self._publish(event)
            return True
        except BusFullError:
            return False  # logged as critical by the bus

    def _now(self) -> int:
        return self._clock.now_ns()

    # ------------------------------------------------------------------ rotation

    def _rotate(self, old: _Conn, stop: threading.Event) -> _Conn:
        """Make before break: return the new connection, or the old one if the new one did not
        come up (then try again after ``backoff_max_s``)."""
        log.info("%s: rotating the connection after %.1fs", self.name,
                 time.monotonic() - old.opened)
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
            raw = self._recv(new, left)
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

    def _keep(self, old: _Conn, new: _Conn | None, why: str) -> _Conn:
        if new is not None:
            self._shut(new)
        old.rotate_at = time.monotonic() + self._cfg.backoff_max_s
        self._stats.incr(f"{self.name}.rotation_failed")
        log.warning("%s: rotation failed (%s); keeping the current connection", self.name, why)
        return old

    def _drain(self, old: _Conn) -> set[bytes]:
        """Handle what the old connection still holds (until it is quiet for DRAIN_WAIT_S, at
        most DRAIN_MAX_S on a busy stream); return those frames for dedupe."""
        seen: set[bytes] = set()
        end = time.monotonic() + DRAIN_MAX_S
        while old.outcome is None and time.monotonic() < end:
            raw = self._recv(old, DRAIN_WAIT_S)
            if raw is None:
                if old.outcome is None and time.monotonic() - old.last_frame >= DRAIN_WAIT_S:
                    break
                continue
            seen.add(raw)
            self._on_message(old, raw, self._now())
        return seen
