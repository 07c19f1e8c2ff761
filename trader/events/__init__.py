"""Every event (a fact) and command (a request) in the system.

Rules (see DESIGN.md section 3):

- frozen, slotted, keyword-only dataclasses; facts are named in the past tense;
- ``ts_event`` is the exchange's time and ``ts_recv`` the local receipt, both integer nanoseconds
  since the epoch, UTC;
- money and quantities are ``Decimal``; closed sets are ``StrEnum``;
- each event converts to one JSON object with a ``type`` field (its class name) and back,
  exactly: ``event_from_json(event_to_json(e)) == e``.

The article this project started from defined ``BalanceUpdate(timestamp, symbol, amount)`` with a
``type = 'BALANCEUPDATE'`` string; we keep the name and the idea (one event per asset, now with
free/used/total) but dispatch on the class, never on a string.

Market data events (``conflatable = True``) may be conflated by the bus under pressure; every
other event is never dropped.

A new order appears twice, on purpose: ``OrderSubmitted`` is the fact (risk passed it; the store
records it in PENDING and the journal keeps it, which is what replay rebuilds the order from) and
``SubmitOrder`` the command (the executor sends it; replay never runs it). Risk emits both, the
fact first, so an order is recorded before it can reach the exchange. They share one field set,
:class:`OrderSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from trader.codec import Tagged
from trader.events.base import (  # noqa: F401 - the package is the one import path
    EVENT_TYPES,
    STOP,
    Command,
    Event,
    Frame,
    Liquidity,
    MarketData,
    SignalKind,
    Stop,
    TradingState,
    event,
)
from trader.events.market import (  # noqa: F401 - the package is the one import path
    Candle,
    MarketUpdated,
    QuoteTick,
    TradeTick,
)
from trader.events.orders import (  # noqa: F401 - the package is the one import path
    BalanceUpdate,
    CancelAllOrders,
    CancelOrder,
    ExchangeUpdateUnusable,
    HaltTrading,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSpec,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    ResumeTrading,
    SubmitOrder,
)
from trader.events.system import (  # noqa: F401 - the package is the one import path
    JOURNAL,
    ExchangeStateFetched,
    FeedConnected,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    HandlerFailed,
    Heartbeat,
    PollFailed,
    ReconciliationCompleted,
    ReconciliationStarted,
    SessionStarted,
    ShutdownRequested,
    StateRestored,
    StorageFailed,
    StorageRecovered,
    StreamGap,
    WorkerCrashed,
)
from trader.events.trading import (  # noqa: F401 - the package is the one import path
    DataHaltChanged,
    OrderDenied,
    SignalGenerated,
    StrategyDisabled,
    TradingStateChanged,
)
from trader.model.orders import OrderStatus, OrderType, Side  # noqa: F401

# --------------------------------------------------------------------------------------------
# JSON: the one codec (trader.codec) over this registry


EVENT_CODEC = Tagged(EVENT_TYPES, what="event")
EVENT_CODEC.prepare()  # fail at import, not at the first journal write

event_to_dict: Callable[[Event], dict[str, Any]] = EVENT_CODEC.to_dict
event_from_dict: Callable[[Mapping[str, Any]], Event] = EVENT_CODEC.from_dict
event_to_json: Callable[[Event], str] = EVENT_CODEC.to_json
event_from_json: Callable[[str | bytes], Event] = EVENT_CODEC.from_json
