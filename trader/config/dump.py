"""Showing the config: as plain data with secrets redacted, and as YAML with each value's
origin (``--check-config``)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import yaml

from trader import codec
from trader.config.loader import public_fields, unwrap_optional
from trader.config.schema import Config
from trader.config.secrets import Secrets


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data, secrets shown only as set or not set."""

    out = codec.to_plain(cfg)  # leaves out the internal secrets field
    out["secrets"] = {
        var: ("<set>" if getattr(cfg.secrets, name) else "<not set>")
        for name, var in Secrets.ENV.items()
    }
    return out


def dump_with_sources(cfg: Config, sources: Mapping[str, str]) -> str:
    """The effective config as YAML with each value's origin as a comment (``--check-config``).

    Secrets appear only as ``<set>`` / ``<not set>``; the output parses back to
    :func:`redacted`.
    """
    lines: list[str] = []

    def scalar(value: Any) -> str:
        text = yaml.safe_dump(
            value, default_flow_style=True, sort_keys=False, width=1_000_000
        ).strip()
        return text.removesuffix("\n...").removesuffix("...").strip()

    def emit(key: str, text: str, indent: int, comment: str) -> None:
        line = f"{'  ' * indent}{key}:{' ' + text if text else ''}"
        lines.append(f"{line:<44} # {comment}" if comment else line)

    def walk(cls: type, plain: Mapping[str, Any], prefix: str, indent: int) -> None:
        hints = typing.get_type_hints(cls)
        for name in public_fields(cls):
            path = f"{prefix}.{name}" if prefix else name
            tp = unwrap_optional(hints[name])
            if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                emit(name, "", indent, "")
                walk(tp, plain[name], path, indent + 1)
            else:
                emit(name, scalar(plain[name]), indent, sources.get(path, "default"))

    out = redacted(cfg)
    walk(Config, out, "", 0)
    emit("secrets", "", 0, "environment only; values never shown")
    for var, shown in out["secrets"].items():
        source = sources.get(f"secrets.{var}", "")
        emit(var, shown, 1, "" if source == "not set" else source)
    return "\n".join(lines) + "\n"
