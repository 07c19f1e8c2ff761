"""The conformance suite's harness: the fault suite's (``tests/faults/conftest.py``: the whole
App in live mode, the real ccxt client, the real listeners, a :class:`Recorder` of every
dispatched event), parametrised by exchange. Each test runs once per :data:`VENUES` entry
against that exchange's REST double and the websocket double (``tests/ws_server.py``, which
answers Binance's and Bybit's subscriptions and checks their signatures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.venues import VENUES, Double, Venue
from tests.faults.conftest import (
    TEST_STRATEGIES,
    Recorder,
    Running,
    binance_config,
)
from tests.ws_server import (  # noqa: F401 - ws: a fixture
    API_KEY,
    API_SECRET,
    FakeExchange,
    wait_until,
    ws,
)
from trader.app import App
from trader.events import ReconciliationCompleted

MARKET, PRIVATE = "market", "private"


class VenueRunning(Running):
    """A running App whose websocket connections are told apart the venue's way."""

    def __init__(
        self, app: App, events: Recorder, ws: FakeExchange, double: Double, venue: Venue
    ) -> None:
        self.venue = venue
        super().__init__(app, events, ws, double)

    def _subs(self, kind: str) -> list[int]:
        match = self.venue.is_market_sub if kind == MARKET else self.venue.is_private_sub
        return [n for n, m in list(self.ws.received) if match(m)]

    def conn(self, kind: str) -> int:
        """The newest connection that subscribed ``kind`` (MARKET or PRIVATE)."""
        conns = self._subs(kind)
        assert conns, f"no {kind} subscription yet"
        return conns[-1]

    def wait_subscribed(self, kind: str, n: int = 1, timeout: float = 5.0) -> int:
        """Wait for the ``n``-th subscription of ``kind``; return its connection."""
        assert wait_until(lambda: len(self._subs(kind)) >= n, timeout), (
            f"{kind} not subscribed {n} time(s)"
        )
        return self.conn(kind)


@pytest.fixture(params=sorted(VENUES))
def venue(request: pytest.FixtureRequest) -> Venue:
    """Each exchange in turn."""
    return VENUES[request.param]


@pytest.fixture
def double(venue: Venue) -> Iterator[Double]:
    """The venue's REST double."""
    d = venue.double(API_KEY, API_SECRET)
    d.start()
    yield d
    d.stop()


@pytest.fixture
def run_app(
    tmp_path: Path, venue: Venue, double: Double, ws: FakeExchange
) -> Iterator[Callable[..., VenueRunning]]:
    """``run_app(reconciled=True, **config_sections)``: the App on the venue, started, its
    streams subscribed and (unless ``reconciled`` is False) its start-up reconciliation done.
    Every App started shares ``tmp_path`` (a restart finds the same journal)."""
    running: list[VenueRunning] = []

    def start(reconciled: bool = True, **sections: Any) -> VenueRunning:
        sections = {**sections, "exchange": {"name": venue.name, **sections.get("exchange", {})}}
        app = App(
            binance_config(tmp_path, double.url, ws.url, **sections), strategies=TEST_STRATEGIES
        )
        events = Recorder()
        app.registry.observe(events)
        app.start()
        r = VenueRunning(app, events, ws, double, venue)
        running.append(r)
        before = len(running) - 1  # earlier Apps subscribed on their own connections
        r.wait_subscribed(MARKET, before + 1)
        r.wait_subscribed(PRIVATE, before + 1)
        if reconciled:
            r.events.wait_for(ReconciliationCompleted)
        return r

    yield start
    for r in running:
        if r.thread.is_alive():
            r.stop()
