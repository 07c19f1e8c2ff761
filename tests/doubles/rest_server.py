"""What the REST doubles share: the HTTP server on 127.0.0.1, scripted faults, the request log.

:class:`RestDouble` owns the plumbing; each venue's double (:mod:`tests.doubles.binance_rest`,
:mod:`tests.doubles.bybit_rest`) adds its routes, how it parses parameters, checks signatures and
wraps answers. Faults are scripted per (method, path) with :meth:`RestDouble.script` and used up
in order; ``latency_s`` delays every answer (a slow exchange); every request is recorded in
``requests`` so tests can assert what reached the exchange (and what did not).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass
class Fault:
    """One scripted answer. ``process`` runs the real endpoint first (the order is recorded),
    then waits ``hang_s`` and answers with ``body`` (or the real answer when ``body`` is None)."""

    status: int = 200
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0
    process: bool = False

    @classmethod
    def server_error(cls, status: int = 503) -> Self:
        """A 5xx with an HTML body, as a proxy in front of the API would send it."""
        return cls(
            status,
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
            {"Content-Type": "text/html"},
        )

    @classmethod
    def malformed(cls) -> Self:
        """HTTP 200 with truncated JSON."""
        return cls(200, '{"symbol": "BTCUSDT", "orderId": 7, "status": ')

    @classmethod
    def accept_then_hang(cls, seconds: float) -> Self:
        """Do what was asked (record the order), then answer only after ``seconds``."""
        return cls(hang_s=seconds, process=True)


@dataclass(frozen=True)
class Request:
    """One request as the double saw it."""

    method: str
    path: str
    params: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when it arrived


Endpoint = Callable[[dict[str, Any]], Any]


class RestDouble:
    """The server, the fault script and the request log; use as a context manager (or
    ``start``/``stop``). Subclasses fill ``_routes`` and implement the hooks below."""

    def __init__(self, api_key: str, api_secret: str, thread_name: str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.requests: list[Request] = []
        self.latency_s = 0.0  # added before every answer
        self._routes: dict[tuple[str, str], tuple[bool, Endpoint]] = {}  # -> (signed, endpoint)
        self._faults: dict[tuple[str, str], deque[Fault]] = {}
        self._lock = threading.Lock()
        self.release = threading.Event()  # ends every hang at stop
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.double = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=thread_name, daemon=True
        )

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the value for ``exchange.urls.rest``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End every hang, stop serving, close the socket."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, method: str, path: str, *faults: Fault) -> None:
        """Answer the next requests to ``method path`` with ``faults``, in order."""
        with self._lock:
            self._faults.setdefault((method, path), deque()).extend(faults)

    def count(self, method: str, path: str) -> int:
        """How many requests reached ``method path``."""
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and r.path == path)

    # ------------------------------------------------------------------ request handling

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        """Route one request (called on the server's handler thread)."""
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        params = self._params(split.query, body)
        with self._lock:
            self.requests.append(
                Request(method, split.path, {k: str(v) for k, v in params.items()})
            )
            queued = self._faults.get((method, split.path))
            fault = queued.popleft() if queued else None
        if self.latency_s:
            self.release.wait(self.latency_s)
        if fault is not None and not fault.process:
            self.release.wait(fault.hang_s)
            respond(h, fault.status, fault.body or "", fault.headers)
            return
        route = self._routes.get((method, split.path))
        if route is None:
            respond(h, 404, json.dumps(self._no_route(split.path)))
            return
        signed, endpoint = route
        status, payload = self._call(h, method, split.query, body, params, signed, endpoint)
        if fault is not None:
            self.release.wait(fault.hang_s)
            if fault.body is not None:
                respond(h, fault.status, fault.body, fault.headers)
                return
        respond(h, status, json.dumps(payload), self._answer_headers())

    # ------------------------------------------------------------------ the venue's hooks

    def _params(self, query: str, body: str) -> dict[str, Any]:
        """The request's parameters from its query string and body."""
        raise NotImplementedError

    def _no_route(self, path: str) -> Any:
        """The payload of the 404 for an unknown path."""
        raise NotImplementedError

    def _call(
        self,
        h: BaseHTTPRequestHandler,
        method: str,
        query: str,
        body: str,
        params: dict[str, Any],
        signed: bool,
        endpoint: Endpoint,
    ) -> tuple[int, Any]:
        """(status, payload): check the signature if ``signed``, then run ``endpoint`` under
        the lock (or answer the venue's refusal)."""
        raise NotImplementedError

    def _answer_headers(self) -> dict[str, str] | None:
        """Headers sent with every answer an endpoint produced."""
        return None


def now_ms() -> int:
    """The wall clock in milliseconds, as the exchanges stamp their answers."""
    return int(time.time() * 1000)


def respond(
    h: BaseHTTPRequestHandler, status: int, body: str, headers: dict[str, str] | None = None
) -> None:
    """Send one answer (JSON unless ``headers`` say otherwise)."""
    data = body.encode()
    try:
        h.send_response(status)
        headers = headers or {}
        if "Content-Type" not in headers:
            h.send_header("Content-Type", "application/json;charset=UTF-8")
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (its timeout): nothing to answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.double.handle(self, "GET")  # type: ignore[attr-defined]

    def do_POST(self) -> None:  # noqa: N802
        self.server.double.handle(self, "POST")  # type: ignore[attr-defined]

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.double.handle(self, "DELETE")  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: tests assert on ``requests`` instead."""
