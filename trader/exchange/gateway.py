"""The gateway Protocol: everything the system asks of an exchange.

Implementations: :class:`trader.exchange.paper.PaperGateway` (simulated account and orders on
top of a market-data source) and the ccxt gateway (real exchanges). The wiring chooses one at
start-up; nothing else in the code asks which one it has.

Every method is called from a worker thread (poller, executor), never from the main thread,
returns events stamped with the gateway's clock, and raises only ``trader.errors`` exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from trader.events import (
    BalanceUpdate,
    Event,
    MarketUpdated,
    OrderFilled,
    OrderStatusReport,
    QuoteTick,
    SubmitOrder,
)


class MarketDataSource(Protocol):
    """The public half of an exchange: markets and prices."""

    def load_markets(self, symbols: Sequence[str]) -> list[MarketUpdated]:
        """Trading rules of ``symbols``."""
        ...

    def fetch_tickers(self, symbols: Sequence[str]) -> list[QuoteTick]:
        """Top of book of ``symbols``."""
        ...


class Gateway(MarketDataSource, Protocol):
    """A whole exchange account: market data, balances and orders."""

    def fetch_balances(self) -> list[BalanceUpdate]:
        """Every asset's balance."""
        ...

    def fetch_open_orders(self, symbols: Sequence[str]) -> list[OrderStatusReport]:
        """Open orders in ``symbols``."""
        ...

    def fetch_order(self, client_id: str, symbol: str) -> OrderStatusReport:
        """One order by our client id; raises ``OrderNotFoundError`` when the exchange has none."""
        ...

    def fetch_my_trades(self, symbol: str, since_ns: int) -> list[OrderFilled]:
        """Our fills in ``symbol`` since ``since_ns``."""
        ...

    def create_order(self, cmd: SubmitOrder) -> list[Event]:
        """Send an order; returns what the exchange answered (accepted, fills, ...)."""
        ...

    def cancel_order(self, client_id: str, symbol: str) -> list[Event]:
        """Cancel one order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
