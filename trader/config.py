"""Configuration: ``config.yaml`` loaded strictly into frozen dataclasses, secrets from the env.

- An unknown key is an error naming its dotted path, with a "did you mean".
- A wrong type or a value out of range is an error naming the key.
- A consistency pass checks across sections (strategy markets are traded, live needs keys).
- Secrets come only from the environment (``TRADER_API_KEY``, ``TRADER_API_SECRET``,
  ``TRADER_API_PASSWORD``); they are ``repr=False`` and never printed: :func:`redacted` is the
  only way the config is shown.

Every error is a :class:`ConfigError` with one line; ``scripts/start.py`` prints it and exits 2.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import difflib
import os
import re
import stat
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

import yaml

from trader.errors import ConfigError


def _range(lo: float | None = None, hi: float | None = None, **kw: Any) -> dict[str, Any]:
    return {"min": lo, "max": hi, **kw}


class Mode(StrEnum):
    """``paper`` simulates orders; ``live`` sends real orders."""

    PAPER = "paper"
    LIVE = "live"


class LogLevel(StrEnum):
    """Log levels accepted in config and on the command line."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


SIMULATED = "simulated"
_SYMBOL = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+(:[A-Z0-9]+)?$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_BASE_URL = re.compile(r"^(https?|wss?)://[^/\s]+$")


@dataclass(frozen=True)
class GeneralConfig:
    """[general]: who this instance is and how it logs."""

    name: str = "trader"
    log_level: LogLevel = LogLevel.INFO
    stats_interval_s: float = field(default=5.0, metadata=_range(0.5, 3600))


@dataclass(frozen=True)
class UrlsConfig:
    """Base-URL overrides (``scheme://host[:port]``) for proxies, testnets and local doubles."""

    rest: str | None = None
    ws: str | None = None


@dataclass(frozen=True)
class ExchangeConfig:
    """[exchange]: which venue, paper or live, and how to reach it."""

    name: str = SIMULATED
    mode: Mode = Mode.PAPER
    sandbox: bool = False
    urls: UrlsConfig = field(default_factory=UrlsConfig)
    timeout_ms: int = field(default=10_000, metadata=_range(100, 120_000))


@dataclass(frozen=True)
class TradeConfig:
    """[trade]: the markets this instance watches and trades."""

    markets: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")


@dataclass(frozen=True)
class PaperConfig:
    """[paper]: the simulated account used in paper mode."""

    starting_balances: Mapping[str, Decimal] = field(
        default_factory=lambda: {"USDT": Decimal(10_000)}
    )
    fee_rate: Decimal = field(default=Decimal("0.001"), metadata=_range(0, 0.1))
    slippage_bps: Decimal = field(default=Decimal(0), metadata=_range(0, 1000))
    latency_ms: int = field(default=0, metadata=_range(0, 60_000))
    partial_fills: bool = True
    persist: bool = False  # config.yaml turns it on; off, nothing is written to the cwd
    account_file: str = ""  # empty: paper-account.json next to journal.path


@dataclass(frozen=True)
class SimulatedConfig:
    """[simulated]: the built-in market (a seeded random walk) used when exchange.name is
    ``simulated``."""

    seed: int = 42
    tick_interval_s: float = field(default=0.25, metadata=_range(0.001, 60))
    candle_interval_s: int = field(default=1, metadata=_range(1, 3600))
    volatility_bps: Decimal = field(default=Decimal(8), metadata=_range(0, 1000))
    spread_bps: Decimal = field(default=Decimal(2), metadata=_range(0, 1000))
    start_prices: Mapping[str, Decimal] = field(
        default_factory=lambda: {
            "BTC/USDT": Decimal(60_000), "ETH/USDT": Decimal(3_000), "SOL/USDT": Decimal(150),
        }
    )


@dataclass(frozen=True)
class PollerConfig:
    """[poller]: REST polling intervals in seconds (0 turns a job off)."""

    balances_every_s: int = field(default=60, metadata=_range(0, 86_400))
    tickers_every_s: int = field(default=0, metadata=_range(0, 86_400))
    open_orders_every_s: int = field(default=30, metadata=_range(0, 86_400))
    trades_every_s: int = field(default=30, metadata=_range(0, 86_400))
    fast_every_s: int = field(default=5, metadata=_range(1, 3_600))


