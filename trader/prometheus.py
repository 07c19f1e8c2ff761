"""``/metrics`` through ``prometheus_client``: a custom collector that turns the metrics snapshot
into metric families, on a private registry per process object (never the library's global one)
with the library's process, platform and GC collectors beside it, so the standard ``process_*``
and ``python_*`` families come for free. The hot path is unchanged: the collector only reads the
snapshot the main thread publishes and a few thread-safe live values, on the HTTP thread."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from trader import counters
from trader.events import TradingState


class Buckets(Protocol):
    """A histogram snapshot: per-bucket counts (not cumulative; the last is +Inf), their sum."""

    counts: tuple[int, ...]
    sum_s: float


class Source(Protocol):
    """What the collector reads: the published snapshot and the live, thread-safe values."""

    @property
    def snapshot(self) -> Mapping[str, Any]:
        """The latest published snapshot."""
        ...

    @property
    def feeds(self) -> Mapping[str, tuple[str, int]]:
        """feed -> (state, since ns)."""
        ...

    def queue_depth(self) -> int:
        """Events waiting on the bus now."""
        ...

    def last_dispatch_age_s(self) -> float:
        """Seconds since the main loop dispatched."""
        ...

    def market_ages(self) -> dict[str, float | None]:
        """Seconds since each market's last data (None: none yet)."""
        ...


class SnapshotCollector(Collector):
    """The ``trader_*`` families, built from :class:`Source` on every scrape."""

    def __init__(self, source: Source, bounds: Sequence[float], feed_states: Sequence[str]):
        """``bounds``: the histograms' upper bounds in seconds; ``feed_states``: every state a
        feed can be in (each published, 0 or 1, so a panel can show transitions)."""
        self._source = source
        self._bounds = [floatToGoString(b) for b in bounds] + ["+Inf"]
        self._feed_states = tuple(feed_states)

    def collect(self) -> Iterator[Metric]:
        """One family per metric, read from the current snapshot."""
        src = self._source
        s = src.snapshot
        yield _counter("trader_events", "Events dispatched, by type.", "type", s["events"])
        yield _counter(
            "trader_unhandled_events",
            "Events no handler was registered for.",
            "type",
            s["unhandled"],
        )
        yield _counter(
            "trader_handler_errors", "Handler failures, by handler.", "handler", s["handler_errors"]
        )
        yield _counter("trader_errors", "Errors by kind.", "kind", s["errors"])
        yield CounterMetricFamily(
            "trader_conflated",
            "Market data replaced by newer data on a full queue.",
            value=s["conflated"],
        )
        yield _counter("trader_dropped", "Records not kept, by where.", "where", s["dropped"])
        yield _gauge(
            "trader_conflated_share",
            "Share of market data conflated (0-1): above 0 the system is not keeping up.",
            s["conflated_share"],
        )
        yield _gauge("trader_queue_depth", "Events waiting on the bus.", src.queue_depth())
        yield _gauge(
            "trader_queue_high_water", "The deepest the bus has been.", s["queue_high_water"]
        )
        yield _gauge(
            "trader_last_dispatch_age_seconds",
            "Seconds since the main loop dispatched.",
            src.last_dispatch_age_s(),
        )
        lag = HistogramMetricFamily(
            "trader_dispatch_lag_seconds",
            "ts_recv to handled, sampled 1 in sample_every dispatches.",
            labels=(),
        )
        self._histogram(lag, [], s["lag"])
        yield lag
        handlers = HistogramMetricFamily(
            "trader_handler_seconds",
            "Time in each handler, sampled 1 in sample_every dispatches.",
            labels=("handler",),
        )
        for name, hist in sorted(s["handlers"].items()):
            self._histogram(handlers, [name], hist)
        yield handlers
        feeds = GaugeMetricFamily(
            "trader_feed_state",
            "1 for each feed's current state, 0 for its other states.",
            labels=("feed", "state"),
        )
        for feed, (current, _) in sorted(src.feeds.items()):
            for state in self._feed_states:
                feeds.add_metric([feed, state], int(state == current))
        yield feeds
        ages = GaugeMetricFamily(
            "trader_market_data_age_seconds",
            "Seconds since a market's last quote or trade.",
            labels=("symbol",),
        )
        for symbol, age in src.market_ages().items():
            if age is not None:
                ages.add_metric([symbol], age)
        yield ages
        sizes = GaugeMetricFamily(
            "trader_store_size", "Records held in each store collection.", labels=("collection",)
        )
        for collection, n in sorted(s["store"].items()):
            sizes.add_metric([collection], n)
        yield sizes
        trading = GaugeMetricFamily(
            "trader_trading_state",
            "1 for the current trading state, 0 for the others.",
            labels=("state",),
        )
        for state in TradingState:
            trading.add_metric([state.value], int(state.value == s["trading_state"]))
        yield trading
        yield _gauge("trader_open_orders", "Open orders in the store.", s["open_orders"])
        yield _gauge("trader_balances_usd", "Total balance valued in USD.", s["balances_total_usd"])
        if s["pnl_usd"]:
            pnl = GaugeMetricFamily(
                "trader_pnl_usd",
                "Realized (net of fees) and unrealized PnL in USD.",
                labels=("kind",),
            )
            for kind, value in zip(("realized", "unrealized"), s["pnl_usd"], strict=True):
                pnl.add_metric([kind], float(value))
            yield pnl
        journal = s["journal"]
        if journal:
            yield CounterMetricFamily(
                "trader_journal_written", "Events written to the journal.", value=journal["written"]
            )
            yield _gauge(
                "trader_journal_pending",
                "Events not yet written to the journal.",
                journal["pending"],
            )
            yield _gauge(
                "trader_journal_failing", "1 while journal writes fail.", journal["failing"]
            )
        yield from counters.export(s["counters"], s["kept"])

    def _histogram(self, family: HistogramMetricFamily, labels: list[str], h: Buckets) -> None:
        cumulative, buckets = 0, []
        for bound, n in zip(self._bounds, h.counts, strict=True):
            cumulative += n
            buckets.append((bound, float(cumulative)))
        family.add_metric(labels, buckets, h.sum_s)


def registry(collector: Collector) -> CollectorRegistry:
    """A private registry: ``collector``, and the library's process, platform (``python_info``)
    and garbage-collector collectors."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg


def text(reg: CollectorRegistry) -> str:
    """The registry in the Prometheus text exposition format (version 0.0.4)."""
    return generate_latest(reg).decode()


def _counter(name: str, help_: str, label: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_, labels=(label,))
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _gauge(name: str, help_: str, value: float | int | Decimal) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_, value=float(value))
