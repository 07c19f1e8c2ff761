"""The ``redis-writer`` thread: mirrors the store to Redis hashes and appends every event to the
stream (see the package docstring for what is guaranteed)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import redis
from redis.exceptions import RedisError

from trader.backoff import Backoff
from trader.clock import Clock
from trader.config import StorageConfig
from trader.errors import BusFullError
from trader.events import Event, StorageFailed, StorageRecovered, StreamGap, event_to_json
from trader.stats import Stats
from trader.store.redis.keys import COMPONENT, DAILY_LOSS, ORDERS, RISK, SOCKET_TIMEOUT_S, Keys
from trader.store.redis.outbox import Outbox
from trader.store.redis.store import RedisStore, daily_loss_to_json
from trader.store.state_file import DailyLossSaved
from trader.workers import Worker

log = logging.getLogger(__name__)

BATCH = 500  # stream entries per pipeline
TRIM_EVERY = 1_000  # order writes between trims of orders the memory store evicted
BACKOFF_INITIAL_S = 0.05


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
        daily_loss: DailyLossSaved = lambda: (-1, Decimal(0)),
    ) -> None:
        self._connect = connect_fn
        self._keys = keys
        self.outbox = outbox
        self._store = store
        self._publish = publish
        self._clock = clock
        self._stats = stats
        self._cfg = config
        self._daily_loss = daily_loss
        self._loss_written: tuple[int, Decimal] | None = None
        self.session = uuid.uuid4().hex[:12]
        self._client: redis.Redis | None = None
        self._synced = False
        self._down_since: float | None = None
        self._keep_saved = False  # see keep_saved_records()
        # full jitter: every instance of a fleet sharing one Redis retries at its own moment
        self._backoff = Backoff(BACKOFF_INITIAL_S, config.retry_max_s)
        self._order_writes = 0
        self.last_id: str | None = None  # the newest stream id acknowledged in this run
        self.acked = 0

    def keep_saved_records(self) -> None:
        """This run started on empty state because Redis was unreachable (the operator's
        ``storage.start_empty_if_unreachable``): never delete a saved record, only write this
        run's records over their own keys, so the saved state is not replaced by an empty one.
        Called at start, before the thread runs."""
        self._keep_saved = True

    def run(self, stop: threading.Event) -> None:
        """Flush every ``flush_interval_s``; on stop, one last flush, then report what is left."""
        while True:
            final = stop.is_set()
            ok = self._step(deadline=time.monotonic() + (SOCKET_TIMEOUT_S if final else 1.0))
            if final:
                left = len(self.outbox)
                if left:
                    log.error(
                        "redis: stopped with %d events not appended to the stream (Redis "
                        "unreachable); they were handled, only the stream copy is missing",
                        left,
                    )
                log.info(
                    "redis: %d events appended to %s this run, %d left out (buffer full)",
                    self.acked,
                    self._keys.stream,
                    self.outbox.dropped,
                )
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
        # the client decodes replies (decode_responses): ids and fields are str
        tail = cast("list[tuple[str, dict[str, str]]]", r.xrevrange(self._keys.stream, count=BATCH))
        if pending:
            ours = {f.get("seq") for _, f in tail}
            n = 0
            while n < len(pending) and f"{self.session}:{pending[n][0]}" in ours:
                n += 1
            if n:
                self._acked(n, tail[0][0] if tail else None)
        if self.last_id is not None and (not tail or _id(tail[0][0]) < _id(self.last_id)):
            self._stats.incr("redis_lost_acknowledged")
            log.error(
                "redis: the stream ends at %s but %s was acknowledged: Redis lost entries "
                "(restarted without persistence? use appendonly yes)",
                tail[0][0] if tail else "nothing",
                self.last_id,
            )
        self.outbox.take_dirty()  # the full rewrite below covers them; later marks are kept
        snapshot = self._store.snapshot()
        with r.pipeline(transaction=True) as pipe:
            for collection, mapping in snapshot.items():
                if not self._keep_saved:
                    pipe.delete(self._keys.hash(collection))
                if mapping:
                    # redis-py types the mapping's key invariantly (bytes | str | ...); str is one
                    pipe.hset(self._keys.hash(collection), mapping=mapping)  # type: ignore[arg-type]
            loss = self._daily_loss()
            pipe.hset(self._keys.hash(RISK), DAILY_LOSS, daily_loss_to_json(*loss))
            pipe.execute()
        self._loss_written = loss
        self._synced = True
        self._backoff.reset()
        if self._down_since is not None:
            log.warning(
                "redis: reachable again after %.1fs; hashes rewritten, appending %d "
                "buffered events",
                time.monotonic() - self._down_since,
                len(self.outbox),
            )
            self._down_since = None
            self._emit(StorageRecovered, component=COMPONENT)

    def _flush(self) -> int:
        """Send one batch of stream entries and the changed hash fields; return the entries
        sent."""
        entries = self.outbox.take(BATCH)
        dirty = self.outbox.take_dirty()
        loss = self._daily_loss()
        if loss != self._loss_written:
            self._write_daily_loss(loss)
        if not entries and not dirty:
            return 0
        stream = self._keys.stream
        try:
            with self._redis().pipeline(transaction=False) as pipe:
                for seq, ev in entries:
                    pipe.xadd(
                        stream,
                        {
                            "seq": f"{self.session}:{seq}",
                            "type": type(ev).__name__,
                            "event": event_to_json(ev),
                        },
                        maxlen=self._cfg.stream_maxlen,
                        approximate=True,
                    )
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
            log.error(
                "redis: %d events (ts %d..%d) were left out of %s while the buffer was "
                "full; a StreamGap entry marks the place",
                ev.dropped,
                ev.first_ts,
                ev.last_ts,
                stream,
            )
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

    def _write_daily_loss(self, loss: tuple[int, Decimal]) -> None:
        """The daily loss count, saved beside the ledger (it changes once a day or at a
        resume)."""
        self._redis().hset(self._keys.hash(RISK), DAILY_LOSS, daily_loss_to_json(*loss))
        self._loss_written = loss

    def _trim_orders(self) -> None:
        """Remove the orders the memory store has evicted (it keeps them bounded)."""
        if self._keep_saved:
            return
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
            log.error(
                "redis: %s: %s; running on in-memory state, buffering events (%d now), retrying",
                type(exc).__name__,
                exc,
                len(self.outbox),
            )
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
