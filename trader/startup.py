"""Start-up requests that wait instead of dying: a rate limit, a 5xx or a network error while
the start loads markets or balances is retried, one log line per failure, until
``exchange.start_deadline_s`` has passed since the start began.

- A rate limit (429/418) waits the exchange's ``Retry-After`` (the gateway pauses every REST
  call for that long, so nothing is sent inside the window); any other temporary failure waits
  the one :class:`~trader.backoff.Backoff`.
- Bad keys (``AuthenticationError``), a configuration the exchange refutes (``ConfigError``)
  and every other exchange error end the start at once: waiting cannot mend them.
- The wait is ``stop.wait``: Ctrl-C or SIGTERM ends it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from trader.backoff import Backoff
from trader.errors import RateLimitedError, TemporaryError

log = logging.getLogger("trader")

T = TypeVar("T")
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0


class StartRetry:
    """Retries the start's requests until one shared deadline (see the module docstring)."""

    def __init__(
        self,
        deadline_s: float,
        stop: threading.Event,
        monotonic: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
    ) -> None:
        self._monotonic = monotonic
        self._began = monotonic()
        self._deadline_s = deadline_s
        self._stop = stop
        self._backoff = backoff or Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S, jitter=0.5)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried on temporary failures until the deadline; raises the last failure
        (its message saying the start gave up) once waiting would pass the deadline."""
        while True:
            try:
                result = fn()
            except TemporaryError as exc:  # rate limits, 5xx, timeouts, unreadable answers
                delay = (
                    exc.retry_after_s
                    if isinstance(exc, RateLimitedError) and exc.retry_after_s is not None
                    else self._backoff.next_delay()
                )
                waited = self._monotonic() - self._began
                if waited + delay > self._deadline_s or self._stop.is_set():
                    raise type(exc)(
                        f"{exc} (start gave up after {waited:.1f}s; "
                        f"exchange.start_deadline_s {self._deadline_s:g})"
                    ) from exc
                log.warning("start: %s failed (%s); retrying in %.1fs", what, exc, delay)
                if self._stop.wait(delay):
                    raise type(exc)(f"{exc} (start interrupted while waiting)") from exc
                continue
            self._backoff.reset()
            return result
