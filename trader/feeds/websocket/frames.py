"""Reading RFC 6455 frames from a websocket-client connection's socket, ourselves.

websocket-client does the handshake, TLS, proxies and sending (our frames are masked by it);
reading is ours because its frame reassembly was half of the listener thread's time (bench P3):
``recv_strict`` re-joins and re-slices its pending buffer on every call, three calls per frame.
:class:`FrameReader` asks the socket for up to ``read_size`` bytes at a time and walks that
buffer with an offset: a burst of frames costs one ``recv`` and one slice per payload.

What a server can send, and what the reader does with it:

- text and binary frames, 7-, 16- and 64-bit payload lengths: the payload is returned;
- a fragmented message (a first frame without FIN, then continuation frames): the payloads are
  joined once at the last fragment; control frames may come between fragments;
- ping: answered with a pong carrying the same payload (sent, masked, by websocket-client);
- pong: ignored (returned as a control frame so the caller counts it as a sign of life);
- close: answered with a close frame echoing its code (the close handshake), then returned;
- anything else (reserved bits or opcodes, a masked frame, a fragmented or oversized control
  frame, a continuation nobody started, a close payload of one byte):
  ``WebSocketProtocolException``.

Timeouts leave the buffer as it was: a frame cut across reads is completed by the next call.
"""

from __future__ import annotations

from typing import Any

import websocket

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_DATA = (OP_TEXT, OP_BINARY)
_CONTROL = (OP_CLOSE, OP_PING, OP_PONG)
READ_SIZE = 65536  # bytes asked of the socket per read
MAX_MESSAGE = 64 * 1024 * 1024  # a larger frame or message is a protocol error, not a hang


class FrameReader:
    """Frames of one connected ``websocket.WebSocket``, read from its socket.

    :meth:`recv` returns ``(opcode, payload)`` for a complete data message or a control frame;
    it raises ``WebSocketTimeoutException`` when the socket's timeout passes,
    ``WebSocketConnectionClosedException`` when the server closes the TCP connection and
    ``WebSocketProtocolException`` for a frame no server may send.
    """

    __slots__ = (
        "_ws",
        "_recv",
        "_buf",
        "_pos",
        "_frag_op",
        "_frags",
        "_frag_len",
        "read_size",
        "close_answered",
    )

    def __init__(self, ws: Any, read_size: int = READ_SIZE) -> None:
        self._ws = ws
        self._recv = ws.sock.recv  # a plain or a TLS socket: recv(n) returns what is there
        self._buf = b""
        self._pos = 0
        self._frag_op = 0  # the opcode of the message being reassembled, 0 when none
        self._frags: list[bytes] = []
        self._frag_len = 0
        self.read_size = read_size
        self.close_answered = False

    def recv(self) -> tuple[int, bytes]:
        """The next data message or control frame (see the class docstring)."""
        while True:
            buf, pos = self._buf, self._pos
            if len(buf) - pos < 2:
                self._fill(2)
                continue
            b0 = buf[pos]
            n = buf[pos + 1]
            if n >= 126:  # a 16- or 64-bit length, or the mask bit
                out = self._long_frame(buf, pos, len(buf) - pos, b0, n)
                if out is not None:
                    return out
                continue
            end = pos + 2 + n
            if end > len(buf):
                self._fill(2 + n)
                continue
            self._pos = end
            if b0 == 0x81 and not self._frag_op:  # the common case: FIN + text, unfragmented
                return OP_TEXT, buf[pos + 2 : end]
            out = self._frame(b0, buf[pos + 2 : end])
            if out is not None:
                return out

    # ------------------------------------------------------------------ the frame's header

    def _long_frame(
        self, buf: bytes, pos: int, avail: int, b0: int, n: int
    ) -> tuple[int, bytes] | None:
        """A frame with a 16- or 64-bit length (or a masked one, refused): the result of
        :meth:`_frame`, or None when more bytes were read or a fragment was taken."""
        if n & 0x80:
            raise websocket.WebSocketProtocolException("masked frame from the server")
        if n == 126:
            head = 4
            if avail < head:
                self._fill(head)
                return None
            size = int.from_bytes(buf[pos + 2 : pos + 4], "big")
        else:
            head = 10
            if avail < head:
                self._fill(head)
                return None
            size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if size >> 63:
                raise websocket.WebSocketProtocolException("64-bit length with the top bit set")
        if size > MAX_MESSAGE:
            raise websocket.WebSocketProtocolException(f"frame of {size} bytes is too large")
        if avail < head + size:
            self._fill(head + size)
            return None
        start = pos + head
        self._pos = start + size
        return self._frame(b0, buf[start : start + size])

    def _frame(self, b0: int, payload: bytes) -> tuple[int, bytes] | None:
        """A whole frame: its message or control frame, or None while a message is incomplete."""
        if b0 & 0x70:
            raise websocket.WebSocketProtocolException("reserved bits set (no extension agreed)")
        fin, op = b0 & 0x80, b0 & 0x0F
        if op in _CONTROL:
            return self._control(fin, op, payload)
        if op == OP_CONT:
            if not self._frag_op:
                raise websocket.WebSocketProtocolException("continuation frame without a start")
        elif op in _DATA:
            if self._frag_op:
                raise websocket.WebSocketProtocolException("new message inside a fragmented one")
            if fin:
                return op, payload
            self._frag_op = op
        else:
            raise websocket.WebSocketProtocolException(f"reserved opcode {op:#x}")
        self._frag_len += len(payload)
        if self._frag_len > MAX_MESSAGE:
            raise websocket.WebSocketProtocolException("fragmented message is too large")
        self._frags.append(payload)
        if not fin:
            return None
        message = (self._frag_op, b"".join(self._frags))
        self._frag_op, self._frags, self._frag_len = 0, [], 0
        return message

    def _control(self, fin: int, op: int, payload: bytes) -> tuple[int, bytes]:
        if not fin or len(payload) > 125:
            raise websocket.WebSocketProtocolException("fragmented or oversized control frame")
        if op == OP_PING:
            self._ws.pong(payload)
        elif op == OP_CLOSE:
            if len(payload) == 1:
                raise websocket.WebSocketProtocolException("close frame with a 1-byte payload")
            code = int.from_bytes(payload[:2], "big") if payload else websocket.STATUS_NORMAL
            if not self.close_answered:
                self.close_answered = True
                try:
                    self._ws.send_close(code if 1000 <= code < 5000 else websocket.STATUS_NORMAL)
                except (websocket.WebSocketException, OSError):
                    pass  # the server may have gone already: its close was received anyway
        return op, payload

    # ------------------------------------------------------------------ the socket

    def _fill(self, need: int) -> None:
        """Read until ``need`` bytes are buffered past the offset. The unread rest is joined
        with the new bytes once per read (a frame larger than a read: once at the end)."""
        rest = self._buf[self._pos :]
        have = len(rest)
        parts = [rest]
        try:
            while have < need:
                chunk = self._recv(max(self.read_size, need - have))
                if not chunk:
                    raise websocket.WebSocketConnectionClosedException(
                        "the server closed the connection"
                    )
                parts.append(chunk)
                have += len(chunk)
        except TimeoutError:
            raise websocket.WebSocketTimeoutException("read timed out") from None
        finally:
            # even on a timeout or an error: keep what was read, the frame continues next call
            self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
            self._pos = 0
