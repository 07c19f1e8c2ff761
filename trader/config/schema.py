"""The configuration's schema: frozen dataclasses, one per ``config.yaml`` section, with each
key's type, default and allowed range (``metadata``). Plain data: nothing here knows the
exchanges or the strategies (the wiring checks the names against its registries)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from trader.config.secrets import Secrets


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


class LogFormat(StrEnum):
    """``text``: one line for a person; ``json``: one JSON object a line for a log shipper."""

    TEXT = "text"
    JSON = "json"


SIMULATED = "simulated"


@dataclass(frozen=True)
class GeneralConfig:
    """[general]: who this instance is and how it logs."""

    name: str = "trader"
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.TEXT
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
    # how long the start retries rate limits, 5xx and network errors before giving up
    start_deadline_s: float = field(default=300.0, metadata=_range(0, 86_400))


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
            "BTC/USDT": Decimal(60_000),
            "ETH/USDT": Decimal(3_000),
            "SOL/USDT": Decimal(150),
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

    max_order_notional: Decimal = field(default=Decimal(1_000), metadata=_range(0, 1e12))
    max_position_notional: Decimal = field(default=Decimal(5_000), metadata=_range(0, 1e12))
    buy_reserve_bps: Decimal = field(default=Decimal(20), metadata=_range(0, 10_000))
    max_orders_per_window: int = field(default=120, metadata=_range(0, 1_000_000))
    order_window_s: float = field(default=60.0, metadata=_range(0.001, 86_400))
    price_band_bps: Decimal = field(default=Decimal(500), metadata=_range(0, 100_000))
    stale_after_s: float = field(default=60.0, metadata=_range(0, 86_400))
    daily_loss_limit: Decimal = field(default=Decimal(500), metadata=_range(0, 1e12))
    daily_loss_soft_limit: Decimal = field(default=Decimal(0), metadata=_range(0, 1e12))


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
    # events waiting for the writer thread before the journal counts as failed (trading halts)
    max_pending: int = field(default=2_000_000, metadata=_range(1_000, 100_000_000))


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
    # Redis unreachable at start: False (default) ends the start (exit 1, systemd retries);
    # True starts on empty state, and the saved records are kept when Redis answers again.
    start_empty_if_unreachable: bool = False
    # The memory backend's saved ledger; empty: trader-state.json next to journal.path.
    state_file: str = ""


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


def strategy_id(strat: StrategyConfig) -> str:
    """The strategy's id: its configured ``id`` or ``name:market``."""
    return strat.id or f"{strat.name}:{strat.market}"


def state_file_path(cfg: Config) -> Path:
    """Where the memory backend saves the ledger: ``storage.state_file``, else
    ``trader-state.json`` next to ``journal.path``."""
    if cfg.storage.state_file:
        return Path(cfg.storage.state_file)
    return Path(cfg.journal.path).parent / "trader-state.json"


def paper_account_path(cfg: Config) -> Path | None:
    """Where the paper account is saved: ``paper.account_file``, else ``paper-account.json``
    next to ``journal.path``; None when ``paper.persist`` is off."""
    if not cfg.paper.persist:
        return None
    if cfg.paper.account_file:
        return Path(cfg.paper.account_file)
    return Path(cfg.journal.path).parent / "paper-account.json"


def api_token_path(cfg: Config) -> Path:
    """Where the operator API's token is kept (generated at the first start, mode 0600): next
    to ``journal.path``."""
    return Path(cfg.journal.path).parent / "api-token"
