"""The exception hierarchy. Each class says what the system does when it sees one.

Exchange errors are translated into these once, at the exchange boundary (only
``trader.exchange`` knows ccxt); everything else reasons about these classes only.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Classification of an error, used for counting and for deciding what to do."""

    TEMPORARY = "temporary"
    RATE_LIMITED = "rate_limited"
    INVALID_ORDER = "invalid_order"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    AUTHENTICATION = "authentication"
    UNKNOWN_OUTCOME = "unknown_outcome"
    BAD_DATA = "bad_data"
    INTERNAL = "internal"


class TraderError(Exception):
    """Base of our errors."""

    kind: ErrorKind = ErrorKind.INTERNAL


class ConfigError(TraderError):
    """Invalid configuration: the process exits with code 2 and this one-line message."""


class OperationalError(TraderError):
    """The machine is not ready (a port in use): the process exits with code 1 and this
    one-line message, and systemd starts it again later."""


class BusFullError(TraderError):
    """A never-drop event could not be queued within the timeout; logged and counted as critical.

    The producer must treat its state as out of sync (a listener reconnects and the REST
    refresh fills the gap); the event is never silently dropped.
    """


class ExchangeError(TraderError):
    """Base of errors coming from an exchange."""


class TemporaryError(ExchangeError):
    """Network failure or 5xx: safe to retry with backoff (but never an order create)."""

    kind = ErrorKind.TEMPORARY


class RateLimitedError(TemporaryError):
    """429/418: every REST call pauses until ``retry_after_s`` has passed."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InvalidOrderError(ExchangeError):
    """The exchange refused the order's parameters: deny, never retry."""

    kind = ErrorKind.INVALID_ORDER


class InsufficientFundsError(InvalidOrderError):
    """Not enough balance: deny, never retry."""

    kind = ErrorKind.INSUFFICIENT_FUNDS


class AuthenticationError(ExchangeError):
    """Bad or missing keys, clock skew, permissions: fatal at start."""

    kind = ErrorKind.AUTHENTICATION


class UnknownOutcomeError(ExchangeError):
    """The request may or may not have taken effect: the order becomes UNKNOWN and is looked up."""

    kind = ErrorKind.UNKNOWN_OUTCOME


class OrderNotFoundError(ExchangeError):
    """The exchange does not know this order."""

    kind = ErrorKind.INVALID_ORDER


class BadResponseError(TemporaryError):
    """The exchange answered with something we cannot read (malformed JSON, missing fields):
    retried like a temporary failure; after an order create the outcome is unknown."""

    kind = ErrorKind.BAD_DATA
