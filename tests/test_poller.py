"""The poller's schedule under freezegun, and failing jobs."""

from __future__ import annotations

from freezegun import freeze_time

from tests.conftest import balance
from trader.clock import ManualClock
from trader.config import PollerConfig
from trader.errors import TemporaryError
from trader.events import ErrorKind, PollFailed
from trader.feeds.poller import Poller
from trader.stats import Stats


class FakeGateway:
    """Counts calls; only stands in for the network (the scheduler is real)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"balances": 0, "tickers": 0, "open_orders": 0}
        self.fail = False

    def fetch_balances(self):
        self.calls["balances"] += 1
        if self.fail:
            raise TemporaryError("HTTP 503")
        return [balance("USDT", "100")]

    def fetch_tickers(self, symbols):
        self.calls["tickers"] += 1
        return []

    def fetch_open_orders(self, symbols):
        self.calls["open_orders"] += 1
        return []


def make(cfg: PollerConfig):
    gw, published = FakeGateway(), []
    poller = Poller(gw, published.append, ManualClock(1), Stats(), cfg, ["BTC/USDT"])
    return poller, gw, published


def test_balances_at_start_and_every_60_seconds() -> None:
    with freeze_time("2026-01-01 00:00:00") as frozen:
        poller, gw, published = make(PollerConfig(balances_every_s=60, open_orders_every_s=30))
        poller.run_now()
        assert gw.calls["balances"] == 1 and gw.calls["open_orders"] == 1
        assert gw.calls["tickers"] == 0  # tickers_every_s=0 turns the job off
        frozen.tick(30)
        poller.scheduler.run_pending()
        assert gw.calls == {"balances": 1, "tickers": 0, "open_orders": 2}
        frozen.tick(29)
        poller.scheduler.run_pending()
        assert gw.calls["balances"] == 1
        frozen.tick(1)
        poller.scheduler.run_pending()
        assert gw.calls["balances"] == 2
        frozen.tick(60)
        poller.scheduler.run_pending()
        assert gw.calls["balances"] == 3
        assert len([e for e in published if type(e).__name__ == "BalanceUpdate"]) == 3


def test_a_failing_job_becomes_poll_failed_and_keeps_its_schedule() -> None:
    with freeze_time("2026-01-01 00:00:00") as frozen:
        poller, gw, published = make(PollerConfig(balances_every_s=60, open_orders_every_s=0))
        gw.fail = True
        poller.run_now()
        failed = [e for e in published if isinstance(e, PollFailed)]
        assert len(failed) == 1
        assert failed[0].job == "balances" and failed[0].kind is ErrorKind.TEMPORARY
        assert "503" in failed[0].error
        gw.fail = False
        frozen.tick(60)
        poller.scheduler.run_pending()
        assert gw.calls["balances"] == 2
        assert type(published[-1]).__name__ == "BalanceUpdate"
