"""Immutable records the store hands out. Replacing a record, never mutating it, is what makes
every read a consistent snapshot without copying deep structures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from trader.model.orders import OrderStatus, OrderType, Side


@dataclass(frozen=True, slots=True)
class Market:
    """A market's trading rules."""

    symbol: str
    base: str
    quote: str
    price_increment: Decimal
    amount_increment: Decimal
    min_amount: Decimal
    min_notional: Decimal
    active: bool = True


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset's balance."""

    asset: str
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill applied to an order."""

    trade_id: str
    price: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Order:
    """One order as we know it. ``external`` marks orders found on the exchange that we did not
    place."""

    client_id: str
    symbol: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None
    status: OrderStatus
    filled: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    exchange_id: str = ""
    strategy: str = ""
    external: bool = False
    reason: str = ""
    ts_update: int = 0
    fills: tuple[Fill, ...] = ()  # fills applied, by trade id: a fill seen twice counts once

    @property
    def remaining(self) -> Decimal:
        """Amount not yet filled."""
        return self.amount - self.filled

    @property
    def filled_by_fills(self) -> Decimal:
        """Sum of the fills applied (``filled`` may be ahead of it after a REST report)."""
        return sum((f.amount for f in self.fills), Decimal(0))

    def has_fill(self, trade_id: str) -> bool:
        """True when the fill with ``trade_id`` was already applied."""
        return any(f.trade_id == trade_id for f in self.fills)

    @property
    def is_open(self) -> bool:
        """True while the order can still fill (including UNKNOWN: it may be live)."""
        return not self.status.is_final


@dataclass(frozen=True, slots=True)
class Position:
    """Net position in one market, with average entry price and PnL in the quote asset."""

    symbol: str
    amount: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class BalancesSnapshot:
    """Balances with each asset's USD value (None when no price path exists) and the total."""

    balances: Mapping[str, Balance]
    usd_values: Mapping[str, Decimal | None]
    total_usd: Decimal
