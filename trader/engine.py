"""The handler registry and the main loop.

The main thread owns the logic: it takes each event off the bus and calls the handlers registered
for the event's exact class, in registration order. Handlers may return follow-up events; those
go to a local deque that is emptied before the next ``get`` (the main thread never ``put``s into
its own bounded queue). A handler that raises is logged with the event and traceback, counted and
turned into a ``HandlerFailed`` event; the loop goes on. A handler that returns ``STOP`` ends
the event's dispatch (the store drops a repeated fill that way).

Observers (the journal) see every dispatched event, handled or not, follow-ups and
``HandlerFailed`` included.

Timing (dispatch lag ``ts_recv`` -> handled, and each handler's time) is sampled: one dispatch in
``timing.every`` takes the timed path. Measured on the bare dispatch rate
(``scripts/bench_journal.py --timing``): timing every dispatch costs about 48% (two clock reads
and a histogram update per handler), 1 in 16 (the default) about 5%, 1 in 64 about 3.5%, and
the countdown alone about 1.5%.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
import types
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from trader.bus import Bus
from trader.clock import Clock
from trader.events import STOP, Event, HandlerFailed, Stop
from trader.stats import Stats

log = logging.getLogger(__name__)

BATCH = 256  # events taken from the bus per lock acquisition

# Each handler takes its own event class (the table pairs them), which a Callable type cannot
# say: the parameter is Any.
Handler = Callable[[Any], "Iterable[Event] | Stop | None"]


def handler_name(handler: Callable[..., object]) -> str:
    """A readable name for a handler (``Store.on_quote``; ``JournalBuffer.append`` for a builtin
    method bound to an instance, whose own qualname would only say ``deque.append``)."""
    owner = getattr(handler, "__self__", None)
    if (
        isinstance(handler, types.BuiltinMethodType)
        and owner is not None
        and not isinstance(owner, (type, types.ModuleType))
    ):
        return f"{type(owner).__name__}.{handler.__name__}"
    return getattr(handler, "__qualname__", None) or repr(handler)


class Timing(Protocol):
    """Receives the sampled dispatch timings (``trader.metrics.DispatchTiming``)."""

    every: int

    def handler_ns(self, handler: Handler, ns: int) -> None:
        """One handler call took ``ns`` nanoseconds."""

    def lag_ns(self, ns: int) -> None:
        """An event was handled ``ns`` nanoseconds after its ``ts_recv``."""


class Registry:
    """Event class -> ordered handlers. Observers see every event before the typed handlers;
    a gate of an event class runs before both, and its ``STOP`` keeps the event from everyone
    (the store's screen of repeated fills: a repeat is neither journaled nor handled)."""

    def __init__(self) -> None:
        self._gates: dict[type[Event], list[Handler]] = {}
        self._handlers: dict[type[Event], list[Handler]] = {}
        self._observers: list[Handler] = []
        self._cache: dict[type[Event], tuple[Handler, ...]] = {}

    def register(self, event_cls: type[Event], handler: Handler) -> None:
        """Append ``handler`` for ``event_cls``; registering the same pair twice is an error."""
        handlers = self._handlers.setdefault(event_cls, [])
        if handler in handlers:
            raise ValueError(
                f"{handler_name(handler)} is already registered for {event_cls.__name__}"
            )
        handlers.append(handler)
        self._cache.clear()

    def gate(self, event_cls: type[Event], handler: Handler) -> None:
        """Run ``handler`` for ``event_cls`` before the observers; ``STOP`` drops the event."""
        self._gates.setdefault(event_cls, []).append(handler)
        self._cache.clear()

    def observe(self, handler: Handler) -> None:
        """Call ``handler`` for every dispatched event, before the typed handlers (journal)."""
        if handler in self._observers:
            raise ValueError(f"{handler_name(handler)} is already an observer")
        self._observers.append(handler)
        self._cache.clear()

    def observers(self) -> tuple[Handler, ...]:
        """The observers alone (what an event with no typed handler is still shown to)."""
        return tuple(self._observers)

    def handlers_for(self, event_cls: type[Event]) -> tuple[Handler, ...]:
        """Gates, observers then typed handlers for ``event_cls`` (empty when nothing handles
        it)."""
        cached = self._cache.get(event_cls)
        if cached is None:
            typed = self._handlers.get(event_cls, [])
            gates = self._gates.get(event_cls, [])
            cached = tuple(gates) + tuple(self._observers) + tuple(typed) if typed else ()
            self._cache[event_cls] = cached
        return cached

    def table(self) -> dict[str, list[str]]:
        """The event -> handler names table, for logs and docs."""
        return {cls.__name__: [handler_name(h) for h in hs] for cls, hs in self._handlers.items()}


class Engine:
    """The main loop: drain follow-ups, take the next event, dispatch it."""

    def __init__(
        self,
        bus: Bus,
        registry: Registry,
        stats: Stats,
        clock: Clock,
        get_timeout: float = 0.1,
    ) -> None:
        self._bus = bus
        self._registry = registry
        self._stats = stats
        self._clock = clock
        self._get_timeout = get_timeout
        self._followups: deque[Event] = deque()
        self._timers: list[list] = []  # [interval_s, next_due_monotonic, fn]
        self._next_timer = float("inf")
        self.last_dispatch_monotonic = time.monotonic()
        self._timing: Timing | None = None
        self._countdown = 0  # dispatches until the next timed one (0: timing off)

    def set_timing(self, timing: Timing | None) -> None:
        """Sample one dispatch in ``timing.every`` into ``timing`` (None turns timing off)."""
        self._timing = timing
        self._countdown = timing.every if timing else 0

    def discard_followups(self) -> list[Event]:
        """Take the queued follow-ups without dispatching them (replay: the journal already holds
        the follow-ups the live run produced)."""
        out = list(self._followups)
        self._followups.clear()
        return out

    def has_followups(self) -> bool:
        """Whether follow-ups wait to be dispatched (a backtest settles only then)."""
        return bool(self._followups)

    def emit(self, event: Event) -> None:
        """Queue a follow-up event from the main thread (dispatched before the next ``get``)."""
        self._followups.append(event)

    def every(self, interval_s: float, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the main thread about every ``interval_s`` seconds."""
        due = time.monotonic() + interval_s
        self._timers.append([interval_s, due, fn])
        self._next_timer = min(self._next_timer, due)

    def run(self, stop: threading.Event) -> None:
        """Dispatch until ``stop`` is set.

        Events are taken in batches (see :meth:`Bus.get_batch`) but dispatched one at a time,
        each followed by its follow-ups, exactly as if taken singly.
        """
        get_batch = self._bus.get_batch
        timeout = self._get_timeout
        followups = self._followups
        popleft = followups.popleft
        dispatch = self.dispatch
        while not stop.is_set():
            while followups:
                dispatch(popleft())
            batch = get_batch(BATCH, timeout)
            for event in batch:
                dispatch(event)
                while followups:
                    dispatch(popleft())
            now = time.monotonic()
            if batch:
                self.last_dispatch_monotonic = now
            if now >= self._next_timer:
                self._run_timers(now)

    def drain(self, deadline_monotonic: float) -> int:
        """Dispatch what is queued until empty or the deadline; return how many are left."""
        while time.monotonic() < deadline_monotonic:
            while self._followups:
                self.dispatch(self._followups.popleft())
            try:
                self.dispatch(self._bus.get_nowait())
            except queue.Empty:
                if not self._followups:
                    return 0
        return self._bus.depth() + len(self._followups)

    def dispatch(self, event: Event) -> None:
        """Call every handler for ``event``'s class; failures become ``HandlerFailed``."""
        cls = type(event)
        self._stats.dispatched[cls.__name__] += 1
        handlers = self._registry.handlers_for(cls)
        if not handlers:
            self._unhandled(cls)
            handlers = self._registry.observers()
        if self._countdown:
            self._countdown -= 1
            if not self._countdown:
                self._dispatch_timed(event, handlers)
                return
        for handler in handlers:
            try:
                out = handler(event)
            except Exception as exc:  # noqa: BLE001 - one bad handler must not stop the loop
                self._handler_failed(handler, event, exc)
                continue
            if out:
                if out is STOP:
                    return
                self._followups.extend(out)  # type: ignore[arg-type]  # STOP returned above

    def _dispatch_timed(self, event: Event, handlers: tuple[Handler, ...]) -> None:
        """:meth:`dispatch`'s loop with each handler timed, and the lag recorded at the end."""
        timing = self._timing
        assert timing is not None
        self._countdown = timing.every
        perf = time.perf_counter_ns
        for handler in handlers:
            t0 = perf()
            try:
                out = handler(event)
            except Exception as exc:  # noqa: BLE001 - one bad handler must not stop the loop
                timing.handler_ns(handler, perf() - t0)
                self._handler_failed(handler, event, exc)
                continue
            timing.handler_ns(handler, perf() - t0)
            if out:
                if out is STOP:
                    break
                self._followups.extend(out)  # type: ignore[arg-type]  # STOP left above
        timing.lag_ns(self._clock.now_ns() - event.ts_recv)

    def _unhandled(self, cls: type[Event]) -> None:
        name = cls.__name__
        if not self._stats.unhandled[name]:
            log.warning("no handler for %s (counted; logged once)", name)
        self._stats.unhandled[name] += 1

    def _handler_failed(self, handler: Handler, event: Event, exc: Exception) -> None:
        name = handler_name(handler)
        tb = traceback.format_exc()
        self._stats.handler_errors[name] += 1
        log.error("handler %s failed on %r\n%s", name, event, tb)
        if isinstance(event, HandlerFailed):
            return  # a failing HandlerFailed handler must not feed itself
        now = self._clock.now_ns()
        self._followups.append(
            HandlerFailed(
                ts_event=event.ts_event,
                ts_recv=now,
                handler=name,
                event_type=type(event).__name__,
                error=f"{type(exc).__name__}: {exc}",
                traceback=tb,
            )
        )

    def _run_timers(self, now: float) -> None:
        for timer in self._timers:
            if now >= timer[1]:
                timer[1] = now + timer[0]
                try:
                    timer[2]()
                except Exception:  # noqa: BLE001
                    log.exception("timer %s failed", handler_name(timer[2]))
        self._next_timer = min((t[1] for t in self._timers), default=float("inf"))
