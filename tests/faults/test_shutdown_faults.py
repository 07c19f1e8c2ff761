"""SIGTERM while an order is on its way to the exchange, then a restart: ``scripts/start.py`` as
real processes, in live mode against the Binance REST double and the websocket double.

The strategy (``ma_cross``, fed closed candles over the market stream) sells; the double takes
the order and holds its answer. SIGTERM arrives while the executor waits for it: the process
must stop cleanly within its deadline, leaving the order on the exchange. The restarted process
must reconcile with the exchange before trading and must not send the order again.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.doubles.binance_rest import BinanceRestDouble, Fault
from tests.test_exchange_start import start
from tests.test_start import wait_for
from tests.ws_server import FakeExchange, wait_until

pytestmark = pytest.mark.timeout(40)

ORDER = ("POST", "/api/v3/order")
MINUTE_MS = 60_000


def config(tmp_path: Path, rest_url: str, ws_url: str, timeout_ms: int = 20_000) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "general: {stats_interval_s: 0.5}\n"
        f"exchange: {{name: binance, mode: live, timeout_ms: {timeout_ms},\n"
        f"           urls: {{rest: '{rest_url}', ws: '{ws_url}'}}}}\n"
        "trade: {markets: [BTC/USDT]}\n"
        "streams: {backoff_initial_s: 0.05, backoff_max_s: 0.2}\n"
        "strategies:\n"
        "  - {name: ma_cross, market: BTC/USDT, params: {fast: 1, slow: 2, amount: 3}}\n"
        f"journal: {{path: {tmp_path / 'journal'}}}\n"
    )
    return cfg


def candle(n: int) -> dict:
    """The n-th closed one-minute candle: closes 10, 11, 9, 11, 9, ... so that with fast 1 and
    slow 2 the averages cross at every candle from the third on (a sell, a buy, a sell ...)."""
    close = "10" if n == 0 else "11" if n % 2 else "9"
    return {
        "stream": "btcusdt@kline_1m",
        "data": {
            "e": "kline",
            "E": 1_700_000_000_000 + n * MINUTE_MS,
            "s": "BTCUSDT",
            "k": {
                "t": 1_700_000_000_000 + n * MINUTE_MS,
                "i": "1m",
                "o": close,
                "c": close,
                "h": close,
                "l": close,
                "v": "1",
                "x": True,
            },
        },
    }


class Session:
    """One ``scripts/start.py`` process and what it printed."""

    def __init__(self, cfg: Path, ws: FakeExchange) -> None:
        self.proc = start(cfg)
        self.ws = ws
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout: float = 10) -> None:
        self.lines += wait_for(self.proc, text, timeout)

    def send_market(self, message: dict) -> None:
        market = [n for n, m in self.ws.received if m.get("method") == "SUBSCRIBE"][-1]
        self.ws.send(message, conn=market)

    def stop(self, sig: signal.Signals) -> float:
        """Signal it; return how long it took to exit (fails after 10 s)."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            self.lines.append(out)
            raise AssertionError(f"no exit 10 s after {sig.name}:\n{self.text}") from None
        self.lines.append(out)
        return time.monotonic() - sent

    @property
    def text(self) -> str:
        return "".join(self.lines)


def order_in_flight(cfg: Path, double: BinanceRestDouble, ws: FakeExchange) -> Session:
    """Start a session and make its strategy sell once; return when the double holds the order
    and its answer hangs."""
    double.balances += [{"asset": "USDT", "free": "1000", "locked": "0"}]
    double.script(*ORDER, Fault.accept_then_hang(60))  # taken, then no answer
    s = Session(cfg, ws)
    s.wait_for("started trader")
    s.wait_for("state=active")  # the start-up reconciliation let trading go
    s.send_market(
        {
            "stream": "btcusdt@bookTicker",
            "data": {"u": 1, "s": "BTCUSDT", "b": "4", "B": "9", "a": "4.000002", "A": "9"},
        }
    )
    for n in range(3):
        s.send_market(candle(n))
    assert wait_until(lambda: double.count(*ORDER), 5), "no order was sent"
    return s


def test_sigterm_during_an_order_submit_then_restart_reconciles_without_a_duplicate(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange
) -> None:
    cfg = config(tmp_path, double.url, ws.url)
    s = order_in_flight(cfg, double, ws)
    try:
        elapsed = s.stop(signal.SIGTERM)  # the executor is waiting for the answer
    finally:
        s.proc.kill()
    assert s.proc.returncode == 0, s.text
    assert elapsed < 2.0, f"took {elapsed:.2f}s to exit"
    assert "reason=SIGTERM" in s.text and "Traceback" not in s.text
    assert "workers still running after 0.2s: executor" in s.text  # it was mid-submit
    (order,) = double.orders.values()
    assert order["clientOrderId"].startswith("trd-")

    s = Session(cfg, ws)  # the restart: no strategy input this time
    try:
        s.wait_for("started trader")
        s.wait_for("ReconciliationCompleted ok=True")
        s.wait_for("state=active")
        assert not wait_until(lambda: double.count(*ORDER) > 1, 1.0)
        s.stop(signal.SIGINT)
    finally:
        s.proc.kill()
    assert s.proc.returncode == 0 and "Traceback" not in s.text, s.text
    assert list(double.orders.values()) == [order]  # no duplicate
    assert double.count(*ORDER) == 1


def test_sigterm_with_an_order_queued_behind_a_hanging_submit_still_exits_at_once(
    tmp_path: Path, double: BinanceRestDouble, ws: FakeExchange
) -> None:
    s = order_in_flight(config(tmp_path, double.url, ws.url, timeout_ms=3000), double, ws)
    try:
        s.send_market(candle(3))  # the next cross: a buy, queued behind the hanging sell
        s.wait_for("SIGNAL ma_cross:BTC/USDT BTC/USDT LONG")
        elapsed = s.stop(signal.SIGTERM)
    finally:
        s.proc.kill()
    assert s.proc.returncode == 0, s.text
    assert elapsed < 2.0, f"took {elapsed:.2f}s to exit"
    assert "1 queued command(s) not sent" in s.text  # recorded, settled at the next start
    assert double.count(*ORDER) == 1  # the queued buy was not sent on the way out
