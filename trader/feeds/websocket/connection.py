"""One websocket connection: the venue's side of it (:class:`StreamProtocol`), its state
(:class:`Conn`), and opening, reading, sending and closing it.

Reads use a short socket timeout so the listener's watchdogs run between frames; a failed read
or send ends the connection with its reason instead of raising.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import websocket

from trader.feeds.parsers.common import Parsed

OPCODE_TEXT = websocket.ABNF.OPCODE_TEXT
READ_AHEAD = 65536  # bytes asked of the socket per read
MAX_READ_WAIT_S = 1.0  # the read loop re-checks its deadlines at least this often


class StreamProtocol(Protocol):
    """The venue-specific side of one connection: where, what to send, how to parse."""

    venue: str  # "binance"
    stream: str  # "market", "user", ...: the thread is named ws-<venue>-<stream>
    url: str
    watch_data: bool  # market data: the data watchdog applies
    ping_message: str | None  # sent every ping_interval_s (Bybit); None if the server pings
    data_markets: tuple[str, ...]  # the markets whose market data it carries (risk gates them)

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
class Conn:
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


def connect(url: str, timeout: float) -> Any:
    """Open a websocket to ``url`` (connect bounded by ``timeout``), reading ahead."""
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


def close_socket(ws: Any) -> None:
    """Send a close frame if the socket still takes one, then close it."""
    try:
        ws.send_close()
    except Exception:  # noqa: BLE001 - the socket may already be gone
        pass
    ws.shutdown()


def set_wait(conn: Conn, wait: float, current: float) -> float:
    """Set the socket's read timeout if it changed enough to matter (a syscall saved)."""
    wait = min(max(wait, 0.001), MAX_READ_WAIT_S)
    if abs(wait - current) > 0.01 or wait < current:
        conn.ws.settimeout(wait)
        return wait
    return current


def recv(conn: Conn, wait: float | None = None) -> bytes | None:
    """One frame's payload if it is a data frame; None on timeout, control frames, or the
    end of the connection (then ``conn.outcome`` says why). ``wait`` sets the read
    timeout first (the main loop sets it only when it changes, see :func:`set_wait`)."""
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


def send(conn: Conn, text: str) -> None:
    """Send ``text``; a failure ends the connection (``conn.outcome`` says why)."""
    try:
        conn.ws.send(text)
    except (websocket.WebSocketException, OSError) as exc:
        conn.end(f"send failed: {type(exc).__name__}: {exc}")
