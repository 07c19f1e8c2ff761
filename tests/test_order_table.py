"""The store's order table: the open-orders index follows every write, and reading the open
orders or evicting the oldest final ones does not walk the whole history."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from trader.model.orders import OrderStatus, OrderType, Side
from trader.model.records import Order
from trader.store.order_table import OrderTable


def order(cid: str, status: OrderStatus = OrderStatus.OPEN) -> Order:
    return Order(cid, "BTC/USDT", Side.BUY, OrderType.LIMIT, D(1), D(100), status)


class CountingOrder(Order):
    """An order that counts how often its ``is_open`` is read."""

    reads = 0

    @property
    def is_open(self) -> bool:
        CountingOrder.reads += 1
        return not self.status.is_final


def test_the_open_index_follows_every_write_in_placement_order() -> None:
    table = OrderTable()
    for cid in ("a", "b", "c"):
        table[cid] = order(cid, OrderStatus.PENDING)
    table["b"] = replace(table.get("b"), status=OrderStatus.OPEN)  # still open: keeps its place
    assert [o.client_id for o in table.open()] == ["a", "b", "c"]
    table["a"] = replace(table.get("a"), status=OrderStatus.FILLED)
    table["c"] = replace(table.get("c"), status=OrderStatus.UNKNOWN)  # UNKNOWN may be live
    assert [o.client_id for o in table.open()] == ["b", "c"]
    assert [o.status for o in table.open()] == [OrderStatus.OPEN, OrderStatus.UNKNOWN]
    del table["b"]
    assert [o.client_id for o in table.open()] == ["c"]
    assert len(table) == 2 and "a" in table and "b" not in table
    assert [cid for cid, _ in table.items()] == ["a", "c"]


def test_open_orders_and_eviction_do_not_walk_the_history() -> None:
    table = OrderTable()
    for i in range(10_000):
        table[f"f{i}"] = CountingOrder(
            f"f{i}", "BTC/USDT", Side.BUY, OrderType.MARKET, D(1), None, OrderStatus.FILLED
        )
    table["open"] = order("open")
    CountingOrder.reads = 0
    assert [o.client_id for o in table.open()] == ["open"]
    assert table.oldest_final(2) == ["f0", "f1"]
    assert CountingOrder.reads <= 3  # the scan stops once it has the two
