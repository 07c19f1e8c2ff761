"""The one codec: dataclasses to plain JSON-able data and JSON text, and back, driven by the
type hints.

Everything the system persists or prints goes through here: events (the journal, the Redis
stream, the HTTP API), store records (Redis hashes), the paper account file, reconciliation
snapshots and the config dump. Supported field types: nested dataclasses, enums (by value),
``Decimal`` (as a string, so every digit and the exponent survive: ``Decimal("1.10")`` comes back
as ``"1.10"``), ``int``, ``str``, ``bool``, ``float``, ``Any`` (passed through as is),
``X | None``, ``tuple[X, ...]`` and ``dict[str, X]`` / ``Mapping[str, X]``. Fields marked
``metadata={"internal": True}`` are left out (they must have a default). Anything else raises
``TypeError`` when the codec for a class is built, so an unsupported field fails at import.

Each class's encoders and decoder are built once and cached. The JSON encoder is generated
source, one f-string per class: the journal encodes every dispatched event, and
``json.dumps`` of a dict costs several times more than the dispatch itself. Its output is exactly
``json.dumps(to_plain(value), separators=(",", ":"))``; strings are escaped by the C function
``json.dumps`` uses.

:class:`Tagged` adds a family of classes told apart by a ``type`` field (the events).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum, StrEnum
from json.encoder import encode_basestring_ascii as _esc
from types import NoneType, UnionType
from typing import Any

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]
TextEncoder = Callable[[Any], str]


class CodecError(ValueError):
    """Data that does not decode to the type asked for (the one error for bad input)."""


# ------------------------------------------------------------------------------ public API


def to_plain(value: Any, tp: Any = None) -> Any:
    """``value`` (of type ``tp``, by default its own class) as plain JSON-able data."""
    return plain_encoder(type(value) if tp is None else tp)(value)


def from_plain(tp: Any, data: Any) -> Any:
    """Inverse of :func:`to_plain`; raises :class:`CodecError` on data that does not fit."""
    try:
        return plain_decoder(tp)(data)
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise CodecError(f"{_name(tp)}: {type(exc).__name__}: {exc}") from None


def to_json(value: Any, tp: Any = None) -> str:
    """``value`` as one compact JSON text; for a dataclass, by its generated encoder."""
    return json_encoder(type(value) if tp is None else tp)(value)


def from_json(tp: Any, text: str | bytes) -> Any:
    """Inverse of :func:`to_json`; raises :class:`CodecError` on bad JSON or data."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CodecError(f"{_name(tp)}: bad JSON: {exc}") from None
    return from_plain(tp, data)


