"""The data halt: new orders on a market are held while a feed carrying its market data is
disconnected or stale, and released by the first fresh data on that feed after it reconnects
(``FeedRecovered``). Per market, apart from the trading state (``trader.trading.risk``):
cancels go through and other markets trade on. Each change is a ``DataHaltChanged`` event with
its reason. A feed the wiring did not describe is taken to carry every market (its halt's
symbol is ``*``); an account stream carries none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from trader.events import DataHaltChanged, Event, FeedDisconnected, FeedRecovered, FeedStale

log = logging.getLogger(__name__)

EVERY_MARKET = "*"  # the data halt of a feed that carries every market


class DataHalts:
    """Which markets are under a data halt, and why. Main thread only."""

    def __init__(self, feed_markets: Mapping[str, tuple[str, ...]] | None = None) -> None:
        """``feed_markets``: feed name -> the markets whose data it carries."""
        self._feed_markets = dict(feed_markets or {})
        self._down: dict[str, str] = {}  # feed -> why its data cannot be trusted
        self.halts: dict[str, str] = {}  # market -> reason

    def reason(self, symbol: str) -> str | None:
        """Why new orders on ``symbol`` are held; None when they are not."""
        return self.halts.get(symbol) or self.halts.get(EVERY_MARKET)

    def on_feed_down(self, ev: FeedStale | FeedDisconnected) -> list[Event]:
        """Data halt on every market ``ev.feed`` carries."""
        why = (
            f"{ev.feed} disconnected ({ev.reason})"
            if isinstance(ev, FeedDisconnected)
            else f"{ev.feed} stale ({ev.silent_s}s without data)"
        )
        self._down[ev.feed] = why
        return self._settle(ev.ts_recv)

    def on_feed_recovered(self, ev: FeedRecovered) -> list[Event]:
        """Fresh data on ``ev.feed``: lift the data halt of its markets no other feed holds."""
        if self._down.pop(ev.feed, None) is None:
            return []
        return self._settle(ev.ts_recv, f"fresh data on {ev.feed}")

    def _carried(self, feed: str) -> tuple[str, ...]:
        return self._feed_markets.get(feed, (EVERY_MARKET,))

    def _settle(self, now: int, lifted_by: str = "") -> list[Event]:
        want: dict[str, str] = {}
        for feed, why in self._down.items():
            for symbol in self._carried(feed):
                want.setdefault(symbol, why)
        out: list[Event] = []
        for symbol in [s for s in self.halts if s not in want]:
            del self.halts[symbol]
            log.warning("data halt on %s lifted: %s", symbol, lifted_by)
            out.append(
                DataHaltChanged(
                    ts_event=now, ts_recv=now, symbol=symbol, halted=False, reason=lifted_by
                )
            )
        for symbol, why in want.items():
            if symbol not in self.halts:
                self.halts[symbol] = why
                log.warning(
                    "data halt on %s: %s: no new orders on it until fresh data", symbol, why
                )
                out.append(
                    DataHaltChanged(
                        ts_event=now, ts_recv=now, symbol=symbol, halted=True, reason=why
                    )
                )
        return out
