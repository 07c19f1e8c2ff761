"""The local HTTP endpoint: metrics, health, status and the operator commands.

Listens on 127.0.0.1 only (``metrics.port``; 0 turns it off). The ``metrics`` worker's thread
reads requests without blocking and a pool of ``WORKERS`` threads answers those that arrived
whole (``trader/httpserver.py``): slow or hostile clients cannot hold ``/health`` or the kill
switch. It reads only the metrics snapshots and thread-safe reads, and writes nothing: a command
is published on the bus as an event, like any producer's, and the main thread acts on it.

    GET  /metrics     Prometheus text
    GET  /health      JSON; 200, or 503 when the main loop is stuck or a feed is stale
    GET  /status      JSON: trading state, queue depth, events/s, balances in USD, open orders,
                      strategies
    POST /halt        body (optional) {"reason": "...", "cancel_orders": true} -> HaltTrading
    POST /resume      body (optional) {"reason": "...", "force": true}        -> ResumeTrading
    POST /cancel-all  body (optional) {"symbol": "BTC/USDT"}                  -> CancelAllOrders
    GET  /, /static/..., /api/dashboard   the read-only dashboard (``trader/web/routes.py``)

A command answers 202 with the published event. A POST must carry the token (``Authorization:
Bearer ...``; ``TRADER_API_TOKEN``, else the ``api-token`` file generated next to the journal,
mode 0600), compared in constant time, else 401. POSTs must say ``Content-Type:
application/json`` (even with no body) and every request's ``Host`` must be 127.0.0.1 or
localhost: a web page in a browser on this machine can then neither send a command (a
cross-site form cannot set that content type without a CORS preflight, which this server never
grants) nor reach the server through a DNS name rebound to 127.0.0.1.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from trader.clock import Clock
from trader.errors import BusFullError, ConfigError, OperationalError
from trader.events import (
    CancelAllOrders,
    Command,
    Event,
    HaltTrading,
    ResumeTrading,
    event_to_dict,
)
from trader.httpserver import BoundedHttpServer, Request, Response, error_response
from trader.metrics import Metrics
from trader.portowner import describe_port_in_use
from trader.web.routes import WebRoutes
from trader.workers import Worker

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024
WORKERS = 4  # threads answering requests that arrived whole
MAX_CONNECTIONS = 64  # open connections; a new one closes the oldest unfinished one
REQUEST_DEADLINE_S = 2.0  # for a whole request to arrive, and for its answer to be taken


class RequestError(Exception):
    """A bad request: the status and a one-line reason for the client."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def command_from_body(path: str, body: dict[str, Any], now_ns: int) -> Command:
    """Build the command a POST asks for; unknown keys and wrong types are errors."""
    by_path: dict[str, dict[str, tuple[type, Any]]] = {
        "/halt": {"reason": (str, "operator"), "cancel_orders": (bool, False)},
        "/resume": {"reason": (str, "operator"), "force": (bool, False)},
        "/cancel-all": {"symbol": (str, None)},
    }
    fields = by_path[path]
    unknown = set(body) - set(fields)
    if unknown:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"unknown keys {sorted(unknown)}; expected {sorted(fields)}"
        )
    kwargs = {}
    for key, (tp, default) in fields.items():
        value = body.get(key, default)
        if value is not None and not isinstance(value, tp):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{key} must be a {tp.__name__}")
        kwargs[key] = value
    cls = {"/halt": HaltTrading, "/resume": ResumeTrading, "/cancel-all": CancelAllOrders}[path]
    return cls(ts_event=now_ns, ts_recv=now_ns, **kwargs)


def load_token(configured: str | None, path: Path) -> str:
    """The API token: ``configured`` (``TRADER_API_TOKEN``), else the one in ``path``, else a
    new one written there with mode 0600 (``trader-ctl`` on this machine reads it there)."""
    if configured:
        return configured
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
            log.info("operator API token written to %s (mode 0600)", path)
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"operator API token file {path}: {exc}") from None
    if not token:
        raise ConfigError(f"operator API token file {path} is empty")
    return token


