"""The names a config refers to and the wiring resolves: strategies by name (a registry the
caller passes in, :data:`~trader.trading.strategies.STRATEGIES` by default) and ccxt exchange
ids. Config is plain data and knows neither; :func:`check_config` checks a loaded config against
them with the same one-line ``ConfigError`` as every other config error, and
:func:`build_strategies` instantiates what it names."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

from trader.clock import Clock
from trader.config import SIMULATED, Config, build, strategy_id
from trader.errors import ConfigError
from trader.feeds.streams import check_streams
from trader.trading.strategies import STRATEGIES
from trader.trading.strategy import Strategy

Strategies = Mapping[str, type[Strategy]]


def check_ccxt_exchange_id(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is ``simulated`` or a ccxt exchange id."""
    if name == SIMULATED:
        return
    from trader.exchange.ccxt_client import check_exchange_id  # imports ccxt: only if used

    check_exchange_id(name)


def check_config(
    cfg: Config,
    strategies: Strategies = STRATEGIES,
    check_exchange: Callable[[str], None] = check_ccxt_exchange_id,
) -> None:
    """Raise ``ConfigError`` for the first name in ``cfg`` the registries do not know: the
    exchange, a strategy, or a strategy parameter (each strategy's ``Params`` built strictly);
    and stream timings the exchange's pings cannot meet."""
    check_exchange(cfg.exchange.name)
    check_streams(cfg)
    for i, strat in enumerate(cfg.strategies):
        where = f"strategies[{i}]"
        if strat.name not in strategies:
            hint = difflib.get_close_matches(strat.name, list(strategies), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"{where}.name: unknown strategy '{strat.name}'{suggestion}")
        build(strategies[strat.name].Params, dict(strat.params), f"{where}.params")


def build_strategies(cfg: Config, clock: Clock, strategies: Strategies) -> list[Strategy]:
    """Instantiate the configured strategies with their typed parameters (``cfg`` checked by
    :func:`check_config` against the same ``strategies``)."""
    out = []
    for i, sc in enumerate(cfg.strategies):
        cls = strategies[sc.name]
        params = build(cls.Params, dict(sc.params), f"strategies[{i}].params")
        out.append(cls(strategy_id(sc), sc.market, params, clock))
    return out
