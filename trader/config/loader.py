"""Loading: ``config.yaml`` read strictly into the schema's dataclasses, ``TRADER__...``
environment overrides applied first, secrets added, and where each value came from.

- An unknown key is an error naming its dotted path, with a "did you mean".
- A wrong type or a value out of range is an error naming the key.
- :func:`build` is generic: it builds any dataclass (a strategy's ``Params`` too).
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import difflib
import os
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return config_with_sources(data or {}, env if env is not None else os.environ)


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
    sources = {
        path: _source(path, data, overridden) for path, _ in _leaves(Config, "")
    }
    sources.update({f"secrets.{var}": src for var, src in secret_sources.items()})
    return cfg, sources


# ---------------------------------------------------------------------- environment overrides

ENV_PREFIX = "TRADER__"


def apply_env_overrides(
    data: Any, env: Mapping[str, str]
) -> tuple[Any, dict[str, str]]:
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
            value = yaml.safe_load(env[var])
        except yaml.YAMLError:
            raise ConfigError(f"{var}: not a valid YAML value") from None
        node = merged
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"{var}: '{'.'.join(keys[:i + 1])}' in the file is not a mapping"
                )
            node = child
        node[keys[-1]] = value
        applied[".".join(keys)] = var
    return merged, applied


def _env_path(var: str) -> list[str]:
    """The config keys a ``TRADER__...`` variable names, checked against the schema."""
    segments = var[len(ENV_PREFIX):].split("__")
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
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")
        return tp(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not result.is_finite():
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return result
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"config type {tp} not supported ({where})")


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: {value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: {value} is above the maximum {hi}")
