"""The order state machine.

    PENDING -> OPEN -> PARTIALLY_FILLED -> FILLED
                  \\-> CANCELED / EXPIRED        (from OPEN or PARTIALLY_FILLED)
    PENDING -> REJECTED
    any live state -> UNKNOWN -> (whatever the lookup finds)

Final states (FILLED, CANCELED, REJECTED, EXPIRED) are never left. A transition to the same live
state is allowed (a repeated acknowledgement, another partial fill) and changes nothing else.
"""

from __future__ import annotations

from trader.events import OrderStatus as S

_LIVE = {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.UNKNOWN}

LEGAL_TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING: frozenset(_LIVE | {S.PENDING, S.REJECTED}),
    S.OPEN: frozenset(_LIVE),
    S.PARTIALLY_FILLED: frozenset(_LIVE - {S.OPEN}),
    S.UNKNOWN: frozenset(_LIVE | {S.REJECTED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


def is_legal(current: S, new: S) -> bool:
    """True when an order in ``current`` may move to ``new``."""
    return new in LEGAL_TRANSITIONS[current]
