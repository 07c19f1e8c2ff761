"""Account and order facts, and the commands the executor runs."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.errors import ErrorKind
from trader.events.base import Command, Event, Liquidity, event
from trader.model.orders import OrderStatus, OrderType, Side

# --------------------------------------------------------------------------------------------
# Account


@event
class BalanceUpdate(Event):
    """One asset's balance (free, used, total), from a stream or a REST snapshot.

    ``ts_event`` is the account's time of the figures (the exchange's, or the fetch time when a
    snapshot has none); ``seq`` orders updates of the same time where the source numbers them
    (the paper account stamps every update), 0 otherwise. The store ignores one older than
    what it holds.
    """

    asset: str
    free: Decimal
    used: Decimal
    total: Decimal
    seq: int = 0


# --------------------------------------------------------------------------------------------
# Orders


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSpec(Event):
    """The fields of a new order, shared by the fact and the command (see the module doc)."""

    client_id: str
    symbol: str
    side: Side
    order_type: OrderType
    amount: Decimal
    price: Decimal | None = None
    strategy: str = ""


@event
class OrderSubmitted(OrderSpec):
    """An order passed risk and was recorded; it is about to be sent to the exchange."""


@event
class OrderAccepted(Event):
    """The exchange acknowledged the order."""

    client_id: str
    exchange_id: str


@event
class OrderRejected(Event):
    """The exchange (or the gateway) refused the order."""

    client_id: str
    reason: str
    kind: ErrorKind = ErrorKind.INVALID_ORDER


@event
class OrderFilled(Event):
    """A fill, partial or full: ``filled_total`` is the order's cumulative filled amount."""

    client_id: str
    exchange_id: str
    trade_id: str
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_asset: str
    filled_total: Decimal
    is_final: bool
    liquidity: Liquidity = Liquidity.UNKNOWN
    # What the venue said about the order with this fill, kept for the user (journal, API);
    # None when the source does not say. Nothing dispatches on them.
    venue_order_type: str | None = None  # the venue's own name: LIMIT_MAKER, STOP_LOSS, Market
    time_in_force: str | None = None  # as the venue names it: GTC, IOC, FOK, GTX, PostOnly
    order_price: Decimal | None = None  # the order's limit price (None for market orders)
    order_amount: Decimal | None = None  # the order's quantity
    stop_price: Decimal | None = None  # the order's stop/trigger price
    cum_quote: Decimal | None = None  # the order's cumulative quote amount, this fill included
    fee_rate: Decimal | None = None


@event
class OrderCanceled(Event):
    """The order was canceled (by us, the exchange, or it expired)."""

    client_id: str
    reason: str = ""
    expired: bool = False


@event
class OrderStatusUnknown(Event):
    """We do not know whether the exchange has the order (timeout, 5xx); it will be looked up."""

    client_id: str
    reason: str


@event
class OrderStatusReport(Event):
    """A snapshot of one order as the exchange reports it (REST poll, lookup, reconciliation)."""

    client_id: str
    exchange_id: str
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    amount: Decimal
    filled: Decimal
    price: Decimal | None = None
    avg_price: Decimal | None = None
    # Kept for the user, None when the source does not say (see OrderFilled).
    venue_order_type: str | None = None
    time_in_force: str | None = None
    stop_price: Decimal | None = None
    cum_quote: Decimal | None = None


@event
class OrderAmended(Event):
    """The exchange changed a live order in place, keeping its id and its queue priority
    (Binance "amend keep priority" reduces the quantity): ``amount`` is the new quantity,
    ``price`` the order's price (unchanged by a Binance amend)."""

    client_id: str
    exchange_id: str
    amount: Decimal
    price: Decimal | None = None


@event
class ExchangeUpdateUnusable(Event):
    """An update from the exchange that could not be booked as it came (a fill without any
    price to book, a balance without its free amount): nothing was booked from it. ``subject``
    is the order's client id or the asset. The REST trade and balance polls and reconciliation
    bring the truth in later."""

    subject: str
    reason: str


# --------------------------------------------------------------------------------------------
# Commands


@event
class SubmitOrder(OrderSpec, Command):
    """Ask the executor to send an order (risk has decided; the id is already recorded)."""


@event
class CancelOrder(Command):
    """Ask the executor to cancel one order."""

    client_id: str
    symbol: str


@event
class HaltTrading(Command):
    """Operator kill switch: set trading HALTED, optionally cancel every open order."""

    reason: str
    cancel_orders: bool = False


@event
class ResumeTrading(Command):
    """Operator: lift the operator's own halt; with ``force``, every halt cause (reconciliation,
    daily loss) and the reduce-only state too."""

    reason: str
    force: bool = False


@event
class CancelAllOrders(Command):
    """Ask the executor to cancel every open order (optionally of one market)."""

    symbol: str | None = None
