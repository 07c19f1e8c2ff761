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

ccxt does not act on ``Retry-After``; the caller passes the failed response's headers. Bybit
sends none: its ``X-Bapi-Limit-Reset-Timestamp`` (ms) says when a 10006 "Too many visits!"
limit resets, and gives the pause the same way.

Bybit (retCode inside an HTTP 200; ccxt maps the codes): 170213 unknown order ->
``OrderNotFoundError``; 170131 insufficient balance -> ``InsufficientFundsError``; 10002
(timestamp outside recv_window) and 10003/10004 (key, signature) -> ``AuthenticationError``;
10006/10018 and HTTP 403 (IP limit) -> ``RateLimitedError``. 170141 "Duplicate clientOrderId"
answers a create whose ``orderLinkId`` the exchange already has: ccxt calls it
``InvalidOrder``, but it means an earlier attempt of this very order was accepted, so it is an
``UnknownOutcomeError`` and the executor resolves it by lookup instead of marking it rejected.

ccxt does not act on ``Retry-After``; the caller passes the failed response's headers.

Every message is scrubbed (:func:`trader.errors.scrub`): ccxt's text holds the full signed URL
(``timestamp=...&recvWindow=...&signature=...``) and can hold request headers, and the caller
passes the account's key, secret and password to be removed wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

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
# Exchange codes (a JSON answer's Bybit ``retCode``) meaning "this client order id is taken":
# the order exists already.
DUPLICATE_CLIENT_ID_CODES = frozenset({"170141"})


def translate(
    exc: BaseException,
    headers: Mapping[str, str] | None = None,
    order_create: bool = False,
    answer: Any = None,
    now_ms: int | None = None,
    secrets: Iterable[str | None] = (),
) -> TraderError:
    """Our exception for ``exc``, raised by a ccxt call (see the module docstring); ``answer``
    is the JSON the exchange sent, ``now_ms`` the wall clock (for a reset timestamp)."""
    msg = one_line(scrub(f"{type(exc).__name__}: {exc}", secrets))
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return RateLimitedError(msg, retry_after_s(headers, now_ms))
    if order_create and exchange_code(answer) in DUPLICATE_CLIENT_ID_CODES:
        return UnknownOutcomeError(f"client order id already taken, look the order up: {msg}")
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


def retry_after_s(headers: Mapping[str, str] | None, now_ms: int | None = None) -> float | None:
    """``Retry-After`` in seconds (Binance sends whole seconds), else the time left until
    Bybit's ``X-Bapi-Limit-Reset-Timestamp`` (with ``now_ms``), or None when absent. That
    header is the current time unless the endpoint's own limit was exceeded (docs v5
    rate-limit), so a reset not in the future (an IP limit, 10018) is None: the caller's
    default pause applies, never none at all."""
    headers = headers or {}
    value = headers.get("Retry-After")
    reset = _header(headers, "X-Bapi-Limit-Reset-Timestamp")
    try:
        if value is not None:
            return max(0.0, float(value))
        if reset is not None and now_ms is not None and int(reset) > now_ms:
            return (int(reset) - now_ms) / 1000
    except ValueError:
        pass
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (requests' headers ignore case, a dict does not)."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def exchange_code(answer: Any) -> str | None:
    """The exchange's own error code in a JSON answer (Bybit ``retCode``), or None."""
    if isinstance(answer, dict) and answer.get("retCode") not in (None, 0, "0"):
        return str(answer["retCode"])
    return None


def one_line(text: str) -> str:
    """Collapse whitespace (HTML error pages) and cut to ``MAX_MESSAGE`` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
