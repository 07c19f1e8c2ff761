"""The Redis backend: the in-memory store, mirrored to Redis, and every event on a Redis Stream.

Design
------
The :class:`RedisStore` *is* a :class:`~trader.store.memory.MemoryStore` (same handlers, same
reads, same speed for strategies); each write handler also marks the key it changed. A
dedicated ``redis-writer`` thread (:class:`RedisWriter`) does all the network I/O, so the main
thread never waits on Redis:

- **State**: one hash per collection, ``<prefix>:markets | balances | orders | positions |
  prices``, field = symbol, asset or client id, value = the record as JSON (``prices`` holds
  ``{"quote": QuoteTick, "trade": TradeTick}``; an order carries the fills applied to it, so a
  fill delivered again after a restart is not applied twice). The writer reads the *current*
  record from memory for each marked key, so a burst of quotes costs one ``HSET`` per symbol per
  flush.
- **Events**: every dispatched event is appended to the capped stream ``<prefix>:events``
  (``XADD ... MAXLEN ~ stream_maxlen``) with the fields ``seq`` (``<session>:<n>``, counting up
  from 1 in each run), ``type`` and ``event`` (the event's JSON,
  :func:`trader.events.event_to_json`). Other services follow it with ``XREAD BLOCK``
  (``scripts/redis_consumer.py``). One writer per stream: give each instance its own
  ``storage.key_prefix``.
- **Restart**: :func:`restore` reads the hashes into memory at start, before the markets are
  loaded and before reconciliation.

Acknowledged, and what is guaranteed
------------------------------------
An event is *acknowledged* once Redis has confirmed it is in the stream: its ``XADD`` returned
an id, or, when a connection broke in the middle of a batch (so the replies were lost), the
entry was found in the stream by its ``seq`` on reconnection. Until then it stays in the
:class:`Outbox`, in order, and is sent again; the ``seq`` check means a retry never appends an
entry twice.

- Nothing acknowledged is lost *by this process*: an entry leaves the outbox only when
  acknowledged. Whether Redis keeps it through a Redis crash is Redis's persistence: with
  ``appendonly yes`` and ``appendfsync always`` an acknowledged entry survives ``kill -9``; with
  the default ``everysec`` up to a second of entries can be lost if Redis itself crashes. On
  reconnection the writer checks that the stream still reaches the last id it acknowledged and
  logs an error (``redis_lost_acknowledged``) when it does not.
- Nothing buffered is dropped silently: while Redis is unreachable the outbox keeps up to
  ``storage.buffer_max`` events. When it is full, *newer* events are left out of the stream (the
  outbox keeps the oldest, contiguous run), each counted in ``redis_stream_dropped``; the first
  is logged at ERROR, and once there is room a :class:`~trader.events.StreamGap` entry is
  written where they would have been, with their count and time range. The events themselves
  are still dispatched (and journaled) as usual; only the stream copy is missing.
- The hashes are rewritten in full (each in a ``MULTI``) on every (re)connection, so they always
  converge to the in-memory state.

If Redis goes away the writer publishes ``StorageFailed(component="redis")``, retries with
capped exponential backoff (full jitter), and the process keeps running on its in-memory state.
When Redis answers again it rewrites the hashes, appends what it buffered and publishes
``StorageRecovered``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import typing
import uuid
from collections import deque
from decimal import Decimal
from enum import StrEnum
from types import NoneType, UnionType
from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from trader.backoff import Backoff
from trader.clock import Clock
from trader.config import StorageConfig, StoreConfig
from trader.errors import BusFullError
from trader.events import (
    BalanceUpdate,
    Event,
    MarketUpdated,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    QuoteTick,
    StorageFailed,
    StorageRecovered,
    StreamGap,
    TradeTick,
    event_from_dict,
    event_to_dict,
    event_to_json,
)
from trader.stats import Stats
from trader.store.memory import MemoryStore
from trader.store.models import Balance, Market, Order, Position
from trader.workers import Worker

log = logging.getLogger(__name__)

COMPONENT = "redis"
MARKETS, BALANCES, ORDERS, POSITIONS, PRICES = (
    "markets", "balances", "orders", "positions", "prices"
)
COLLECTIONS = (MARKETS, BALANCES, ORDERS, POSITIONS, PRICES)
BATCH = 500  # stream entries per pipeline
TRIM_EVERY = 1_000  # order writes between trims of orders the memory store evicted
CONNECT_TIMEOUT_S = 0.5
SOCKET_TIMEOUT_S = 1.0
BACKOFF_INITIAL_S = 0.05


@dataclasses.dataclass(frozen=True)
class Keys:
    """The Redis key names of one instance."""

    prefix: str

    def hash(self, collection: str) -> str:
        """The hash of one collection."""
        return f"{self.prefix}:{collection}"

    @property
    def stream(self) -> str:
        """The event stream."""
        return f"{self.prefix}:events"


def connect(url: str, password: str | None) -> redis.Redis:
    """A client that never retries by itself (the writer owns retries and knows what a retry
    may duplicate) and never blocks long."""
    return redis.Redis.from_url(
        url, password=password, decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0), health_check_interval=0,
    )


# ------------------------------------------------------------------------------- records


def record_to_json(record: Any) -> str:
    """A store record (Market, Balance, Order with its fills, Position) as one JSON object;
    decimals as strings, so every digit is kept."""
    return json.dumps(_plain(record), separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, (Decimal, StrEnum)):
        return str(value)
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def record_from_json(cls: type, text: str) -> Any:
    """Inverse of :func:`record_to_json`; raises ``ValueError``/``TypeError``/``KeyError`` on
    bad input."""
    return _typed(cls, json.loads(text))


_HINTS: dict[type, dict[str, Any]] = {}


def _typed(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    if typing.get_origin(tp) in (typing.Union, UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not NoneType]
        return _typed(inner, value)
    if typing.get_origin(tp) is tuple:
        return tuple(_typed(typing.get_args(tp)[0], v) for v in value)
    if tp is Decimal:
        return Decimal(value)
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return tp(value)
    if dataclasses.is_dataclass(tp):
        hints = _HINTS.get(tp) or _HINTS.setdefault(tp, typing.get_type_hints(tp))
        return tp(**{name: _typed(hints[name], v) for name, v in value.items()})
    return value


def prices_to_json(quote: QuoteTick | None, trade: TradeTick | None) -> str:
    """One ``prices`` hash value: the latest quote and trade of a symbol."""
    return json.dumps({
        "quote": event_to_dict(quote) if quote else None,
        "trade": event_to_dict(trade) if trade else None,
    }, separators=(",", ":"))


# ------------------------------------------------------------------------------- outbox


class Outbox:
    """Hand-off from the main thread to the writer: a bounded run of events for the stream and
    the set of state keys changed since the last flush.

    The main thread only appends, without a lock (``deque.append`` is atomic; the sequence
    number and the gap are the main thread's alone). The writer moves entries into its
    in-flight list with :meth:`take`, sends them, and drops them with :meth:`ack` only once
    acknowledged. Bound: queued plus in flight stays below ``maxlen`` (plus one gap marker).
    """

    def __init__(self, maxlen: int, stats: Stats, stream: str) -> None:
        self._queue: deque[tuple[int, Event]] = deque()
        self._inflight: list[tuple[int, Event]] = []  # the writer's
        self._inflight_n = 0  # published by the writer, counted before an entry moves
        self._dirty: set[tuple[str, str]] = set()
        self._dirty_lock = threading.Lock()
        self._maxlen = maxlen
        self._stats = stats
        self._stream = stream
        self._seq = 0
        self._gap: list[int] | None = None  # [dropped, first_ts, last_ts] of the current run
        self.dropped = 0

    def append(self, ev: Event) -> None:
        """Queue ``ev`` for the stream (main thread); when full, count it into the pending gap
        instead."""
        if self._gap is None and len(self._queue) + self._inflight_n < self._maxlen:
            self._seq += 1
            self._queue.append((self._seq, ev))
            return
        if len(self._queue) + self._inflight_n < self._maxlen:  # room again: close the gap
            n, t0, t1 = self._gap  # type: ignore[misc]
            self._gap = None
            self._seq += 1
            self._queue.append((self._seq, StreamGap(
                ts_event=ev.ts_recv, ts_recv=ev.ts_recv, stream=self._stream, dropped=n,
                first_ts=t0, last_ts=t1)))
            self._seq += 1
            self._queue.append((self._seq, ev))
            return
        self.dropped += 1
        self._stats.incr("redis_stream_dropped")
        if self._gap is not None:
            self._gap[0] += 1
            self._gap[2] = ev.ts_recv
            return
        self._gap = [1, ev.ts_recv, ev.ts_recv]
        log.error(
            "redis: %d events buffered while Redis is unreachable (storage.buffer_max); newer "
            "events are left out of the stream until it drains: counted, and marked there by "
            "a StreamGap entry", self._maxlen,
        )

    def mark(self, collection: str, key: str) -> None:
        """Note that a state record changed (main thread, after changing it)."""
        # Already marked: the writer reads memory only after taking the set, so it will see
        # this change too. The fast path keeps a burst of quotes to one set lookup each.
        if (collection, key) in self._dirty:
            return
        with self._dirty_lock:
            self._dirty.add((collection, key))

    def take(self, n: int) -> list[tuple[int, Event]]:
        """The oldest ``n`` unacknowledged entries (writer), kept until :meth:`ack`."""
        inflight, queue = self._inflight, self._queue
        while len(inflight) < n and queue:
            self._inflight_n += 1
            inflight.append(queue.popleft())
        self._inflight_n = len(inflight)
        return list(inflight)

    def ack(self, n: int) -> None:
        """Drop the oldest ``n`` entries, acknowledged by Redis (writer)."""
        del self._inflight[:n]
        self._inflight_n = len(self._inflight)

    def take_dirty(self) -> set[tuple[str, str]]:
        """The changed keys since the last call (writer)."""
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        return dirty

    def __len__(self) -> int:
        """Entries not yet acknowledged."""
        return self._inflight_n + len(self._queue)


# ------------------------------------------------------------------------------- store


class RedisStore(MemoryStore):
    """The memory store whose writes are mirrored to Redis by the writer thread.

    Reads are the memory store's. Each write handler marks what it changed *after* changing it,
    so the writer, reading memory later, never writes an older value and forgets the newer.
    """

    def __init__(self, config: StoreConfig, outbox: Outbox, own_prefix: str = "") -> None:
        super().__init__(config, own_prefix)
        self._outbox = outbox

    def on_event(self, ev: Event) -> None:
        """Observer: every dispatched event goes to the stream."""
        self._outbox.append(ev)

    def on_market(self, ev: MarketUpdated) -> None:  # noqa: D102 - see MemoryStore
        super().on_market(ev)
        self._outbox.mark(MARKETS, ev.symbol)

    def on_quote(self, ev: QuoteTick) -> None:  # noqa: D102
        super().on_quote(ev)
        self._outbox.mark(PRICES, ev.symbol)

    def on_trade(self, ev: TradeTick) -> None:  # noqa: D102
        super().on_trade(ev)
        self._outbox.mark(PRICES, ev.symbol)

    def on_balance(self, ev: BalanceUpdate) -> None:  # noqa: D102
        super().on_balance(ev)
        self._outbox.mark(BALANCES, ev.asset)

    def on_order_submitted(self, ev: OrderSubmitted) -> None:  # noqa: D102
        super().on_order_submitted(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_accepted(self, ev: OrderAccepted) -> None:  # noqa: D102
        super().on_order_accepted(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_rejected(self, ev: OrderRejected) -> None:  # noqa: D102
        super().on_order_rejected(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_canceled(self, ev: OrderCanceled) -> None:  # noqa: D102
        super().on_order_canceled(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_unknown(self, ev: OrderStatusUnknown) -> None:  # noqa: D102
        super().on_order_unknown(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    def on_order_filled(self, ev: OrderFilled) -> None:  # noqa: D102
        super().on_order_filled(ev)
        self._outbox.mark(ORDERS, ev.client_id)
        self._outbox.mark(POSITIONS, ev.symbol)

    def on_order_report(self, ev: OrderStatusReport) -> None:  # noqa: D102
        super().on_order_report(ev)
        self._outbox.mark(ORDERS, ev.client_id)

    # Serialised state, read by the writer thread -----------------------------------------

    def value(self, collection: str, key: str) -> str | None:
        """One hash field's value from memory; None when the record is gone."""
        if collection == PRICES:
            q, t = self.quote(key), self.last_trade(key)
            return prices_to_json(q, t) if q or t else None
        record: Any
        if collection == MARKETS:
            record = self.market(key)
        elif collection == BALANCES:
            record = self.balance(key)
        elif collection == ORDERS:
            record = self.order(key)
        else:
            record = self.positions().get(key)
        return None if record is None else record_to_json(record)

    def snapshot(self) -> dict[str, dict[str, str]]:
        """Every collection as hash fields, for a full rewrite."""
        quotes, trades = self.quotes(), self.last_trades()
        return {
            MARKETS: {k: record_to_json(v) for k, v in self.markets().items()},
            BALANCES: {k: record_to_json(v) for k, v in self.balances().balances.items()},
            ORDERS: {o.client_id: record_to_json(o) for o in self.orders()},
            POSITIONS: {k: record_to_json(v) for k, v in self.positions().items()},
            PRICES: {s: prices_to_json(quotes.get(s), trades.get(s))
                     for s in set(quotes) | set(trades)},
        }


# ------------------------------------------------------------------------------- restore


def restore(connect_fn: Callable[[], redis.Redis], keys: Keys, store: MemoryStore,
            clock: Clock) -> list[Event]:
    """Load the saved state into ``store`` (main thread, at start). When Redis cannot be read,
    log it and return a ``StorageFailed`` event: the process starts on empty state, and the
    writer overwrites Redis with the new state once it is reachable."""
    try:
        client = connect_fn()
        with client.pipeline(transaction=False) as pipe:
            for collection in COLLECTIONS:
                pipe.hgetall(keys.hash(collection))
            raw = dict(zip(COLLECTIONS, pipe.execute()))
        client.close()
    except RedisError as exc:
        log.error("redis: cannot restore the saved state (%s); starting on empty state, which "
                  "replaces the saved state once Redis is reachable", exc)
        now = clock.now_ns()
        return [StorageFailed(ts_event=now, ts_recv=now, component=COMPONENT,
                              error=f"restore: {type(exc).__name__}: {exc}")]
    bad = 0

    def decode(collection: str, fn: Callable[[str], Any]) -> list[Any]:
        nonlocal bad
        out = []
        for field_, text in raw[collection].items():
            try:
                out.append(fn(text))
            except (ValueError, TypeError, KeyError) as exc:
                bad += 1
                log.warning("redis: %s %s unreadable, skipped: %s", collection, field_, exc)
        return out

    def prices(text: str) -> tuple[Event | None, Event | None]:
        data = json.loads(text)
        return tuple(event_from_dict(data[k]) if data.get(k) else None  # type: ignore[return-value]
                     for k in ("quote", "trade"))

    pairs = decode(PRICES, prices)
    orders = decode(ORDERS, lambda t: record_from_json(Order, t))
    store.restore(
        markets=decode(MARKETS, lambda t: record_from_json(Market, t)),
        balances=decode(BALANCES, lambda t: record_from_json(Balance, t)),
        orders=orders,
        positions=decode(POSITIONS, lambda t: record_from_json(Position, t)),
        quotes=[q for q, _ in pairs if isinstance(q, QuoteTick)],
        trades=[t for _, t in pairs if isinstance(t, TradeTick)],
    )
    log.info(
        "redis: restored %d markets, %d balances, %d orders (%d open), %d positions, %d prices "
        "from %s:*%s", len(raw[MARKETS]), len(raw[BALANCES]), len(orders),
        sum(o.is_open for o in orders), len(raw[POSITIONS]), len(pairs), keys.prefix,
        f" ({bad} unreadable records skipped)" if bad else "",
    )
    return []


# ------------------------------------------------------------------------------- writer


class RedisWriter(Worker):
    """The thread that mirrors the store to Redis hashes and appends events to the stream."""

    name = "redis-writer"

    def __init__(
        self,
        connect_fn: Callable[[], redis.Redis],
        keys: Keys,
        outbox: Outbox,
        store: RedisStore,
        publish: Callable[[Event], None],
        clock: Clock,
        stats: Stats,
        config: StorageConfig,
    ) -> None:
        self._connect = connect_fn
        self._keys = keys
        self.outbox = outbox
        self._store = store
        self._publish = publish
        self._clock = clock
        self._stats = stats
        self._cfg = config
        self.session = uuid.uuid4().hex[:12]
        self._client: redis.Redis | None = None
        self._synced = False
        self._down_since: float | None = None
        # full jitter: every instance of a fleet sharing one Redis retries at its own moment
        self._backoff = Backoff(BACKOFF_INITIAL_S, config.retry_max_s)
        self._order_writes = 0
        self.last_id: str | None = None  # the newest stream id acknowledged in this run
        self.acked = 0

    def run(self, stop: threading.Event) -> None:
        """Flush every ``flush_interval_s``; on stop, one last flush, then report what is left."""
        while True:
            final = stop.is_set()
            ok = self._step(deadline=time.monotonic() + (SOCKET_TIMEOUT_S if final else 1.0))
            if final:
                left = len(self.outbox)
                if left:
                    log.error("redis: stopped with %d events not appended to the stream (Redis "
                              "unreachable); they were handled, only the stream copy is missing",
                              left)
                log.info("redis: %d events appended to %s this run, %d left out (buffer full)",
                         self.acked, self._keys.stream, self.outbox.dropped)
                if self._client is not None:
                    self._client.close()
                return
            stop.wait(self._cfg.flush_interval_s if ok else self._backoff.next_delay())

    def _step(self, deadline: float) -> bool:
        try:
            if not self._synced:
                self._resync()
            while self._flush() == BATCH and time.monotonic() < deadline:
                pass
            return True
        except RedisError as exc:
            self._failed(exc)
            return False

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _resync(self) -> None:
        """After (re)connecting: settle the batch whose replies were lost, check the stream still
        holds what we acknowledged, rewrite every hash."""
        r = self._redis()
        pending = self.outbox.take(BATCH)
        tail = r.xrevrange(self._keys.stream, count=BATCH)
        if pending:
            ours = {f.get("seq") for _, f in tail}
            n = 0
            while n < len(pending) and f"{self.session}:{pending[n][0]}" in ours:
                n += 1
            if n:
                self._acked(n, tail[0][0] if tail else None)
        if self.last_id is not None and (not tail or _id(tail[0][0]) < _id(self.last_id)):
            self._stats.incr("redis_lost_acknowledged")
            log.error("redis: the stream ends at %s but %s was acknowledged: Redis lost entries "
                      "(restarted without persistence? use appendonly yes)",
                      tail[0][0] if tail else "nothing", self.last_id)
        self.outbox.take_dirty()  # the full rewrite below covers them; later marks are kept
        snapshot = self._store.snapshot()
        with r.pipeline(transaction=True) as pipe:
            for collection, mapping in snapshot.items():
                pipe.delete(self._keys.hash(collection))
                if mapping:
                    pipe.hset(self._keys.hash(collection), mapping=mapping)
            pipe.execute()
        self._synced = True
        self._backoff.reset()
        if self._down_since is not None:
            log.warning("redis: reachable again after %.1fs; hashes rewritten, appending %d "
                        "buffered events", time.monotonic() - self._down_since, len(self.outbox))
            self._down_since = None
            self._emit(StorageRecovered, component=COMPONENT)

    def _flush(self) -> int:
        """Send one batch of stream entries and the changed hash fields; return the entries
        sent."""
        entries = self.outbox.take(BATCH)
        dirty = self.outbox.take_dirty()
        if not entries and not dirty:
            return 0
        stream = self._keys.stream
        try:
            with self._redis().pipeline(transaction=False) as pipe:
                for seq, ev in entries:
                    pipe.xadd(stream, {"seq": f"{self.session}:{seq}", "type": type(ev).__name__,
                                       "event": event_to_json(ev)},
                              maxlen=self._cfg.stream_maxlen, approximate=True)
                for collection, key in dirty:
                    value = self._store.value(collection, key)
                    if value is None:
                        pipe.hdel(self._keys.hash(collection), key)
                    else:
                        pipe.hset(self._keys.hash(collection), key, value)
                results = pipe.execute(raise_on_error=False)
        except RedisError:
            for collection, key in dirty:  # not written: keep them for the next flush
                self.outbox.mark(collection, key)
            raise
        n = 0
        while n < len(entries) and not isinstance(results[n], Exception):
            n += 1
        if n:
            self._acked(n, results[n - 1])
        failed = next((r for r in results if isinstance(r, Exception)), None)
        if failed is not None:
            raise failed  # a refused write (out of memory, wrong type): retried after backoff
        for ev in (e for _, e in entries[:n] if isinstance(e, StreamGap)):
            log.error("redis: %d events (ts %d..%d) were left out of %s while the buffer was "
                      "full; a StreamGap entry marks the place", ev.dropped, ev.first_ts,
                      ev.last_ts, stream)
        self._order_writes += sum(c == ORDERS for c, _ in dirty)
        if self._order_writes >= TRIM_EVERY:
            self._order_writes = 0
            self._trim_orders()
        return len(entries)

    def _acked(self, n: int, last_id: str | None) -> None:
        self.outbox.ack(n)
        self.acked += n
        self._stats.incr("redis_acked", n)
        if last_id is not None:
            self.last_id = last_id

    def _trim_orders(self) -> None:
        """Remove the orders the memory store has evicted (it keeps them bounded)."""
        key = self._keys.hash(ORDERS)
        known = {o.client_id for o in self._store.orders()}
        stale = [f for f in self._redis().hkeys(key) if f not in known]
        if stale:
            self._redis().hdel(key, *stale)

    def _failed(self, exc: RedisError) -> None:
        self._synced = False
        if self._client is not None:
            self._client.connection_pool.disconnect()
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._stats.incr("redis_failures")
            log.error("redis: %s: %s; running on in-memory state, buffering events (%d now), "
                      "retrying", type(exc).__name__, exc, len(self.outbox))
            self._emit(StorageFailed, component=COMPONENT, error=f"{type(exc).__name__}: {exc}")

    def _emit(self, cls: type[Event], **fields: Any) -> None:
        now = self._clock.now_ns()
        try:
            self._publish(cls(ts_event=now, ts_recv=now, **fields))
        except BusFullError:
            pass  # logged as critical by the bus


def _id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)

