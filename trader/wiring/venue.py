"""The exchange choice, made once for the app (:class:`~trader.app.App`): which gateway trades,
which feeds bring its market data, and what else the choice brings along (the paper gateway's
matching handlers and its account file writer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from trader.clock import Clock
from trader.config import SIMULATED, Config, Mode, paper_account_path
from trader.engine import Handler
from trader.events import Event, QuoteTick, TradeTick
from trader.exchange.gateway import Gateway, MarketDataSource
from trader.exchange.paper import PaperGateway
from trader.exchange.paper.persistence import AccountWriter
from trader.feeds.simulated import SimulatedFeed, SimulatedMarket
from trader.feeds.streams import build_stream_workers, data_markets
from trader.stats import Stats
from trader.workers import Worker


@dataclass
class Venue:
    """What the exchange choice decides: the gateway, the feeds that stream its data,
    main-thread handlers it needs (the paper gateway matches resting orders on quotes), and
    writers stopped with the storage writers (the paper account file's)."""

    gateway: Gateway
    feeds: list[Worker] = field(default_factory=list)
    handlers: list[tuple[type[Event], Handler]] = field(default_factory=list)
    # feed -> the markets whose data it carries (risk's data halt); a feed not listed: all
    feed_markets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    writers: list[AccountWriter] = field(default_factory=list)


def build_venue(
    cfg: Config,
    publish: Callable[[Event], None],
    clock: Clock,
    stats: Stats | None = None,
) -> Venue:
    """Choose the exchange once, here; nothing else asks whether it is paper or live.

    ``simulated``: the built-in market and the paper gateway. Any ccxt exchange: ccxt market
    data; in ``paper`` mode the paper gateway (public client, no keys) simulates the account and
    the orders, in ``live`` mode the ccxt gateway (with the keys) does everything. Websocket
    streams come from :func:`trader.feeds.streams.build_stream_workers`.
    """
    if cfg.exchange.name == SIMULATED:
        market = SimulatedMarket(cfg.simulated, cfg.trade.markets, clock)
        source: MarketDataSource = market
        feeds: list[Worker] = [SimulatedFeed(market, publish, clock, cfg.simulated.tick_interval_s)]
    else:
        from trader.exchange.ccxt_gateway import CcxtGateway  # imports ccxt: only when used

        live = cfg.exchange.mode is Mode.LIVE
        ccxt_gw = CcxtGateway.from_config(
            cfg.exchange, cfg.secrets if live else None, clock, cfg.trade.markets
        )
        feeds = build_stream_workers(cfg, publish, clock, stats or Stats())
        if live:
            return Venue(ccxt_gw, feeds, feed_markets=data_markets(feeds))
        source = ccxt_gw
    p = cfg.paper
    paper = PaperGateway(
        source,
        clock,
        p.starting_balances,
        p.fee_rate,
        p.slippage_bps,
        p.latency_ms,
        p.partial_fills,
        paper_account_path(cfg),
        publish,
    )
    return Venue(
        paper,
        feeds,
        [(QuoteTick, paper.on_quote), (TradeTick, paper.on_trade)],
        data_markets(feeds),
        [paper.writer] if paper.writer is not None else [],
    )
