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

import dataclasses
import json
import typing
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from json.encoder import encode_basestring_ascii as _esc
from types import NoneType, UnionType
from typing import Any, Callable, ClassVar

from trader.errors import ErrorKind
from trader.model.orders import OrderStatus, OrderType, Side

# --------------------------------------------------------------------------------------------
# Closed sets


class Liquidity(StrEnum):
    """Whether a fill added or took liquidity."""

    MAKER = "maker"
    TAKER = "taker"
    UNKNOWN = "unknown"


class SignalKind(StrEnum):
    """What a strategy's signal says."""

    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


class TradingState(StrEnum):
    """Gate on every new order: ACTIVE trades, REDUCING only reduces positions, HALTED nothing."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


# --------------------------------------------------------------------------------------------
# Base classes and the type table

EVENT_TYPES: dict[str, type[Event]] = {}


def event(cls: type) -> Any:
    """Make ``cls`` a frozen, slotted, keyword-only dataclass and register it for JSON."""
    dc = dataclass(frozen=True, slots=True, kw_only=True)(cls)
    if dc.__name__ in EVENT_TYPES:
        raise TypeError(f"duplicate event type name {dc.__name__}")
    dc.__init__ = _fast_init(dc)
    EVENT_TYPES[dc.__name__] = dc
    return dc


def _fast_init(cls: type) -> Callable[..., None]:
    """The same keyword-only ``__init__`` the dataclass generated, about twice as fast.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (its own
    ``__setattr__`` refuses), a generic attribute lookup per field: 1.4 us for a ``QuoteTick``,
    half the cost of parsing a quote off the wire. Calling each slot's descriptor directly does
    the same assignment in 0.8 us. The instance stays frozen: only ``__init__`` changes.
    """
    scope: dict[str, Any] = {}
    params, body = [], []
    for f in dataclasses.fields(cls):
        scope[f"_set_{f.name}"] = getattr(cls, f.name).__set__  # the slot's member descriptor
        if f.default is not dataclasses.MISSING:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: default_factory is not supported")
        else:
            params.append(f.name)
        body.append(f"    _set_{f.name}(self, {f.name})")
    src = f"def __init__(self, *, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(compile(src, f"<{cls.__name__}.__init__>", "exec"), scope)  # noqa: S102
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events: exchange time and local receipt time, in ns since the epoch."""

    conflatable: ClassVar[bool] = False

    ts_event: int
    ts_recv: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketData(Event):
    """Base of market data: the bus may conflate these per (class, symbol) under pressure."""

    conflatable: ClassVar[bool] = True

    symbol: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(Event):
    """Base of commands: a request with exactly one handler."""


class Stop:
    """What a handler returns to end an event's dispatch: later handlers do not see the event
    (the store returns it for a fill it has already applied). Observers have already seen it."""

    __slots__ = ()


STOP = Stop()


# --------------------------------------------------------------------------------------------
# Market data


@event
class QuoteTick(MarketData):
    """Top of book (Binance ``bookTicker``, Bybit ``tickers``, a REST ticker)."""

    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal

    @property
    def mid(self) -> Decimal:
        """Mid price."""
        return (self.bid + self.ask) / 2


@event
class TradeTick(MarketData):
    """One public trade."""

    price: Decimal
    size: Decimal
    aggressor: Side
    trade_id: str


@event
class Candle(MarketData):
    """One OHLCV bar; ``closed`` is False while the bar is still forming."""

    interval: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    start_ns: int
    closed: bool


@event
class MarketUpdated(Event):
    """A market's trading rules (loaded at start from the exchange)."""

    symbol: str
    base: str
    quote: str
    price_increment: Decimal
    amount_increment: Decimal
    min_amount: Decimal
    min_notional: Decimal
    active: bool = True


# --------------------------------------------------------------------------------------------
# Account


@event
class BalanceUpdate(Event):
    """One asset's balance (free, used, total), from a stream or a REST snapshot."""

    asset: str
    free: Decimal
    used: Decimal
    total: Decimal


# --------------------------------------------------------------------------------------------
# Orders


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSpec(Event):
    """The fields of a new order, shared by the fact and the command (see the module doc)."""

    client_id: str
    symbol: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None = None
    strategy: str = ""


@event
class OrderSubmitted(OrderSpec):
    """An order passed risk and was recorded; it is about to be sent to the exchange."""


@event
class OrderAccepted(Event):
    """The exchange acknowledged the order."""

    client_id: str
    exchange_id: str


