"""The paper account file: the account as one JSON object (the one codec), written atomically.

Version 2 writes each order's command and each fill in the codec's nested form (no ``type``
field); version 1 files, which carried it, still load.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from trader import codec
from trader.events import OrderFilled
from trader.exchange.paper.orders import PaperOrder
from trader.store.state_file import write_atomically

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
    """Write atomically (:func:`~trader.store.state_file.write_atomically`): a crash leaves
    either the old or the new file, never a torn one. Raises ``OSError``."""
    write_atomically(path, codec.to_json(account))


def read(path: Path) -> SavedAccount:
    """The saved account; raises ``OSError`` or :class:`~trader.codec.CodecError`."""
    data = codec.from_json(dict[str, Any], path.read_text(encoding="utf-8"))
    version = data.get("version")
    if version == 1:
        data = _from_v1(data)
    elif version != FILE_VERSION:
        raise codec.CodecError(f"version {version!r}, expected {FILE_VERSION} (or 1)")
    return codec.from_plain(SavedAccount, data)


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
