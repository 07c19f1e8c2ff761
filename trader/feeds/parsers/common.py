"""What every venue's parsers share: control signals, the unknown-message error, the symbol map
and small converters.

A parser is a function ``(payload, ctx) -> list[Event | Control]``: no I/O, no clock, and no
state of its own. The one state a parser may touch is ``ctx.orders``, an :class:`OrderMemory`
owned by the stream protocol (one per connection's lifetime, bounded), for a fact a message can
only be read against the previous message of the same order (Binance's fill price when ``L``
is 0; see :func:`trader.feeds.parsers.binance_orders.order_trade`). A returned
:class:`Control` tells the listener about the connection (a subscription was acknowledged,
reconnect now, ...); a message whose result holds a ``Control`` is a control message and does
not count as data for the watchdog. Anything else, even an empty list, is data.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from trader.events import Event
from trader.model.units import NS_PER_MS


class ControlKind(StrEnum):
    """What a control message asks of the listener."""

    ACK = "ack"  # a reply that needs nothing (pong, unsubscribe ack, a request's result)
    AUTHENTICATED = "authenticated"  # send the subscriptions now
    SUBSCRIBED = "subscribed"  # the connection is ready
    FAILED = "failed"  # a request was refused: reconnect with backoff
    RESUBSCRIBE = "resubscribe"  # the server ended our subscription; send it again
    RECONNECT = "reconnect"  # the server is going away: reconnect now, without backoff


@dataclass(frozen=True, slots=True)
class Control:
    """A control signal from a parser to the listener."""

    kind: ControlKind
    detail: str = ""


Parsed = list[Event | Control]


class OrderMemory:
    """The last cumulative figures (filled amount, quote amount) seen per exchange order id,
    for the orders still live: a parser reads a fill against the order's previous report.
    Bounded: past ``limit`` orders, the oldest is forgotten (a parser then falls back as if it
    had never seen the order). Used by one listener thread only."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._last: OrderedDict[str, tuple[Decimal, Decimal]] = OrderedDict()

    def get(self, order_id: str) -> tuple[Decimal, Decimal] | None:
        """``(filled, quote)`` last remembered for ``order_id``, or None."""
        return self._last.get(order_id)

    def put(self, order_id: str, filled: Decimal, quote: Decimal) -> None:
        """Remember the order's cumulative figures."""
        self._last[order_id] = (filled, quote)
        self._last.move_to_end(order_id)
        if len(self._last) > self._limit:
            self._last.popitem(last=False)

    def forget(self, order_id: str) -> None:
        """The order is final: nothing more will be read against it."""
        self._last.pop(order_id, None)

    def __len__(self) -> int:
        return len(self._last)


class ParseContext(NamedTuple):
    """What a parser needs besides the payload: the receipt time, the symbol map, the market
    category of the connection (Bybit's public messages do not say it) and, on a user stream,
    the protocol's :class:`OrderMemory`.

    A NamedTuple, not a frozen dataclass: one is built per message, and a tuple is built in a
    fraction of a frozen dataclass's time."""

    ts_recv: int
    symbols: SymbolMap
    category: str = "spot"
    orders: OrderMemory | None = None


Parser = Callable[[Any, ParseContext], Parsed]


class UnknownMessage(Exception):
    """No parser for this wire type; the listener logs it once per type and counts it."""

    def __init__(self, wire_type: str) -> None:
        super().__init__(wire_type)
        self.wire_type = wire_type


def dispatch(
    table: Mapping[str, Parser], wire_type: str, payload: Any, ctx: ParseContext
) -> Parsed:
    """Call the parser registered for ``wire_type``; raise :class:`UnknownMessage` if none."""
    parser = table.get(wire_type)
    if parser is None:
        raise UnknownMessage(wire_type)
    return parser(payload, ctx)


def dec(value: Any) -> Decimal:
    """A wire number as Decimal: exchanges send strings ("0.0010"); JSON numbers arrive as
    Decimal or int from ``json.loads(raw, parse_float=Decimal)``. Never goes through float."""
    if type(value) is str:  # the common case first: this runs four times per quote
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return Decimal(value)
    raise TypeError(f"not a number: {value!r}")


def opt_dec(value: Any) -> Decimal | None:
    """A wire number that may be absent: None (missing, null or ``""``) or its Decimal."""
    return None if value is None or value == "" else dec(value)


def positive(value: Any) -> Decimal | None:
    """A wire number where 0 means "none" (Binance's ``p`` of a market order, ``P`` of an order
    without a stop): the Decimal when above 0, else None."""
    number = opt_dec(value)
    return number if number is not None and number > 0 else None


def ms_to_ns(ms: Any) -> int:
    """Exchange milliseconds (int or numeric string) to nanoseconds."""
    return int(ms) * NS_PER_MS


# Longest first, so BTCUSDC is not read as BTCUSD + C.
_QUOTES = (
    "FDUSD",
    "USDT",
    "USDC",
    "TUSD",
    "BUSD",
    "USD",
    "EUR",
    "TRY",
    "BRL",
    "BTC",
    "ETH",
    "BNB",
    "DAI",
)

SPOT = "spot"
LINEAR = "linear"
INVERSE = "inverse"


def market_category(symbol: str) -> str:
    """``BTC/USDT`` -> spot, ``BTC/USDT:USDT`` -> linear, ``BTC/USD:BTC`` -> inverse."""
    pair, _, settle = symbol.partition(":")
    if not settle:
        return SPOT
    base = pair.partition("/")[0]
    return INVERSE if settle == base else LINEAR


def exchange_id(symbol: str) -> str:
    """The id Binance and Bybit use for a unified symbol: ``BTC/USDT[:USDT]`` -> ``BTCUSDT``."""
    base, _, quote = symbol.partition(":")[0].partition("/")
    return base + quote


class SymbolMap:
    """Exchange ids (``BTCUSDT``) to unified symbols (``BTC/USDT``), per market category.

    Built from the configured markets. An id not configured (an order placed by hand on another
    market, say) is split on a known quote asset so its events still carry a usable symbol; if
    no quote matches, the exchange id is kept as is.
    """

    def __init__(self, markets: Iterable[str]) -> None:
        self._table: dict[tuple[str, str], str] = {}
        for symbol in markets:
            self._table[(market_category(symbol), exchange_id(symbol))] = symbol

    def unified(self, exchange_symbol: str, category: str = SPOT) -> str:
        """The unified symbol for ``exchange_symbol`` in ``category``."""
        known = self._table.get((category, exchange_symbol))
        if known is not None:
            return known
        for quote in _QUOTES:
            base = exchange_symbol[: -len(quote)]
            if exchange_symbol.endswith(quote) and base.isalnum():
                if category == LINEAR:
                    return f"{base}/{quote}:{quote}"
                if category == INVERSE:
                    return f"{base}/{quote}:{base}"
                if category == SPOT:
                    return f"{base}/{quote}"
        return exchange_symbol