class Tagged:
    """The codec of a family of dataclasses told apart by a tag field (``{"type": "QuoteTick",
    ...}``), the tag being the class's name in ``types`` (a live registry: classes added later
    are found too)."""

    def __init__(self, types: Mapping[str, type], what: str, key: str = "type") -> None:
        self._types = types
        self._what = what
        self._key = key
        self._json: dict[type, TextEncoder] = {}
        self._decoders: dict[type, Decoder] = {}

    def prepare(self) -> None:
        """Build every registered class's codec now, so a bad field fails at import."""
        for cls in self._types.values():
            self._json_encoder(cls)
            self._decoder(cls)

    def to_dict(self, value: Any) -> dict[str, Any]:
        """``value`` as a plain dict with the tag first."""
        out: dict[str, Any] = {self._key: self._tag(type(value))}
        out.update(plain_encoder(type(value))(value))
        return out

    def from_dict(self, data: Mapping[str, Any]) -> Any:
        """Inverse of :meth:`to_dict`; unknown tags or fields raise :class:`CodecError`."""
        try:
            cls = self._types[data[self._key]]
        except (KeyError, TypeError) as exc:
            tag = data.get(self._key) if isinstance(data, Mapping) else None
            raise CodecError(f"unknown {self._what} type {tag!r}") from exc
        try:
            return self._decoder(cls)(data)
        except CodecError:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            raise CodecError(f"{cls.__name__}: {type(exc).__name__}: {exc}") from None

    def to_json(self, value: Any) -> str:
        """Exactly ``json.dumps(self.to_dict(value), separators=(",", ":"))``, generated."""
        enc = self._json.get(type(value))
        if enc is None:
            enc = self._json_encoder(type(value))
        return enc(value)

    def from_json(self, text: str | bytes) -> Any:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CodecError(f"bad {self._what} JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CodecError(f"a {self._what} is a JSON object, got {type(data).__name__}")
        return self.from_dict(data)

    def _tag(self, cls: type) -> str:
        if self._types.get(cls.__name__) is not cls:
            raise TypeError(f"{cls.__name__} is not a registered {self._what} type")
        return cls.__name__

    def _json_encoder(self, cls: type) -> TextEncoder:
        enc = self._json[cls] = _compile_json(cls, (self._key, self._tag(cls)))
        return enc

    def _decoder(self, cls: type) -> Decoder:
        dec = self._decoders.get(cls)
        if dec is None:
            dec = self._decoders[cls] = _dataclass_decoder(cls, self._key)
        return dec


# ------------------------------------------------------------------------------ plain data


_PLAIN: dict[Any, Encoder] = {}
_DECODERS: dict[Any, Decoder] = {}
_TEXT: dict[Any, TextEncoder] = {}


def plain_encoder(tp: Any) -> Encoder:
    """The (cached) function that turns a value of type ``tp`` into plain data."""
    enc = _PLAIN.get(tp)
    if enc is None:
        enc = _PLAIN[tp] = _make_plain_encoder(tp)
    return enc


def plain_decoder(tp: Any) -> Decoder:
    """The (cached) function that turns plain data back into a value of type ``tp``; it raises
    what the data provokes (:func:`from_plain` turns that into one :class:`CodecError`)."""
    dec = _DECODERS.get(tp)
    if dec is None:
        dec = _DECODERS[tp] = _make_decoder(tp)
    return dec


def _identity(value: Any) -> Any:
    return value


def _enum_value(value: Enum) -> Any:
    return value.value


def _make_plain_encoder(tp: Any) -> Encoder:
    kind, args = _classify(tp)
    if kind is _Kind.OPTIONAL:
        inner = plain_encoder(args)
        return lambda v: None if v is None else inner(v)
    if kind is _Kind.DECIMAL:
        return str
    if kind is _Kind.ENUM:
        return _enum_value
    if kind is _Kind.SCALAR:
        return _identity
    if kind is _Kind.TUPLE:
        item = plain_encoder(args)
        return lambda v: [item(x) for x in v]
    if kind is _Kind.DICT:
        item = plain_encoder(args)
        return lambda v: {k: item(x) for k, x in v.items()}
    fields = tuple((name, plain_encoder(hint)) for name, hint in _fields(tp))
    return lambda v: {name: enc(getattr(v, name)) for name, enc in fields}


def _make_decoder(tp: Any) -> Decoder:
    kind, args = _classify(tp)
    if kind is _Kind.OPTIONAL:
        inner = plain_decoder(args)
        return lambda v: None if v is None else inner(v)
    if kind is _Kind.DECIMAL:
        return _decimal
    if kind is _Kind.ENUM:
        return tp
    if kind is _Kind.SCALAR:
        return _SCALAR_DECODERS.get(tp, _identity)
    if kind is _Kind.TUPLE:
        item = plain_decoder(args)
        return lambda v: tuple(item(x) for x in _list(v))
    if kind is _Kind.DICT:
        item = plain_decoder(args)
        return lambda v: {str(k): item(x) for k, x in _dict(v).items()}
    return _dataclass_decoder(tp, None)


def _dataclass_decoder(cls: type, tag: str | None) -> Decoder:
    fields = tuple((name, plain_decoder(hint)) for name, hint in _fields(cls))
    allowed = {name for name, _ in fields} | ({tag} if tag else set())
    n_tag = 1 if tag else 0

    def decode(data: Any) -> Any:
        kwargs = {name: dec(data[name]) for name, dec in fields if name in data}
        if len(kwargs) + n_tag != len(data):
            extra = set(_dict(data)) - allowed
            if extra:
                raise CodecError(f"{cls.__name__}: unknown fields {sorted(extra)}")
        return cls(**kwargs)

    return decode


def _int(value: Any) -> int:
    if type(value) is not int:  # bool is an int subclass: refused too
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _float(value: Any) -> float:
    if type(value) not in (int, float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return value


# Bad data of the right shape (``"ts_recv": "x"``) fails here, at the boundary, not later.
_SCALAR_DECODERS: dict[Any, Decoder] = {int: _int, str: _str, bool: _bool, float: _float}


def _decimal(value: Any) -> Decimal:
    if isinstance(value, float):  # a float has lost digits already: refuse, never guess
        raise TypeError(f"a decimal is written as a string, got the float {value!r}")
    return Decimal(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------------------ JSON text


def json_encoder(tp: Any) -> TextEncoder:
    """The (cached) function that writes a value of type ``tp`` as compact JSON text."""
    enc = _TEXT.get(tp)
    if enc is None:
        enc = _TEXT[tp] = _make_text_encoder(tp)
    return enc


_BOOL = ("false", "true")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _make_text_encoder(tp: Any) -> TextEncoder:
    kind, args = _classify(tp)
    if kind is _Kind.OPTIONAL:
        inner = json_encoder(args)
        return lambda v: "null" if v is None else inner(v)
    if kind is _Kind.DECIMAL:
        return lambda v: f'"{v}"'
    if kind is _Kind.TUPLE:
        item = json_encoder(args)
        return lambda v: "[" + ",".join(map(item, v)) + "]"
    if kind is _Kind.DICT:
        item = json_encoder(args)
        return lambda v: "{" + ",".join([_esc(k) + ":" + item(x) for k, x in v.items()]) + "}"
    if kind is _Kind.DATACLASS:
        return _compile_json(tp, None)
    if tp is str or (isinstance(tp, type) and issubclass(tp, StrEnum)):
        return _esc
    plain = plain_encoder(tp)
    return lambda v: _dumps(plain(v))


def _compile_json(cls: type, tag: tuple[str, str] | None) -> TextEncoder:
    """Generate one f-string function for ``cls`` (with ``{"<key>":"<tag>"`` first if tagged).

    An int field equal to the int field just before it reuses its text: events carry two
    19-digit timestamps that are equal for every event made in this process, and writing an
    int is much of the cost."""
    scope: dict[str, Any] = {"_esc": _esc, "_BOOL": _BOOL}
    lines, parts = [], []
    prev_int = False
    fields = _fields(cls)
    for i, (name, hint) in enumerate(fields):
        value = f"e.{name}"
        is_int = hint is int
        if is_int and (prev_int or (i + 1 < len(fields) and fields[i + 1][1] is int)):
            lines.append(f"    v{i} = e.{name}")
            if prev_int:
                lines.append(f"    s{i} = s{i - 1} if v{i} == v{i - 1} else str(v{i})")
            else:
                lines.append(f"    s{i} = str(v{i})")
            piece = f"{{s{i}}}"
        else:
            piece = _piece(hint, value, scope, i)
        prev_int = is_int
        parts.append(f"{_esc(name)}:{piece}")
    head = [f"{_esc(tag[0])}:{_esc(tag[1])}"] if tag else []
    body = ",".join(head + parts)
    src = (
        "def encode(e):\n"
        + "".join(line + "\n" for line in lines)
        + f"    return f'{{{{{body}}}}}'\n"
    )
    label = tag[1] if tag else cls.__qualname__
    exec(compile(src, f"<codec {label}>", "exec"), scope)  # noqa: S102 - generated from hints
    return scope["encode"]


def _piece(tp: Any, value: str, scope: dict[str, Any], i: int) -> str:
    """The f-string piece that writes ``value`` (an expression) of type ``tp``."""
    if tp is Decimal:
        return f'"{{{value}!s}}"'
    if tp is bool:
        return f"{{_BOOL[{value}]}}"
    if tp is int:
        return f"{{{value}}}"
    if tp is str or (isinstance(tp, type) and issubclass(tp, StrEnum)):
        return f"{{_esc({value})}}"
    scope[f"_f{i}"] = json_encoder(tp)
    return f"{{_f{i}({value})}}"


# ------------------------------------------------------------------------------ type hints


_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """(name, type hint) of each encoded field of dataclass ``cls``."""
    out = _FIELDS.get(cls)
    if out is None:
        hints = typing.get_type_hints(cls)
        out = _FIELDS[cls] = tuple(
            (f.name, hints[f.name])
            for f in dataclasses.fields(cls)
            if not f.metadata.get("internal")
        )
    return out


class _Kind(Enum):
    """The kinds of type the codec handles (what :func:`_classify` tells)."""

    OPTIONAL = "optional"
    DECIMAL = "decimal"
    ENUM = "enum"
    SCALAR = "scalar"
    TUPLE = "tuple"
    DICT = "dict"
    DATACLASS = "dataclass"


def _classify(tp: Any) -> tuple[_Kind, Any]:
    """What kind of type ``tp`` is, and its item type where it has one."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, UnionType):
        args = [a for a in typing.get_args(tp) if a is not NoneType]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp}")
        return _Kind.OPTIONAL, args[0]
    if tp is Decimal:
        return _Kind.DECIMAL, None
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _Kind.ENUM, None
    if tp in (int, str, bool, float) or tp is Any:
        return _Kind.SCALAR, None
    if origin is tuple:
        args = list(typing.get_args(tp))
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple {tp}: use tuple[X, ...]")
        return _Kind.TUPLE, args[0]
    if origin in (dict, collections.abc.Mapping):
        key, item = typing.get_args(tp)
        if key is not str:
            raise TypeError(f"unsupported mapping {tp}: keys must be str")
        return _Kind.DICT, item
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _Kind.DATACLASS, None
    raise TypeError(f"unsupported type {tp!r}")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)