class _Routes:
    """Turns a request into an answer: the Host guard, the token, the endpoints."""

    GET = ("/metrics", "/health", "/status")
    POST = ("/halt", "/resume", "/cancel-all")

    def __init__(self, api: HttpApi) -> None:
        self.api = api

    def handle(self, req: Request) -> Response:
        """The answer to ``req``; a refused request is logged in one line."""
        path, _, query = req.path.partition("?")
        try:
            return self._route(req, path, query)
        except RequestError as exc:
            log.info(
                "http: %s %s from %s refused: %d %s",
                req.method,
                path,
                req.peer,
                exc.status.value,
                exc,
            )
            return error_response(exc.status, str(exc))

    def _route(self, req: Request, path: str, query: str) -> Response:
        self._check_host(req)
        api = self.api
        page = api.web.get(path, query) if api.web is not None and req.method == "GET" else None
        if page is not None:
            return Response(
                HTTPStatus.OK,
                page.body,
                page.content_type,
                "max-age=86400" if page.cache else "no-store",
            )
        if path not in self.GET + self.POST:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint {path}")
        allowed = "GET" if path in self.GET else "POST"
        if req.method != allowed:
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"use {allowed} for {path}")
        if path == "/metrics":
            return Response(
                HTTPStatus.OK,
                api.metrics.prometheus().encode(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        if path == "/health":
            ok, doc = api.metrics.health()
            return _json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, doc)
        if path == "/status":
            return _json(HTTPStatus.OK, api.metrics.status())
        self._check_token(req)
        body = _body(req)
        return _json(HTTPStatus.ACCEPTED, api.command(path, body, req.peer))

    @staticmethod
    def _check_host(req: Request) -> None:
        host = req.headers.get("Host")
        if host is None:
            return
        name = host.rsplit(":", 1)[0] if ":" in host else host
        if name not in ("127.0.0.1", "localhost"):
            raise RequestError(HTTPStatus.FORBIDDEN, f"host {host!r} not allowed")

    def _check_token(self, req: Request) -> None:
        given = req.headers.get("Authorization") or ""
        scheme, _, token = given.partition(" ")
        expected = self.api.token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise RequestError(
                HTTPStatus.UNAUTHORIZED,
                "send Authorization: Bearer <token> (TRADER_API_TOKEN, or the "
                "api-token file next to the journal)",
            )


def _body(req: Request) -> dict[str, Any]:
    ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise RequestError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json (the body may be empty)",
        )
    if not req.body.strip():
        return {}
    try:
        body = json.loads(req.body)
    except ValueError as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    return body


def _json(status: HTTPStatus, doc: Any) -> Response:
    return Response(status, (json.dumps(doc, default=str) + "\n").encode())


class HttpApi(Worker):
    """The endpoint as a worker thread; :meth:`bind` at start, before the workers run."""

    name = "metrics"

    def __init__(
        self,
        port: int,
        metrics: Metrics,
        publish: Callable[[Event], None],
        clock: Clock,
        web: WebRoutes | None = None,
        *,
        token: str | None = None,
        token_file: Path | None = None,
    ) -> None:
        self._port = port
        self.metrics = metrics
        self.web = web
        self._publish = publish
        self._clock = clock
        self._configured_token = token
        self._token_file = token_file
        self.token = token or ""
        self._server: BoundedHttpServer | None = None

    @property
    def port(self) -> int:
        """The port listened on (after :meth:`bind`)."""
        assert self._server is not None
        return self._server.port

    def bind(self) -> None:
        """Listen on 127.0.0.1 and load the token. The port in use is an ``OperationalError``
        naming the process that holds it when it can be found; an unreadable token file a
        ``ConfigError``."""
        if self._token_file is not None:
            self.token = load_token(self._configured_token, self._token_file)
        if not self.token:
            raise ConfigError("the operator API needs a token: set TRADER_API_TOKEN")
        try:
            self._server = BoundedHttpServer(
                HOST,
                self._port,
                _Routes(self).handle,
                workers=WORKERS,
                max_connections=MAX_CONNECTIONS,
                deadline_s=REQUEST_DEADLINE_S,
                max_body=MAX_BODY,
                name="http",
            )
        except OSError as exc:
            raise OperationalError(
                describe_port_in_use(HOST, self._port, exc.strerror or str(exc))
            ) from None
        log.info("metrics, health, status and commands on http://%s:%d", HOST, self.port)
        if self.web is not None:
            log.info("dashboard: open http://%s:%d/ in a browser", HOST, self.port)

    def run(self, stop: threading.Event) -> None:
        """Serve until stopped; close the socket on the way out (a run restarted by the
        supervisor binds again)."""
        if self._server is None:
            self.bind()
        server = self._server
        assert server is not None
        try:
            server.serve(stop)
        finally:
            server.close()
            self._server = None

    def command(self, path: str, body: dict[str, Any], peer: str = "") -> dict[str, Any]:
        """Publish the command a POST asks for; returns the answer document."""
        cmd = command_from_body(path, body, self._clock.now_ns())
        try:
            self._publish(cmd)
        except BusFullError:
            raise RequestError(
                HTTPStatus.SERVICE_UNAVAILABLE, "the event queue is full; try again"
            ) from None
        log.warning("operator command over HTTP from %s: %s", peer or "?", event_to_dict(cmd))
        return {"accepted": type(cmd).__name__, "event": event_to_dict(cmd)}
