"""Loading the saved state from Redis into the store, at start."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import redis
from redis.exceptions import RedisError

from trader import codec
from trader.clock import Clock
from trader.errors import StorageUnavailableError
from trader.events import Event, StateRestored, StorageFailed
from trader.model.records import Balance, Market, Order, Position
from trader.store.memory import MemoryStore
from trader.store.redis.keys import (
    BALANCES,
    COLLECTIONS,
    COMPONENT,
    DAILY_LOSS,
    MARKETS,
    ORDERS,
    POSITIONS,
    PRICES,
    RISK,
    Keys,
)
from trader.store.redis.store import daily_loss_from_json, prices_from_json

log = logging.getLogger(__name__)


def restore(
    connect_fn: Callable[[], redis.Redis],
    keys: Keys,
    store: MemoryStore,
    clock: Clock,
    start_empty: bool,
    keep_saved: Callable[[], None],
) -> list[Event]:
    """Load the saved state into ``store`` (main thread, at start).

    When Redis cannot be read, the start ends with ``StorageUnavailableError`` (one line, exit
    1: systemd retries), because running on empty state would trade without the saved orders
    and positions. Only with ``start_empty`` (``storage.start_empty_if_unreachable``) does the
    process start empty: it logs it, returns a ``StorageFailed`` event, and calls
    ``keep_saved`` so the writer never deletes a saved record once Redis answers again."""
    try:
        client = connect_fn()
        with client.pipeline(transaction=False) as pipe:
            for collection in COLLECTIONS:
                pipe.hgetall(keys.hash(collection))
            pipe.hget(keys.hash(RISK), DAILY_LOSS)
            *hashes, loss_text = pipe.execute()
            raw = dict(zip(COLLECTIONS, hashes, strict=True))
        client.close()
    except RedisError as exc:
        if not start_empty:
            raise StorageUnavailableError(
                f"redis: cannot read the saved state at {keys.prefix}:* ({exc}); not starting "
                "on empty state (set storage.start_empty_if_unreachable: true to do so)"
            ) from None
        keep_saved()
        log.error(
            "redis: cannot restore the saved state (%s); starting on empty state "
            "(storage.start_empty_if_unreachable); saved records are kept, only this "
            "run's records are written over theirs once Redis is reachable",
            exc,
        )
        now = clock.now_ns()
        return [
            StorageFailed(
                ts_event=now,
                ts_recv=now,
                component=COMPONENT,
                error=f"restore: {type(exc).__name__}: {exc}",
            )
        ]
    bad = 0

    def decode(collection: str, fn: Callable[[str], Any]) -> list[Any]:
        nonlocal bad
        out = []
        for field_, text in raw[collection].items():
            try:
                out.append(fn(text))
            except codec.CodecError as exc:
                bad += 1
                log.warning("redis: %s %s unreadable, skipped: %s", collection, field_, exc)
        return out

    pairs = decode(PRICES, prices_from_json)
    orders = decode(ORDERS, lambda t: codec.from_json(Order, t))
    # Market rules and prices go straight in; the ledger (balances, orders, positions, the daily
    # loss) is dispatched as StateRestored, so the journal records what this run started from.
    store.restore(
        markets=decode(MARKETS, lambda t: codec.from_json(Market, t)),
        quotes=[q for q, _ in pairs if q is not None],
        trades=[t for _, t in pairs if t is not None],
    )
    day, day_start = -1, Decimal(0)
    if loss_text is not None:
        try:
            day, day_start = daily_loss_from_json(loss_text)
        except codec.CodecError as exc:
            bad += 1
            log.warning(
                "redis: %s unreadable, the daily loss counts afresh: %s", keys.hash(RISK), exc
            )
    now = clock.now_ns()
    restored = StateRestored(
        ts_event=now,
        ts_recv=now,
        source=f"redis {keys.prefix}",
        balances=tuple(decode(BALANCES, lambda t: codec.from_json(Balance, t))),
        orders=tuple(orders),
        positions=tuple(decode(POSITIONS, lambda t: codec.from_json(Position, t))),
        loss_day=day,
        loss_day_start=day_start,
    )
    log.info(
        "redis: restored %d markets, %d balances, %d orders (%d open), %d positions, %d prices "
        "from %s:*%s",
        len(raw[MARKETS]),
        len(raw[BALANCES]),
        len(orders),
        sum(o.is_open for o in orders),
        len(raw[POSITIONS]),
        len(pairs),
        keys.prefix,
        f" ({bad} unreadable records skipped)" if bad else "",
    )
    if not any(raw.values()) and loss_text is None:
        return []  # a first start: nothing saved yet
    return [restored]
