"""The table a replay dispatches through: the app's event -> handlers table without the handlers
that act outside the process (:meth:`trader.app.App.replay_table` says why)."""

from __future__ import annotations

from collections.abc import Iterable

from trader.engine import Handler
from trader.events import Event


def _done_live(event: Event) -> None:
    """Replay's handler for commands the live run carried out: what came of them is journaled."""


def without_outside(
    table: Iterable[tuple[type[Event], Handler]], outside: tuple[object, ...]
) -> list[tuple[type[Event], Handler]]:
    """``table`` without the handlers bound to an object of ``outside``; an event class left
    with no handler gets :func:`_done_live`, so a replay does not count it as unhandled."""
    kept: list[tuple[type[Event], Handler]] = []
    dropped: list[tuple[type[Event], Handler]] = []
    for cls, h in table:
        acts_outside = any(getattr(h, "__self__", None) is o for o in outside)
        (dropped if acts_outside else kept).append((cls, h))
    handled = {cls for cls, _ in kept}
    for cls in dict.fromkeys(cls for cls, _ in dropped if cls not in handled):
        kept.append((cls, _done_live))  # handled live (not "unhandled" in a replay)
    return kept
