"""Market data: quotes, trades, candles and market metadata."""

from __future__ import annotations

from decimal import Decimal

from trader.events.base import Event, MarketData, event
from trader.model.orders import Side

# --------------------------------------------------------------------------------------------
# Market data


@event
class QuoteTick(MarketData):
    """Top of book (Binance ``bookTicker``, Bybit ``tickers``, a REST ticker)."""

    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal

    @property
    def mid(self) -> Decimal:
        """Mid price."""
        return (self.bid + self.ask) / 2


@event
class TradeTick(MarketData):
    """One public trade."""

    price: Decimal
    size: Decimal
    aggressor: Side
    trade_id: str


@event
class Candle(MarketData):
    """One OHLCV bar; ``closed`` is False while the bar is still forming."""

    interval: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    start_ns: int
    closed: bool


@event
class MarketUpdated(Event):
    """A market's trading rules (loaded at start from the exchange)."""

    symbol: str
    base: str
    quote: str
    price_increment: Decimal
    amount_increment: Decimal
    min_amount: Decimal
    min_notional: Decimal
    active: bool = True
