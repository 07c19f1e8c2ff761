"""Orders: sides, types, statuses and the order state machine.

    PENDING -> OPEN -> PARTIALLY_FILLED -> FILLED
                  \\-> CANCELED / EXPIRED / REJECTED   (from OPEN or PARTIALLY_FILLED)
    PENDING -> REJECTED
    any live state -> UNKNOWN -> (whatever the lookup finds)

Final states (FILLED, CANCELED, REJECTED, EXPIRED) are never left. A transition to the same live
state is allowed (a repeated acknowledgement, another partial fill) and changes nothing else.

A live order can end REJECTED: Bybit rejects the rest of an order after part of it filled (an
IOC or market remainder: ``orderStatus: Rejected`` after ``PartiallyFilled``). The order is
closed; its fills stay.

An order only moves forward, so a refused transition back to a stage the order has already
passed (an acknowledgement or an ``open`` report arriving after a fill or a cancel, from another
thread or an earlier poll) is *stale*, not a contradiction: see :func:`is_behind`.
"""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Order or trade side."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """Order type."""

    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    """Lifecycle state of an order (see :data:`LEGAL_TRANSITIONS`)."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """True for states an order never leaves."""
        return self in FINAL_STATUSES


_S = OrderStatus
FINAL_STATUSES = frozenset({_S.FILLED, _S.CANCELED, _S.REJECTED, _S.EXPIRED})
_LIVE = {_S.OPEN, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED, _S.UNKNOWN}

LEGAL_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.PENDING: frozenset(_LIVE | {_S.PENDING}),
    _S.OPEN: frozenset(_LIVE),
    _S.PARTIALLY_FILLED: frozenset(_LIVE - {_S.OPEN}),
    _S.UNKNOWN: frozenset(_LIVE),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}


def is_legal(current: OrderStatus, new: OrderStatus) -> bool:
    """True when an order in ``current`` may move to ``new``."""
    return new in LEGAL_TRANSITIONS[current]


# How far along an order is: a status of a lower stage describes a past the order has left.
_STAGE = {
    _S.PENDING: 0,
    _S.OPEN: 1,
    _S.UNKNOWN: 1,
    _S.PARTIALLY_FILLED: 2,
    **{s: 3 for s in FINAL_STATUSES},
}


def is_behind(current: OrderStatus, new: OrderStatus) -> bool:
    """True when ``new`` is an earlier stage than ``current``: an update older than what is
    held (ignored as stale), rather than a contradiction."""
    return _STAGE[new] < _STAGE[current]
