"""The fault suite's harness: the whole system, in live mode, against the local doubles.

:func:`run_app` builds the :class:`~trader.app.App` from ``trader/app.py`` with a Binance
config whose REST base URL is the Binance REST double and whose websocket base URL is the
websocket double, starts it exactly as ``scripts/start.py`` does, and runs its main loop in a
thread named ``app-main``. Every request goes through the real ccxt client, every stream through
the real listeners, every event through the bus, the engine and the store. The only thing added
is a registry observer (:class:`Recorder`, the hook the journal uses) that keeps the dispatched
events for the test to assert on.

Orders come from a real strategy (:class:`Trigger`, registered for these tests only) through
risk and the executor, fired by a quote the websocket double sends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.binance_rest import BinanceRestDouble
from tests.ws_server import (  # noqa: F401 - ws: a fixture
    API_KEY,
    API_SECRET,
    FakeExchange,
    wait_until,
    ws,
)
from trader.app import App
from trader.config import Config, config_from_dict
from trader.events import Event, QuoteTick, ReconciliationCompleted
from trader.model.orders import OrderType, Side
from trader.registries import Strategies
from trader.store.view import StoreView
from trader.trading.strategies import STRATEGIES
from trader.trading.strategy import OrderIntent, Output, Strategy

KEYS = {"TRADER_API_KEY": API_KEY, "TRADER_API_SECRET": API_SECRET}
MARKET, USER = "SUBSCRIBE", "userDataStream.subscribe.signature"


# ------------------------------------------------------------------------------ messages


def book(bid: str, ask: str | None = None, symbol: str = "btcusdt", u: int = 1) -> dict:
    """A Binance ``bookTicker`` on the combined market stream."""
    return {
        "stream": f"{symbol}@bookTicker",
        "data": {"u": u, "s": symbol.upper(), "b": bid, "B": "1", "a": ask or bid, "A": "1"},
    }


def account(asset: str, free: str, locked: str = "0", u: int = 1) -> dict:
    """An ``outboundAccountPosition`` on the user data stream (absolute balances)."""
    return {
        "subscriptionId": 0,
        "event": {
            "e": "outboundAccountPosition",
            "E": int(time.time() * 1000),
            "u": u,
            "B": [{"a": asset, "f": free, "l": locked}],
        },
    }


def execution(
    client_id: str,
    order_id: int,
    trade_id: int,
    qty: str,
    price: str,
    side: str = "SELL",
    final: bool = True,
    fee: str = "0.01",
) -> dict:
    """An ``executionReport`` TRADE on the user data stream: one fill of an order."""
    return {
        "subscriptionId": 0,
        "event": {
            "e": "executionReport",
            "E": int(time.time() * 1000),
            "s": "BTCUSDT",
            "c": client_id,
            "C": "",
            "S": side,
            "x": "TRADE",
            "X": "FILLED" if final else "PARTIALLY_FILLED",
            "r": "NONE",
            "i": order_id,
            "l": qty,
            "z": qty,
            "L": price,
            "n": fee,
            "N": "USDT",
            "t": trade_id,
            "m": False,
        },
    }


# ------------------------------------------------------------------------------ strategy


@dataclass(frozen=True)
class TriggerParams:
    """Parameters of :class:`Trigger`."""

    bid: Decimal  # a quote with exactly this bid fires the order
    side: Side = Side.SELL
    amount: Decimal = Decimal(3)
    price: Decimal | None = None  # a limit price; None: a market order


class Trigger(Strategy):
    """Asks for one order when a quote's bid equals ``params.bid``. It asks again on the next
    such quote until the store holds an order of this strategy, so an intent denied while
    trading is halted (waiting for start-up reconciliation) is not the end of the test."""

    Params = TriggerParams
    params: TriggerParams

    def on_quote(self, ev: QuoteTick, view: StoreView) -> Iterable[Output]:
        """Fire on the trigger bid."""
        p = self.params
        if ev.bid != p.bid or any(o.strategy == self.id for o in view.orders()):
            return ()
        kind = OrderType.MARKET if p.price is None else OrderType.LIMIT
        return (
            OrderIntent(
                strategy=self.id,
                symbol=self.symbol,
                side=p.side,
                amount=p.amount,
                order_type=kind,
                price=p.price,
            ),
        )


TEST_STRATEGIES = {**STRATEGIES, "trigger": Trigger}  # config may name ``trigger`` in these tests


# ------------------------------------------------------------------------------ the system


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, section by section."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def binance_config(tmp_path: Path, rest_url: str, ws_url: str, **sections: Any) -> Config:
    """Binance live (keys set), every URL local, fast reconnects. No scheduled REST polls
    unless a test asks (their start-up round would share ccxt's rate limiter with the start-up
    reconciliation and slow every start); a test runs the polls it needs with
    ``poller.request_refresh``, as a reconnecting stream does."""
    data = {
        "general": {"stats_interval_s": 60},
        "exchange": {
            "name": "binance",
            "mode": "live",
            "timeout_ms": 2000,
            "urls": {"rest": rest_url, "ws": ws_url},
        },
        "trade": {"markets": ["BTC/USDT"]},
        "poller": {
            "balances_every_s": 0,
            "open_orders_every_s": 0,
            "trades_every_s": 0,
            "tickers_every_s": 0,
            "fast_every_s": 1,
        },
        "streams": {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "connect_timeout_s": 2},
        "strategies": [],
        "journal": {"path": str(tmp_path / "journal")},
    }
    return config_from_dict(merged(data, sections), KEYS)


class Recorder:
    """Every dispatched event, in dispatch order (a registry observer, called on the main
    loop's thread before the event's handlers)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, ev: Event) -> None:
        self.events.append(ev)

    def of(self, *classes: type) -> list[Any]:
        """The events of these classes so far."""
        return [e for e in list(self.events) if isinstance(e, classes)]

    def wait(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """``predicate``'s first truthy value, polled in short ``Event.wait`` steps."""
        return wait_until(predicate, timeout)

    def wait_for(
        self,
        cls: type,
        where: Callable[[Any], bool] = lambda e: True,
        n: int = 1,
        timeout: float = 5.0,
    ) -> list[Any]:
        """Wait until ``n`` events of ``cls`` matching ``where`` were dispatched; return them
        (fails the test after ``timeout``)."""
        got = wait_until(
            lambda: len(m := [e for e in self.of(cls) if where(e)]) >= n and m, timeout
        )
        assert got, (
            f"{n} x {cls.__name__} not dispatched in {timeout}s; got "
            f"{[type(e).__name__ for e in self.events][-30:]}"
        )
        return got


class Running:
    """A started App with its main loop in the ``app-main`` thread."""

    def __init__(
        self,
        app: App,
        events: Recorder,
        ws: FakeExchange | None = None,
        double: BinanceRestDouble | None = None,
    ) -> None:
        self.app = app
        self.events = events
        self.ws = ws
        self.double = double
        self.crash: BaseException | None = None
        self.totals: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._main, name="app-main", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            self.app.run()
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.crash = exc
        finally:
            self.totals = self.app.shutdown()

    @property
    def alive(self) -> bool:
        """The main loop is running."""
        return self.thread.is_alive() and not self.app.stop_event.is_set()

    def stop(self, timeout: float = 5.0) -> dict[str, Any]:
        """The one stop path (as on SIGTERM); returns the totals the app logged."""
        self.app.request_stop("test")
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the main loop did not stop"
        assert self.crash is None, f"the main loop raised {self.crash!r}"
        assert self.totals is not None
        return self.totals

    # -------------------------------------------------------------- the websocket double

    def conn(self, kind: str) -> int:
        """The newest connection that subscribed ``kind`` (MARKET or USER)."""
        conns = [n for n, m in list(self.ws.received) if m.get("method") == kind]
        assert conns, f"no {kind} subscription yet"
        return conns[-1]

    def wait_subscribed(self, kind: str, n: int = 1, timeout: float = 5.0) -> int:
        """Wait for the ``n``-th subscription of ``kind``; return its connection."""
        assert wait_until(lambda: len(self.ws.messages(key=kind)) >= n, timeout), (
            f"{kind} not subscribed {n} time(s)"
        )
        return self.conn(kind)

    def send(self, kind: str, message: Any) -> None:
        """Send on the newest connection of ``kind``."""
        self.ws.send(message, conn=self.conn(kind))

    def quote_until(
        self, message: dict, done: Callable[[], Any], timeout: float = 5.0, every: float = 0.05
    ) -> Any:
        """Send ``message`` on the market stream every ``every`` s until ``done()`` holds (the
        stream may be reconnecting, trading may be halted); return ``done()``'s value."""
        deadline = time.monotonic() + timeout
        tick = threading.Event()
        while time.monotonic() < deadline:
            value = done()
            if value:
                return value
            self.ws.broadcast(message)
            tick.wait(every)
        return done()

    def requests(self, method: str, path: str, after: float = 0.0) -> list:
        """Requests the REST double saw for ``method path`` (arrived after ``after``)."""
        return [
            r
            for r in list(self.double.requests)
            if r.method == method and r.path == path and r.at > after
        ]


SECRET_TEXTS = ("signature=", API_KEY, API_SECRET)


@pytest.fixture(autouse=True)
def no_secret_in_logs_or_journals(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> Iterator[None]:
    """Every fault test: no log line (INFO and up, as the service logs) and no journal file
    holds a signed query string or the test keys (issue #12: ccxt's error texts carried the
    signed URL into 38 log lines and 19 ``PollFailed`` events of one outage)."""
    caplog.set_level(logging.INFO)
    logging.getLogger("ccxt").setLevel(logging.INFO)  # as trader.logsetup keeps it
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in records)
    journals = "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in tmp_path.rglob("*.jsonl")
    )
    for secret in SECRET_TEXTS:
        assert secret not in logged, f"{secret!r} in the log"
        assert secret not in journals, f"{secret!r} in a journal"


