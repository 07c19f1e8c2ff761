"""Loading: ``config.yaml`` read strictly into the schema's dataclasses, ``TRADER__...``
environment overrides applied first, secrets added, and where each value came from.

- An unknown key is an error naming its dotted path, with a "did you mean".
- A wrong type, a value out of range, a number that is not finite or a string with a NUL byte is
  an error naming the key.
- The file is read as a bounded regular file of UTF-8 text and parsed without aliases, deeper
  than ``MAX_DEPTH`` or with a key repeated (:class:`_StrictLoader`): one line, never a hang.
- :func:`build` is generic: it builds any dataclass (a strategy's ``Params`` too).
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import difflib
import math
import os
import stat
import typing
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import yaml

from trader.config.checks import check_consistency
from trader.config.schema import Config
from trader.config.secrets import read_secrets
from trader.errors import ConfigError


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the configuration at ``path`` (with environment overrides)."""
    return load_config_sources(path, env)[0]


def load_config_sources(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[Config, dict[str, str]]:
    """:func:`load_config` plus where each value came from (see :func:`config_with_sources`)."""
    path = Path(path)
    data = parse_yaml(read_text_file(path, MAX_CONFIG_BYTES), str(path))
    if data is None:  # an empty file (or only comments): every value its default
        data = {}
    elif not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {_kind(data)}")
    return config_with_sources(data, env if env is not None else os.environ)


MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 50


def read_text_file(path: Path, limit: int, what: str = "config file") -> str:
    """The UTF-8 text of regular file ``path`` of at most ``limit`` bytes; a ``ConfigError``
    naming it otherwise. A device or a FIFO is refused before it is opened (no hang)."""
    try:
        if "\0" in str(path):
            raise ConfigError(f"{what} {str(path)!r}: the path contains a NUL byte")
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{what} {path}: not a regular file")
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise ConfigError(f"{what} {path}: larger than {limit} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path}: not UTF-8 text (byte {exc.start})") from None


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses what a config never needs and an attacker would use:
    aliases (an alias bomb expands to billions of nodes), nesting deeper than ``MAX_DEPTH``
    and a key given twice in one mapping (the last would silently win)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML's hook
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(f"line {mark.line + 1}: YAML aliases (*name) are not allowed")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:  # noqa: D102
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"line {line}: key {str(key)[:80]!r} repeats the key at line {seen[key]}"
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed strictly (:class:`_StrictLoader`); errors name ``where`` and a line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or "cannot parse")[:200]
        raise ConfigError(f"{where}: invalid YAML{at}: {problem}") from None
    except (RecursionError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{where}: invalid YAML: {type(exc).__name__}") from None


def config_from_dict(data: Any, env: Mapping[str, str]) -> Config:
    """Validate a parsed document, apply ``TRADER__...`` overrides and add secrets from ``env``."""
    return config_with_sources(data, env)[0]


def config_with_sources(data: Any, env: Mapping[str, str]) -> tuple[Config, dict[str, str]]:
    """The config and its provenance: dotted key -> ``file``, ``env VAR`` or ``default`` for
    every leaf value, and ``secrets.VAR`` -> ``environment``, ``file PATH (VAR_FILE)`` or
    ``not set``."""
    merged, overridden = apply_env_overrides(data, env)
    cfg = build(Config, merged, "")
    secrets, secret_sources = read_secrets(env)
    cfg = dataclasses.replace(cfg, secrets=secrets)
    check_consistency(cfg)
    sources = {path: _source(path, data, overridden) for path, _ in _leaves(Config, "")}
    sources.update({f"secrets.{var}": src for var, src in secret_sources.items()})
    return cfg, sources


# ---------------------------------------------------------------------- environment overrides

ENV_PREFIX = "TRADER__"


def apply_env_overrides(data: Any, env: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
    """Apply ``TRADER__SECTION__KEY=value`` variables to the parsed document.

    The double-underscore path names a key (``TRADER__EXCHANGE__NAME`` -> ``exchange.name``;
    below a mapping such as ``paper.starting_balances`` the last segment is the mapping's key,
    case kept: ``TRADER__PAPER__STARTING_BALANCES__USDT``). The value is parsed as YAML, so
    ``5``, ``true``, ``null`` and ``[BTC/USDT, ETH/USDT]`` mean what they mean in the file.
    An unknown path is an error naming the variable. Returns the merged document and dotted
    key -> variable.
    """
    if not isinstance(data, dict):
        return data, {}  # build() reports the bad document
    merged = copy.deepcopy(data)
    applied: dict[str, str] = {}
    for var in sorted(v for v in env if v.startswith(ENV_PREFIX)):
        keys = _env_path(var)
        try:
            value = parse_yaml(env[var], var)
        except ConfigError:
            raise ConfigError(f"{var}: not a valid YAML value") from None
        node = merged
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"{var}: '{'.'.join(keys[: i + 1])}' in the file is not a mapping"
                )
            node = child
        node[keys[-1]] = value
        applied[".".join(keys)] = var
    return merged, applied


def _env_path(var: str) -> list[str]:
    """The config keys a ``TRADER__...`` variable names, checked against the schema."""
    segments = var[len(ENV_PREFIX) :].split("__")
    keys: list[str] = []
    tp: Any = Config
    for i, seg in enumerate(segments):
        if not seg:
            raise ConfigError(f"{var}: empty key in the path (use __ between keys only)")
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            fields = public_fields(tp)
            name = seg.lower()
            if name not in fields:
                where = ".".join([*keys, name])
                hint = difflib.get_close_matches(name, list(fields), n=1)
                suggestion = f" (did you mean '{'.'.join([*keys, hint[0]])}'?)" if hint else ""
                raise ConfigError(f"{var}: unknown key '{where}'{suggestion}")
            keys.append(name)
            tp = unwrap_optional(typing.get_type_hints(tp)[name])
        elif typing.get_origin(tp) in (collections.abc.Mapping, dict) and i == len(segments) - 1:
            keys.append(seg)  # a mapping's own key, e.g. an asset name: case kept
            tp = Any
        else:
            raise ConfigError(
                f"{var}: '{'.'.join(keys)}' takes a whole value; set it as YAML "
                f"({ENV_PREFIX}{'__'.join(k.upper() for k in keys)}='...')"
            )
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        raise ConfigError(f"{var}: '{'.'.join(keys)}' is a section; name one of its keys")
    return keys


def public_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of dataclass ``cls`` a config file may set (not the ``internal`` ones)."""
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def unwrap_optional(tp: Any) -> Any:
    """``X | None`` -> ``X``; any other type unchanged."""
    if typing.get_origin(tp) in (typing.Union, UnionType):
        args = [a for a in typing.get_args(tp) if a is not NoneType]
        if len(args) == 1:
            return args[0]
    return tp


def _leaves(cls: type, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, type) of every non-section key of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for name in public_fields(cls):
        path = f"{prefix}.{name}" if prefix else name
        tp = unwrap_optional(hints[name])
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from _leaves(tp, path)
        else:
            yield path, tp


def _source(path: str, data: Any, overridden: Mapping[str, str]) -> str:
    """Where the value at ``path`` came from."""
    in_file = True
    node = data
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            in_file = False
            break
        node = node[key]
    if path in overridden:
        return f"env {overridden[path]}"
    parts = [var for key, var in overridden.items() if key.startswith(path + ".")]
    if parts:  # some keys of a mapping set by the environment, the rest from file or default
        return ("file" if in_file else "default") + " + env " + ", ".join(parts)
    return "file" if in_file else "default"


def build(cls: type, data: Any, path: str) -> Any:
    """Build dataclass ``cls`` from ``data`` strictly; errors name the dotted ``path``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {_kind(data)}")
    fields = public_fields(cls)
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            where = where if len(where) <= 80 else where[:77] + "..."
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"unknown key '{where}'{suggestion}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        where = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing key '{where}'")
            continue
        value = _convert(data[name], hints[name], where)
        _check_range(value, f.metadata, where)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # a __post_init__ check of a params dataclass
        raise ConfigError(f"{path or 'config'}: {exc}") from None


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _short(value: Any) -> str:
    """``repr(value)`` cut to one short line (a hostile value can be huge)."""
    text = (
        repr(value)
        if isinstance(value, (str, int, float, bool)) or value is None
        else f"a {_kind(value)}"
    )
    return text if len(text) <= 80 else text[:77] + "..."


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, UnionType):
        if value is None and NoneType in args:
            return None
        (inner,) = [a for a in args if a is not NoneType]
        return _convert(value, inner, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is Any:
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_kind(value)}")
        return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (collections.abc.Mapping, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_kind(value)}")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        choices = [m.value for m in tp]
        if value not in choices:
            raise ConfigError(f"{where}: {_short(value)} is not one of {', '.join(choices)}")
        return tp(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_short(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {_short(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_short(value)}")
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
        if not math.isfinite(result):
            raise ConfigError(f"{where}: expected a finite number, got {_short(value)}")
        return result
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected a number, got {_short(value)}")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f"{where}: expected a number, got {_short(value)}") from None
        if not number.is_finite():
            raise ConfigError(f"{where}: expected a finite number, got {_short(value)}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_short(value)}")
        if "\0" in value:
            raise ConfigError(f"{where}: contains a NUL byte")
        return value
    raise TypeError(f"config type {tp} not supported ({where})")


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: {value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: {value} is above the maximum {hi}")
