"""The frame reader against every RFC 6455 case a server can send.

Most cases drive a real ``websocket.WebSocket`` over a real socket pair (the server's end writes
the bytes a server would); the TLS case runs a real TLS websocket server on 127.0.0.1 with a
self-signed certificate made for the test.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import trustme
import websocket

from trader.feeds.websocket.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
)


def frame(op: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bool = False) -> bytes:
    """A frame as a server (unmasked) or a client (``mask``) writes it."""
    head = bytes([(0x80 if fin else 0) | rsv | op])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        payload = key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One frame the client sent: it must be masked (RFC 6455 5.3); returns it unmasked."""

    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            assert chunk, "the client closed the connection"
            out += chunk
        return out

    b0, b1 = exactly(2)
    assert b1 & 0x80, "a client frame must be masked"
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exactly(2), "big")
    elif n == 127:
        n = int.from_bytes(exactly(8), "big")
    key = exactly(4)
    data = exactly(n)
    return b0 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.fixture
def pair() -> Iterator[tuple[FrameReader, socket.socket]]:
    """A reader on a real websocket-client ``WebSocket`` whose socket is one end of a socket
    pair; the other end plays the server."""
    ours, server = socket.socketpair()
    ws = websocket.WebSocket(skip_utf8_validation=True)
    ws.sock, ws.connected = ours, True
    ours.settimeout(2)
    yield FrameReader(ws), server
    ours.close()
    server.close()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_payload_lengths_7_16_and_64_bit(
    pair: tuple[FrameReader, socket.socket], size: int
) -> None:
    reader, server = pair
    payload = os.urandom(size)
    threading.Thread(target=server.sendall, args=(frame(OP_BINARY, payload),)).start()
    assert reader.recv() == (OP_BINARY, payload)


def test_many_frames_in_one_read_come_out_one_by_one(
    pair: tuple[FrameReader, socket.socket],
) -> None:
    reader, server = pair
    texts = [b'{"i":%d}' % i for i in range(100)] + [b"x" * 300]
    server.sendall(b"".join(frame(OP_TEXT, t) for t in texts))
    assert [reader.recv() for _ in texts] == [(OP_TEXT, t) for t in texts]


def test_fragmented_message_with_control_frames_between_fragments(
    pair: tuple[FrameReader, socket.socket],
) -> None:
    reader, server = pair
    server.sendall(
        frame(OP_TEXT, b'{"a":', fin=False)
        + frame(OP_PING, b"p1")
        + frame(OP_CONT, b"1" * 200, fin=False)
        + frame(OP_PONG, b"")
        + frame(OP_CONT, b"}")
        + frame(OP_TEXT, b"next")
    )
    assert reader.recv() == (OP_PING, b"p1")
    assert reader.recv() == (OP_PONG, b"")
    assert reader.recv() == (OP_TEXT, b'{"a":' + b"1" * 200 + b"}")
    assert reader.recv() == (OP_TEXT, b"next")
    assert read_client_frame(server) == (OP_PONG, b"p1")  # the ping answered, masked


def test_fragmented_binary_message(pair: tuple[FrameReader, socket.socket]) -> None:
    reader, server = pair
    server.sendall(
        frame(OP_BINARY, b"\x00\x01", fin=False)
        + frame(OP_CONT, b"\x02", fin=False)
        + frame(OP_CONT, b"\x03")
    )
    assert reader.recv() == (OP_BINARY, b"\x00\x01\x02\x03")


def test_ping_is_answered_with_a_masked_pong_carrying_its_payload(
    pair: tuple[FrameReader, socket.socket],
) -> None:
    reader, server = pair
    server.sendall(frame(OP_PING, b"are you there"))
    assert reader.recv() == (OP_PING, b"are you there")
    assert read_client_frame(server) == (OP_PONG, b"are you there")


@pytest.mark.parametrize(
    "code, reason", [(1000, b""), (1001, b"going away"), (1008, b"policy"), (4000, b"app-defined")]
)
def test_close_is_answered_with_the_same_code(
    pair: tuple[FrameReader, socket.socket], code: int, reason: bytes
) -> None:
    reader, server = pair
    payload = code.to_bytes(2, "big") + reason
    server.sendall(frame(OP_CLOSE, payload))
    assert reader.recv() == (OP_CLOSE, payload)
    assert read_client_frame(server) == (OP_CLOSE, code.to_bytes(2, "big"))
    assert reader.close_answered


def test_close_without_a_code_is_answered_with_normal_closure(
    pair: tuple[FrameReader, socket.socket],
) -> None:
    reader, server = pair
    server.sendall(frame(OP_CLOSE, b""))
    assert reader.recv() == (OP_CLOSE, b"")
    assert read_client_frame(server) == (OP_CLOSE, (1000).to_bytes(2, "big"))


