"""One websocket connection: the venue's side of it (:class:`StreamProtocol`), its state
(:class:`Conn`), and opening, reading, sending and closing it.

Reads use a short socket timeout so the listener's watchdogs run between frames; a failed read
or send ends the connection with its reason instead of raising. Frames are read by our own
:class:`~trader.feeds.websocket.frames.FrameReader` from websocket-client's connected socket.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import websocket

from trader.feeds.parsers.common import Parsed
from trader.feeds.websocket.frames import OP_BINARY, OP_CLOSE, OP_TEXT, FrameReader

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
    frames: FrameReader = field(init=False)

    def __post_init__(self) -> None:
        self.frames = FrameReader(self.ws)

    def end(self, reason: str, immediate: bool = False) -> None:
        """Mark the connection finished (the first reason wins)."""
        if self.outcome is None:
            self.outcome = (reason, immediate)


def connect(url: str, timeout: float) -> Any:
    """Open a websocket to ``url`` (connect bounded by ``timeout``)."""
    return websocket.create_connection(
        url, timeout=timeout, skip_utf8_validation=True, enable_multithread=True
    )


def close_socket(ws: Any) -> None:
    """Send a close frame unless one was sent already (a server's close answered), then close
    the socket."""
    if ws.connected:
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
        opcode, data = conn.frames.recv()
    except websocket.WebSocketTimeoutException:
        return None
    except (websocket.WebSocketException, OSError) as exc:
        conn.end(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        return None
    conn.last_frame = time.monotonic()
    if opcode == OP_TEXT or opcode == OP_BINARY:
        return data
    if opcode == OP_CLOSE:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        text = data[2:].decode("utf-8", "replace")
        conn.end(f"closed by the server (code {code}{', ' + text if text else ''})")
    return None  # ping (answered by the reader) or pong


def send(conn: Conn, text: str) -> None:
    """Send ``text``; a failure ends the connection (``conn.outcome`` says why)."""
    try:
        conn.ws.send(text)
    except (websocket.WebSocketException, OSError) as exc:
        conn.end(f"send failed: {type(exc).__name__}: {exc}")
