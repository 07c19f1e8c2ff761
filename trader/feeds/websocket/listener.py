"""The listener: one worker thread per websocket, with its reconnect loop, watchdogs and message
handling (see the package docstring for what each does)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from trader.backoff import Backoff
from trader.clock import Clock
from trader.config import StreamsConfig
from trader.errors import BusFullError
from trader.events import (
    Event,
    FeedConnected,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    Frame,
    MarketData,
)
from trader.feeds.parsers.common import Control, ControlKind, Parsed, UnknownMessage
from trader.feeds.websocket.connection import (
    MAX_READ_WAIT_S,
    Conn,
    StreamProtocol,
    close_socket,
    connect,
    recv,
    send,
    set_wait,
)
from trader.feeds.websocket.rotation import Rotation
from trader.stats import Stats
from trader.workers import Worker

log = logging.getLogger(__name__)

# One decoder, built once: json.loads(..., parse_float=...) builds a new one per call.
_DECODE = json.JSONDecoder(parse_float=Decimal).decode
LOG_PAYLOAD_CHARS = 200
MAX_UNKNOWN_TYPES_LOGGED = 1000
# The slot's own setter, as the events' __init__ uses it: the frame is attached before the events
# are published, and the events stay frozen for everyone else.
_SET_FRAME = MarketData.__dict__["frame"].__set__


def _truncate(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text if len(text) <= LOG_PAYLOAD_CHARS else text[:LOG_PAYLOAD_CHARS] + "..."


def listener_name(protocol: StreamProtocol) -> str:
    """The listener's thread name, also the stream named by its journal frames."""
    return f"ws-{protocol.venue}-{protocol.stream}"


