"""Every event type converts to one JSON object with a type field and back, exactly."""

from __future__ import annotations

import dataclasses
import json
import typing
from decimal import Decimal
from enum import StrEnum
from types import NoneType, UnionType

import pytest

from trader.events import (
    EVENT_TYPES,
    BalanceUpdate,
    Event,
    ExchangeStateFetched,
    OrderFilled,
    QuoteTick,
    event_from_dict,
    event_from_json,
    event_to_json,
)


def _sample(tp: object, i: int) -> object:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not NoneType]
        return _sample(inner, i)
    if tp is Decimal:
        return Decimal("12345.678900") + i  # trailing zeros must survive
    if tp is int:
        return 1_700_000_000_123_456_789 + i
    if tp is bool:
        return True
    if tp is str:
        return f"value-{i}"
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return list(tp)[-1]
    if origin is tuple:  # two items, each with its own values
        return tuple(_sample(typing.get_args(tp)[0], i + k) for k in (0, 7))
    if dataclasses.is_dataclass(tp):
        return sample_event(tp, i)
    raise AssertionError(tp)


def sample_event(cls: type, offset: int = 0) -> Event:
    """An instance of ``cls`` with every encoded field set to a non-default value."""
    hints = typing.get_type_hints(cls)
    return cls(
        **{
            f.name: _sample(hints[f.name], i + offset)
            for i, f in enumerate(dataclasses.fields(cls))
            if not f.metadata.get("internal")
        }
    )


@pytest.mark.parametrize(
    "cls", sorted(EVENT_TYPES.values(), key=lambda c: c.__name__), ids=lambda c: c.__name__
)
def test_every_event_round_trips_through_json(cls: type[Event]) -> None:
    ev = sample_event(cls)
    text = event_to_json(ev)
    data = json.loads(text)
    assert data["type"] == cls.__name__
    back = event_from_json(text)
    assert back == ev
    assert type(back) is cls
    assert event_to_json(back) == text


def test_nested_events_round_trip_typed() -> None:
    ev = sample_event(ExchangeStateFetched)
    assert len(ev.open_orders) == 2 and ev.open_orders[0] != ev.open_orders[1]
    data = json.loads(event_to_json(ev))
    assert data["open_orders"][1]["client_id"] == ev.open_orders[1].client_id
    assert data["balances"][0]["free"] == str(ev.balances[0].free)  # decimals as strings
    back = event_from_json(event_to_json(ev))
    assert back == ev
    assert type(back.trades[0]) is OrderFilled and back.trades[0].side is ev.trades[0].side
    assert back.not_found == ev.not_found


def test_optional_none_round_trips() -> None:
    from trader.events import OrderSubmitted
    from trader.model.orders import OrderType, Side

    ev = OrderSubmitted(
        ts_event=1,
        ts_recv=2,
        client_id="c",
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        amount=Decimal("0.10"),
    )
    assert event_from_json(event_to_json(ev)) == ev
    assert json.loads(event_to_json(ev))["price"] is None


def test_the_order_fact_and_the_order_command_share_one_field_set() -> None:
    """``OrderSubmitted`` (journaled; replay rebuilds the order from it) and ``SubmitOrder`` (the
    executor's command) carry the same fields, declared once, and the same JSON but the type."""
    from trader.events import Command, OrderSpec, OrderSubmitted, SubmitOrder

    fact = sample_event(OrderSubmitted)
    cmd = SubmitOrder(**{f.name: getattr(fact, f.name) for f in dataclasses.fields(fact)})
    assert isinstance(cmd, Command) and not isinstance(fact, Command)
    assert isinstance(cmd, OrderSpec) and isinstance(fact, OrderSpec)
    names = [f.name for f in dataclasses.fields(OrderSpec)]
    assert names == [
        "ts_event",
        "ts_recv",
        "client_id",
        "symbol",
        "side",
        "order_type",
        "amount",
        "price",
        "strategy",
    ]
    assert [f.name for f in dataclasses.fields(OrderSubmitted)] == names
    assert [f.name for f in dataclasses.fields(SubmitOrder)] == names
    assert "client_id" not in vars(OrderSubmitted) and "client_id" not in vars(SubmitOrder)
    assert json.loads(event_to_json(cmd)) == {
        **json.loads(event_to_json(fact)),
        "type": "SubmitOrder",
    }
    assert not hasattr(cmd, "__dict__") and not hasattr(fact, "__dict__")


def test_events_are_frozen_slotted_keyword_only() -> None:
    ev = BalanceUpdate(
        ts_event=1, ts_recv=2, asset="BTC", free=Decimal(1), used=Decimal(0), total=Decimal(1)
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.free = Decimal(2)  # type: ignore[misc]
    assert not hasattr(ev, "__dict__")
    with pytest.raises(TypeError):
        BalanceUpdate(1, 2, "BTC", Decimal(1), Decimal(0), Decimal(1))  # type: ignore[misc]


def test_decimal_keeps_exact_digits() -> None:
    q = QuoteTick(
        ts_event=1,
        ts_recv=1,
        symbol="X/Y",
        bid=Decimal("0.00001000"),
        bid_size=Decimal("1E+3"),
        ask=Decimal("0.1"),
        ask_size=Decimal("2"),
    )
    back = event_from_json(event_to_json(q))
    assert str(back.bid) == "0.00001000" and str(back.bid_size) == "1E+3"


def test_unknown_type_and_unknown_field_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_dict({"type": "Nope"})
    with pytest.raises(ValueError, match="unknown fields"):
        event_from_dict(
            {"type": "FeedConnected", "ts_event": 1, "ts_recv": 1, "feed": "x", "extra": 1}
        )


@pytest.mark.parametrize(
    "cls", sorted(EVENT_TYPES.values(), key=lambda c: c.__name__), ids=lambda c: c.__name__
)
def test_the_generated_encoder_writes_exactly_what_json_dumps_writes(cls: type[Event]) -> None:
    from trader.events import event_to_dict

    ev = sample_event(cls)
    tricky = {
        f.name: 'q"\\\n\u00e9\u2603\x00'
        for f in dataclasses.fields(cls)
        if typing.get_type_hints(cls)[f.name] in (str, str | None)
    }
    for case in (ev, dataclasses.replace(ev, **tricky)):
        assert event_to_json(case) == json.dumps(event_to_dict(case), separators=(",", ":"))
        assert event_from_json(event_to_json(case)) == case
