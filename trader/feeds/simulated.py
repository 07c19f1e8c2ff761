"""The built-in simulated market: a seeded random walk around realistic prices, with a spread,
public trades and candles. It is the embedded default, so a newcomer sees the whole system work
with no keys and no network. It is also a :class:`MarketDataSource` for the paper gateway.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from trader.clock import Clock
from trader.config import SimulatedConfig
from trader.events import Candle, Event, FeedConnected, MarketUpdated, QuoteTick, TradeTick
from trader.model.market import split_symbol
from trader.model.orders import Side
from trader.model.units import NS
from trader.workers import Worker


def _increment(price: Decimal) -> Decimal:
    """A tick size giving about six significant digits (60000 -> 0.1, 150 -> 0.001)."""
    exp = math.floor(math.log10(price)) - 5
    return Decimal(1).scaleb(max(min(exp, 0), -8))


@dataclass
class _Bar:
    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class SimulatedMarket:
    """Random-walk prices per symbol; ``step`` advances every market once."""

    def __init__(self, cfg: SimulatedConfig, symbols: Sequence[str], clock: Clock) -> None:
        self._cfg = cfg
        self._clock = clock
        self._rng = random.Random(cfg.seed)
        self._symbols = tuple(symbols)
        self._mid = {s: float(cfg.start_prices[s]) for s in symbols}
        self._tick = {s: _increment(cfg.start_prices[s]) for s in symbols}
        self._quotes: dict[str, QuoteTick] = {}
        self._bars: dict[str, _Bar] = {}
        self._trade_seq = 0
        self._lock = threading.Lock()  # the feed thread writes, the poller/executor read

    def load_markets(self, symbols: Sequence[str]) -> list[MarketUpdated]:
        """Trading rules for the simulated symbols."""
        out = []
        now = self._clock.now_ns()
        for s in symbols:
            base, quote = split_symbol(s)
            out.append(
                MarketUpdated(
                    ts_event=now,
                    ts_recv=now,
                    symbol=s,
                    base=base,
                    quote=quote,
                    price_increment=self._tick[s],
                    amount_increment=Decimal("0.00001"),
                    min_amount=Decimal("0.00001"),
                    min_notional=Decimal(5),
                )
            )
        return out

    def fetch_tickers(self, symbols: Sequence[str]) -> list[QuoteTick]:
        """The latest simulated quotes."""
        with self._lock:
            return [self._quotes[s] for s in symbols if s in self._quotes]

    def step(self, now: int) -> list[Event]:
        """Move every market one step: a quote, maybe a trade, and a candle when one closes."""
        out: list[Event] = []
        vol = float(self._cfg.volatility_bps) / 10_000
        half_spread = float(self._cfg.spread_bps) / 20_000
        interval = self._cfg.candle_interval_s * NS
        with self._lock:
            for s in self._symbols:
                mid = self._mid[s] * math.exp(self._rng.gauss(0.0, vol))
                self._mid[s] = mid
                tick = self._tick[s]
                bid = Decimal(mid * (1 - half_spread)).quantize(tick)
                ask = max(Decimal(mid * (1 + half_spread)).quantize(tick), bid + tick)
                q = QuoteTick(
                    ts_event=now,
                    ts_recv=now,
                    symbol=s,
                    bid=bid,
                    ask=ask,
                    bid_size=Decimal(str(round(self._rng.uniform(0.1, 5), 3))),
                    ask_size=Decimal(str(round(self._rng.uniform(0.1, 5), 3))),
                )
                self._quotes[s] = q
                out.append(q)
                if self._rng.random() < 0.5:
                    buy = self._rng.random() < 0.5
                    self._trade_seq += 1
                    price = ask if buy else bid
                    size = Decimal(str(round(self._rng.uniform(0.001, 1), 4)))
                    out.append(
                        TradeTick(
                            ts_event=now,
                            ts_recv=now,
                            symbol=s,
                            price=price,
                            size=size,
                            aggressor=Side.BUY if buy else Side.SELL,
                            trade_id=str(self._trade_seq),
                        )
                    )
                    self._update_bar(s, now, interval, price, size, out)
        return out

    def _update_bar(
        self, s: str, now: int, interval: int, price: Decimal, size: Decimal, out: list[Event]
    ) -> None:
        start = now - now % interval
        bar = self._bars.get(s)
        if bar is not None and bar.start != start:
            out.append(
                Candle(
                    ts_event=now,
                    ts_recv=now,
                    symbol=s,
                    interval=f"{interval // NS}s",
                    open=bar.open,
                    high=bar.high,
                    low=bar.low,
                    close=bar.close,
                    volume=bar.volume,
                    start_ns=bar.start,
                    closed=True,
                )
            )
            bar = None
        if bar is None:
            self._bars[s] = _Bar(start, price, price, price, price, size)
            return
        bar.high = max(bar.high, price)
        bar.low = min(bar.low, price)
        bar.close = price
        bar.volume += size


class SimulatedFeed(Worker):
    """Worker thread that steps the simulated market every ``tick_interval_s``."""

    name = "sim-feed"

    def __init__(
        self,
        market: SimulatedMarket,
        publish: Callable[[Event], None],
        clock: Clock,
        interval_s: float,
    ) -> None:
        self._market = market
        self._publish = publish
        self._clock = clock
        self._interval = interval_s

    def run(self, stop: threading.Event) -> None:
        """Publish a step of events per interval until stopped."""
        now = self._clock.now_ns()
        self._publish(FeedConnected(ts_event=now, ts_recv=now, feed=self.name))
        while not stop.is_set():
            for ev in self._market.step(self._clock.now_ns()):
                self._publish(ev)
            stop.wait(self._interval)