@event
class OrderRejected(Event):
    """The exchange (or the gateway) refused the order."""

    client_id: str
    reason: str
    kind: ErrorKind = ErrorKind.INVALID_ORDER


@event
class OrderFilled(Event):
    """A fill, partial or full: ``filled_total`` is the order's cumulative filled amount."""

    client_id: str
    exchange_id: str
    trade_id: str
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_asset: str
    filled_total: Decimal
    is_final: bool
    liquidity: Liquidity = Liquidity.UNKNOWN


@event
class OrderCanceled(Event):
    """The order was canceled (by us, the exchange, or it expired)."""

    client_id: str
    reason: str = ""
    expired: bool = False


@event
class OrderStatusUnknown(Event):
    """We do not know whether the exchange has the order (timeout, 5xx); it will be looked up."""

    client_id: str
    reason: str


@event
class OrderStatusReport(Event):
    """A snapshot of one order as the exchange reports it (REST poll, lookup, reconciliation)."""

    client_id: str
    exchange_id: str
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    amount: Decimal
    filled: Decimal
    price: Decimal | None = None
    avg_price: Decimal | None = None


# --------------------------------------------------------------------------------------------
# Trading


@event
class SignalGenerated(Event):
    """A strategy's view of a market, journaled whether or not it leads to an order."""

    strategy: str
    symbol: str
    kind: SignalKind
    strength: Decimal = Decimal(1)
    note: str = ""


@event
class OrderDenied(Event):
    """Risk refused an order intent; nothing was sent."""

    strategy: str
    symbol: str
    side: Side
    amount: Decimal
    reason: str


@event
class TradingStateChanged(Event):
    """The trading gate moved (e.g. the daily loss limit or the operator halted trading)."""

    state: TradingState
    reason: str


@event
class StrategyDisabled(Event):
    """A strategy raised too many times in a row and no longer receives events."""

    strategy: str
    reason: str


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
    """Data flows again on a feed that was stale or disconnected."""

    feed: str


@event
class ReconciliationStarted(Event):
    """A reconciliation round began (start-up, reconnect, recheck); trading halts until a round
    completes with no differences."""

    round: int
    reason: str


@event
class ExchangeStateFetched(Event):
    """What the exchange said in one reconciliation round, fetched by the reconciler thread and
    compared with the store on the main thread. Each list is a JSON array of event objects
    (``event_to_dict``), so the journal shows what the exchange said."""

    round: int
    open_orders: str  # OrderStatusReport: the exchange's open orders
    looked_up: str  # OrderStatusReport: orders open in the store but not in that list
    not_found: str  # client ids the exchange does not know (JSON array of strings)
    trades: str  # OrderFilled: our recent trades
    balances: str  # BalanceUpdate: every asset


@event
class ReconciliationCompleted(Event):
    """Open orders, recent trades and balances were compared with the exchange."""

    ok: bool
    differences: int
    summary: str = ""


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


# --------------------------------------------------------------------------------------------
# Commands


@event
class SubmitOrder(OrderSpec, Command):
    """Ask the executor to send an order (risk has decided; the id is already recorded)."""


@event
class CancelOrder(Command):
    """Ask the executor to cancel one order."""

    client_id: str
    symbol: str


@event
class HaltTrading(Command):
    """Operator kill switch: set trading HALTED, optionally cancel every open order."""

    reason: str
    cancel_orders: bool = False


@event
class ResumeTrading(Command):
    """Operator: set trading ACTIVE again."""

    reason: str


@event
class CancelAllOrders(Command):
    """Ask the executor to cancel every open order (optionally of one market)."""

    symbol: str | None = None


