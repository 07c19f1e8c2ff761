"""A small HTTP/1.0 server that slow or hostile local clients cannot jam.

One thread (the caller of :meth:`BoundedHttpServer.serve`) accepts connections and reads their
requests without blocking; only a request that arrived whole (head and body) is handed to a
fixed pool of worker threads, which answer it and close the connection. So:

- a connection that sends slowly costs a buffer, never a thread; it has ``deadline_s`` for its
  whole request (not per read), then it gets 408 and is closed;
- at most ``max_connections`` connections are open: a new one closes the oldest unfinished one,
  so a fresh ``/health`` always gets in;
- the head is at most ``MAX_HEAD`` bytes, the body at most ``max_body`` bytes and announced by a
  plain ``Content-Length`` (a negative, malformed or too large length, a chunked body, or a POST
  without a length is refused with 400, 413 or 411 before any of the body is read);
- a worker writes its answer with ``deadline_s`` as the socket timeout; a client gone away is
  one log line, never a traceback.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024


@dataclass(frozen=True)
class Request:
    """A request that arrived whole."""

    method: str
    path: str
    headers: http.client.HTTPMessage
    body: bytes
    peer: str


@dataclass(frozen=True)
class Response:
    """What to answer."""

    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    cache: str = "no-store"
    extra_headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        """The whole HTTP/1.0 answer."""
        lines = [
            f"HTTP/1.0 {self.status.value} {self.status.phrase}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            f"Cache-Control: {self.cache}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in self.extra_headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


class BadRequest(Exception):
    """A request refused before it is handled: the status and a one-line reason."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: HTTPStatus, message: str) -> Response:
    """A JSON ``{"error": ...}`` answer."""
    return Response(status, (json.dumps({"error": message}) + "\n").encode())


