"""Redis key names, collection names and the connection settings of the Redis backend."""

from __future__ import annotations

import dataclasses

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

COMPONENT = "redis"
MARKETS, BALANCES, ORDERS, POSITIONS, PRICES = (
    "markets",
    "balances",
    "orders",
    "positions",
    "prices",
)
COLLECTIONS = (MARKETS, BALANCES, ORDERS, POSITIONS, PRICES)
RISK, DAILY_LOSS = "risk", "daily_loss"  # <prefix>:risk daily_loss -> {"day", "day_start"}
CONNECT_TIMEOUT_S = 0.5
SOCKET_TIMEOUT_S = 1.0


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
        url,
        password=password,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
