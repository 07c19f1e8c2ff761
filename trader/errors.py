"""The exception hierarchy. Each class says what the system does when it sees one.

Exchange errors are translated into these once, at the exchange boundary (only
``trader.exchange`` knows ccxt); everything else reasons about these classes only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


class StorageUnavailableError(OperationalError):
    """The saved state cannot be read at start: rather than run on empty state, the process
    exits with code 1 (systemd retries)."""


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


# Secret-bearing text in error messages (ccxt puts the whole signed URL, and sometimes the
# request headers, into its exception text). Applied where exchange errors are translated, so
# neither the log nor the journal (``PollFailed.error``, reconciliation summaries) carries them.
_SIGNED_QUERY = re.compile(r"\?([^\s#\"']*(?:signature|sign)=[^\s#\"']*)", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"\b(signature|sign|apiKey|api_key|listenKey|secret|password|passphrase|token)"
    r"=[^&\s\"',}]+",
    re.IGNORECASE,
)
_SECRET_HEADER = re.compile(
    r"\b(Authorization|X-MBX-APIKEY|X-BAPI-API-KEY|X-BAPI-SIGN|ACCESS-KEY|ACCESS-SIGN|"
    r"ACCESS-PASSPHRASE|api-key|api-sign)(['\"]?\s*[:=]\s*['\"]?)"
    r"(?:Bearer\s+|Basic\s+)?[^\s,'\"}]+",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s/@:]*:[^\s/@]*@", re.IGNORECASE)
REDACTED = "***"


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without secrets: the query string of a signed request, signature, key and
    listen-key parameters, authentication headers, passwords in URLs, and each of ``secrets``
    (the account's key, secret and password) wherever it appears."""
    for value in secrets:
        if value:
            text = text.replace(value, REDACTED)
    text = _SIGNED_QUERY.sub(f"?[signed query {REDACTED}]", text)
    text = _SECRET_PARAM.sub(rf"\1={REDACTED}", text)
    text = _SECRET_HEADER.sub(rf"\1\2{REDACTED}", text)
    return _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
