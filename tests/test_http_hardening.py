"""The operator API against hostile local clients, over real sockets: a slowloris of 200
connections cannot hold /health or the kill switch, bad body lengths are refused before the
body is read, commands need the token, and failures are one log line with an HTTP answer."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_metrics import free_port, get, post, serving_http
from trader.app import App
from trader.config import config_from_dict
from trader.events import HaltTrading, ResumeTrading


@pytest.fixture
def api(tmp_path: Any) -> Iterator[App]:
    """The HTTP endpoint alone (:func:`tests.test_metrics.serving_http`)."""
    with serving_http(tmp_path) as app:
        yield app


def raw(app: App, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read the whole answer."""
    with socket.create_connection(("127.0.0.1", app.http.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def post_head(token: str, length: str) -> bytes:
    return (
        f"POST /halt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_health_and_the_kill_switch_answer_within_1s_under_a_slowloris(api: App) -> None:
    hostile = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", api.http.port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
        hostile.append(sock)
    try:
        for _ in range(3):
            t0 = time.monotonic()
            assert get(api, "/health")[0] == 200
            code, doc = post(api, "/halt", {"reason": "under attack"})
            assert code == 202 and doc["accepted"] == "HaltTrading"
            assert time.monotonic() - t0 < 1.0
            assert isinstance(api.bus.get(1), HaltTrading)
            for sock in hostile[:20]:  # keep them trickling
                try:
                    sock.send(b"a")
                except OSError:
                    pass
        # a connection that never finishes its request is closed at the deadline
        last = hostile[-1]
        last.settimeout(5)
        answer = last.recv(4096)
        assert answer == b"" or answer.startswith(b"HTTP/1.0 408")
    finally:
        for sock in hostile:
            sock.close()


@pytest.mark.parametrize(
    ("length", "status"),
    [
        ("-1", b"400"),
        ("abc", b"400"),
        ("1e3", b"400"),
        (str(300 * 1024 * 1024), b"413"),
    ],
)
def test_a_bad_content_length_is_refused_before_the_body(
    api: App, length: str, status: bytes
) -> None:
    answer = raw(api, post_head(api.http.token, length) + b'{"reason": "x"}')
    assert answer.startswith(b"HTTP/1.0 " + status), answer
    assert api.bus.depth() == 0


def test_a_post_without_a_length_or_chunked_is_411(api: App) -> None:
    head = post_head(api.http.token, "0").replace(b"Content-Length: 0\r\n", b"")
    assert raw(api, head).startswith(b"HTTP/1.0 411")
    chunked = head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert raw(api, chunked + b"2\r\n{}\r\n0\r\n\r\n").startswith(b"HTTP/1.0 411")
    assert api.bus.depth() == 0


def test_commands_need_the_token(api: App) -> None:
    assert post(api, "/halt", {"reason": "x"}, token="")[0] == 401
    code, doc = post(api, "/resume", {}, token=api.http.token[:-1] + "x")
    assert code == 401 and "Authorization: Bearer" in doc["error"]
    assert api.bus.depth() == 0
    assert get(api, "/health")[0] == 200 and get(api, "/metrics")[0] == 200  # open to read
    assert post(api, "/resume", {"force": True})[0] == 202
    resume = api.bus.get(1)
    assert isinstance(resume, ResumeTrading) and resume.force


def test_the_token_comes_from_the_environment_when_set(tmp_path: Any) -> None:
    cfg = config_from_dict(
        {"journal": {"path": str(tmp_path / "journal")}, "metrics": {"port": free_port()}},
        {"TRADER_API_TOKEN": "from-the-env"},
    )
    http = App(cfg).http
    http.bind()
    stop = threading.Event()
    stop.set()
    http.run(stop)  # closes the socket
    assert http.token == "from-the-env"
    assert not (tmp_path / "api-token").exists()


def test_bad_requests_and_vanished_clients_are_one_line_each(
    api: App, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="trader"):
        assert raw(api, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.0 400")
        assert raw(api, b"GET /" + b"a" * 20_000).startswith(b"HTTP/1.0 431")
        for _ in range(5):  # ask and go away before the answer
            sock = socket.create_connection(("127.0.0.1", api.http.port))
            sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
            sock.close()
        assert get(api, "/health")[0] == 200
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    refused = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert len(refused) == 2
