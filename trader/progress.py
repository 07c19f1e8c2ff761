"""Progress of long commands (replay, backtest): a ``tqdm`` bar on stderr when stderr is a
terminal, nothing when it is piped, redirected or the journal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


class Progress:
    """A bar of ``total`` ``unit``s (``"B"``: bytes of journal read; ``"ev"``: events) with the
    count of events beside it. ``enabled=None`` draws only on a terminal."""

    def __init__(self, total: int, unit: str, desc: str, enabled: bool | None = None) -> None:
        self._bar = tqdm(
            total=total,
            unit=unit,
            desc=desc,
            unit_scale=True,
            unit_divisor=1024 if unit == "B" else 1000,
            file=sys.stderr,
            disable=None if enabled is None else not enabled,
            mininterval=0.1,
            dynamic_ncols=True,
        )

    def update(self, done: int, events: int) -> None:
        """Move the bar to ``done`` of the total, after ``events`` events."""
        if self._bar.disable:
            return
        self._bar.set_postfix_str(f"{events:,} events", refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self, events: int) -> None:
        """Draw the full bar and end its line."""
        self.update(self._bar.total, events)
        self._bar.close()

    def track(
        self, items: Iterable[T], position: Callable[[int], int], every: int = 256
    ) -> Iterator[T]:
        """Yield ``items``, moving the bar to ``position(count)`` every ``every`` of them and to
        the end after the last."""
        count = 0
        for count, item in enumerate(items, 1):
            if not count % every:
                self.update(position(count), count)
            yield item
        self.close(count)
