"""Capped exponential backoff with jitter: the one retry schedule of every loop that retries.

Attempt ``n`` (from 0) waits ``min(max_s, initial_s * 2**n)`` scaled by a random factor in
``[1 - jitter, 1)``: ``jitter=1`` is "full jitter" (anywhere up to the delay), the spread that
best keeps many clients of one server apart; ``jitter=0`` is a fixed schedule. ``reset()``
starts again from ``initial_s`` after a success. The random source is injected so tests can
pin it. Standard library only: every layer may use it.
"""

from __future__ import annotations

import random

MAX_DOUBLINGS = 60  # 2**60 times any sane initial delay is past every cap; avoids huge ints


class Backoff:
    """The delays before successive retries; see the module docstring."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        jitter: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial_s < 0 or max_s < initial_s:
            raise ValueError(f"backoff: need 0 <= initial_s <= max_s, got {initial_s}, {max_s}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"backoff: jitter must be within [0, 1], got {jitter}")
        self.initial_s = initial_s
        self.max_s = max_s
        self._jitter = jitter
        self._rng = rng or random.Random()
        self.attempt = 0  # attempts since the last reset

    def next_delay(self) -> float:
        """The delay before the next attempt (and count the attempt)."""
        base = min(self.max_s, self.initial_s * 2 ** min(self.attempt, MAX_DOUBLINGS))
        self.attempt += 1
        if not self._jitter:
            return base
        return base * (1.0 - self._jitter + self._jitter * self._rng.random())

    def reset(self) -> None:
        """Start again from ``initial_s`` (after a success)."""
        self.attempt = 0
