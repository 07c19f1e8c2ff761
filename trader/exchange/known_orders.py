"""What the ccxt gateway remembers of orders between calls: which exchange id goes with which
client id, both ways (an order is looked up and canceled by the exchange's id once known, and an
answer without our client id gets it back), and the answers of final orders (their fills need no
second lookup). Bounded: past ``MAX_REMEMBERED`` the oldest are forgotten.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

MAX_REMEMBERED = 10_000  # client id <-> exchange id pairs, final orders


class KnownOrders:
    """The gateway's memory of orders; thread-safe (its lock guards only these maps and is
    never held during I/O)."""

    def __init__(self, exchange_name: str) -> None:
        self._name = exchange_name  # the ccxt id, prefix of a derived client id
        self._lock = threading.Lock()
        self._exchange_ids: OrderedDict[str, str] = OrderedDict()  # client id -> exchange id
        self._client_ids: OrderedDict[str, str] = OrderedDict()  # exchange id -> client id
        self._final_orders: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def exchange_id(self, client_id: str) -> str | None:
        """The exchange's id of our order ``client_id``, once known."""
        with self._lock:
            return self._exchange_ids.get(client_id)

    def client_id(self, raw: dict[str, Any]) -> str:
        """A ccxt order's client id: as the exchange reports it, else as we sent it, else one
        derived from the exchange id (an order placed outside this system)."""
        if raw.get("clientOrderId"):
            return str(raw["clientOrderId"])
        exchange_id = str(raw.get("id") or "")
        with self._lock:
            known = self._client_ids.get(exchange_id)
        return known or f"{self._name}-{exchange_id}"

    def remember(self, client_id: str, exchange_id: str) -> None:
        """Pair ``client_id`` with ``exchange_id`` (nothing when the latter is empty)."""
        if not exchange_id:
            return
        with self._lock:
            _remember(self._exchange_ids, client_id, exchange_id)
            _remember(self._client_ids, exchange_id, client_id)

    def final_order(self, exchange_id: str) -> dict[str, Any] | None:
        """The ccxt answer of a final order, when remembered."""
        with self._lock:
            return self._final_orders.get(exchange_id)

    def remember_final(self, exchange_id: str, order: dict[str, Any]) -> None:
        """Keep a final order's ccxt answer: it will not change."""
        with self._lock:
            _remember(self._final_orders, exchange_id, order)


def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_REMEMBERED:
        table.popitem(last=False)
