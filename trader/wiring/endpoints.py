"""What a live run shows to people: the 127.0.0.1 HTTP endpoint (metrics, the dashboard, the
control routes) and alerts. Built by :class:`~trader.app.App` only in ``RunMode.LIVE``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from trader.alerts.rules import AlertRules
from trader.alerts.sender import AlertSender, Outbox, apprise_targets
from trader.clock import Clock
from trader.config import Config, api_token_path
from trader.events import Event
from trader.feeds.websocket import Listener
from trader.httpapi import HttpApi
from trader.metrics import Metrics
from trader.stats import Stats
from trader.store.view import StoreView
from trader.web.dashboard import Dashboard
from trader.web.history import History
from trader.web.routes import WebRoutes
from trader.workers import Worker


def build_http(
    cfg: Config,
    metrics: Metrics,
    view: StoreView,
    history: History,
    clock: Clock,
    feeds: Sequence[Worker],
    publish: Callable[[Event], None],
) -> HttpApi:
    """The endpoint on ``metrics.port``; the dashboard shows the message age of each websocket
    feed among ``feeds``."""
    listeners = [f for f in feeds if isinstance(f, Listener)]
    web = WebRoutes(
        Dashboard(
            metrics,
            view,
            history,
            cfg.trade.markets,
            clock,
            lambda: {f.name: f.message_age_s() for f in listeners},
        )
    )
    return HttpApi(
        cfg.metrics.port,
        metrics,
        publish,
        clock,
        web,
        token=cfg.secrets.api_token,
        token_file=api_token_path(cfg),
    )


def build_alerts(
    cfg: Config, view: StoreView, clock: Clock, stats: Stats
) -> tuple[AlertRules, AlertSender] | None:
    """The alert rules (main thread) and the worker that sends what they queue, or None when
    there is no destination (``TRADER_ALERT_URLS``)."""
    urls = cfg.secrets.alert_url_list()
    if not urls:
        return None
    outbox = Outbox(cfg.alerts.max_pending, stats)
    rules = AlertRules(cfg.alerts, outbox, view, clock)
    sender = AlertSender(cfg.alerts, outbox, apprise_targets(urls), cfg.general.name, stats)
    return rules, sender
