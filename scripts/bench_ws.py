"""The websocket sender of scripts/bench.py (P3, P4): a separate process writing pre-encoded
frames to a raw socket after a minimal websocket handshake, so it is never what limits a
receiver (the bench measures its capacity and prints it next to the receivers' rates).

Each accepted connection takes one plan from :attr:`Sender.plans`:

- ``("burst", count)``: ``count`` Binance bookTicker messages (combined-stream form), encoded
  before the subscription reply, written back to back;
- ``("paced", count, rate, with_account)``: messages whose bid is the send time in
  ``perf_counter_ns`` (system-wide monotonic clock), ``rate`` per second (the sender sleeps
  between them, it does not spin on a core), an account update every ``ACCOUNT_EVERY``th when
  ``with_account``;
- ``("sink", count)``: the burst written to a client that only drains the socket (the
  sender's capacity, :meth:`Sender.capacity`);
- ``("repeat", count)``: the burst of ``count`` written again and again until the client goes
  away (P7's timed windows).

Every client sends one subscription frame first and gets one reply, as our listener does.
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing as mp
import random
import socket
import time
from typing import Any

ACCOUNT_EVERY = 50  # in the overload run, every 50th message is an account update
CHUNK = 1 << 20  # bytes per sendall of a burst


def ws_frame(payload: bytes) -> bytes:
    """An unmasked final text frame, as a server sends it."""
    n = len(payload)
    if n < 126:
        return b"\x81" + bytes([n]) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def quote(i: int, bid: str, ask: str) -> bytes:
    """A Binance bookTicker message on the combined stream."""
    return (
        b'{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"%s",'
        b'"B":"1.50000000","a":"%s","A":"2.50000000"}}' % (i, bid.encode(), ask.encode())
    )


def burst(count: int, seed: int = 7) -> bytes:
    """``count`` quote frames with realistic 8-decimal prices, one bytes object: the bid walks
    one tick (0.01) at a time around 60,000 and the spread is one to three ticks, as a busy
    BTC/USDT book moves from one message to the next. (An earlier sawtooth climbed $500 over 500
    messages and fell back at once, 83 bps every 15 ms at these rates: no book moves so, and the
    market maker requoted and filled on every cycle.)"""
    rng = random.Random(seed)
    bid = 6_000_000  # in ticks
    frames = []
    for i in range(count):
        bid += rng.choice((-1, 0, 1))
        ask = bid + rng.choice((1, 1, 2, 3))
        frames.append(
            ws_frame(
                quote(
                    i, f"{bid // 100}.{bid % 100:02d}000000", f"{ask // 100}.{ask % 100:02d}000000"
                )
            )
        )
    return b"".join(frames)


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise ConnectionError("client went away")
        out += chunk
    return out


def _handshake(conn: socket.socket) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("client went away")
        request += chunk
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def _skip_client_frame(conn: socket.socket) -> None:
    """Read (and ignore) one masked frame from the client: its subscription."""
    b1 = _read_exactly(conn, 2)[1]
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(_read_exactly(conn, 2), "big")
    elif n == 127:
        n = int.from_bytes(_read_exactly(conn, 8), "big")
    _read_exactly(conn, 4 + n)


def _paced(conn: socket.socket, count: int, rate: int, with_account: bool) -> None:
    send, perf, perf_ns, sleep = conn.sendall, time.perf_counter, time.perf_counter_ns, time.sleep
    t0 = perf()
    for i in range(count):
        wait = t0 + i / rate - perf()
        if wait > 0:
            sleep(wait)
        if with_account and i % ACCOUNT_EVERY == 0:
            send(
                ws_frame(
                    b'{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1,'
                    b'"u":%d,"B":[{"a":"USDT","f":"%d.0","l":"0"}]}}' % (i, i)
                )
            )
        now = perf_ns()
        send(ws_frame(quote(i, str(now), str(now + 1))))


def _serve(port_q: Any, plans: Any) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port_q.put(listener.getsockname()[1])
    blobs: dict[int, bytes] = {}
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            plan = plans.get()
            if plan[0] in ("burst", "sink", "repeat") and plan[1] not in blobs:
                blobs[plan[1]] = burst(plan[1])
            try:
                _handshake(conn)
                _skip_client_frame(conn)
                conn.sendall(ws_frame(b'{"result":null,"id":1}'))
                if plan[0] == "paced":
                    _paced(conn, *plan[1:])
                elif plan[0] == "repeat":
                    view = memoryview(blobs[plan[1]])
                    while True:  # until sendall fails: the client went away
                        for start in range(0, len(view), CHUNK):
                            conn.sendall(view[start : start + CHUNK])
                else:
                    view = memoryview(blobs[plan[1]])
                    for start in range(0, len(view), CHUNK):
                        conn.sendall(view[start : start + CHUNK])
                conn.settimeout(600)
                while conn.recv(65536):  # until the client closes
                    pass
            except OSError:
                pass  # the client went away: the next connection


class Sender:
    """The sender process; ``url`` is where it listens."""

    def __enter__(self) -> Sender:
        ctx = mp.get_context("spawn")
        port_q = ctx.Queue()
        self.plans = ctx.Queue()
        self._proc = ctx.Process(
            target=_serve, args=(port_q, self.plans), daemon=True, name="bench-sender"
        )
        self._proc.start()
        self.url = f"ws://127.0.0.1:{port_q.get(timeout=30)}/stream"
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.join(5)

    def capacity(self, count: int) -> float:
        """Messages/s the sender delivers to a client that only drains the socket (first byte
        to last, timed by the client: the sender's own clock would stop once the kernel's
        socket buffers took the rest)."""
        import websocket

        expected = len(ws_frame(b'{"result":null,"id":1}')) + len(burst(count))
        self.plans.put(("sink", count))
        ws = websocket.create_connection(self.url)
        sock = ws.sock
        buf = bytearray(CHUNK)
        got = 0
        time.sleep(0.5)  # the sender encodes the burst before it reads the subscription
        t0 = time.perf_counter()
        ws.send('{"method":"SUBSCRIBE","params":[],"id":1}')
        while got < expected:
            n = sock.recv_into(buf)
            if not n:
                raise ConnectionError("the sender closed the connection early")
            got += n
        elapsed = time.perf_counter() - t0
        ws.shutdown()
        return count / elapsed
