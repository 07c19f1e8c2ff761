"""Bar input of a backtest: OHLCV CSV files, checked strictly and read again at each pass, turned
into events; and the market data of recorded journals.

CSV files: ``timestamp,open,high,low,close,volume``; the timestamp in s, ms, us or ns since the
epoch, or ISO 8601 UTC. A bar becomes, at its close time (start + bar interval), a ``QuoteTick``
at the close (``simulated.spread_bps`` wide) and then a closed ``Candle``. Journals: only their
market data and market rules are used (what the live strategies did is not replayed, the
configured ones decide again).
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from trader.events import Candle, Event, MarketData, MarketUpdated, QuoteTick
from trader.journal import JournalReader
from trader.model.units import NS

CSV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class DataError(ValueError):
    """Bad input data: the message names the file and line."""


class Bar(NamedTuple):
    """One OHLCV bar; ``start_ns`` is when it opened (a tuple: built for every bar of a file, at
    every read, it costs a third of a frozen dataclass)."""

    start_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def parse_timestamp(text: str) -> int:
    """Epoch seconds, ms, us or ns (told apart by size), or ISO 8601 (UTC unless it says)."""
    if not text.isdigit():  # digits alone are the usual case
        text = text.strip()
    if text.lstrip("-").isdigit():
        value = int(text)
        for limit, scale in ((10**11, NS), (10**14, 10**6), (10**17, 10**3)):
            if abs(value) < limit:
                return value * scale
        return value
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * NS + when.microsecond * 1000


class BarFile:
    """An OHLCV CSV file, checked whole by :func:`read_csv`, whose bars are read again from the
    file at each iteration: a backtest's memory does not grow with the number of bars."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        first: Bar | None = None
        gap = None
        previous = 0
        for bar in self:
            if first is None:
                first = bar
            elif bar.start_ns <= previous:
                raise DataError(f"{path}:{self.count + 2}: timestamps must increase")
            else:
                gap = bar.start_ns - previous if gap is None else min(gap, bar.start_ns - previous)
            previous = bar.start_ns
            self.count += 1
        if first is None:
            raise DataError(f"{path}: no bars")
        self.first: Bar = first
        self.interval_ns: int = gap or 60 * NS  # the smallest gap (60 s for a single bar)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Bar]:
        """The bars, oldest first, each checked (``DataError`` names the line)."""
        path = self.path
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path}: missing columns {missing}; expected {','.join(CSV_COLUMNS)}"
                )
            when = header.index(CSV_COLUMNS[0])
            prices = itemgetter(*(header.index(c) for c in CSV_COLUMNS[1:]))
            for lineno, row in enumerate(reader, 2):
                try:
                    ts = parse_timestamp(row[when])
                    o, h, lo, c, v = map(Decimal, prices(row))
                except (ValueError, InvalidOperation, IndexError) as exc:
                    raise DataError(f"{path}:{lineno}: cannot parse {row}: {exc}") from None
                if not (lo <= o <= h and lo <= c <= h and v >= 0 and lo > 0):
                    raise DataError(
                        f"{path}:{lineno}: inconsistent bar o={o} h={h} l={lo} c={c} v={v}"
                    )
                yield Bar(ts, o, h, lo, c, v)


def read_csv(path: str | Path) -> BarFile:
    """Check an OHLCV CSV strictly (the header must name the six columns, timestamps increase,
    every bar is consistent); the bars are read from the file when iterated."""
    return BarFile(Path(path))


def bar_events(symbol: str, bars: BarFile, spread_bps: Decimal) -> Iterator[Event]:
    """A quote at the close and the closed candle, stamped at each bar's close time."""
    interval = bars.interval_ns
    half = spread_bps / Decimal(20_000)
    bid_f, ask_f = 1 - half, 1 + half
    label = f"{interval // NS}s" if interval % (60 * NS) else f"{interval // (60 * NS)}m"
    for bar in bars:
        ts = bar.start_ns + interval
        close = bar.close
        yield QuoteTick(
            ts_event=ts,
            ts_recv=ts,
            symbol=symbol,
            bid=close * bid_f if half else close,
            ask=close * ask_f if half else close,
            bid_size=bar.volume,
            ask_size=bar.volume,
        )
        yield Candle(
            ts_event=ts,
            ts_recv=ts,
            symbol=symbol,
            interval=label,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            start_ns=bar.start_ns,
            closed=True,
        )


def merge_by_time(streams: Iterable[Iterable[Event]]) -> Iterator[Event]:
    """Merge time-ordered streams by ``ts_recv`` (stable: ties keep stream order)."""
    return heapq.merge(*streams, key=lambda e: e.ts_recv)


def journal_market_events(reader: JournalReader, symbols: set[str]) -> Iterator[Event]:
    """Market data and market rules of ``symbols`` from journal files, in recorded order."""
    for ev in reader:
        if isinstance(ev, (MarketData, MarketUpdated)) and ev.symbol in symbols:
            yield ev
