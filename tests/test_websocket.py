"""The websocket listener against a local websocket server: normal flow, server closes, silence,
garbage, serverShutdown, rotation, user streams, dead connections, a full bus, prompt stop."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Iterator
from decimal import Decimal as D
from typing import Any

import pytest

from tests.ws_server import API_KEY, API_SECRET, FakeExchange, wait_until
from trader.bus import Bus
from trader.clock import ManualClock
from trader.config import StreamsConfig
from trader.events import (
    BalanceUpdate,
    Candle,
    Event,
    FeedConnected,
    FeedDisconnected,
    FeedRecovered,
    FeedStale,
    Liquidity,
    OrderFilled,
    QuoteTick,
    TradeTick,
)
from trader.feeds.binance import BinanceMarketStreams, BinanceUserStream
from trader.feeds.bybit import BybitPrivateStream, BybitPublicStreams
from trader.feeds.websocket import Listener, StreamProtocol
from trader.model.orders import Side
from trader.stats import Stats
from trader.workers import Supervisor

T0 = 1_700_000_000_000_000_000
FAST = StreamsConfig(
    stale_after_s=5,
    dead_after_s=5,
    backoff_initial_s=0.01,
    backoff_max_s=0.02,
    healthy_after_s=60,
    connect_timeout_s=2,
    ping_interval_s=5,
)


def book(bid: str = "100.5", ask: str = "100.6", symbol: str = "btcusdt") -> dict[str, Any]:
    return {
        "stream": f"{symbol}@bookTicker",
        "data": {"u": 1, "s": symbol.upper(), "b": bid, "B": "1.5", "a": ask, "A": "2.5"},
    }


def trade(n: int) -> dict[str, Any]:
    return {
        "stream": "btcusdt@trade",
        "data": {
            "e": "trade",
            "E": 1,
            "s": "BTCUSDT",
            "t": n,
            "p": "100.10",
            "q": "0.01",
            "T": 2,
            "m": False,
        },
    }


def quote(bid: str = "100.5", ask: str = "100.6") -> QuoteTick:
    return QuoteTick(
        ts_event=T0,
        ts_recv=T0,
        symbol="BTC/USDT",
        bid=D(bid),
        bid_size=D("1.5"),
        ask=D(ask),
        ask_size=D("2.5"),
    )


class Harness:
    """A listener run by a real Supervisor, publishing into a list."""

    def __init__(
        self,
        protocol: StreamProtocol,
        cfg: StreamsConfig = FAST,
        rotate_after_s: float | None = None,
        publish: Any = None,
    ) -> None:
        self.events: list[Event] = []
        self.stats = Stats()
        self.clock = ManualClock(T0)
        self.listener = Listener(
            protocol,
            publish or self.events.append,
            self.clock,
            self.stats,
            cfg,
            rotate_after_s,
            random.Random(7),
        )
        self.supervisor = Supervisor(self.events.append, self.clock, self.stats)
        self.supervisor.add(self.listener)
        self.stopped = False

    @property
    def reconnects(self) -> int:
        """Recoveries reported: the one way a reconnect reaches the wiring."""
        return len(self.of(FeedRecovered))

    def start(self) -> Harness:
        self.supervisor.start()
        return self

    def of(self, *classes: type) -> list[Any]:
        return [e for e in list(self.events) if isinstance(e, classes)]

    def feed_events(self) -> list[str]:
        return [
            type(e).__name__
            for e in self.of(FeedConnected, FeedDisconnected, FeedStale, FeedRecovered)
        ]

    def stop(self) -> float:
        """Stop and join; return how long it took."""
        if self.stopped:
            return 0.0
        self.stopped = True
        t0 = time.monotonic()
        assert self.supervisor.stop(2.0) == []
        return time.monotonic() - t0


@pytest.fixture
def server() -> Iterator[FakeExchange]:
    srv = FakeExchange().start()
    yield srv
    srv.stop()


@pytest.fixture
def harnesses() -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for h in made:
        h.stop()


def run(harnesses: list[Harness], protocol: StreamProtocol, **kw: Any) -> Harness:
    h = Harness(protocol, **kw)
    harnesses.append(h)
    return h.start()


def market(url: str) -> BinanceMarketStreams:
    return BinanceMarketStreams(f"{url}/stream", ["BTC/USDT"], "1m")


def subscribed(server: FakeExchange, n: int, key: str = "SUBSCRIBE") -> bool:
    return len(server.messages(key=key)) >= n


# ------------------------------------------------------------------ Binance market streams


def test_normal_flow_subscribes_and_publishes_market_data(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    h = run(harnesses, market(server.url))
    assert wait_until(lambda: subscribed(server, 1))
    assert server.messages()[0] == {
        "method": "SUBSCRIBE",
        "id": 1,
        "params": ["btcusdt@bookTicker", "btcusdt@trade", "btcusdt@kline_1m"],
    }
    assert "ws-binance-market" in [t.name for t in threading.enumerate()]
    server.send(book())
    server.send(trade(1))
    server.send(
        {
            "stream": "btcusdt@kline_1m",
            "data": {
                "e": "kline",
                "E": 1672515782136,
                "s": "BTCUSDT",
                "k": {
                    "t": 1672515780000,
                    "i": "1m",
                    "o": "1.0",
                    "c": "2.0",
                    "h": "2.5",
                    "l": "0.5",
                    "v": "10",
                    "x": True,
                },
            },
        }
    )
    assert wait_until(lambda: len(h.of(QuoteTick, TradeTick, Candle)) == 3)
    q, t, c = h.of(QuoteTick, TradeTick, Candle)
    assert q == quote()  # ts_recv stamped with the injected clock
    assert (t.trade_id, t.price, t.aggressor, t.ts_recv) == ("1", D("100.10"), Side.BUY, T0)
    assert (c.close, c.closed, c.start_ns) == (D("2.0"), True, 1672515780000 * 1_000_000)
    assert h.feed_events() == ["FeedConnected"]
    assert h.reconnects == 0
    assert h.stop() < 0.5
    assert wait_until(lambda: server.open_connections() == [])


def test_the_age_of_the_last_message_is_read_from_any_thread(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    h = Harness(market(server.url))
    assert h.listener.message_age_s() is None  # no connection yet
    harnesses.append(h.start())
    assert wait_until(lambda: subscribed(server, 1))
    server.send(book())
    assert wait_until(lambda: len(h.of(QuoteTick)) == 1)
    first = h.listener.message_age_s()
    assert first is not None and 0 <= first < 1
    time.sleep(0.2)  # real time: the age is monotonic seconds since the last frame
    assert h.listener.message_age_s() >= first + 0.15


def test_server_close_reconnects_with_backoff_and_resubscribes(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    cfg = dataclasses.replace(FAST, backoff_initial_s=0.6, backoff_max_s=0.6)
    h = run(harnesses, market(server.url), cfg=cfg)
    assert wait_until(lambda: subscribed(server, 1))
    server.send(book())
    assert wait_until(lambda: h.of(QuoteTick))
    server.close(0, 1001, "going away")
    assert wait_until(lambda: h.of(FeedDisconnected))
    closed_at = time.monotonic()
    assert "code 1001, going away" in h.of(FeedDisconnected)[0].reason
    assert wait_until(lambda: subscribed(server, 2))
    assert time.monotonic() - closed_at >= 0.25  # backoff 0.6 s with jitter in [0.5, 1)
    assert len(server.messages(conn=1, key="SUBSCRIBE")) == 1
    assert h.reconnects == 0  # not before data flows again
    server.send(book(bid="101"))
    assert wait_until(lambda: len(h.of(QuoteTick)) == 2)
    assert h.feed_events() == [
        "FeedConnected",
        "FeedDisconnected",
        "FeedConnected",
        "FeedRecovered",
    ]
    assert h.reconnects == 1
    assert h.stats.get("ws-binance-market.disconnects") == 1


def test_a_healthy_connection_resets_the_backoff(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    cfg = dataclasses.replace(FAST, healthy_after_s=0.2)
    h = run(harnesses, market(server.url), cfg=cfg)
    for n in (1, 2):  # two connections closed at once: the backoff grows
        assert wait_until(lambda: subscribed(server, n))  # noqa: B023 - called in this iteration
        server.close(n - 1)
    assert wait_until(lambda: subscribed(server, 3))
    assert h.listener.backoff.attempt == 2
    server.send(book())  # data: the connection is ready; it stays up past healthy_after_s
    assert wait_until(lambda: h.of(FeedRecovered))
    threading.Event().wait(0.25)
    server.close(2)
    assert wait_until(lambda: subscribed(server, 4))
    assert h.listener.backoff.attempt == 1  # reset, then one attempt


def test_silent_server_goes_stale_then_reconnects_and_recovers(harnesses: list[Harness]) -> None:
    server = FakeExchange(ping_interval=0.03).start()  # pings keep flowing: they are not data
    try:
        cfg = dataclasses.replace(FAST, stale_after_s=0.3)
        h = run(harnesses, market(server.url), cfg=cfg)
        assert wait_until(lambda: subscribed(server, 1))
        server.send(book())
        assert wait_until(lambda: h.of(FeedStale))
        stale = h.of(FeedStale)[0]
        assert stale.feed == "ws-binance-market" and stale.silent_s >= D("0.3")
        assert wait_until(lambda: subscribed(server, 2))
        assert wait_until(lambda: 0 in server.closed)  # the listener dropped the silent one
        server.send(book(bid="99"))
        assert wait_until(lambda: h.of(FeedRecovered))
        assert h.feed_events() == [
            "FeedConnected",
            "FeedStale",
            "FeedDisconnected",
            "FeedConnected",
            "FeedRecovered",
        ]
        assert h.of(FeedDisconnected)[0].reason.startswith("no data for")
        assert [q.bid for q in h.of(QuoteTick)] == [D("100.5"), D("99")]
        assert h.reconnects == 1
        h.stop()
    finally:
        server.stop()


def test_garbage_is_counted_and_logged_and_the_listener_goes_on(
    server: FakeExchange, harnesses: list[Harness], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trader.feeds.websocket")
    h = run(harnesses, market(server.url))
    assert wait_until(lambda: subscribed(server, 1))
    server.send("not json {")
    server.send(b"\xff\xfe garbage", text=True)  # invalid UTF-8 in a text frame
    server.send(b"\x00\x01\x02")  # a binary frame
    server.send("x" * 5000)
    server.send({"e": "weird", "E": 1})
    server.send({"e": "weird", "E": 2})
    server.send(book(bid="abc"))  # a number that is not one
    server.send(book())
    assert wait_until(lambda: h.of(QuoteTick))
    name = "ws-binance-market"
    assert h.stats.get(f"{name}.malformed") == 4
    assert h.stats.get(f"{name}.unknown") == 2
    assert h.stats.get(f"{name}.bad_message") == 1
    assert h.of(QuoteTick) == [quote()]
    unknown = [r for r in caplog.records if "unknown message type" in r.getMessage()]
    assert len(unknown) == 1 and "'weird'" in unknown[0].getMessage()
    assert max(len(r.getMessage()) for r in caplog.records) < 400  # payloads truncated
    assert len(server.conns) == 1 and h.feed_events() == ["FeedConnected"]


def test_server_shutdown_reconnects_at_once(server: FakeExchange, harnesses: list[Harness]) -> None:
    slow = dataclasses.replace(FAST, backoff_initial_s=30, backoff_max_s=30)
    h = run(harnesses, market(server.url), cfg=slow)
    assert wait_until(lambda: subscribed(server, 1))
    server.send({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": 1}})
    assert wait_until(lambda: subscribed(server, 2), timeout=2)  # no 30 s backoff
    assert h.of(FeedDisconnected)[0].reason == "serverShutdown"
    server.send(book())
    assert wait_until(lambda: h.of(FeedRecovered))
    assert h.reconnects == 1
    server.send({"e": "serverShutdown", "E": 2})  # again at once: now it waits its backoff
    assert wait_until(lambda: len(h.of(FeedDisconnected)) == 2)
    assert not wait_until(lambda: len(server.conns) == 3, timeout=0.3)


def test_rotation_opens_the_new_connection_before_closing_the_old(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    h = run(harnesses, market(server.url), rotate_after_s=0.3)
    assert wait_until(lambda: subscribed(server, 1))
    stop_ticker = threading.Event()

    def ticker() -> None:  # the same trades on every open connection, like the exchange
        n = 0
        while not stop_ticker.wait(0.01 if n % 5 else 0.08):
            n += 1
            server.broadcast(trade(n))

    thread = threading.Thread(target=ticker, name="ticker")
    thread.start()
    try:
        assert wait_until(lambda: h.stats.get("ws-binance-market.rotations") >= 2, timeout=5)
        assert wait_until(lambda: len(server.open_connections()) == 1)
        seen = len(h.of(TradeTick))
        assert wait_until(lambda: len(h.of(TradeTick)) > seen + 5)
    finally:
        stop_ticker.set()
        thread.join(2)
    ids = [int(t.trade_id) for t in h.of(TradeTick)]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no gap, no duplicate
    assert server.open_at_subscribe[:3] == [1, 2, 2]  # make before break
    assert h.feed_events() == ["FeedConnected"]  # rotation is invisible
    assert h.reconnects == 0


# ------------------------------------------------------------------ user data streams


def test_binance_user_stream_signs_parses_and_resubscribes(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    cfg = dataclasses.replace(FAST, stale_after_s=0.05)  # no data watchdog on user streams
    proto = BinanceUserStream(
        f"{server.url}/ws-api/v3", ["ETH/BTC"], API_KEY, API_SECRET, ManualClock(T0)
    )
    h = run(harnesses, proto, cfg=cfg)
    key = "userDataStream.subscribe.signature"
    assert wait_until(lambda: subscribed(server, 1, key))
    fill = {
        "subscriptionId": 0,
        "event": {
            "e": "executionReport",
            "E": 1499405658658,
            "s": "ETHBTC",
            "c": "trd-1",
            "S": "SELL",
            "C": "",
            "x": "TRADE",
            "X": "FILLED",
            "r": "NONE",
            "i": 4293153,
            "l": "1.00000000",
            "z": "1.00000000",
            "L": "0.10264410",
            "n": "0.00010264",
            "N": "BTC",
            "t": 9,
            "m": True,
        },
    }
    server.send(fill)
    server.send(
        {
            "subscriptionId": 0,
            "event": {
                "e": "outboundAccountPosition",
                "E": 1,
                "u": 1,
                "B": [{"a": "BTC", "f": "1.5", "l": "0.25"}],
            },
        }
    )
    assert wait_until(lambda: h.of(OrderFilled) and h.of(BalanceUpdate))
    assert h.of(OrderFilled) == [
        OrderFilled(
            ts_event=1499405658658 * 1_000_000,
            ts_recv=T0,
            client_id="trd-1",
            exchange_id="4293153",
            trade_id="9",
            symbol="ETH/BTC",
            side=Side.SELL,
            price=D("0.10264410"),
            amount=D("1.00000000"),
            fee=D("0.00010264"),
            fee_asset="BTC",
            filled_total=D("1.00000000"),
            is_final=True,
            liquidity=Liquidity.MAKER,
        )
    ]
    assert h.of(BalanceUpdate)[0].total == D("1.75")
    server.send({"subscriptionId": 0, "event": {"e": "eventStreamTerminated", "E": 1}})
    assert wait_until(lambda: len(server.messages(conn=0, key=key)) == 2)
    assert len(server.conns) == 1  # resubscribed on the same connection
    assert h.stats.get("ws-binance-user.resubscribes") == 1
    assert not h.of(FeedStale)
    # what the stream carried until the new subscription was missed: its confirmation is a
    # recovery (one event), which the wiring answers with a REST catch-up
    assert wait_until(lambda: h.feed_events() == ["FeedConnected", "FeedRecovered"])
    (recovered,) = h.of(FeedRecovered)
    assert recovered.reason == "resubscribed (eventStreamTerminated)"


def test_refused_subscription_reconnects_with_backoff(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    proto = BinanceUserStream(
        f"{server.url}/ws-api/v3", [], API_KEY, "wrong-secret", ManualClock(T0)
    )
    h = run(harnesses, proto)
    assert wait_until(lambda: len(server.conns) >= 2)
    assert "-1022 Signature for this request is not valid." in h.of(FeedDisconnected)[0].reason
    assert h.stats.get("ws-binance-user.refused") >= 1


def test_bybit_private_authenticates_pings_and_parses(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    # no server pings; only the answers to our own pings keep the connection alive
    cfg = dataclasses.replace(FAST, ping_interval_s=0.05, dead_after_s=0.3)
    proto = BybitPrivateStream(
        f"{server.url}/v5/private", ["BTC/USDT"], API_KEY, API_SECRET, ManualClock(T0)
    )
    h = run(harnesses, proto, cfg=cfg)
    assert wait_until(lambda: subscribed(server, 1, "subscribe"))
    auth, sub = server.messages()[:2]
    assert auth["op"] == "auth" and auth["args"][1] == T0 // 1_000_000 + 10_000
    assert sub == {"op": "subscribe", "args": ["order", "execution", "wallet"]}
    assert wait_until(lambda: len(server.messages(key="ping")) >= 8)  # 0.4 s > dead_after_s
    assert len(server.conns) == 1 and h.feed_events() == ["FeedConnected"]
    server.send(
        {
            "topic": "execution",
            "creationTime": 1,
            "data": [
                {
                    "category": "spot",
                    "symbol": "BTCUSDT",
                    "execFee": "0.00001",
                    "execId": "e1",
                    "execPrice": "60000.5",
                    "execQty": "0.01",
                    "execType": "Trade",
                    "leavesQty": "0.02",
                    "orderId": "o1",
                    "orderLinkId": "trd-7",
                    "orderQty": "0.03",
                    "side": "Buy",
                    "execTime": "1746270400353",
                    "isMaker": True,
                    "feeCurrency": "BTC",
                }
            ],
        }
    )
    server.send(
        {
            "topic": "wallet",
            "creationTime": 1,
            "data": [{"coin": [{"coin": "USDT", "walletBalance": "950.5", "locked": "100"}]}],
        }
    )
    assert wait_until(lambda: h.of(OrderFilled) and h.of(BalanceUpdate))
    fill = h.of(OrderFilled)[0]
    assert (
        fill.client_id,
        fill.symbol,
        fill.price,
        fill.amount,
        fill.filled_total,
        fill.is_final,
    ) == ("trd-7", "BTC/USDT", D("60000.5"), D("0.01"), D("0.01"), False)
    bal = h.of(BalanceUpdate)[0]
    assert (bal.asset, bal.free, bal.used, bal.total) == ("USDT", D("850.5"), D("100"), D("950.5"))


def test_bybit_public_streams_quotes_and_trades(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    proto = BybitPublicStreams(f"{server.url}/v5/public/spot", "spot", ["BTC/USDT"])
    h = run(harnesses, proto)
    assert wait_until(lambda: subscribed(server, 1, "subscribe"))
    assert server.messages()[0]["args"] == ["orderbook.1.BTCUSDT", "publicTrade.BTCUSDT"]
    server.send(
        {
            "topic": "orderbook.1.BTCUSDT",
            "type": "snapshot",
            "ts": 1,
            "data": {
                "s": "BTCUSDT",
                "b": [["100.5", "1.5"]],
                "a": [["100.6", "2.5"]],
                "u": 1,
                "seq": 1,
            },
        }
    )
    server.send(
        {
            "topic": "publicTrade.BTCUSDT",
            "type": "snapshot",
            "ts": 1,
            "data": [{"T": 1, "s": "BTCUSDT", "S": "Sell", "v": "0.5", "p": "100.5", "i": "t1"}],
        }
    )
    assert wait_until(lambda: h.of(QuoteTick) and h.of(TradeTick))
    assert dataclasses.replace(h.of(QuoteTick)[0], ts_event=T0) == quote()
    assert h.of(TradeTick)[0].aggressor == Side.SELL


def test_a_connection_with_no_frames_at_all_is_dropped(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    cfg = dataclasses.replace(FAST, dead_after_s=0.2)
    proto = BinanceUserStream(f"{server.url}/ws-api/v3", [], API_KEY, API_SECRET, ManualClock(T0))
    h = run(harnesses, proto, cfg=cfg)
    assert wait_until(lambda: len(server.conns) >= 2)
    assert h.of(FeedDisconnected)[0].reason.startswith("no frames for")
    assert wait_until(lambda: h.of(FeedRecovered))  # the next subscription was acknowledged
    assert h.reconnects >= 1


def test_a_full_bus_makes_the_listener_resynchronise(
    server: FakeExchange, harnesses: list[Harness]
) -> None:
    stats = Stats()
    bus = Bus(maxsize=1, put_timeout=0.01, stats=stats)
    proto = BinanceUserStream(f"{server.url}/ws-api/v3", [], API_KEY, API_SECRET, ManualClock(T0))
    h = run(harnesses, proto, publish=bus.publish)
    assert wait_until(lambda: subscribed(server, 1, "userDataStream.subscribe.signature"))
    assert wait_until(lambda: bus.depth() == 1)  # FeedConnected fills the bus
    server.send(
        {
            "subscriptionId": 0,
            "event": {
                "e": "outboundAccountPosition",
                "E": 1,
                "u": 1,
                "B": [{"a": "BTC", "f": "1", "l": "0"}],
            },
        }
    )
    assert wait_until(lambda: len(server.conns) == 2)  # reconnected, so REST can fill the gap
    assert stats.get("bus_put_timeouts") >= 1
    h.stop()


def test_stop_is_prompt_while_waiting_to_reconnect(harnesses: list[Harness]) -> None:
    slow = dataclasses.replace(FAST, backoff_initial_s=30, backoff_max_s=30)
    h = run(harnesses, market("ws://127.0.0.1:9"), cfg=slow)  # nothing listens on port 9
    assert wait_until(lambda: h.of(FeedDisconnected))
    assert h.of(FeedDisconnected)[0].reason.startswith("connect failed")
    assert h.stop() < 0.5