@pytest.fixture
def double() -> Iterator[BinanceRestDouble]:
    """The Binance REST double."""
    with BinanceRestDouble(API_KEY, API_SECRET) as d:
        yield d


@pytest.fixture
def run_app(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange
) -> Iterator[Callable[..., Running]]:
    """``run_app(setup=None, reconciled=True, strategy_classes=TEST_STRATEGIES,
    **config_sections)``: build the App with that strategy registry, call ``setup(app)``, start
    and run it, wait until both streams are subscribed and (unless
    ``reconciled`` is False) the start-up reconciliation completed; stopped at teardown."""
    running: list[Running] = []

    def start(
        setup: Callable[[App], None] | None = None,
        reconciled: bool = True,
        strategy_classes: Strategies = TEST_STRATEGIES,
        **sections: Any,
    ) -> Running:
        app = App(
            binance_config(tmp_path, double.url, ws.url, **sections), strategies=strategy_classes
        )
        events = Recorder()
        app.registry.observe(events)
        if setup is not None:
            setup(app)
        app.start()
        r = Running(app, events, ws, double)
        running.append(r)
        r.wait_subscribed(MARKET)
        r.wait_subscribed(USER)
        if reconciled and app.cfg.reconcile.enabled:
            r.events.wait_for(ReconciliationCompleted)
        return r

    yield start
    for r in running:
        if r.thread.is_alive():
            r.stop()


def trigger(bid: str, **params: Any) -> dict[str, Any]:
    """The ``strategies`` section for one :class:`Trigger` on BTC/USDT."""
    return {
        "strategies": [{"name": "trigger", "market": "BTC/USDT", "params": {"bid": bid, **params}}]
    }