class Listener(Rotation, Worker):
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
        self.name = listener_name(protocol)
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
        self._recovered_from = "reconnected"
        self._last_immediate = -float("inf")
        self._unknown: set[str] = set()
        self._sockets: set[Any] = set()
        self._sockets_lock = threading.Lock()
        self._closing = False
        # a market stream's parser is pure, so the journal can keep its messages as received
        # and the replay parse them again; an account stream's events stay JSON lines
        self._frame_stream = self.name.encode() if protocol.data_markets else None
        self._seq = 0  # messages received, the journal envelope's ``seq``
        self._newest: Conn | None = None  # the latest connection opened (read by any thread)

    def message_age_s(self) -> float | None:
        """Seconds since the newest connection's last frame; None before the first connection.
        Safe from any thread (one attribute read): the dashboard's per-stream health."""
        conn = self._newest
        return None if conn is None else time.monotonic() - conn.last_frame

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
            if (
                conn.ready_at is not None
                and time.monotonic() - conn.ready_at >= self._cfg.healthy_after_s
            ):
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

    def _open(self) -> Conn:
        ws = connect(self.protocol.url, self._cfg.connect_timeout_s)
        with self._sockets_lock:
            self._sockets.add(ws)
            closing = self._closing
        if closing:
            ws.abort()
        now = time.monotonic()
        rotate = self.rotate_after_s if self.rotate_after_s is not None else float("inf")
        conn = Conn(
            ws,
            opened=now,
            rotate_at=now + rotate,
            last_frame=now,
            last_data=now,
            next_ping=now + self._cfg.ping_interval_s,
        )
        self._newest = conn
        try:
            for text in self.protocol.connect_messages():
                ws.send(text)
        except BaseException:
            self._shut(conn)
            raise
        self._stats.incr(f"{self.name}.connects")
        log.info("%s: connected to %s", self.name, self.protocol.url)
        return conn

    def _shut(self, conn: Conn) -> None:
        with self._sockets_lock:
            self._sockets.discard(conn.ws)
        close_socket(conn.ws)

    def _shut_all(self) -> None:
        with self._sockets_lock:
            sockets, self._sockets = list(self._sockets), set()
        for ws in sockets:
            close_socket(ws)

    def _disconnected(self, reason: str, stop: threading.Event, immediate: bool = False) -> None:
        self._stats.incr(f"{self.name}.disconnects")
        delay = 0.0 if immediate else self.backoff.next_delay()
        log.warning("%s: disconnected (%s); reconnecting in %.2fs", self.name, reason, delay)
        now = self._now()
        self._emit(FeedDisconnected(ts_event=now, ts_recv=now, feed=self.name, reason=reason))
        stop.wait(delay)

    def _serve(self, conn: Conn, stop: threading.Event) -> Conn:
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
                    self._emit(
                        FeedStale(
                            ts_event=ts,
                            ts_recv=ts,
                            feed=self.name,
                            silent_s=Decimal(str(round(silent, 3))),
                        )
                    )
                    conn.end(f"no data for {silent:.1f}s")
                    break
                if now - conn.last_frame >= cfg.dead_after_s:
                    conn.end(f"no frames for {now - conn.last_frame:.1f}s")
                    break
                if ping is not None and now >= conn.next_ping:
                    conn.next_ping = now + cfg.ping_interval_s
                    send(conn, ping)
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
                wait = set_wait(conn, next_check - now, wait)
            frame = recv(conn)
            if frame is not None:
                on_message(conn, frame, now_ns())
            else:
                next_check = 0.0  # a timeout or a control frame: re-check the deadlines now
        return conn

    # ------------------------------------------------------------------ messages

    def _on_message(self, conn: Conn, raw: bytes, ts_recv: int) -> None:
        if conn.dedupe:
            if raw in conn.dedupe:
                conn.dedupe.discard(raw)
                self._stats.incr(f"{self.name}.rotation_duplicates")
                return
            if time.monotonic() > conn.dedupe_until:
                conn.dedupe.clear()
        items = self._decode(raw, ts_recv)
        if items is not None:
            if self._frame_stream is not None:
                self._attach(self._frame_stream, raw, ts_recv, items)
            self._apply(conn, items)

    def _attach(self, stream: bytes, raw: bytes, ts_recv: int, items: Parsed) -> None:
        """Give each event of a message of market data only its :class:`Frame`."""
        self._seq += 1
        if b"\n" in raw:
            return  # JSON whitespace, but a frame is one journal line: the events are encoded
        for item in items:
            if not isinstance(item, MarketData):
                return  # a control or an account event: the journal encodes the events
        if items:
            frame = Frame(stream, ts_recv, self._seq, raw, len(items))
            for item in items:
                _SET_FRAME(item, frame)

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
                log.warning(
                    "%s: unknown message type %r (logged once, counted as %s.unknown): %s",
                    self.name,
                    kind,
                    self.name,
                    _truncate(raw),
                )
            return None
        except Exception as exc:  # noqa: BLE001 - a bad payload must not stop the listener
            self._stats.incr(f"{self.name}.bad_message")
            log.warning(
                "%s: cannot parse message (%s: %s): %s",
                self.name,
                type(exc).__name__,
                exc,
                _truncate(raw),
            )
            return None

    def _apply(self, conn: Conn, items: Parsed) -> None:
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

    def _control(self, conn: Conn, c: Control) -> None:
        kind = c.kind
        if kind is ControlKind.AUTHENTICATED:
            for text in self.protocol.subscribe_messages():
                send(conn, text)
        elif kind is ControlKind.SUBSCRIBED:
            conn.subscribed = True
            if not self.protocol.watch_data:
                self._ready(conn)
        elif kind is ControlKind.RESUBSCRIBE:
            self._stats.incr(f"{self.name}.resubscribes")
            log.warning("%s: subscription ended (%s); subscribing again", self.name, c.detail)
            # what the stream carried until the new subscription is missed, as in a reconnect:
            # its confirmation (or first data) is a recovery, and triggers the catch-up
            self._recovering, conn.ready_at = True, None
            self._recovered_from = f"resubscribed ({c.detail})"
            for text in self.protocol.subscribe_messages():
                send(conn, text)
        elif kind is ControlKind.RECONNECT:
            log.warning("%s: %s: reconnecting now", self.name, c.detail)
            conn.end(c.detail, immediate=True)
        elif kind is ControlKind.FAILED:
            self._stats.incr(f"{self.name}.refused")
            log.error("%s: %s", self.name, c.detail)
            conn.end(c.detail)

    def _ready(self, conn: Conn) -> None:
        """The connection delivers: after trouble, that is a recovery."""
        if conn.ready_at is not None:
            return
        conn.ready_at = time.monotonic()
        if not self._recovering:
            return
        self._recovering = False
        self._stats.incr(f"{self.name}.recovered")
        reason, self._recovered_from = self._recovered_from, "reconnected"
        log.info("%s: recovered (%s)", self.name, reason)
        ts = self._now()
        self._emit(FeedRecovered(ts_event=ts, ts_recv=ts, feed=self.name, reason=reason))

    def _emit(self, event: Event) -> bool:
        try:
            self._publish(event)
            return True
        except BusFullError:
            return False  # logged as critical by the bus

    def _now(self) -> int:
        return self._clock.now_ns()
