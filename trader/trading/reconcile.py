"""Reconciliation: the store against the exchange, at start-up and after every reconnect.

A round, in two halves:

1. **Fetch** (the ``reconciler`` worker thread; the main thread never waits on the network):
   publish ``ReconciliationStarted`` (risk halts trading), then ask the gateway for the open
   orders, every order the store thinks is open that is not in that list (by client id), our
   trades of the last ``trades_lookback_s`` and every balance. Publish them as one
   ``ExchangeStateFetched`` event, so the journal shows what the exchange said.
2. **Compare** (main thread, :meth:`Reconciler.on_fetched`): the pure
   :func:`~trader.trading.reconcile_diff.compare` lists the differences; they are logged as a
   table, the exchange's view is applied as follow-up events (missing fills, order reports,
   balances), and ``ReconciliationCompleted`` says whether the two agreed. When they did not,
   another round follows after ``retry_s``; trading stays HALTED until a round finds no
   difference (or the operator resumes). A fetch that fails is retried with backoff
   (``retry_s`` doubling up to ``RETRY_MAX_S``).

Every round is compared, in order, even when another one was requested (a reconnect) or has
started since: a round is never thrown away, so reconciliation converges under a feed that
flaps faster than a round completes. The newer round halts trading again when it starts (its
``ReconciliationStarted``) and decides in its turn.

The rules of the comparison are in :mod:`trader.trading.reconcile_diff`.

Any thread triggers a round with :meth:`Reconciler.request` (thread-safe; requests made before
the round runs are merged). A reconnect triggers one only through the main-thread handler of
``FeedRecovered`` (published when a feed delivers again after a drop, a failed connect or a
stall; the start-up round covers the first connection): the state is fetched once the stream
is live again, so nothing falls between the fetch and the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from trader.backoff import Backoff
from trader.clock import Clock
from trader.config import ReconcileConfig
from trader.errors import OrderNotFoundError
from trader.events import (
    Event,
    ExchangeStateFetched,
    FeedRecovered,
    ReconciliationCompleted,
    ReconciliationStarted,
)
from trader.exchange.gateway import Gateway
from trader.model.units import NS
from trader.store.view import StoreView
from trader.trading.reconcile_diff import BalanceKey, Fetched, compare, render, settled
from trader.workers import Worker

log = logging.getLogger(__name__)

RETRY_MAX_S = 60.0  # the longest wait between rounds whose fetch failed


class Reconciler(Worker):
    """Fetches on its own thread, compares on the main thread; see the module docstring."""

    name = "reconciler"

    def __init__(
        self,
        gateway: Gateway,
        view: StoreView,
        publish: Callable[[Event], None],
        clock: Clock,
        cfg: ReconcileConfig,
        symbols: Sequence[str],
        own_prefix: str,
    ) -> None:
        self._gateway = gateway
        self._view = view
        self._publish = publish
        self._clock = clock
        self._cfg = cfg
        self._symbols = tuple(symbols)
        self._prefix = own_prefix
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._due: float | None = None  # monotonic time of the next round
        self._reasons: list[str] = []
        self.round = 0  # the latest round started (written by the worker only)
        self._fetch_backoff = Backoff(cfg.retry_s, max(cfg.retry_s, RETRY_MAX_S), jitter=0.5)
        self._balance_diffs: dict[str, tuple[BalanceKey, BalanceKey]] = {}  # main thread
        self._started_ns = clock.now_ns()  # orders in flight before it are an earlier process's

    # any thread ------------------------------------------------------------------------------

    def request(self, reason: str, delay_s: float = 0.0) -> None:
        """Ask for a round (now, or after ``delay_s``); requests before it runs are merged."""
        due = time.monotonic() + delay_s
        with self._lock:
            self._reasons.append(reason)
            self._due = due if self._due is None else min(self._due, due)
        self._wake.set()

    def owns(self, client_id: str) -> bool:
        """True for client ids this system generates."""
        return bool(self._prefix) and client_id.startswith(self._prefix)

    # worker thread ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run a round whenever one is due, until stopped."""
        while not stop.is_set():
            self._wake.clear()
            with self._lock:
                due = self._due
            wait = 1.0 if due is None else due - time.monotonic()
            if wait > 0:
                self._wake.wait(min(wait, 1.0))
                continue
            with self._lock:
                reasons, self._reasons, self._due = self._reasons, [], None
            self.run_round("; ".join(dict.fromkeys(reasons)))

    def close(self) -> None:
        """Wake the loop so it sees the stop."""
        self._wake.set()

    def run_round(self, reason: str) -> None:
        """Fetch the exchange's state and publish it (the comparison runs on the main thread)."""
        self.round += 1
        rnd = self.round
        now = self._clock.now_ns()
        self._publish(ReconciliationStarted(ts_event=now, ts_recv=now, round=rnd, reason=reason))
        try:
            fetched = self._fetch(now)
        except Exception as exc:  # noqa: BLE001 - report, stay halted, try again
            log.warning(
                "reconciliation round %d: fetch failed: %s: %s", rnd, type(exc).__name__, exc
            )
            now = self._clock.now_ns()
            self._publish(
                ReconciliationCompleted(
                    ts_event=now,
                    ts_recv=now,
                    ok=False,
                    differences=0,
                    summary=f"round {rnd}: could not fetch: {type(exc).__name__}: {exc}",
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
            self.request("retry after a failed fetch", self._fetch_backoff.next_delay())
            return
        self._fetch_backoff.reset()
        self._publish(fetched.to_event(rnd, self._clock.now_ns()))

    def _fetch(self, now: int) -> Fetched:
        # The store's open orders are read before the fetch: any of them missing from the
        # exchange's list was on the exchange before we asked, so its absence means something.
        store_open = [
            o for o in self._view.open_orders() if not o.external and settled(o, self._started_ns)
        ]
        gw = self._gateway
        open_orders = gw.fetch_open_orders(self._symbols)
        listed = {r.client_id for r in open_orders}
        looked_up, not_found = [], []
        for o in store_open:
            if o.client_id not in listed:
                try:
                    looked_up.append(gw.fetch_order(o.client_id, o.symbol))
                except OrderNotFoundError:
                    not_found.append(o.client_id)
        since = now - self._cfg.trades_lookback_s * NS
        symbols = sorted(set(self._symbols) | {o.symbol for o in store_open})
        trades = [t for s in symbols for t in gw.fetch_my_trades(s, since)]
        return Fetched(
            tuple(open_orders),
            tuple(looked_up),
            tuple(not_found),
            tuple(trades),
            tuple(gw.fetch_balances()),
        )

    # main thread -----------------------------------------------------------------------------

    def on_fetched(self, ev: ExchangeStateFetched) -> list[Event]:
        """Compare, log the table, apply the exchange's view, say whether they agreed (every
        round, a newer one started or not: see the module docstring)."""
        now = self._clock.now_ns()
        result = compare(
            self._view,
            Fetched.from_event(ev),
            self.owns,
            self._balance_diffs,
            now,
            self._started_ns,
        )
        self._balance_diffs = result.balance_diffs
        n = result.blocking
        notes = (
            f"; {result.ignored_trades} fills of orders we do not know ignored"
            if result.ignored_trades
            else ""
        )
        if result.rows:
            level = logging.WARNING if n else logging.INFO
            log.log(
                level,
                "reconciliation round %d: %d differences%s%s\n%s",
                ev.round,
                n,
                " (trading stays halted)" if n else "",
                notes,
                render(result.rows),
            )
        else:
            log.info("reconciliation round %d: store and exchange agree%s", ev.round, notes)
        if n:
            self.request("recheck after corrections", self._cfg.retry_s)
        summary = ", ".join(f"{r.kind} {r.key}: {r.action}" for r in result.rows)
        return result.corrections + [
            ReconciliationCompleted(
                ts_event=now,
                ts_recv=now,
                ok=n == 0,
                differences=n,
                summary=f"round {ev.round}: {summary or 'agree'}",
            )
        ]

    def on_feed_recovered(self, ev: FeedRecovered) -> None:
        """A feed that delivers again after a drop or a stall triggers a round."""
        self.request(f"{ev.feed} reconnected")
