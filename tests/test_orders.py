"""The order state machine: every transition of the table, legal and illegal, in the table and
through the store's handlers (illegal ones are ignored, counted and logged)."""

from __future__ import annotations

import itertools
import logging
from decimal import Decimal as D

import pytest

from trader.config import StoreConfig
from trader.events import (
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
)
from trader.model.orders import LEGAL_TRANSITIONS, OrderStatus, OrderType, Side, is_legal
from trader.store.memory import MemoryStore

S = OrderStatus
FINAL = {S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED}
# The specification, written out independently of trader/model/orders.py.
EXPECTED = {
    S.PENDING: set(S),
    # a live order can end REJECTED (Bybit rejects the remainder after a partial fill)
    S.OPEN: {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED, S.UNKNOWN},
    S.PARTIALLY_FILLED: {
        S.PARTIALLY_FILLED,
        S.FILLED,
        S.CANCELED,
        S.EXPIRED,
        S.REJECTED,
        S.UNKNOWN,
    },
    S.UNKNOWN: {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.UNKNOWN, S.REJECTED},
    **{f: set() for f in FINAL},
}
PAIRS = list(itertools.product(list(S), list(S)))
# How far along an order is, written out independently: an update to an earlier stage is stale.
STAGE = {S.PENDING: 0, S.OPEN: 1, S.UNKNOWN: 1, S.PARTIALLY_FILLED: 2, **{f: 3 for f in FINAL}}


def test_the_table_covers_every_state() -> None:
    assert set(LEGAL_TRANSITIONS) == set(S)
    assert {s for s in S if s.is_final} == FINAL


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_table(current: S, new: S) -> None:
    assert is_legal(current, new) == (new in EXPECTED[current])


def report(status: S, cid: str = "c1") -> OrderStatusReport:
    return OrderStatusReport(
        ts_event=1,
        ts_recv=1,
        client_id=cid,
        exchange_id="x1",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        status=status,
        amount=D(1),
        filled=D(0),
        price=D(100),
    )


def drive(store: MemoryStore, target: S) -> None:
    """Send the event that moves an order to ``target``."""
    kw = dict(ts_event=2, ts_recv=2, client_id="c1")
    if target is S.OPEN:
        store.on_order_accepted(OrderAccepted(**kw, exchange_id="x1"))
    elif target in (S.PARTIALLY_FILLED, S.FILLED):
        final = target is S.FILLED
        store.on_order_filled(
            OrderFilled(
                **kw,
                exchange_id="x1",
                trade_id="t9",
                symbol="BTC/USDT",
                side=Side.BUY,
                price=D(100),
                amount=D(1) if final else D("0.5"),
                fee=D(0),
                fee_asset="USDT",
                filled_total=D(1) if final else D("0.5"),
                is_final=final,
            )
        )
    elif target in (S.CANCELED, S.EXPIRED):
        store.on_order_canceled(OrderCanceled(**kw, expired=target is S.EXPIRED))
    elif target is S.REJECTED:
        store.on_order_rejected(OrderRejected(**kw, reason="no"))
    elif target is S.UNKNOWN:
        store.on_order_unknown(OrderStatusUnknown(**kw, reason="timeout"))
    else:
        store.on_order_report(report(target))


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_store_applies_legal_and_rejects_illegal_transitions(
    current: S, new: S, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore(StoreConfig())
    store.on_order_report(report(current))
    assert store.order("c1").status is current
    with caplog.at_level(logging.INFO, logger="trader.store"):  # the memory store and its ledger
        drive(store, new)
    order = store.order("c1")
    if new in EXPECTED[current]:
        assert order.status is new
        assert store.illegal_transitions == 0 and store.late_fills == 0
        assert not caplog.records
    else:
        assert order.status is current  # rejected: nothing moved
        assert caplog.records, "an illegal transition must be logged"
        if new in (S.FILLED, S.PARTIALLY_FILLED):
            # a fill is a fact: the position takes it, the final status stays
            assert store.late_fills == 1 and store.position("BTC/USDT").amount > 0
        elif STAGE[new] < STAGE[current]:
            # an update of a stage the order has passed: stale, not a contradiction
            assert store.stale_updates == 1 and store.illegal_transitions == 0
            assert f"stale update of order c1 ignored: it is {current}" in caplog.text
        else:
            assert store.illegal_transitions == 1 and store.stale_updates == 0
            assert f"{current} -> {new}" in caplog.text


def test_a_repeated_report_of_the_same_status_changes_nothing() -> None:
    store = MemoryStore(StoreConfig())
    store.on_order_report(report(S.FILLED))
    store.on_order_report(report(S.FILLED))
    assert store.order("c1").status is S.FILLED and store.illegal_transitions == 0


def test_a_client_id_is_recorded_once() -> None:
    store = MemoryStore(StoreConfig())
    sub = OrderSubmitted(
        ts_event=1,
        ts_recv=1,
        client_id="c1",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        amount=D(1),
        price=D(100),
        strategy="a",
    )
    store.on_order_submitted(sub)
    store.on_order_accepted(OrderAccepted(ts_event=2, ts_recv=2, client_id="c1", exchange_id="x1"))
    store.on_order_submitted(sub)
    assert store.order("c1").status is S.OPEN and store.illegal_transitions == 1
