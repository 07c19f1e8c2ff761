"""The storage choice, made once for the app (:class:`~trader.app.App`): the store backend
(memory, saved to the state file, or Redis), the workers that persist it, and how the saved state
is restored at start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trader.clock import Clock
from trader.config import Config, StorageBackend, state_file_path
from trader.engine import Handler
from trader.events import Event
from trader.stats import Stats
from trader.store.memory import MemoryStore
from trader.store.state_file import DailyLossSaved, StateFileWriter, read_state
from trader.workers import Worker


@dataclass
class Storage:
    """What the storage choice decides: the store, the workers that persist it, observers that
    see every dispatched event, and how saved state is restored at start."""

    store: MemoryStore
    workers: list[Worker] = field(default_factory=list)
    observers: list[Handler] = field(default_factory=list)
    restore: Callable[[], list[Event]] = lambda: []


def build_storage(
    cfg: Config,
    own_prefix: str,
    publish: Callable[[Event], None],
    clock: Clock,
    stats: Stats,
    daily_loss: DailyLossSaved,
    persist: bool = True,
) -> Storage:
    """Choose the store backend once, here; nothing else asks which it is. The memory backend
    saves its ledger to the state file (unless ``persist`` is off: a replay or a backtest)."""
    if cfg.storage.backend is StorageBackend.MEMORY:
        store = MemoryStore(cfg.store, own_prefix=own_prefix)
        if not persist:
            return Storage(store)
        path = state_file_path(cfg)
        saver = StateFileWriter(
            path, store, daily_loss, clock, publish, cfg.storage.flush_interval_s
        )
        return Storage(store, [saver], [], lambda: read_state(path, clock))
    from trader.store import redis as rs  # redis-py is an optional extra

    sc = cfg.storage
    keys = rs.Keys(sc.key_prefix)
    outbox = rs.Outbox(sc.buffer_max, stats, keys.stream)
    store = rs.RedisStore(cfg.store, outbox, own_prefix=own_prefix)

    def connect() -> Any:
        return rs.connect(sc.redis_url, cfg.secrets.redis_password)

    writer = rs.RedisWriter(connect, keys, outbox, store, publish, clock, stats, sc, daily_loss)
    return Storage(
        store,
        [writer],
        [store.on_event],
        lambda: rs.restore(
            connect, keys, store, clock, sc.start_empty_if_unreachable, writer.keep_saved_records
        ),
    )
