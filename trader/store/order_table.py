"""The store's orders by client id, with the open ones in their own index.

Reading the open orders (the free-balance risk rule does it for every intent, cancel-all and
reconciliation too) then costs the number of open orders, not the number ever placed: a
backtest keeps every order, and a scan over them per bar made it quadratic.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, ValuesView
from itertools import islice

from trader.model.records import Order


class OrderTable:
    """Orders by client id, oldest first; every write keeps the open index (orders whose
    ``is_open``) in step. Not thread-safe: the store's lock guards it."""

    __slots__ = ("_all", "_open")

    def __init__(self) -> None:
        self._all: dict[str, Order] = {}
        self._open: dict[str, Order] = {}

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._all

    def __len__(self) -> int:
        return len(self._all)

    def get(self, client_id: str) -> Order | None:
        """The order, or None."""
        return self._all.get(client_id)

    def __setitem__(self, client_id: str, order: Order) -> None:
        self._all[client_id] = order
        if order.is_open:
            self._open[client_id] = order
        else:
            self._open.pop(client_id, None)

    def __delitem__(self, client_id: str) -> None:
        del self._all[client_id]
        self._open.pop(client_id, None)

    def values(self) -> ValuesView[Order]:
        """Every order, oldest first."""
        return self._all.values()

    def items(self) -> ItemsView[str, Order]:
        """(client id, order), oldest first."""
        return self._all.items()

    def open(self) -> ValuesView[Order]:
        """The open orders, oldest first."""
        return self._open.values()

    def oldest_final(self, n: int) -> list[str]:
        """The client ids of the ``n`` oldest final orders (the scan stops once it has them)."""
        final: Iterator[str] = (cid for cid, o in self._all.items() if not o.is_open)
        return list(islice(final, n))
