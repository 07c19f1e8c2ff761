"""The paper account file: the account as one JSON object (the one codec), written atomically.

Version 2 writes each order's command and each fill in the codec's nested form (no ``type``
field); version 1 files, which carried it, still load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader import codec
from trader.events import OrderFilled
from trader.exchange.paper.orders import PaperOrder

FILE_VERSION = 2


@dataclass(frozen=True)
class SavedBalance:
    """One asset's balance in the file."""

    free: Decimal
    used: Decimal


@dataclass(frozen=True, kw_only=True)
class SavedAccount:
    """The account file's content."""

    version: int = FILE_VERSION
    seq: int  # exchange ids handed out so far
    balances: dict[str, SavedBalance]
    orders: tuple[PaperOrder, ...]  # the last closed orders, then the working ones
    fills: tuple[OrderFilled, ...]  # the last fills


def write(path: Path, account: SavedAccount) -> None:
    """Write to a temporary file, flush it to disk, rename it over ``path``: a crash leaves
    either the old or the new file, never a torn one. Raises ``OSError``."""
    text = codec.to_json(account)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(path: Path) -> SavedAccount:
    """The saved account; raises ``OSError`` or :class:`~trader.codec.CodecError` (also for a
    file that is not UTF-8, or a balance that is not a finite number >= 0)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise codec.CodecError(f"not UTF-8 text (byte {exc.start})") from None
    data = codec.from_json(dict[str, Any], text)
    version = data.get("version")
    if version == 1:
        data = _from_v1(data)
    elif version != FILE_VERSION:
        raise codec.CodecError(f"version {version!r}, expected {FILE_VERSION} (or 1)")
    account = codec.from_plain(SavedAccount, data)
    for asset, balance in account.balances.items():
        for name, value in (("free", balance.free), ("used", balance.used)):
            if not value.is_finite() or value < 0:
                raise codec.CodecError(f"balance {asset}.{name} is {value}, not a number >= 0")
    return account


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 wrote commands and fills as tagged event objects."""
    try:
        orders = [{**o, "cmd": _untag(o["cmd"], "SubmitOrder")} for o in data["orders"]]
        fills = [_untag(f, "OrderFilled") for f in data["fills"]]
    except (KeyError, TypeError) as exc:
        raise codec.CodecError(f"version 1: {type(exc).__name__}: {exc}") from None
    return {**data, "version": FILE_VERSION, "orders": orders, "fills": fills}


def _untag(obj: dict[str, Any], expected: str) -> dict[str, Any]:
    if obj.get("type") != expected:
        raise codec.CodecError(f"version 1: expected a {expected}, got {obj.get('type')!r}")
    return {k: v for k, v in obj.items() if k != "type"}
