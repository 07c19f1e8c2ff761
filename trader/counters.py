"""Every counter the process keeps, and the ``/metrics`` family that exports it.

Counters live where they are counted: :class:`~trader.stats.Stats` (``stats.incr(name)`` from
any thread), the store (duplicate and late fills, illegal order transitions) and the systemd
notifier. :func:`export` makes each a ``prometheus_client`` counter family with its help.
``Stats`` names follow three shapes:

- a plain name (``worker_crashes``): one family, :data:`PLAIN`;
- ``<feed>.<what>`` from a websocket listener (``ws-binance-market.connects``): the family
  ``trader_feed_<what>_total`` labelled ``feed``, :data:`PER_FEED`;
- ``<what>.<label>`` (``polled.balances``, ``alerts.sent``): one family per ``<what>``, the rest
  as its label, :data:`PREFIXED`.

A counter added to the code must be added here: ``tests/test_counters.py`` finds every
``incr(...)`` in ``trader/`` and fails for a name this module does not know. A name that slips
through anyway is still exported, as ``trader_counter_total{name=...}``, never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.core import CounterMetricFamily

#: Plain Stats counters -> (family, help). ``None``: exported by another family (named).
PLAIN: dict[str, tuple[str, str] | None] = {
    "bus_put_timeouts": None,  # trader_dropped_total{where="bus_put_timeout"}
    "worker_crashes": (
        "trader_worker_crashes_total",
        "Worker runs that raised; each is restarted after a backoff.",
    ),
    "orders_rejected": (
        "trader_orders_rejected_total",
        "Orders the exchange refused (invalid, insufficient funds).",
    ),
    "orders_unknown": (
        "trader_orders_unknown_total",
        "Creates with an unknown outcome (timeout, 5xx), then looked up.",
    ),
    "cancel_failed": (
        "trader_cancel_failed_total",
        "Cancels that failed for another reason than 'order not found'.",
    ),
    "redis_acked": (
        "trader_redis_appended_total",
        "Events appended to the Redis stream and acknowledged.",
    ),
    "redis_failures": (
        "trader_redis_failures_total",
        "Redis writes that failed (retried with backoff).",
    ),
    "redis_stream_dropped": (
        "trader_redis_stream_dropped_total",
        "Events left out of the Redis stream because its buffer was full.",
    ),
    "redis_lost_acknowledged": (
        "trader_redis_lost_acknowledged_total",
        "Times Redis was found to have lost acknowledged stream entries.",
    ),
}

#: ``<feed>.<what>`` counters of the websocket listeners -> help of ``trader_feed_<what>_total``.
PER_FEED: dict[str, str] = {
    "connects": "Websocket connections opened.",
    "disconnects": "Websocket connections lost or failed to open.",
    "stale": "Times a market stream delivered no data for stale_after_s.",
    "recovered": "Times a stream delivered again after trouble.",
    "resubscribes": "Subscriptions the server ended and we made again.",
    "refused": "Requests (subscribe, authenticate) the server refused.",
    "malformed": "Frames that were not valid JSON.",
    "unknown": "Messages of a type the parser does not know.",
    "bad_message": "Messages the parser failed on.",
    "rotations": "Connections replaced before the venue's time limit.",
    "rotation_failed": "Rotations given up (the current connection kept).",
    "rotation_duplicates": "Frames skipped because the previous connection delivered them.",
}

#: ``<what>.<label>`` counters -> (family, help, label name).
PREFIXED: dict[str, tuple[str, str, str]] = {
    "polled": ("trader_polls_total", "REST polls run, by job.", "job"),
    "poll_failed": ("trader_poll_failures_total", "REST polls that failed, by job.", "job"),
    "alerts": (
        "trader_alerts_total",
        "Alerts by outcome: queued, sent, dropped (outbox full); failed counts delivery "
        "attempts, messages the messages sent.",
        "outcome",
    ),
}

#: Counters kept outside Stats (read by the wiring) -> (family, help).
KEPT: dict[str, tuple[str, str]] = {
    "store_duplicate_fills": (
        "trader_store_duplicate_fills_total",
        "Fills delivered again (same order and trade id), applied once.",
    ),
    "store_late_fills": (
        "trader_store_late_fills_total",
        "Fills applied to a position after their order became final.",
    ),
    "store_illegal_transitions": (
        "trader_store_illegal_transitions_total",
        "Order updates refused by the order state machine.",
    ),
    "store_stale_updates": (
        "trader_store_stale_updates_total",
        "Balance and order updates older than what the store held, ignored.",
    ),
    "systemd_notify_failures": (
        "trader_systemd_notify_failures_total",
        "systemd notify messages that could not be sent.",
    ),
}

OTHER = ("trader_counter_total", "Counters without a family of their own, by name.")


def family(name: str) -> tuple[str, str, dict[str, str]] | None:
    """(family, help, labels) of the Stats counter ``name``; None when another family exports
    it (see :data:`PLAIN`)."""
    if name in PLAIN:
        spec = PLAIN[name]
        return None if spec is None else (*spec, {})
    head, _, tail = name.partition(".")
    if tail and head in PREFIXED:
        fam, help_, label = PREFIXED[head]
        return fam, help_, {label: tail}
    head, _, tail = name.rpartition(".")
    if head and tail in PER_FEED:
        return f"trader_feed_{tail}_total", PER_FEED[tail], {"feed": head}
    return (*OTHER, {"name": name})


def export(stats: Mapping[str, int], kept: Mapping[str, int]) -> list[CounterMetricFamily]:
    """The Stats counters ``stats`` and the ``kept`` ones as Prometheus counter families."""
    families: dict[str, tuple[str, list[tuple[dict[str, str], int]]]] = {}
    for name, value in sorted(stats.items()):
        spec = family(name)
        if spec is not None:
            fam, help_, labels = spec
            families.setdefault(fam, (help_, []))[1].append((labels, value))
    for name, value in sorted(kept.items()):
        fam, help_ = KEPT[name]
        families.setdefault(fam, (help_, []))[1].append(({}, value))
    out = []
    for fam, (help_, samples) in sorted(families.items()):
        # the label names of a family's samples: the same for each (see family())
        counter = CounterMetricFamily(fam, help_, labels=sorted(samples[0][0]))
        for labels, value in samples:
            counter.add_metric([labels[k] for k in sorted(labels)], value)
        out.append(counter)
    return out
