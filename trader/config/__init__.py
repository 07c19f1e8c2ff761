"""Configuration: ``config.yaml`` loaded strictly into frozen dataclasses, secrets from the env.

Plain data: the package imports nothing from the rest of ``trader`` but its errors. By job:

- :mod:`~trader.config.schema`: the sections, their keys, types, defaults and ranges;
- :mod:`~trader.config.loader`: strict loading, ``TRADER__...`` overrides, each value's origin;
- :mod:`~trader.config.secrets`: credentials from the environment or secret files;
- :mod:`~trader.config.checks`: consistency across sections;
- :mod:`~trader.config.dump`: the redacted output (:func:`redacted` is the only way the config is
  shown; secrets are ``repr=False`` and never printed).

Names the wiring resolves (strategies, ccxt exchange ids) are checked by ``trader/registries.py``
against the registries it is given. Every error is a :class:`~trader.errors.ConfigError` with one
line; ``scripts/start.py`` prints it and exits 2.
"""

from trader.config.dump import dump_with_sources, redacted
from trader.config.loader import (
    build,
    config_from_dict,
    config_with_sources,
    load_config,
    load_config_sources,
)
from trader.config.schema import (
    SIMULATED,
    AlertsConfig,
    BusConfig,
    Config,
    ExchangeConfig,
    ExecutionConfig,
    GeneralConfig,
    JournalConfig,
    LogFormat,
    LogLevel,
    MetricsConfig,
    Mode,
    PaperConfig,
    PollerConfig,
    PortfolioConfig,
    ReconcileConfig,
    RiskConfig,
    SimulatedConfig,
    StorageBackend,
    StorageConfig,
    StoreConfig,
    StrategyConfig,
    StreamsConfig,
    TradeConfig,
    UrlsConfig,
    api_token_path,
    paper_account_path,
    state_file_path,
    strategy_id,
)
from trader.config.secrets import Secrets, read_secrets

__all__ = [
    "SIMULATED",
    "AlertsConfig",
    "BusConfig",
    "Config",
    "ExchangeConfig",
    "ExecutionConfig",
    "GeneralConfig",
    "JournalConfig",
    "LogFormat",
    "LogLevel",
    "MetricsConfig",
    "Mode",
    "PaperConfig",
    "PollerConfig",
    "PortfolioConfig",
    "ReconcileConfig",
    "RiskConfig",
    "Secrets",
    "SimulatedConfig",
    "StorageBackend",
    "StorageConfig",
    "StoreConfig",
    "StrategyConfig",
    "StreamsConfig",
    "TradeConfig",
    "UrlsConfig",
    "api_token_path",
    "build",
    "config_from_dict",
    "config_with_sources",
    "dump_with_sources",
    "load_config",
    "load_config_sources",
    "paper_account_path",
    "read_secrets",
    "redacted",
    "state_file_path",
    "strategy_id",
]
