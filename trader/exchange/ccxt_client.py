"""Building a configured ccxt instance: the exchange id check, per-exchange options, testnet
(sandbox) URLs and the REST base-URL override.

The override replaces the scheme and host of every entry of ``exchange.urls['api']`` (nested
tables too) and keeps each path, so a proxy, a testnet mirror or a local test double receives
every request and nothing goes to any other host; the HTTP session then also ignores proxy
settings from the environment (``trust_env``). ``sandbox`` is applied first, so an override keeps
the testnet's paths.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import ccxt

from trader.config import SIMULATED, ExchangeConfig, Secrets
from trader.errors import ConfigError

# Options that keep ccxt to what we use. Binance: spot markets only, and no currency/margin
# endpoints in load_markets (with keys set, ccxt's defaults add six sapi/fapi/dapi requests).
# Bybit: spot instruments only (its defaults also load linear, inverse and six option chains).
_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    },
    "bybit": {"fetchMarkets": {"types": ["spot"]}},
}


def check_exchange_id(name: str) -> None:
    """Raise ``ConfigError`` (with a "did you mean") unless ``name`` is a ccxt exchange id."""
    if name == SIMULATED or name in ccxt.exchanges:
        return
    hint = difflib.get_close_matches(name, [SIMULATED, *ccxt.exchanges], n=1)
    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
    raise ConfigError(f"exchange.name: unknown exchange '{name}'{suggestion}")


def make_exchange(
    cfg: ExchangeConfig, secrets: Secrets | None, symbols: Sequence[str] = ()
) -> ccxt.Exchange:
    """A ccxt instance for ``cfg``; ``secrets`` None gives a public-only (market data) client."""
    check_exchange_id(cfg.name)
    options: dict[str, Any] = {
        **_OPTIONS.get(cfg.name, {}),
        "maxRetriesOnFailure": 0,  # never let ccxt resend anything, an order create least of all
    }
    if cfg.name in ("binance", "bybit") and any(":" in s for s in symbols):
        options.pop("fetchMarkets")  # derivatives configured: let ccxt load every market type
    params: dict[str, Any] = {
        "enableRateLimit": True,  # never lower an exchange's rateLimit (DESIGN.md section 6)
        "timeout": cfg.timeout_ms,
        "options": options,
    }
    if secrets is not None:
        params |= {"apiKey": secrets.api_key, "secret": secrets.api_secret}
        if secrets.api_password:
            params["password"] = secrets.api_password
    exchange = getattr(ccxt, cfg.name)(params)
    exchange.enableLastJsonResponse = True  # how the gateway tells malformed JSON from data
    if cfg.sandbox:
        if not exchange.urls.get("test"):  # ccxt lists a None testnet for some exchanges
            raise ConfigError(f"exchange.sandbox: ccxt knows no testnet for '{cfg.name}'")
        exchange.set_sandbox_mode(True)
    if cfg.urls.rest:
        exchange.urls["api"] = override_urls(exchange.urls["api"], cfg.urls.rest)
        exchange.session.trust_env = False
    return exchange


def override_urls(api: Any, base: str) -> Any:
    """``api`` (a URL or a nested table of URLs) with every scheme and host taken from ``base``
    (``scheme://host[:port]``), every path kept."""
    if isinstance(api, dict):
        return {k: override_urls(v, base) for k, v in api.items()}
    if isinstance(api, str):
        parts = urlsplit(api)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        return base.rstrip("/") + rest
    return api


class SharedRateLimit:
    """One rate-limit budget for several ccxt clients of one account (the gateway's polling
    client and its order client): installed as each client's ``throttle``, it starts a request
    of ``cost`` no sooner than ``rateLimit * cost`` ms after the start of the one before, of
    either client, as ccxt does for a single client. A request takes its start time when it
    is throttled, so an order waits at most its own spacing behind a poll, never for the
    poll's answer."""

    def __init__(
        self, rate_limit_ms: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = rate_limit_ms / 1000.0
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last = -float("inf")  # monotonic start of the latest request
        self._pause = threading.Event()  # never set: waits without time.sleep

    def throttle(self, cost: float | None = None) -> None:
        """Wait for this request's slot (ccxt calls it before each request)."""
        with self._lock:
            now = self._monotonic()
            start = max(now, self._last + self._interval_s * (1 if cost is None else cost))
            self._last = start
        if start > now:
            self._pause.wait(start - now)

    def install(self, *exchanges: ccxt.Exchange) -> None:
        """Make ``exchanges`` share this budget."""
        for ex in exchanges:
            ex.throttle = self.throttle
