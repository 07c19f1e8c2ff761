"""The strategies config can name: ``strategies[].name`` -> class."""

from __future__ import annotations

from trader.trading.strategies.ma_cross import MaCross
from trader.trading.strategies.market_maker import MarketMaker
from trader.trading.strategy import Strategy

STRATEGIES: dict[str, type[Strategy]] = {
    "ma_cross": MaCross,
    "market_maker": MarketMaker,
}
