"""The one codec: every supported field type round-trips exactly, and the generated JSON encoder
writes exactly what ``json.dumps`` writes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader import codec


class Colour(StrEnum):
    RED = "red"


class Level(Enum):
    LOW = 1


@dataclass(frozen=True)
class Leaf:
    price: Decimal
    note: str = 'q"\\\n\u00e9\u2603\x00'


@dataclass(frozen=True)
class Tree:
    a: int
    b: int  # equal to ``a`` or not: the encoder reuses a's text only when equal
    ratio: float
    flag: bool
    colour: Colour
    level: Level
    leaf: Leaf
    maybe: Leaf | None
    leaves: tuple[Leaf, ...]
    by_name: dict[str, Leaf]
    amounts: Mapping[str, Decimal]
    extra: Any = None
    hidden: str = field(default="secret", metadata={"internal": True})


def tree(b: int = 7) -> Tree:
    return Tree(
        a=7,
        b=b,
        ratio=0.25,
        flag=False,
        colour=Colour.RED,
        level=Level.LOW,
        leaf=Leaf(price=Decimal("1.10")),
        maybe=None,
        leaves=(Leaf(price=Decimal("1E+3"), note="x"), Leaf(price=Decimal("-0.000"))),
        by_name={"k\u00e9y": Leaf(price=Decimal(2))},
        amounts={"BTC": Decimal("0.10")},
        extra={"free": [1, "two"]},
    )


@pytest.mark.parametrize("b", [7, 8])
def test_nested_dataclass_round_trips_exactly(b: int) -> None:
    value = tree(b)
    text = codec.to_json(value)
    assert text == json.dumps(codec.to_plain(value), separators=(",", ":"))
    assert json.loads(text)["b"] == b
    assert "hidden" not in json.loads(text)
    back = codec.from_json(Tree, text)
    assert back == value
    assert str(back.leaf.price) == "1.10" and str(back.leaves[0].price) == "1E+3"
    assert codec.to_json(back) == text


def test_bad_data_is_one_clear_error() -> None:
    plain = codec.to_plain(tree())
    for broken in (
        {**plain, "surprise": 1},
        {k: v for k, v in plain.items() if k != "leaf"},
        {**plain, "colour": "blue"},
        {**plain, "leaf": {"price": "not a number"}},
        {**plain, "leaf": {"price": 1.1}},  # a float has lost digits: refused
        {**plain, "leaves": "abc"},
    ):
        with pytest.raises(codec.CodecError):
            codec.from_plain(Tree, broken)
    with pytest.raises(codec.CodecError, match="bad JSON"):
        codec.from_json(Tree, "{")


def test_unsupported_types_fail_when_the_codec_is_built() -> None:
    @dataclass
    class Bad:
        items: list[int]

    with pytest.raises(TypeError, match="unsupported"):
        codec.json_encoder(Bad)


def test_tagged_family() -> None:
    family = codec.Tagged({"Leaf": Leaf}, what="thing")
    text = family.to_json(Leaf(price=Decimal("3.0")))
    assert text.startswith('{"type":"Leaf",')
    assert text == json.dumps(family.to_dict(Leaf(price=Decimal("3.0"))), separators=(",", ":"))
    assert family.from_json(text) == Leaf(price=Decimal("3.0"))
    with pytest.raises(codec.CodecError, match="unknown thing type 'Nope'"):
        family.from_dict({"type": "Nope"})
    with pytest.raises(codec.CodecError, match="unknown fields"):
        family.from_dict({"type": "Leaf", "price": "1", "x": 1})
    with pytest.raises(TypeError, match="not a registered"):
        family.to_json(tree())


@given(st.decimals(allow_nan=False), st.text(), st.integers(), st.integers())
def test_any_decimal_text_and_ints_round_trip(price: Decimal, note: str, a: int, b: int) -> None:
    value = Tree(
        a=a,
        b=b,
        ratio=1.5,
        flag=True,
        colour=Colour.RED,
        level=Level.LOW,
        leaf=Leaf(price=price, note=note),
        maybe=Leaf(price=-price),
        leaves=(),
        by_name={note: Leaf(price=price)},
        amounts={},
    )
    text = codec.to_json(value)
    assert text == json.dumps(codec.to_plain(value), separators=(",", ":"))
    back = codec.from_json(Tree, text)
    assert back == value and str(back.leaf.price) == str(price)
