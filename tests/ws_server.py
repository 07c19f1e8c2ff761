"""A local websocket exchange double: a ``websockets`` asyncio server on 127.0.0.1 in a
background thread, scripted by the test. It answers subscriptions and auth the way Binance and
Bybit do (checking their HMAC signatures), records everything it receives, and lets the test
send frames, close connections or stay silent."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

API_KEY = "test-key"
API_SECRET = "test-secret"


def _hmac(payload: str) -> str:
    return hmac.new(API_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


def exchange_reply(msg: dict[str, Any]) -> list[Any]:
    """What Binance or Bybit answer to a request (signatures checked; a bad one is refused)."""
    method, op = msg.get("method"), msg.get("op")
    if method == "SUBSCRIBE":
        return [{"result": None, "id": msg["id"]}]
    if method == "userDataStream.subscribe.signature":
        params = dict(msg["params"])
        signature = params.pop("signature")
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        if params["apiKey"] != API_KEY or signature != _hmac(payload):
            return [
                {
                    "id": msg["id"],
                    "status": 400,
                    "error": {"code": -1022, "msg": "Signature for this request is not valid."},
                }
            ]
        return [{"id": msg["id"], "status": 200, "result": {"subscriptionId": 0}}]
    if op == "auth":
        key, expires, signature = msg["args"]
        ok = key == API_KEY and signature == _hmac(f"GET/realtime{expires}")
        return [
            {"success": ok, "ret_msg": "" if ok else "Params Error", "op": "auth", "conn_id": "c1"}
        ]
    if op == "subscribe":
        return [{"success": True, "ret_msg": "", "op": "subscribe", "conn_id": "c1"}]
    if op == "ping":
        return [{"success": True, "ret_msg": "pong", "conn_id": "c1", "op": "ping"}]
    return []


class FakeExchange:
    """The server. Connections are numbered from 0 in the order they open."""

    def __init__(
        self,
        reply: Callable[[dict[str, Any]], list[Any]] = exchange_reply,
        ping_interval: float | None = None,
    ) -> None:
        self._reply = reply
        self._ping_interval = ping_interval
        self._lock = threading.Lock()
        self.received: list[tuple[int, dict[str, Any]]] = []  # (connection, message)
        self.conns: list[ServerConnection] = []
        self.closed: set[int] = set()
        self.open_at_subscribe: list[int] = []  # open connections when each subscription came
        self.refusing = False  # True: every new connection is closed at once (an outage)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-exchange", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL, as ``exchange.urls.ws`` takes it."""
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> FakeExchange:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set_result, None)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stopping: asyncio.Future[None] = self._loop.create_future()
        async with serve(
            self._handler, "127.0.0.1", 0, ping_interval=self._ping_interval, ping_timeout=None
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stopping
            server.close(close_connections=True)

    async def _handler(self, ws: ServerConnection) -> None:
        with self._lock:
            n = len(self.conns)
            self.conns.append(ws)
        if self.refusing:
            with self._lock:
                self.closed.add(n)
            await ws.close(1013, "try again later")
            return
        try:
            async for text in ws:
                msg = json.loads(text)
                with self._lock:
                    self.received.append((n, msg))
                    if msg.get("method", msg.get("op", "")).startswith(
                        ("SUBSCRIBE", "userData", "subscribe")
                    ):
                        self.open_at_subscribe.append(len(self.open_connections()))
                for answer in self._reply(msg):
                    await ws.send(json.dumps(answer))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self.closed.add(n)

    # ------------------------------------------------------------------ test side

    def open_connections(self) -> list[int]:
        """Numbers of the connections still open."""
        return [i for i in range(len(self.conns)) if i not in self.closed]

    def messages(self, conn: int | None = None, key: str = "") -> list[dict[str, Any]]:
        """Messages received (on one connection; with ``method`` or ``op`` equal to ``key``)."""
        with self._lock:
            return [
                m
                for n, m in self.received
                if (conn is None or n == conn)
                and (not key or key in (m.get("method"), m.get("op")))
            ]

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    def send(self, message: Any, conn: int = -1, text: bool | None = None) -> None:
        """Send a frame on one connection (the newest by default): a dict as JSON, str or bytes
        as they are (``text=True`` sends bytes as a text frame, unchecked)."""
        data = json.dumps(message) if isinstance(message, dict) else message
        self._call(self.conns[conn].send(data, text=text))

    def send_many(
        self, frames: Iterable[tuple[int, Any]], rate: float = 0.0, timeout: float = 30.0
    ) -> None:
        """Send ``(connection, message)`` pairs in order from one coroutine (fast: no per-frame
        hand-off between threads), paced at ``rate`` frames per second (0: as fast as the
        server can)."""
        items = [(n, json.dumps(m) if isinstance(m, dict) else m) for n, m in frames]

        async def send_all() -> None:
            t0 = time.perf_counter()
            for i, (n, data) in enumerate(items):
                if rate:
                    delay = t0 + i / rate - time.perf_counter()
                    if delay > 0.001:
                        await asyncio.sleep(delay)
                await self.conns[n].send(data)

        asyncio.run_coroutine_threadsafe(send_all(), self._loop).result(timeout)

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send the same frame on every open connection."""
        data = json.dumps(message)

        async def send_all() -> None:
            for i in self.open_connections():
                try:
                    await self.conns[i].send(data)
                except ConnectionClosed:
                    pass

        self._call(send_all())

    def close(self, conn: int = -1, code: int = 1000, reason: str = "") -> None:
        """Close a connection with a close frame."""
        self._call(self.conns[conn].close(code, reason))


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``predicate`` with short ``Event.wait`` steps; return its first truthy value."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        tick.wait(0.005)


@pytest.fixture
def ws() -> Iterator[FakeExchange]:
    """The websocket double, started (market streams and the user data stream on one port),
    stopped after the test."""
    fake = FakeExchange().start()
    yield fake
    fake.stop()
