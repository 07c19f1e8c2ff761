"""Feeds, reconciliation, storage, workers and the session."""

from __future__ import annotations

from decimal import Decimal

from trader.errors import ErrorKind
from trader.events.base import Event, event
from trader.events.orders import BalanceUpdate, OrderFilled, OrderStatusReport
from trader.model.records import Balance, Order, Position

# --------------------------------------------------------------------------------------------
# System


@event
class FeedConnected(Event):
    """A feed (websocket connection, simulated market) is connected and subscribed."""

    feed: str


@event
class FeedDisconnected(Event):
    """A feed's connection closed or failed; it will reconnect with backoff."""

    feed: str
    reason: str


@event
class FeedStale(Event):
    """A feed sent no data for ``silent_s`` seconds."""

    feed: str
    silent_s: Decimal


@event
class FeedRecovered(Event):
    """Data flows again on a feed that was stale, disconnected or resubscribed: what it carried
    meanwhile was missed, so the poller catches up and reconciliation runs a round."""

    feed: str
    reason: str = ""  # what it recovered from: "reconnected", "resubscribed (...)"


@event
class ReconciliationStarted(Event):
    """A reconciliation round began (start-up, reconnect, recheck); trading halts until a round
    completes with no differences."""

    round: int
    reason: str


@event
class ExchangeStateFetched(Event):
    """What the exchange said in one reconciliation round, fetched by the reconciler thread and
    compared with the store on the main thread; journaled, so the journal shows what the
    exchange said."""

    round: int
    open_orders: tuple[OrderStatusReport, ...]  # the exchange's open orders
    looked_up: tuple[OrderStatusReport, ...]  # open in the store but not in that list
    not_found: tuple[str, ...]  # client ids the exchange does not know
    trades: tuple[OrderFilled, ...]  # our recent trades
    balances: tuple[BalanceUpdate, ...]  # every asset


@event
class StateRestored(Event):
    """The ledger a process starts from, read from its saved state (the memory backend's state
    file, or Redis) and dispatched at start before any market or exchange event. The store and
    the daily loss count load it; being journaled, it lets a replay start each session from
    exactly what the process started from."""

    source: str  # where it was read: "state file <path>" or "redis <prefix>"
    balances: tuple[Balance, ...]
    orders: tuple[Order, ...]  # each with the fills applied to it
    positions: tuple[Position, ...]
    loss_day: int = -1  # the UTC day (days since the epoch) the daily loss counts; -1: none
    loss_day_start: Decimal = Decimal(0)  # the PnL (USD) the day's loss is counted from


@event
class ReconciliationCompleted(Event):
    """Open orders, recent trades and balances were compared with the exchange."""

    ok: bool
    differences: int
    summary: str = ""
    error: str = ""  # set when the exchange's state could not be fetched (nothing compared)


#: ``StorageFailed.component`` of the journal: while it fails, trading is halted.
JOURNAL = "journal"


@event
class StorageFailed(Event):
    """A persistence component (journal, Redis) failed; the system goes on in memory."""

    component: str
    error: str


@event
class StorageRecovered(Event):
    """A persistence component works again."""

    component: str


@event
class StreamGap(Event):
    """Written into an event stream in place of ``dropped`` events that were left out because
    the stream's buffer was full while its store was unreachable; ``first_ts`` and ``last_ts``
    are the ``ts_recv`` of the first and last left out. Consumers see the gap, never a silent
    hole."""

    stream: str
    dropped: int
    first_ts: int
    last_ts: int


@event
class PollFailed(Event):
    """A REST polling job raised."""

    job: str
    kind: ErrorKind
    error: str


@event
class HandlerFailed(Event):
    """A handler raised while handling an event; the loop went on."""

    handler: str
    event_type: str
    error: str
    traceback: str = ""


@event
class WorkerCrashed(Event):
    """A worker thread raised; the supervisor restarts it after ``restart_in_s``."""

    worker: str
    error: str
    restart_in_s: Decimal


@event
class Heartbeat(Event):
    """Emitted by the engine at a fixed interval so silence is visible."""

    queue_depth: int
    dispatched: int


@event
class SessionStarted(Event):
    """A process started: the first event of each session in the journal. Replay starts a fresh
    state here, as the process did."""

    session: str
    exchange: str
    mode: str


@event
class ShutdownRequested(Event):
    """Shutdown was asked for (signal, operator command, fatal error)."""

    reason: str
