"""The wiring: the one place that builds every object, holds the event -> handlers table and
knows the start and stop order. Read :meth:`App.handler_table` to see the whole system.

The start and stop paths, and their order in words, are in ``trader/lifecycle.py`` (mixed into
:class:`App`). The builders of what the config chooses (the exchange, the store backend, the
HTTP endpoint and alerts) are in ``trader/wiring/``.

Modes (:class:`RunMode`): ``LIVE`` starts and stops as described there. ``REPLAY`` builds the
same objects and registers :meth:`App.replay_table` instead (``trader/replay.py``); ``BACKTEST``
registers the full table and is driven event by event (``trader/backtest/``). Neither journals,
serves HTTP, starts workers, uses Redis, the state file or the paper account file.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from trader.alerts.rules import AlertRules
from trader.bus import Bus
from trader.clock import Clock, LiveClock
from trader.config import Config, StorageBackend
from trader.engine import Engine, Handler, Registry
from trader.events import (
    BalanceUpdate,
    CancelAllOrders,
    CancelOrder,
    Candle,
    DataHaltChanged,
    Event,
    ExchangeStateFetched,
    ExchangeUpdateUnusable,
    FeedConnected,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    HaltTrading,
    HandlerFailed,
    Heartbeat,
    MarketUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    PollFailed,
    QuoteTick,
    ReconciliationCompleted,
    ReconciliationStarted,
    ResumeTrading,
    SessionStarted,
    ShutdownRequested,
    SignalGenerated,
    StateRestored,
    StorageFailed,
    StorageRecovered,
    StrategyDisabled,
    SubmitOrder,
    TradeTick,
    TradingStateChanged,
    WorkerCrashed,
)
from trader.feeds.poller import Poller
from trader.journal import Journal
from trader.lifecycle import Lifecycle
from trader.metrics import REFRESH_S, Metrics
from trader.model.units import NS
from trader.registries import Strategies, build_strategies, check_config
from trader.report import Reporter
from trader.stats import Stats
from trader.store.state_file import StateFileWriter
from trader.store.view import ReadOnlyView, StoreView
from trader.systemd import Notifier, StatusLine
from trader.trading.client_ids import ClientIdGenerator
from trader.trading.data_halt import DataHalts
from trader.trading.execution import Executor
from trader.trading.portfolio import Portfolio
from trader.trading.reconcile import Reconciler
from trader.trading.risk import Risk
from trader.trading.strategies import STRATEGIES
from trader.trading.strategy import StrategyRunner
from trader.web.history import History
from trader.wiring.endpoints import build_alerts, build_http
from trader.wiring.replay_table import without_outside
from trader.wiring.storage import build_storage
from trader.wiring.venue import build_venue
from trader.workers import Supervisor

log = logging.getLogger("trader")

HEARTBEAT_S = 5.0
RISK_CHECK_S = 1.0  # the daily loss limit is checked this often even without fills
DASHBOARD_SAMPLE_S = 1.0  # the dashboard's equity curve and halt reasons
ALERT_CHECK_S = 1.0  # long feed outages and the daily summary


def _fills_later(cfg: Config) -> str:
    """What brings an order's fills when the executor's lookup could not fetch them."""
    if cfg.reconcile.enabled:
        return "reconciliation will bring them"
    if cfg.poller.trades_every_s:
        return f"the trades poll (every {cfg.poller.trades_every_s}s) will bring them"
    return ""


class RunMode(StrEnum):
    """What the app is built for."""

    LIVE = "live"  # journal, metrics endpoint, workers (started by start())
    REPLAY = "replay"  # replay_table, driven by trader.replay
    BACKTEST = "backtest"  # handler_table, driven by trader.backtest


class App(Lifecycle):
    """The running system (or the same objects driven by a replay or a backtest)."""

    def __init__(
        self,
        cfg: Config,
        clock: Clock | None = None,
        mode: RunMode = RunMode.LIVE,
        strategies: Strategies = STRATEGIES,
    ) -> None:
        """Build every object for ``cfg``; ``strategies`` is the registry the config's
        ``strategies[].name`` are looked up in (checked here: a ``ConfigError`` names the key)."""
        check_config(cfg, strategies)
        live = mode is RunMode.LIVE
        if not live:  # a replay or a backtest never touches the paper account file or Redis
            cfg = replace(
                cfg,
                paper=replace(cfg.paper, persist=False),
                storage=replace(cfg.storage, backend=StorageBackend.MEMORY),
            )
        self.cfg = cfg
        self.mode = mode
        self.clock = clock or LiveClock()
        started = datetime.fromtimestamp(self.clock.now_ns() / NS, UTC)
        self.session = f"{started:%Y%m%dT%H%M%SZ}-{os.getpid()}"
        self.stats = Stats()
        self.bus = Bus(cfg.bus.maxsize, cfg.bus.put_timeout_s, self.stats)
        self.registry = Registry()
        self.engine = Engine(self.bus, self.registry, self.stats, self.clock)
        ids = ClientIdGenerator(cfg.execution.client_id_prefix, self.clock.now_ns())
        self.storage = build_storage(
            cfg,
            ids.prefix,
            self.bus.publish,
            self.clock,
            self.stats,
            lambda: self.risk.daily_loss_saved(),
            persist=live,
        )
        self.store = self.storage.store
        # ReadOnlyView copies StoreView's reads at run time, which a type checker cannot see
        self.view = cast(StoreView, ReadOnlyView(self.store))
        self.venue = build_venue(cfg, self.bus.publish, self.clock, self.stats)
        for saver in self.storage.workers:
            if isinstance(saver, StateFileWriter):
                saver.flush_first.extend(w.flush for w in self.venue.writers)
        self.gateway = self.venue.gateway
        self.data_halts = DataHalts(self.venue.feed_markets)
        self.risk = Risk(self.view, cfg.risk, self.clock, ids, data_halts=self.data_halts)
        self.portfolio = Portfolio(self.view, self.clock, cfg.portfolio.equity_samples)
        self.history = History(
            self.view, self.clock, lambda: {str(k): v for k, v in self.risk.halts.items()}
        )
        self.runner = StrategyRunner(
            build_strategies(cfg, self.clock, strategies), self.view, self.risk.evaluate, self.clock
        )
        self.executor = Executor(
            self.gateway,
            self.bus.publish,
            self.view,
            self.clock,
            self.stats,
            fills_later=_fills_later(cfg),
        )
        self.reporter = Reporter(self.view, self.bus, self.stats, cfg.trade.markets)
        self.poller = Poller(
            self.gateway, self.bus.publish, self.clock, self.stats, cfg.poller, cfg.trade.markets
        )
        self.reconciler = Reconciler(
            self.gateway,
            self.view,
            self.bus.publish,
            self.clock,
            cfg.reconcile,
            cfg.trade.markets,
            ids.prefix,
        )
        self.producers = Supervisor(self.bus.publish, self.clock, self.stats)
        for worker in (*self.venue.feeds, self.poller):
            self.producers.add(worker)
        if cfg.reconcile.enabled:
            self.producers.add(self.reconciler)
        self.executors = Supervisor(self.bus.publish, self.clock, self.stats)
        self.executors.add(self.executor)
        self.storage_workers = Supervisor(self.bus.publish, self.clock, self.stats)
        for worker in (*self.storage.workers, *self.venue.writers):
            self.storage_workers.add(worker)
        for observer in self.storage.observers:
            self.registry.observe(observer)
        self.journal = Journal(cfg.journal, self.clock, self.bus.publish)
        self.systemd = Notifier()
        self.metrics = Metrics(
            cfg.metrics,
            self.clock,
            self.stats,
            self.bus,
            self.engine,
            self.store,
            cfg.trade.markets,
            trading_state=lambda: self.risk.state,
            strategies=self._strategies,
            journal_counters=self.journal.counters if live else None,
            info={
                "name": cfg.general.name,
                "session": self.session,
                "exchange": cfg.exchange.name,
                "mode": cfg.exchange.mode.value,
            },
            kept_counters=self._kept_counters,
            pnl=self.portfolio.pnl_usd,
        )
        self.http = None
        if cfg.metrics.port and live:
            self.http = build_http(
                cfg,
                self.metrics,
                self.view,
                self.history,
                self.clock,
                self.venue.feeds,
                self.bus.publish,
            )
            self.producers.add(self.http)
        # alerts: only a live run with destinations (TRADER_ALERT_URLS) has them
        self.alerts: AlertRules | None = None
        if live and (alerts := build_alerts(cfg, self.view, self.clock, self.stats)):
            self.alerts, sender = alerts
            self.storage_workers.add(sender)  # stopped last: alerts of the stop get out
            self.engine.every(ALERT_CHECK_S, self.alerts.check)
        table = self.replay_table() if mode is RunMode.REPLAY else self.handler_table()
        for event_cls, handler in table:
            self.registry.register(event_cls, handler)
        # every source reports every fill it sees; the store lets each through once
        self.registry.gate(OrderFilled, self.store.screen_fill)
        if live:
            self.registry.observe(self.journal.record)
            self.storage_workers.add(self.journal)
            self.engine.set_timing(self.metrics.timing)
        self.engine.every(cfg.general.stats_interval_s, self.reporter.stats_line)
        self.engine.every(HEARTBEAT_S, self._heartbeat)
        self.engine.every(RISK_CHECK_S, self._risk_check)
        self.engine.every(cfg.portfolio.equity_sample_s, self.portfolio.sample)
        self.engine.every(REFRESH_S, self.metrics.refresh)
        self.engine.every(DASHBOARD_SAMPLE_S, self.history.sample)
        self.engine.every(cfg.metrics.summary_every_s, self.metrics.log_summary)
        self._notified_ready = False
        self.status_line = StatusLine(
            lambda: self.risk.state, self.bus.depth, lambda: sum(self.stats.dispatched.values())
        )
        self.stop_event = threading.Event()

    def handler_table(self) -> list[tuple[type[Event], Handler]]:
        """Event class -> handlers, in dispatch order: the store first, then the rest.

        The journal is an observer (``Registry.observe``): it sees every dispatched event before
        these handlers, follow-ups and ``HandlerFailed`` included."""
        store, runner, rep, x = self.store, self.runner, self.reporter, self.executor
        risk, rec, m, web = self.risk, self.reconciler, self.metrics, self.history
        venue_handlers = self.venue.handlers
        return [
            (StateRestored, store.on_state_restored),
            (StateRestored, risk.on_state_restored),
            (MarketUpdated, store.on_market),
            (QuoteTick, store.on_quote),
            *[(c, h) for c, h in venue_handlers if c is QuoteTick],
            (QuoteTick, runner.on_quote),
            (TradeTick, store.on_trade),
            *[(c, h) for c, h in venue_handlers if c is TradeTick],
            (TradeTick, runner.on_trade),
            (Candle, store.on_candle),
            (Candle, runner.on_candle),
            (BalanceUpdate, store.on_balance),
            (BalanceUpdate, rep.on_balance),
            (SignalGenerated, store.on_signal),
            (SignalGenerated, rep.on_signal),
            (OrderDenied, rep.on_denied),
            (OrderSubmitted, store.on_order_submitted),
            (SubmitOrder, x.submit),
            (CancelOrder, x.submit),
            (CancelAllOrders, x.submit),
            (OrderAccepted, store.on_order_accepted),
            (OrderRejected, store.on_order_rejected),
            (OrderRejected, rep.on_rejected),
            (OrderFilled, store.on_order_filled),
            (OrderFilled, rep.on_fill),
            (OrderFilled, risk.on_fill),
            (OrderFilled, runner.on_fill),
            (OrderCanceled, store.on_order_canceled),
            (OrderStatusUnknown, store.on_order_unknown),
            (OrderAmended, store.on_order_amended),
            (ExchangeUpdateUnusable, rep.on_unusable),
            (OrderStatusReport, store.on_order_report),
            (TradingStateChanged, risk.on_state_changed),
            (TradingStateChanged, rep.on_system),
            (HaltTrading, risk.on_halt),
            (StorageFailed, risk.on_storage_failed),
            (StorageRecovered, risk.on_storage_recovered),
            (ResumeTrading, risk.on_resume),
            (ReconciliationStarted, risk.on_reconciliation_started),
            (ExchangeStateFetched, rec.on_fetched),
            (ReconciliationCompleted, risk.on_reconciliation_completed),
            (ReconciliationCompleted, rep.on_system),
            (ReconciliationCompleted, self._ready_once_reconciled),
            (StrategyDisabled, rep.on_system),
            (FeedConnected, rep.on_system),
            (FeedDisconnected, rep.on_system),
            (FeedDisconnected, self.poller.on_feed_down),
            (FeedDisconnected, self.data_halts.on_feed_down),
            (FeedStale, rep.on_system),
            (FeedStale, self.poller.on_feed_down),
            (FeedStale, self.data_halts.on_feed_down),
            (DataHaltChanged, rep.on_system),
            (FeedRecovered, rep.on_system),
            (FeedRecovered, self.poller.on_feed_recovered),
            (FeedRecovered, rec.on_feed_recovered),
            (FeedRecovered, self.data_halts.on_feed_recovered),
            (StorageFailed, rep.on_system),
            (StorageRecovered, rep.on_system),
            (PollFailed, rep.on_system),
            (WorkerCrashed, rep.on_system),
            (HandlerFailed, rep.on_system),
            (ShutdownRequested, rep.on_system),
            (Heartbeat, rep.on_heartbeat),
            # metrics: feed states, errors by kind, the session
            (FeedConnected, m.on_feed),
            (FeedDisconnected, m.on_feed),
            (FeedStale, m.on_feed),
            (FeedRecovered, m.on_feed),
            (PollFailed, m.on_error),
            (OrderRejected, m.on_error),
            (HandlerFailed, m.on_error),
            (WorkerCrashed, m.on_error),
            (StorageFailed, m.on_error),
            (SessionStarted, m.on_session),
            # the dashboard: our fills, denials, feed notes, halt reasons
            (OrderFilled, web.on_fill),
            (OrderDenied, web.on_denied),
            (FeedConnected, web.on_feed),
            (FeedDisconnected, web.on_feed),
            (FeedStale, web.on_feed),
            (FeedRecovered, web.on_feed),
            (TradingStateChanged, web.on_trading),
            *self._alert_handlers(),
        ]

    def _alert_handlers(self) -> list[tuple[type[Event], Handler]]:
        """The alert rules' handlers, when alerts are on."""
        a = self.alerts
        if a is None:
            return []
        return [
            (OrderFilled, a.on_fill),
            (TradingStateChanged, a.on_trading_state),
            (FeedConnected, a.on_feed),
            (FeedDisconnected, a.on_feed),
            (FeedStale, a.on_feed),
            (FeedRecovered, a.on_feed),
            (ReconciliationCompleted, a.on_reconciliation),
            (HandlerFailed, a.on_error),
            (WorkerCrashed, a.on_error),
            (StorageFailed, a.on_error),
            (StrategyDisabled, a.on_error),
        ]

    def outside_world(self) -> tuple[object, ...]:
        """Objects whose handlers act outside the process (send orders, match them on paper,
        poll or reconcile with the exchange): replay must not run them. Add here any object
        whose handler has such an effect."""
        return (self.executor, self.gateway, self.poller, self.reconciler)

    def replay_table(self) -> list[tuple[type[Event], Handler]]:
        """:meth:`handler_table` without the handlers of :meth:`outside_world`.

        Replay dispatches each journaled event through these and discards every follow-up they
        return: the journal already holds the follow-ups the live run produced (orders, fills,
        signals, ``HandlerFailed``), in the order they were dispatched. So the store and the
        portfolio are rebuilt from recorded facts, while strategies and risk still run on the
        same inputs, and a strategy that failed live fails again, with its traceback."""
        return without_outside(self.handler_table(), self.outside_world())

    def _strategies(self) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "market": s.symbol, "enabled": s.id not in self.runner.disabled}
            for s in self.runner.strategies
        ]

    def run(self) -> None:
        """The main loop, until :meth:`request_stop`."""
        self.engine.run(self.stop_event)

    def _kept_counters(self) -> dict[str, int]:
        """Counters kept outside Stats, for /metrics (see trader.counters.KEPT)."""
        store = self.store
        return {
            "store_duplicate_fills": store.duplicate_fills,
            "store_late_fills": store.late_fills,
            "store_illegal_transitions": store.illegal_transitions,
            "store_stale_updates": store.stale_updates,
            "systemd_notify_failures": self.systemd.failures,
        }

    def _risk_check(self) -> None:
        for ev in self.risk.check_daily_loss():
            self.engine.emit(ev)

    def _heartbeat(self) -> None:
        now = self.clock.now_ns()
        self.engine.emit(
            Heartbeat(
                ts_event=now,
                ts_recv=now,
                queue_depth=self.bus.depth(),
                dispatched=sum(self.stats.dispatched.values()),
            )
        )