@dataclass(frozen=True)
class StreamsConfig:
    """[streams]: the websocket listeners (Binance, Bybit): watchdogs, reconnect, rotation."""

    stale_after_s: float = field(default=60.0, metadata=_range(0.01, 3600))
    dead_after_s: float = field(default=60.0, metadata=_range(0.01, 3600))
    backoff_initial_s: float = field(default=1.0, metadata=_range(0.001, 600))
    backoff_max_s: float = field(default=30.0, metadata=_range(0.001, 3600))
    healthy_after_s: float = field(default=60.0, metadata=_range(0, 86_400))
    rotate_after_s: float = field(default=82_800.0, metadata=_range(0.01, 86_000))
    connect_timeout_s: float = field(default=10.0, metadata=_range(0.01, 120))
    ping_interval_s: float = field(default=20.0, metadata=_range(0.01, 600))
    kline_interval: str | None = "1m"


@dataclass(frozen=True)
class BusConfig:
    """[bus]: the event queue's bound and how long a never-drop put may block."""

    maxsize: int = field(default=10_000, metadata=_range(10, 10_000_000))
    put_timeout_s: float = field(default=5.0, metadata=_range(0.01, 600))


@dataclass(frozen=True)
class StoreConfig:
    """[store]: bounds of every in-memory collection."""

    candle_history: int = field(default=500, metadata=_range(1, 1_000_000))
    trade_history: int = field(default=1_000, metadata=_range(1, 1_000_000))
    max_orders: int = field(default=10_000, metadata=_range(10, 10_000_000))
    max_signals: int = field(default=1_000, metadata=_range(1, 1_000_000))
    max_symbols: int = field(default=1_000, metadata=_range(1, 100_000))
    max_assets: int = field(default=1_000, metadata=_range(1, 100_000))


@dataclass(frozen=True)
class StrategyConfig:
    """One entry of [strategies]: a strategy class by name, its market and typed parameters."""

    name: str
    market: str
    id: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RiskConfig:
    """[risk]: limits every order intent must pass."""

    max_order_notional: Decimal = field(default=Decimal(1_000), metadata=_range(0))
    max_position_notional: Decimal = field(default=Decimal(5_000), metadata=_range(0))
    buy_reserve_bps: Decimal = field(default=Decimal(20), metadata=_range(0, 10_000))
    max_orders_per_window: int = field(default=120, metadata=_range(0, 1_000_000))
    order_window_s: float = field(default=60.0, metadata=_range(0.001, 86_400))
    price_band_bps: Decimal = field(default=Decimal(500), metadata=_range(0, 100_000))
    stale_after_s: float = field(default=60.0, metadata=_range(0, 86_400))
    daily_loss_limit: Decimal = field(default=Decimal(500), metadata=_range(0))


@dataclass(frozen=True)
class ReconcileConfig:
    """[reconcile]: comparing orders, trades and balances with the exchange (start-up and after
    every reconnect); trading stays halted until they agree."""

    enabled: bool = True
    trades_lookback_s: int = field(default=3_600, metadata=_range(0, 30 * 86_400))
    retry_s: float = field(default=5.0, metadata=_range(0.01, 3_600))


@dataclass(frozen=True)
class PortfolioConfig:
    """[portfolio]: how often equity is sampled and how many samples are kept."""

    equity_sample_s: float = field(default=60.0, metadata=_range(0.1, 86_400))
    equity_samples: int = field(default=1_440, metadata=_range(1, 1_000_000))


@dataclass(frozen=True)
class ExecutionConfig:
    """[execution]: order sending and shutdown behaviour."""

    client_id_prefix: str = "trd"
    cancel_open_orders_on_exit: bool = False


