"""Time units. Every timestamp in the system is integer nanoseconds since the epoch, UTC."""

from __future__ import annotations

NS = 1_000_000_000  # nanoseconds per second
NS_PER_MS = 1_000_000
DAY_NS = 86_400 * NS
