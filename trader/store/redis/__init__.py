"""The Redis backend (one module per job: ``keys``, ``outbox``, ``store``, ``restore``,
``writer``): the in-memory store, mirrored to Redis, and every event on a Redis Stream.

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
  loaded and before reconciliation. Redis unreachable then ends the start (exit 1) unless
  ``storage.start_empty_if_unreachable`` is set; a run started empty that way never deletes a
  saved record (no ``DEL`` at resync, no trimming), so it cannot replace the saved state.

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
  converge to the in-memory state (except after an empty start, see **Restart**).

If Redis goes away the writer publishes ``StorageFailed(component="redis")``, retries with
capped exponential backoff (full jitter), and the process keeps running on its in-memory state.
When Redis answers again it rewrites the hashes, appends what it buffered and publishes
``StorageRecovered``.
"""

from trader.store.redis.keys import Keys, connect
from trader.store.redis.outbox import Outbox
from trader.store.redis.restore import restore
from trader.store.redis.store import RedisStore
from trader.store.redis.writer import RedisWriter

__all__ = ["Keys", "Outbox", "RedisStore", "RedisWriter", "connect", "restore"]