@dataclass(frozen=True)
class JournalConfig:
    """[journal]: the event journal (one JSON line per dispatched event, one file per UTC day)."""

    path: str = "data/journal"
    flush_interval_s: float = field(default=1.0, metadata=_range(0.01, 1.0))
    retention_days: int = field(default=30, metadata=_range(0, 100_000))


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: counters and histograms, the minute summary line, and the local HTTP endpoint
    (``/metrics``, ``/health``, ``/status`` and the operator commands)."""

    port: int = field(default=0, metadata=_range(0, 65_535))
    summary_every_s: float = field(default=60.0, metadata=_range(1, 86_400))
    sample_every: int = field(default=16, metadata=_range(1, 1_000_000))
    stuck_after_s: float = field(default=10.0, metadata=_range(0.1, 3600))
    stale_after_s: float = field(default=60.0, metadata=_range(0, 86_400))


@dataclass(frozen=True)
class AlertsConfig:
    """[alerts]: which events reach the operator through apprise, and how they are batched.
    The destinations are secrets (``TRADER_ALERT_URLS``); without them no alert is sent."""

    fills: bool = True
    trading_state: bool = True
    feed_down_after_s: float = field(default=60.0, metadata=_range(0, 86_400))  # 0 = off
    reconciliation: bool = True
    errors: bool = True
    daily_summary_utc: str = "00:00"  # HH:MM; empty = off
    batch_s: float = field(default=2.0, metadata=_range(0, 3600))
    min_interval_s: float = field(default=10.0, metadata=_range(0, 86_400))
    retry_initial_s: float = field(default=5.0, metadata=_range(0.01, 3600))
    retry_max_s: float = field(default=300.0, metadata=_range(0.01, 86_400))
    max_pending: int = field(default=10_000, metadata=_range(10, 10_000_000))
    max_lines: int = field(default=40, metadata=_range(1, 10_000))


class StorageBackend(StrEnum):
    """Where state lives: process memory only, or memory mirrored to Redis."""

    MEMORY = "memory"
    REDIS = "redis"


@dataclass(frozen=True)
class StorageConfig:
    """[storage]: the store backend. With ``redis``, state is mirrored to Redis hashes and every
    dispatched event is appended to a capped Redis Stream (see ``trader/store/redis.py``)."""

    backend: StorageBackend = StorageBackend.MEMORY
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "trader"
    stream_maxlen: int = field(default=100_000, metadata=_range(100, 100_000_000))
    buffer_max: int = field(default=100_000, metadata=_range(100, 10_000_000))
    flush_interval_s: float = field(default=0.05, metadata=_range(0.001, 10))
    retry_max_s: float = field(default=5.0, metadata=_range(0.05, 300))


@dataclass(frozen=True)
class Secrets:
    """Credentials, from the environment only; never part of any output.

    Each comes from its variable (``TRADER_API_SECRET``) or from a file named by the variable
    with ``_FILE`` appended (``TRADER_API_SECRET_FILE``, e.g. a systemd credential); a file that
    its group or others may read is refused.
    """

    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    api_password: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    alert_urls: str | None = field(default=None, repr=False)  # apprise URLs: bot tokens

    ENV: typing.ClassVar[dict[str, str]] = {
        "api_key": "TRADER_API_KEY",
        "api_secret": "TRADER_API_SECRET",
        "api_password": "TRADER_API_PASSWORD",
        "redis_password": "TRADER_REDIS_PASSWORD",
        "alert_urls": "TRADER_ALERT_URLS",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Secrets:
        """Read every secret from ``env`` (or the files it names); empty strings count as
        unset."""
        return read_secrets(env)[0]

    @property
    def has_keys(self) -> bool:
        """True when both key and secret are set."""
        return bool(self.api_key and self.api_secret)

    def values(self) -> tuple[str, ...]:
        """Every secret value that is set (for scrubbing output); each alert URL on its own
        too, so one of several is scrubbed wherever it appears."""
        values = tuple(v for name in self.ENV if (v := getattr(self, name)))
        return values + self.alert_url_list()

    def alert_url_list(self) -> tuple[str, ...]:
        """The apprise URLs of ``TRADER_ALERT_URLS`` (separated by spaces, commas or lines)."""
        return tuple(u for u in re.split(r"[\s,]+", self.alert_urls or "") if u)


SECRET_FILE_SUFFIX = "_FILE"


def read_secrets(env: Mapping[str, str]) -> tuple[Secrets, dict[str, str]]:
    """The secrets and where each came from (variable name -> ``environment``, ``file PATH``
    or ``not set``)."""
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for name, var in Secrets.ENV.items():
        direct, path = env.get(var) or None, env.get(var + SECRET_FILE_SUFFIX) or None
        if direct and path:
            raise ConfigError(f"set {var} or {var}{SECRET_FILE_SUFFIX}, not both")
        if path:
            values[name] = _read_secret_file(var + SECRET_FILE_SUFFIX, path)
            sources[var] = f"file {path} ({var}{SECRET_FILE_SUFFIX})"
        else:
            values[name] = direct
            sources[var] = "environment" if direct else "not set"
    return Secrets(**values), sources


def _read_secret_file(var: str, path: str) -> str:
    """The stripped content of a secret file that only its owner may read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{var}: {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"{var}: {path} has mode {mode:04o}; a secret file must be readable by its owner "
                f"only (chmod 600 {path})"
            )
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{var}: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"{var}: {path} is empty")
    return text


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    general: GeneralConfig = field(default_factory=GeneralConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    trade: TradeConfig = field(default_factory=TradeConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    simulated: SimulatedConfig = field(default_factory=SimulatedConfig)
    poller: PollerConfig = field(default_factory=PollerConfig)
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    strategies: tuple[StrategyConfig, ...] = ()
    risk: RiskConfig = field(default_factory=RiskConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    portfolio: PortfolioConfig = field(default_factory=PortfolioConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    secrets: Secrets = field(default_factory=Secrets, repr=False, metadata={"internal": True})


# ---------------------------------------------------------------------------------- loading


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the configuration at ``path`` (with environment overrides)."""
    return load_config_sources(path, env)[0]


def load_config_sources(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[Config, dict[str, str]]:
    """:func:`load_config` plus where each value came from (see :func:`config_with_sources`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return config_with_sources(data or {}, env if env is not None else os.environ)


def config_from_dict(data: Any, env: Mapping[str, str]) -> Config:
    """Validate a parsed document, apply ``TRADER__...`` overrides and add secrets from ``env``."""
    return config_with_sources(data, env)[0]


def config_with_sources(data: Any, env: Mapping[str, str]) -> tuple[Config, dict[str, str]]:
    """The config and its provenance: dotted key -> ``file``, ``env VAR`` or ``default`` for
    every leaf value, and ``secrets.VAR`` -> ``environment``, ``file PATH (VAR_FILE)`` or
    ``not set``."""
    merged, overridden = apply_env_overrides(data, env)
    cfg = build(Config, merged, "")
    secrets, secret_sources = read_secrets(env)
    cfg = dataclasses.replace(cfg, secrets=secrets)
    _check_consistency(cfg)
    sources = {
        path: _source(path, data, overridden) for path, _ in _leaves(Config, "")
    }
    sources.update({f"secrets.{var}": src for var, src in secret_sources.items()})
    return cfg, sources


# ---------------------------------------------------------------------- environment overrides

ENV_PREFIX = "TRADER__"


def apply_env_overrides(
    data: Any, env: Mapping[str, str]
) -> tuple[Any, dict[str, str]]:
    """Apply ``TRADER__SECTION__KEY=value`` variables to the parsed document.

    The double-underscore path names a key (``TRADER__EXCHANGE__NAME`` -> ``exchange.name``;
    below a mapping such as ``paper.starting_balances`` the last segment is the mapping's key,
    case kept: ``TRADER__PAPER__STARTING_BALANCES__USDT``). The value is parsed as YAML, so
    ``5``, ``true``, ``null`` and ``[BTC/USDT, ETH/USDT]`` mean what they mean in the file.
    An unknown path is an error naming the variable. Returns the merged document and dotted
    key -> variable.
    """
    if not isinstance(data, dict):
        return data, {}  # build() reports the bad document
    merged = copy.deepcopy(data)
    applied: dict[str, str] = {}
    for var in sorted(v for v in env if v.startswith(ENV_PREFIX)):
        keys = _env_path(var)
        try:
            value = yaml.safe_load(env[var])
        except yaml.YAMLError:
            raise ConfigError(f"{var}: not a valid YAML value") from None
        node = merged
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"{var}: '{'.'.join(keys[:i + 1])}' in the file is not a mapping"
                )
            node = child
        node[keys[-1]] = value
        applied[".".join(keys)] = var
    return merged, applied


def _env_path(var: str) -> list[str]:
    """The config keys a ``TRADER__...`` variable names, checked against the schema."""
    segments = var[len(ENV_PREFIX):].split("__")
    keys: list[str] = []
    tp: Any = Config
    for i, seg in enumerate(segments):
        if not seg:
            raise ConfigError(f"{var}: empty key in the path (use __ between keys only)")
        if dataclasses.is_dataclass(tp):
            fields = _fields(tp)
            name = seg.lower()
            if name not in fields:
                where = ".".join([*keys, name])
                hint = difflib.get_close_matches(name, list(fields), n=1)
                suggestion = f" (did you mean '{'.'.join([*keys, hint[0]])}'?)" if hint else ""
                raise ConfigError(f"{var}: unknown key '{where}'{suggestion}")
            keys.append(name)
            tp = _unwrap_optional(typing.get_type_hints(tp)[name])
        elif typing.get_origin(tp) in (collections.abc.Mapping, dict) and i == len(segments) - 1:
            keys.append(seg)  # a mapping's own key, e.g. an asset name: case kept
            tp = Any
        else:
            raise ConfigError(
                f"{var}: '{'.'.join(keys)}' takes a whole value; set it as YAML "
                f"({ENV_PREFIX}{'__'.join(k.upper() for k in keys)}='...')"
            )
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{var}: '{'.'.join(keys)}' is a section; name one of its keys")
    return keys


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, UnionType):
        args = [a for a in typing.get_args(tp) if a is not NoneType]
        if len(args) == 1:
            return args[0]
    return tp


def _leaves(cls: type, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, type) of every non-section key of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for name in _fields(cls):
        path = f"{prefix}.{name}" if prefix else name
        tp = _unwrap_optional(hints[name])
        if dataclasses.is_dataclass(tp):
            yield from _leaves(tp, path)
        else:
            yield path, tp


def _source(path: str, data: Any, overridden: Mapping[str, str]) -> str:
    """Where the value at ``path`` came from."""
    in_file = True
    node = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            in_file = False
            break
        node = node[key]
    if path in overridden:
        return f"env {overridden[path]}"
    parts = [var for key, var in overridden.items() if key.startswith(path + ".")]
    if parts:  # some keys of a mapping set by the environment, the rest from file or default
        return ("file" if in_file else "default") + " + env " + ", ".join(parts)
    return "file" if in_file else "default"


def build(cls: type, data: Any, path: str) -> Any:
    """Build dataclass ``cls`` from ``data`` strictly; errors name the dotted ``path``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {_kind(data)}")
    fields = _fields(cls)
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"unknown key '{where}'{suggestion}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        where = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing key '{where}'")
            continue
        value = _convert(data[name], hints[name], where)
        _check_range(value, f.metadata, where)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # a __post_init__ check of a params dataclass
        raise ConfigError(f"{path or 'config'}: {exc}") from None


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, UnionType):
        if value is None and NoneType in args:
            return None
        (inner,) = [a for a in args if a is not NoneType]
        return _convert(value, inner, where)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is Any:
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_kind(value)}")
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (collections.abc.Mapping, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_kind(value)}")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        choices = [m.value for m in tp]
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")
        return tp(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not result.is_finite():
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return result
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config type {tp} not supported ({where})")


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: {value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: {value} is above the maximum {hi}")


def _check_consistency(cfg: Config) -> None:
    from trader.trading.strategies import STRATEGIES  # strategies import config types

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
    if cfg.exchange.name != SIMULATED:
        from trader.exchange.ccxt_client import check_exchange_id  # imports ccxt: only if used

        check_exchange_id(cfg.exchange.name)
    if cfg.exchange.name == SIMULATED:
        if cfg.exchange.mode is Mode.LIVE:
            raise ConfigError("exchange.mode: live needs a real exchange, not 'simulated'")
        missing = [m for m in cfg.trade.markets if m not in cfg.simulated.start_prices]
        if missing:
            raise ConfigError(
                f"simulated.start_prices: no start price for {', '.join(missing)}"
            )
    if cfg.exchange.mode is Mode.LIVE and not cfg.secrets.has_keys:
        raise ConfigError(
            "exchange.mode: live needs TRADER_API_KEY and TRADER_API_SECRET in the environment"
        )
    _check_storage(cfg.storage)
    if cfg.alerts.daily_summary_utc and not _HHMM.match(cfg.alerts.daily_summary_utc):
        raise ConfigError(f"alerts.daily_summary_utc: {cfg.alerts.daily_summary_utc!r} is not "
                          f"HH:MM (UTC), or empty for none")
    ids: set[str] = set()
    for i, strat in enumerate(cfg.strategies):
        where = f"strategies[{i}]"
        if strat.name not in STRATEGIES:
            hint = difflib.get_close_matches(strat.name, list(STRATEGIES), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"{where}.name: unknown strategy '{strat.name}'{suggestion}")
        if strat.market not in cfg.trade.markets:
            raise ConfigError(f"{where}.market: {strat.market} is not in trade.markets")
        sid = strategy_id(strat)
        if sid in ids:
            raise ConfigError(f"{where}.id: '{sid}' is used twice; give each strategy an id")
        ids.add(sid)
        build(STRATEGIES[strat.name].Params, dict(strat.params), f"{where}.params")


def _check_storage(storage: StorageConfig) -> None:
    try:
        url = urlsplit(storage.redis_url)
        password = url.password
    except ValueError as exc:
        raise ConfigError(f"storage.redis_url: {exc}") from None
    if url.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"storage.redis_url: {storage.redis_url!r} must start with redis://, rediss:// "
            "or unix://"
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


def strategy_id(strat: StrategyConfig) -> str:
    """The strategy's id: its configured ``id`` or ``name:market``."""
    return strat.id or f"{strat.name}:{strat.market}"


# ---------------------------------------------------------------------------------- output


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data, secrets shown only as set or not set."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {
                f.name: plain(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if not f.metadata.get("internal")
            }
        if isinstance(value, StrEnum):
            return value.value
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    out = plain(cfg)
    out["secrets"] = {
        var: ("<set>" if getattr(cfg.secrets, name) else "<not set>")
        for name, var in Secrets.ENV.items()
    }
    return out


def paper_account_path(cfg: Config) -> Path | None:
    """Where the paper account is saved: ``paper.account_file``, else ``paper-account.json``
    next to ``journal.path``; None when ``paper.persist`` is off."""
    if not cfg.paper.persist:
        return None
    if cfg.paper.account_file:
        return Path(cfg.paper.account_file)
    return Path(cfg.journal.path).parent / "paper-account.json"


def dump_with_sources(cfg: Config, sources: Mapping[str, str]) -> str:
    """The effective config as YAML with each value's origin as a comment (``--check-config``).

    Secrets appear only as ``<set>`` / ``<not set>``; the output parses back to
    :func:`redacted`.
    """
    lines: list[str] = []

    def scalar(value: Any) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False,
                              width=1_000_000).strip()
        return text.removesuffix("\n...").removesuffix("...").strip()

    def emit(key: str, text: str, indent: int, comment: str) -> None:
        line = f"{'  ' * indent}{key}:{' ' + text if text else ''}"
        lines.append(f"{line:<44} # {comment}" if comment else line)

    def walk(cls: type, plain: Mapping[str, Any], prefix: str, indent: int) -> None:
        hints = typing.get_type_hints(cls)
        for name in _fields(cls):
            path = f"{prefix}.{name}" if prefix else name
            tp = _unwrap_optional(hints[name])
            if dataclasses.is_dataclass(tp):
                emit(name, "", indent, "")
                walk(tp, plain[name], path, indent + 1)
            else:
                emit(name, scalar(plain[name]), indent, sources.get(path, "default"))

    out = redacted(cfg)
    walk(Config, out, "", 0)
    emit("secrets", "", 0, "environment only; values never shown")
    for var, shown in out["secrets"].items():
        source = sources.get(f"secrets.{var}", "")
        emit(var, shown, 1, "" if source == "not set" else source)
    return "\n".join(lines) + "\n"
