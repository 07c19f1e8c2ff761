"""A paper order and the price rules of the paper exchange (what a taker pays, when the market
trades through a resting limit, what an order locks)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.events import (
    OrderStatus,
    OrderStatusReport,
    OrderType,
    QuoteTick,
    Side,
    SubmitOrder,
    TradeTick,
)
from trader.model.market import split_symbol

ZERO = Decimal(0)


@dataclass
class PaperOrder:
    """One order on the paper exchange, changed in place by matching (under the gateway's
    lock); saved in the account file as it is."""

    cmd: SubmitOrder
    exchange_id: str
    active_at: int  # ns: the order works from then on (latency)
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    locked: Decimal = ZERO  # funds held in ``used`` for it
    resting: bool = False  # it has met the book once and now waits as a maker
    fills: int = 0

    def report(self, now: int) -> OrderStatusReport:
        """The order as the exchange reports it."""
        c = self.cmd
        return OrderStatusReport(
            ts_event=now,
            ts_recv=now,
            client_id=c.client_id,
            exchange_id=self.exchange_id,
            symbol=c.symbol,
            side=c.side,
            order_type=c.order_type,
            status=self.status,
            amount=c.amount,
            filled=self.filled,
            price=c.price,
            avg_price=(self.cost / self.filled) if self.filled else None,
        )

    @property
    def locked_asset(self) -> str:
        """The asset its funds are locked in: the quote for a buy, the base for a sell."""
        base, quote = split_symbol(self.cmd.symbol)
        return quote if self.cmd.side is Side.BUY else base


def funds_needed(
    cmd: SubmitOrder, q: QuoteTick, slippage: Decimal, fee_rate: Decimal
) -> tuple[str, Decimal]:
    """What an order locks: a buy its notional plus fee at the limit (market: the ask plus
    slippage), a sell its amount."""
    base, quote = split_symbol(cmd.symbol)
    if cmd.side is Side.SELL:
        return base, cmd.amount
    price = cmd.price if cmd.order_type is OrderType.LIMIT else q.ask * (1 + slippage)
    assert price is not None
    return quote, cmd.amount * price * (1 + fee_rate)


def taker_price(cmd: SubmitOrder, q: QuoteTick, slippage: Decimal) -> Decimal | None:
    """The price a taker gets now, or None when a limit order does not cross."""
    if cmd.side is Side.BUY:
        if cmd.order_type is OrderType.MARKET:
            return q.ask * (1 + slippage)
        assert cmd.price is not None
        return q.ask if cmd.price >= q.ask else None
    if cmd.order_type is OrderType.MARKET:
        return q.bid * (1 - slippage)
    assert cmd.price is not None
    return q.bid if cmd.price <= q.bid else None


def trades_through(cmd: SubmitOrder, q: QuoteTick | None, trade: TradeTick | None) -> bool:
    """The market traded strictly through a resting limit's price."""
    assert cmd.price is not None
    if trade is not None:
        px = trade.price
    elif q is not None:
        px = q.ask if cmd.side is Side.BUY else q.bid
    else:
        return False
    return px < cmd.price if cmd.side is Side.BUY else px > cmd.price