# --------------------------------------------------------------------------------------------
# JSON


Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _codec_for(tp: Any) -> tuple[Encoder, Decoder]:
    """Return (encode, decode) for one annotated field type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, UnionType):
        args = [a for a in typing.get_args(tp) if a is not NoneType]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp}")
        enc, dec = _codec_for(args[0])
        return (lambda v: None if v is None else enc(v)), (lambda v: None if v is None else dec(v))
    if tp is Decimal:
        # A string keeps every digit and the exponent: Decimal("1.10") comes back as "1.10".
        return str, Decimal
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return str, tp
    if tp in (int, str, bool):
        return _identity, _identity
    raise TypeError(f"unsupported event field type {tp}")


_CODECS: dict[type, tuple[tuple[str, Encoder, Decoder], ...]] = {}


def _codecs(cls: type) -> tuple[tuple[str, Encoder, Decoder], ...]:
    codecs = _CODECS.get(cls)
    if codecs is None:
        hints = typing.get_type_hints(cls)
        codecs = tuple(
            (f.name, *_codec_for(hints[f.name])) for f in dataclasses.fields(cls)
        )
        _CODECS[cls] = codecs
    return codecs


def event_to_dict(ev: Event) -> dict[str, Any]:
    """Convert an event to a JSON-ready dict with a ``type`` field first."""
    out: dict[str, Any] = {"type": type(ev).__name__}
    for name, enc, _ in _codecs(type(ev)):
        out[name] = enc(getattr(ev, name))
    return out


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from :func:`event_to_dict` output; unknown types or fields raise."""
    try:
        cls = EVENT_TYPES[data["type"]]
    except KeyError as exc:
        raise ValueError(f"unknown event type {data.get('type')!r}") from exc
    kwargs = {}
    for name, _, dec in _codecs(cls):
        if name in data:
            kwargs[name] = dec(data[name])
    extra = set(data) - set(kwargs) - {"type"}
    if extra:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(extra)}")
    return cls(**kwargs)


def event_to_json(ev: Event) -> str:
    """One compact JSON object: exactly ``json.dumps(event_to_dict(ev), separators=(",", ":"))``,
    made by an encoder generated per class (:func:`_compile_encoder`), about 7x faster."""
    cls = type(ev)
    enc = _ENCODERS.get(cls)
    if enc is None:
        enc = _ENCODERS[cls] = _compile_encoder(cls)
    return enc(ev)


_ENCODERS: dict[type, Callable[[Any], str]] = {}


def _compile_encoder(cls: type) -> Callable[[Any], str]:
    """Generate one f-string function per event class. The journal encodes every dispatched
    event, and ``json.dumps`` of a dict costs about 5 us per event, more than the dispatch itself
    (about 2 us); the generated function costs about 0.6 us, mostly ``str(Decimal)`` and the two
    19-digit timestamps (``ts_recv`` reuses ``ts_event``'s text when they are equal, as they are
    for every event made in this process). Strings are escaped by the C function ``json.dumps``
    uses; a Decimal's text never needs escaping."""
    hints = typing.get_type_hints(cls)
    parts = ["{{" + f'"type":{_esc(cls.__name__)}']
    for f in dataclasses.fields(cls):
        piece = "{sr}" if f.name == "ts_recv" else _field_template(f.name, hints[f.name])
        parts.append(f",{_esc(f.name)}:" + piece)
    src = (
        "def encode(e):\n"
        "    te = e.ts_event\n"
        "    st = str(te)\n"
        "    tr = e.ts_recv\n"
        "    sr = st if tr == te else str(tr)\n"
        f"    return f'{''.join(parts).replace('{e.ts_event}', '{st}')}}}}}'\n"
    )
    scope: dict[str, Any] = {"_esc": _esc, "_BOOL": _BOOL, "_opt_decimal": _opt_decimal,
                             "_opt": _opt}
    exec(compile(src, f"<event_to_json {cls.__name__}>", "exec"), scope)  # noqa: S102
    return scope["encode"]


def _field_template(name: str, tp: Any) -> str:
    """The f-string piece that writes field ``name`` of type ``tp`` as ``json.dumps`` would."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not NoneType]
        if inner is Decimal:
            return f"{{_opt_decimal(e.{name})}}"
        return f"{{_opt(e.{name})}}"
    if tp is Decimal:
        return f'"{{e.{name}!s}}"'
    if tp is bool:
        return f"{{_BOOL[e.{name}]}}"
    if tp is int:
        return f"{{e.{name}}}"
    if tp is str or (isinstance(tp, type) and issubclass(tp, StrEnum)):
        return f"{{_esc(e.{name})}}"
    raise TypeError(f"unsupported event field type {tp}")


_BOOL = ("false", "true")


def _opt_decimal(value: Decimal | None) -> str:
    return "null" if value is None else f'"{value}"'


def _opt(value: Any) -> str:
    return "null" if value is None else json.dumps(value)


def event_from_json(text: str) -> Event:
    """Inverse of :func:`event_to_json`."""
    return event_from_dict(json.loads(text))


for _cls in EVENT_TYPES.values():  # fail at import, not at the first journal write
    _codecs(_cls)
    _ENCODERS[_cls] = _compile_encoder(_cls)
