"""The local HTTP endpoint: metrics, health, status and the operator commands.

Listens on 127.0.0.1 only (``metrics.port``; 0 turns it off), in its own named thread (the
``metrics`` worker), one request at a time (HTTP/1.0, a 2 s socket timeout per request). It reads
only the metrics snapshots and thread-safe reads, and writes nothing: a command is published on
the bus as an event, like any producer's, and the main thread acts on it.

    GET  /metrics     Prometheus text
    GET  /health      JSON; 200, or 503 when the main loop is stuck or a feed is stale
    GET  /status      JSON: trading state, queue depth, events/s, balances in USD, open orders,
                      strategies
    POST /halt        body (optional) {"reason": "...", "cancel_orders": true} -> HaltTrading
    POST /resume      body (optional) {"reason": "..."}                       -> ResumeTrading
    POST /cancel-all  body (optional) {"symbol": "BTC/USDT"}                  -> CancelAllOrders
    GET  /, /static/..., /api/dashboard   the read-only dashboard (``trader/web/routes.py``)

A command answers 202 with the published event. POSTs must say ``Content-Type:
application/json`` (even with no body) and every request's ``Host`` must be 127.0.0.1 or
localhost: a web page in a browser on this machine can then neither send a command (a
cross-site form cannot set that content type without a CORS preflight, which this server never
grants) nor reach the server through a DNS name rebound to 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from trader.clock import Clock
from trader.errors import BusFullError, ConfigError
from trader.events import (
    CancelAllOrders,
    Command,
    Event,
    HaltTrading,
    ResumeTrading,
    event_to_dict,
)
from trader.metrics import Metrics
from trader.web.routes import WebRoutes
from trader.workers import Worker

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024


class RequestError(Exception):
    """A bad request: the status and a one-line reason for the client."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def command_from_body(path: str, body: dict[str, Any], now_ns: int) -> Command:
    """Build the command a POST asks for; unknown keys and wrong types are errors."""
    by_path: dict[str, dict[str, tuple[type, Any]]] = {
        "/halt": {"reason": (str, "operator"), "cancel_orders": (bool, False)},
        "/resume": {"reason": (str, "operator")},
        "/cancel-all": {"symbol": (str, None)},
    }
    fields = by_path[path]
    unknown = set(body) - set(fields)
    if unknown:
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"unknown keys {sorted(unknown)}; expected {sorted(fields)}")
    kwargs = {}
    for key, (tp, default) in fields.items():
        value = body.get(key, default)
        if value is not None and not isinstance(value, tp):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{key} must be a {tp.__name__}")
        kwargs[key] = value
    cls = {"/halt": HaltTrading, "/resume": ResumeTrading, "/cancel-all": CancelAllOrders}[path]
    return cls(ts_event=now_ns, ts_recv=now_ns, **kwargs)


class _Server(HTTPServer):
    api: HttpApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("metrics endpoint: request from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 2.0  # a slow client cannot hold the one serving thread for long
    GET = ("/metrics", "/health", "/status")
    POST = ("/halt", "/resume", "/cancel-all")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        try:
            self._check_host()
            web = self.server.api.web
            page = web.get(path, query) if web is not None and method == "GET" else None
            if page is not None:
                self._send(HTTPStatus.OK, page.body, page.content_type,
                           "max-age=86400" if page.cache else "no-store")
                return
            if path not in self.GET + self.POST:
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint {path}")
            allowed = "GET" if path in self.GET else "POST"
            if method != allowed:
                raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"use {allowed} for {path}")
            api = self.server.api
            if path == "/metrics":
                self._send(HTTPStatus.OK, api.metrics.prometheus(),
                           "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/health":
                ok, doc = api.metrics.health()
                self._json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, doc)
            elif path == "/status":
                self._json(HTTPStatus.OK, api.metrics.status())
            else:
                self._json(HTTPStatus.ACCEPTED, api.command(path, self._body()))
        except RequestError as exc:
            self._json(exc.status, {"error": str(exc)})

    def _check_host(self) -> None:
        host = self.headers.get("Host")
        if host is None:
            return
        name = host.rsplit(":", 1)[0] if ":" in host else host
        if name not in ("127.0.0.1", "localhost"):
            raise RequestError(HTTPStatus.FORBIDDEN, f"host {host!r} not allowed")

    def _body(self) -> dict[str, Any]:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                               "send Content-Type: application/json (the body may be empty)")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"invalid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return body

    def _json(self, status: HTTPStatus, doc: Any) -> None:
        self._send(status, json.dumps(doc, default=str) + "\n", "application/json")

    def _send(self, status: HTTPStatus, text: str | bytes, ctype: str,
              cache: str = "no-store") -> None:
        data = text if isinstance(text, bytes) else text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("metrics endpoint: %s " + format, self.address_string(), *args)


class HttpApi(Worker):
    """The endpoint as a worker thread; :meth:`bind` at start, before the workers run."""

    name = "metrics"

    def __init__(
        self, port: int, metrics: Metrics, publish: Callable[[Event], None], clock: Clock,
        web: WebRoutes | None = None,
    ) -> None:
        self._port = port
        self.metrics = metrics
        self.web = web
        self._publish = publish
        self._clock = clock
        self._server: _Server | None = None

    @property
    def port(self) -> int:
        """The port listened on (after :meth:`bind`)."""
        assert self._server is not None
        return self._server.server_address[1]

    def bind(self) -> None:
        """Listen on 127.0.0.1; a ``ConfigError`` naming the port when that fails."""
        try:
            self._server = _Server((HOST, self._port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"metrics.port: cannot listen on {HOST}:{self._port}: {exc.strerror or exc}"
            ) from None
        self._server.api = self
        self._server.timeout = 0.1  # how often the loop looks at the stop flag
        log.info("metrics, health, status and commands on http://%s:%d", HOST, self.port)
        if self.web is not None:
            log.info("dashboard: open http://%s:%d/ in a browser", HOST, self.port)

    def run(self, stop: threading.Event) -> None:
        """Serve one request at a time until stopped; close the socket on the way out (a run
        restarted by the supervisor binds again)."""
        if self._server is None:
            self.bind()
        server = self._server
        assert server is not None
        try:
            while not stop.is_set():
                server.handle_request()
        finally:
            server.server_close()
            self._server = None

    def command(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Publish the command a POST asks for; returns the answer document."""
        cmd = command_from_body(path, body, self._clock.now_ns())
        try:
            self._publish(cmd)
        except BusFullError:
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE,
                               "the event queue is full; try again") from None
        log.warning("operator command over HTTP: %s", event_to_dict(cmd))
        return {"accepted": type(cmd).__name__, "event": event_to_dict(cmd)}
