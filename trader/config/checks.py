"""Consistency checks across sections, on plain data (names the wiring resolves, strategies and
exchange ids, are checked there against its registries: ``trader/registries.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from trader.config.schema import (
    SIMULATED,
    Config,
    Mode,
    StorageConfig,
    paper_account_path,
    strategy_id,
)
from trader.errors import ConfigError

_SYMBOL = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+(:[A-Z0-9]+)?$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_BASE_URL = re.compile(r"^(https?|wss?)://[^/\s]+$")
# Prices a market can have (a token at 1e-9 USD, an index at 1e9) and balances an account can
# hold; a value outside is a typo (1e300 overflows the random walk, 1e-30 rounds to nothing).
PRICE_MIN, PRICE_MAX = Decimal("1e-9"), Decimal("1e9")
BALANCE_MAX = Decimal("1e15")


def check_consistency(cfg: Config) -> None:
    """Raise ``ConfigError`` for the first value that contradicts another section."""
    if not cfg.trade.markets:
        raise ConfigError("trade.markets: list at least one market")
    for i, symbol in enumerate(cfg.trade.markets):
        if not _SYMBOL.match(symbol):
            raise ConfigError(f"trade.markets[{i}]: {symbol!r} is not like BASE/QUOTE (BTC/USDT)")
    for name, url in (("rest", cfg.exchange.urls.rest), ("ws", cfg.exchange.urls.ws)):
        if url is not None and not _BASE_URL.match(url):
            raise ConfigError(
                f"exchange.urls.{name}: {url!r} must be scheme://host[:port] with no path"
            )
    if cfg.streams.backoff_max_s < cfg.streams.backoff_initial_s:
        raise ConfigError("streams.backoff_max_s: must be at least streams.backoff_initial_s")
    _check_amounts("simulated.start_prices", cfg.simulated.start_prices, PRICE_MIN, PRICE_MAX)
    _check_amounts("paper.starting_balances", cfg.paper.starting_balances, Decimal(0), BALANCE_MAX)
    if cfg.exchange.name == SIMULATED:
        if cfg.exchange.mode is Mode.LIVE:
            raise ConfigError("exchange.mode: live needs a real exchange, not 'simulated'")
        missing = [m for m in cfg.trade.markets if m not in cfg.simulated.start_prices]
        if missing:
            raise ConfigError(f"simulated.start_prices: no start price for {', '.join(missing)}")
    if cfg.exchange.mode is Mode.LIVE and not cfg.secrets.has_keys:
        raise ConfigError(
            "exchange.mode: live needs TRADER_API_KEY and TRADER_API_SECRET in the environment"
        )
    _check_storage(cfg.storage)
    if cfg.alerts.daily_summary_utc and not _HHMM.match(cfg.alerts.daily_summary_utc):
        raise ConfigError(
            f"alerts.daily_summary_utc: {cfg.alerts.daily_summary_utc!r} is not "
            f"HH:MM (UTC), or empty for none"
        )
    ids: set[str] = set()
    for i, strat in enumerate(cfg.strategies):
        where = f"strategies[{i}]"
        if strat.market not in cfg.trade.markets:
            raise ConfigError(f"{where}.market: {strat.market} is not in trade.markets")
        sid = strategy_id(strat)
        if sid in ids:
            raise ConfigError(f"{where}.id: '{sid}' is used twice; give each strategy an id")
        ids.add(sid)


def check_paths(cfg: Config) -> None:
    """What the files named in the config must be, checked without creating anything:
    ``journal.path`` a folder (or not there yet) outside ``/proc`` and ``/sys``, the paper
    account file a file (or not there yet)."""
    journal = Path(cfg.journal.path).absolute()
    if journal.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise ConfigError(f"journal.path: {journal} is in a kernel file system")
    if journal.exists() and not journal.is_dir():
        raise ConfigError(f"journal.path: {journal} exists and is not a folder")
    account = paper_account_path(cfg)
    if account is not None and account.is_dir():
        raise ConfigError(f"paper.account_file: {account} is a folder, not a file")


def _check_amounts(key: str, amounts: Mapping[str, Decimal], lo: Decimal, hi: Decimal) -> None:
    for name, value in amounts.items():
        if not lo <= value <= hi:
            raise ConfigError(f"{key}.{name}: {value} is outside {lo}..{hi}")


def _check_storage(storage: StorageConfig) -> None:
    try:
        url = urlsplit(storage.redis_url)
        password = url.password
        url.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"storage.redis_url: {exc}") from None
    if url.scheme not in ("redis", "rediss"):
        raise ConfigError(
            f"storage.redis_url: {storage.redis_url!r} must start with redis:// or rediss://"
        )
    if password:
        raise ConfigError(
            "storage.redis_url: no password in the URL (it would be shown); set "
            "TRADER_REDIS_PASSWORD in the environment"
        )
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", storage.key_prefix):
        raise ConfigError(
            f"storage.key_prefix: {storage.key_prefix!r} may use letters, digits and _.:- only"
        )
