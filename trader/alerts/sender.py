"""Delivery of alerts: a bounded outbox filled by the main thread and the ``alerts`` worker that
empties it through apprise.

The main thread only appends to the outbox (a lock held for one append): it never waits on the
network. The worker waits ``batch_s`` after the first alert so that a storm (fifty fills in a
second) leaves as one message, sends at most one message per ``min_interval_s``, and on a failed
delivery keeps the batch, retries with a doubling delay, counts the failure and logs only the
first one of a run of failures (and the recovery). The destination URLs hold bot tokens: they are
never logged, and apprise's own logger is kept quiet (``trader.logsetup``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trader.config import AlertsConfig
from trader.errors import ConfigError
from trader.stats import Stats
from trader.workers import Worker

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the worker looks at the outbox and the stop flag


@dataclass(frozen=True, slots=True)
class Alert:
    """One line for the operator; ``kind`` groups a batch's title (fill, halt, feed, ...)."""

    kind: str
    text: str


class Outbox:
    """Alerts waiting to be sent, oldest first; bounded (beyond, the oldest are dropped and
    counted)."""

    def __init__(self, max_pending: int, stats: Stats) -> None:
        self._lock = threading.Lock()
        self._items: deque[Alert] = deque()
        self._max = max_pending
        self._stats = stats

    def put(self, alert: Alert) -> None:
        """Queue one alert (any thread; never blocks on I/O)."""
        with self._lock:
            self._items.append(alert)
            dropped = len(self._items) > self._max
            if dropped:
                self._items.popleft()
        self._stats.incr("alerts.queued")
        if dropped:
            self._stats.incr("alerts.dropped")

    def take(self, n: int) -> list[Alert]:
        """Remove and return up to ``n`` of the oldest alerts."""
        with self._lock:
            return [self._items.popleft() for _ in range(min(n, len(self._items)))]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


Send = Callable[[str, str], bool]


def apprise_targets(urls: Sequence[str]) -> list[Send]:
    """One sender per apprise URL (a batch is retried only where it failed); a URL apprise does
    not understand is a ``ConfigError`` naming its position, never its text."""
    import apprise  # noqa: PLC0415 - imported only when alerts are configured (slow to load)

    targets: list[Send] = []
    for i, url in enumerate(urls, 1):
        ap = apprise.Apprise()
        if not ap.add(url):
            raise ConfigError(
                f"TRADER_ALERT_URLS: URL #{i} is not an apprise URL this version "
                f"understands (see https://github.com/caronc/apprise/wiki)"
            )

        def send(title: str, body: str, ap: Any = ap) -> bool:
            return bool(ap.notify(body=body, title=title))

        targets.append(send)
    return targets


def compose(name: str, alerts: Sequence[Alert]) -> tuple[str, str]:
    """(title, body) of one message for a batch."""
    if len(alerts) == 1:
        return f"{name}: {alerts[0].kind}", alerts[0].text
    kinds: dict[str, int] = {}
    for a in alerts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
    return f"{name}: {len(alerts)} alerts ({summary})", "\n".join(a.text for a in alerts)


class AlertSender(Worker):
    """The ``alerts`` worker thread: batches, rate-limits, sends and retries."""

    name = "alerts"

    def __init__(
        self,
        cfg: AlertsConfig,
        outbox: Outbox,
        targets: Sequence[Send],
        instance: str,
        stats: Stats,
    ) -> None:
        self._cfg = cfg
        self._outbox = outbox
        self._targets = list(targets)
        self._instance = instance
        self._stats = stats
        self._batch: list[Alert] = []  # taken from the outbox, not yet delivered everywhere
        self._done: set[int] = set()  # targets that already have the batch
        self._last_sent = -float("inf")
        self._failing = 0  # consecutive failed attempts

    def run(self, stop: threading.Event) -> None:
        """Send until stopped; on stop, one last attempt for what is still waiting."""
        while not stop.is_set():
            if not self._batch:
                if not len(self._outbox):
                    stop.wait(POLL_S)
                    continue
                # collect the storm, respect the rate limit, then take one batch
                wait = max(
                    self._cfg.batch_s, self._last_sent + self._cfg.min_interval_s - time.monotonic()
                )
                if wait > 0 and stop.wait(wait):
                    break
                self._batch, self._done = self._outbox.take(self._cfg.max_lines), set()
            if self._attempt():
                continue
            delay = min(self._cfg.retry_initial_s * 2 ** (self._failing - 1), self._cfg.retry_max_s)
            if stop.wait(delay):
                break
        if self._batch or len(self._outbox):
            self._flush_once()

    def _flush_once(self) -> None:
        """At stop: one attempt for the batch in flight and what waits behind it."""
        if not self._batch:
            self._batch, self._done = self._outbox.take(self._cfg.max_lines), set()
        if self._attempt() and len(self._outbox):
            self._batch, self._done = self._outbox.take(self._cfg.max_lines), set()
            self._attempt()
        left = len(self._batch) + len(self._outbox)
        if left:
            log.warning("alerts: %d alert(s) not delivered at stop", left)

    def _attempt(self) -> bool:
        """Send the batch to every target that does not have it yet; True when all have it."""
        title, body = compose(self._instance, self._batch)
        for i, send in enumerate(self._targets):
            if i in self._done:
                continue
            try:
                ok = send(title, body)
            except Exception:  # noqa: BLE001 - a broken service must not stop the worker
                ok = False
            if ok:
                self._done.add(i)
        if len(self._done) < len(self._targets):
            self._failing += 1
            self._stats.incr("alerts.failed")
            if self._failing == 1:
                log.warning(
                    "alerts: delivery failed for %d of %d destination(s); %d alert(s) "
                    "kept and retried (logged once until it works again)",
                    len(self._targets) - len(self._done),
                    len(self._targets),
                    len(self._batch) + len(self._outbox),
                )
            return False
        if self._failing:
            log.info("alerts: delivered again after %d failed attempt(s)", self._failing)
        self._failing = 0
        self._stats.incr("alerts.sent", len(self._batch))
        self._stats.incr("alerts.messages")
        self._last_sent = time.monotonic()
        self._batch, self._done = [], set()
        return True
