"""ccxt's exceptions translated into ``trader.errors``, once, here.

- ``DDoSProtection``, ``RateLimitExceeded`` (HTTP 429/418, -1003) -> ``RateLimitedError``
  carrying ``Retry-After``: the gateway pauses every REST call until it passes.
- ``InsufficientFunds`` -> ``InsufficientFundsError``; ``InvalidOrder``, ``BadRequest``,
  ``BadSymbol`` -> ``InvalidOrderError``: the order is rejected, never retried.
- ``OrderNotFound`` (-2013, -2011) -> ``OrderNotFoundError``.
- ``AuthenticationError``, ``PermissionDenied``, ``InvalidNonce`` (-1021, clock skew) ->
  ``AuthenticationError``: fatal at start, a logged failure later.
- ``RequestTimeout``, ``ExchangeNotAvailable`` (5xx) and every other ``NetworkError`` ->
  ``TemporaryError``: the next poll retries.
- ``BadResponse``, or any non-ccxt exception raised while ccxt read the answer ->
  ``BadResponseError`` (temporary, counted as bad data).
- anything else (``NotSupported``, an error code ccxt does not map) -> ``ExchangeError``.

For an order create (``order_create=True``) a timeout, 5xx, connection failure or unreadable
answer is an ``UnknownOutcomeError`` instead: the order may exist (Binance rest-api.md: "5XX ...
execution status is UNKNOWN"), so the executor marks it UNKNOWN and looks it up by client id;
it never resends it.

ccxt does not act on ``Retry-After``; the caller passes the failed response's headers.

Every message is scrubbed (:func:`trader.errors.scrub`): ccxt's text holds the full signed URL
(``timestamp=...&recvWindow=...&signature=...``) and can hold request headers, and the caller
passes the account's key, secret and password to be removed wherever they appear.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import ccxt

from trader.errors import (
    AuthenticationError,
    BadResponseError,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    RateLimitedError,
    TemporaryError,
    TraderError,
    UnknownOutcomeError,
    scrub,
)

MAX_MESSAGE = 300


def translate(
    exc: BaseException,
    headers: Mapping[str, str] | None = None,
    order_create: bool = False,
    secrets: Iterable[str | None] = (),
) -> TraderError:
    """Our exception for ``exc``, raised by a ccxt call (see the module docstring)."""
    msg = one_line(scrub(f"{type(exc).__name__}: {exc}", secrets))
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return RateLimitedError(msg, retry_after_s(headers))
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFundsError(msg)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFoundError(msg)
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest)):
        return InvalidOrderError(msg)
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.InvalidNonce)):
        return AuthenticationError(msg)
    if isinstance(exc, ccxt.NetworkError):  # timeouts, 5xx (ExchangeNotAvailable), resets
        return UnknownOutcomeError(msg) if order_create else TemporaryError(msg)
    if isinstance(exc, ccxt.BadResponse) or not isinstance(exc, ccxt.BaseError):
        return UnknownOutcomeError(msg) if order_create else BadResponseError(msg)
    return ExchangeError(msg)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (Binance sends whole seconds), or None when absent."""
    value = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def one_line(text: str) -> str:
    """Collapse whitespace (HTML error pages) and cut to ``MAX_MESSAGE`` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