def test_a_frame_split_across_reads_at_every_byte_boundary(
    pair: tuple[FrameReader, socket.socket],
) -> None:
    """The first part arrives, the read times out (the reader keeps it), the rest arrives."""
    reader, server = pair
    reader._ws.sock.settimeout(0.002)
    messages = [b"short", b"m" * 130, b"frag-" + b"f" * 4]
    data = (
        frame(OP_TEXT, messages[0])
        + frame(OP_TEXT, messages[1])
        + frame(OP_TEXT, b"frag-", fin=False)
        + frame(OP_PING, b"")
        + frame(OP_CONT, b"f" * 4)
    )
    for cut in range(1, len(data)):
        server.sendall(data[:cut])
        got = []
        while True:
            try:
                got.append(reader.recv())
            except websocket.WebSocketTimeoutException:
                break
        server.sendall(data[cut:])
        while len(got) < 4:
            got.append(reader.recv())
        assert [m for op, m in got if op == OP_TEXT] == messages, cut
        assert read_client_frame(server) == (OP_PONG, b"")


@pytest.mark.parametrize(
    "data, why",
    [
        (frame(OP_TEXT, b"x", rsv=0x40), "reserved bits"),
        (frame(0x3, b"x"), "reserved opcode"),
        (frame(OP_TEXT, b"x", mask=True), "masked"),
        (frame(OP_CONT, b"x"), "continuation"),
        (frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), "inside a fragmented"),
        (frame(OP_PING, b"x", fin=False), "control frame"),
        (frame(OP_PING, b"x" * 126), "control frame"),
        (frame(OP_CLOSE, b"\x03"), "1-byte"),
    ],
    # fixed ids: a masked frame's key is random, and pytest-xdist's workers must collect alike
    ids=[
        "reserved-bits",
        "reserved-opcode",
        "masked",
        "continuation",
        "inside-fragmented",
        "fragmented-control",
        "long-control",
        "1-byte-close",
    ],
)
def test_frames_no_server_may_send_are_protocol_errors(
    pair: tuple[FrameReader, socket.socket], data: bytes, why: str
) -> None:
    reader, server = pair
    server.sendall(data)
    with pytest.raises(websocket.WebSocketProtocolException, match=why):
        while True:
            reader.recv()


def test_timeout_and_end_of_connection(pair: tuple[FrameReader, socket.socket]) -> None:
    reader, server = pair
    reader._ws.sock.settimeout(0.01)
    with pytest.raises(websocket.WebSocketTimeoutException):
        reader.recv()
    server.sendall(frame(OP_TEXT, b"last"))
    server.shutdown(socket.SHUT_WR)
    assert reader.recv() == (OP_TEXT, b"last")
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        reader.recv()


# ------------------------------------------------------------------------------ TLS


def _handshake(conn: socket.socket) -> None:
    """The server's side of the opening handshake (RFC 6455 4.2)."""
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(4096)
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


def test_tls_connection() -> None:
    """websocket-client makes the TLS handshake and the websocket handshake; the reader reads
    the frames through the TLS socket, across TLS records, and answers a ping through it."""
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    messages = [b'{"n":%d}' % i for i in range(200)] + [b"y" * 70_000]
    got_pong: list[tuple[int, bytes]] = []

    def serve() -> None:
        raw, _ = listener.accept()
        with server_ctx.wrap_socket(raw, server_side=True) as conn:
            _handshake(conn)
            conn.sendall(frame(OP_PING, b"tls"))
            for m in messages:
                conn.sendall(frame(OP_TEXT, m))
            got_pong.append(read_client_frame(conn))
            conn.sendall(frame(OP_CLOSE, (1000).to_bytes(2, "big")))
            got_pong.append(read_client_frame(conn))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with ca.cert_pem.tempfile() as ca_file:
        ws = websocket.create_connection(
            f"wss://localhost:{port}/",
            timeout=5,
            sslopt={"ca_certs": ca_file},
            skip_utf8_validation=True,
        )
    try:
        assert isinstance(ws.sock, ssl.SSLSocket)
        reader = FrameReader(ws)
        assert reader.recv() == (OP_PING, b"tls")
        assert [reader.recv() for _ in messages] == [(OP_TEXT, m) for m in messages]
        assert reader.recv() == (OP_CLOSE, (1000).to_bytes(2, "big"))
        t.join(5)
        assert got_pong == [(OP_PONG, b"tls"), (OP_CLOSE, (1000).to_bytes(2, "big"))]
    finally:
        ws.shutdown()
        listener.close()