class _Pending:
    """A connection whose request is still arriving."""

    __slots__ = ("sock", "peer", "deadline", "buf", "head", "need")

    def __init__(self, sock: socket.socket, peer: str, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.deadline = deadline
        self.buf = bytearray()
        self.head: tuple[str, str, http.client.HTTPMessage, int] | None = None
        self.need = 0  # bytes of the whole request once the head is known


class BoundedHttpServer:
    """Listens on ``host:port``; :meth:`serve` runs until ``stop`` is set."""

    def __init__(
        self,
        host: str,
        port: int,
        handle: Callable[[Request], Response],
        *,
        workers: int = 4,
        max_connections: int = 64,
        deadline_s: float = 2.0,
        max_body: int = 64 * 1024,
        name: str = "http",
    ) -> None:
        self._handle = handle
        self._workers = workers
        self._max_connections = max_connections
        self._deadline_s = deadline_s
        self._max_body = max_body
        self._name = name
        self._queue: queue.Queue[tuple[socket.socket, Request]] = queue.Queue(workers * 4)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(256)
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)

    @property
    def port(self) -> int:
        """The port listened on."""
        return self._sock.getsockname()[1]

    def close(self) -> None:
        """Stop listening."""
        self._sock.close()

    def serve(self, stop: threading.Event) -> None:
        """Accept and read in this thread, answer in the pool, until ``stop`` is set; then join
        the pool and close every connection."""
        pool = [
            threading.Thread(
                target=self._work, args=(stop,), name=f"{self._name}-{i + 1}", daemon=True
            )
            for i in range(self._workers)
        ]
        for t in pool:
            t.start()
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ)
        pending: dict[socket.socket, _Pending] = {}  # oldest first
        try:
            while not stop.is_set():
                for key, _ in sel.select(timeout=0.1):
                    if key.fileobj is self._sock:
                        self._accept(sel, pending)
                    elif (conn := pending.get(key.fileobj)) is not None:  # type: ignore[call-overload]
                        self._read(sel, pending, conn)  # (None: closed earlier in this round)
                now = time.monotonic()
                for conn in [c for c in pending.values() if c.deadline <= now]:
                    self._refuse(
                        sel,
                        pending,
                        conn,
                        BadRequest(
                            HTTPStatus.REQUEST_TIMEOUT,
                            f"the request took over {self._deadline_s} s",
                        ),
                    )
        finally:
            for conn in list(pending.values()):
                self._drop(sel, pending, conn)
            sel.close()
            for t in pool:
                t.join(timeout=self._deadline_s + 1)

    # ------------------------------------------------------------------ the accepting thread

    def _accept(self, sel: selectors.BaseSelector, pending: dict[socket.socket, _Pending]) -> None:
        while True:
            try:
                sock, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the oldest makes room next time
                log.warning("http: accept failed: %s", exc)
                if pending:
                    self._drop(sel, pending, next(iter(pending.values())))
                return
            if len(pending) >= self._max_connections:
                oldest = next(iter(pending.values()))
                log.info(
                    "http: %d connections open; closing the oldest, from %s",
                    len(pending),
                    oldest.peer,
                )
                self._drop(sel, pending, oldest)
            sock.setblocking(False)
            conn = _Pending(sock, f"{addr[0]}:{addr[1]}", time.monotonic() + self._deadline_s)
            pending[sock] = conn
            sel.register(sock, selectors.EVENT_READ)

    def _read(
        self, sel: selectors.BaseSelector, pending: dict[socket.socket, _Pending], conn: _Pending
    ) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(sel, pending, conn)
            return
        conn.buf += chunk
        try:
            request = self._parse(conn)
        except BadRequest as exc:
            self._refuse(sel, pending, conn, exc)
            return
        if request is None:
            return
        sel.unregister(conn.sock)
        del pending[conn.sock]
        try:
            self._queue.put_nowait((conn.sock, request))
        except queue.Full:
            log.warning(
                "http: every worker is busy; %s %s from %s refused",
                request.method,
                request.path,
                conn.peer,
            )
            _send_now(conn.sock, error_response(HTTPStatus.SERVICE_UNAVAILABLE, "busy; retry"))
            conn.sock.close()

    def _parse(self, conn: _Pending) -> Request | None:
        """The request once it arrived whole; None while more is expected."""
        if conn.head is None:
            end = conn.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.buf) > MAX_HEAD:
                    raise BadRequest(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        f"the request head is over {MAX_HEAD} bytes",
                    )
                return None
            conn.head = self._parse_head(bytes(conn.buf[:end]))
            conn.need = end + 4 + conn.head[3]
        if len(conn.buf) < conn.need:
            return None
        method, path, headers, length = conn.head
        body = bytes(conn.buf[conn.need - length : conn.need])
        return Request(method, path, headers, body, conn.peer)

    def _parse_head(self, head: bytes) -> tuple[str, str, http.client.HTTPMessage, int]:
        line, _, rest = head.partition(b"\r\n")
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
        method, path, _ = parts
        try:
            headers = http.client.parse_headers(io.BytesIO(rest + b"\r\n\r\n"))
        except (http.client.HTTPException, ValueError):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed headers") from None
        if headers.get("Transfer-Encoding") is not None:
            raise BadRequest(
                HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked"
            )
        lengths = headers.get_all("Content-Length") or []
        if not lengths:
            if method == "POST":
                raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length")
            return method, path, headers, 0
        text = lengths[0].strip()
        if len(set(lengths)) != 1 or not (text.isascii() and text.isdigit()):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "Content-Length must be one number >= 0")
        length = int(text)
        if length > self._max_body:
            raise BadRequest(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {self._max_body} bytes"
            )
        return method, path, headers, length

    def _refuse(
        self,
        sel: selectors.BaseSelector,
        pending: dict[socket.socket, _Pending],
        conn: _Pending,
        exc: BadRequest,
    ) -> None:
        log.info("http: refused a request from %s: %d %s", conn.peer, exc.status.value, exc)
        _send_now(conn.sock, error_response(exc.status, str(exc)))
        self._drop(sel, pending, conn)

    @staticmethod
    def _drop(
        sel: selectors.BaseSelector, pending: dict[socket.socket, _Pending], conn: _Pending
    ) -> None:
        sel.unregister(conn.sock)
        del pending[conn.sock]
        conn.sock.close()

    # ------------------------------------------------------------------ the workers

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                sock, request = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._answer(sock, request)
            finally:
                sock.close()
        while True:  # answer nothing more, but close what was queued
            try:
                self._queue.get_nowait()[0].close()
            except queue.Empty:
                return

    def _answer(self, sock: socket.socket, request: Request) -> None:
        try:
            response = self._handle(request)
        except Exception as exc:  # noqa: BLE001 - a handler bug: one line and a 500, not a crash
            log.error(
                "http: %s %s from %s failed: %s: %s",
                request.method,
                request.path,
                request.peer,
                type(exc).__name__,
                exc,
            )
            response = error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        log.debug(
            "http: %s %s %s -> %d",
            request.peer,
            request.method,
            request.path,
            response.status.value,
        )
        try:
            sock.setblocking(True)
            sock.settimeout(self._deadline_s)
            sock.sendall(response.encode())
        except OSError as exc:
            log.info(
                "http: could not answer %s %s from %s: %s",
                request.method,
                request.path,
                request.peer,
                exc.strerror or type(exc).__name__,
            )


def _send_now(sock: socket.socket, response: Response) -> None:
    """Best effort, without blocking: an error answer is small enough for the socket buffer."""
    try:
        sock.send(response.encode())
    except OSError:
        pass
