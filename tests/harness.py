"""A whole App driven by hand for trading tests: a ManualClock, the paper gateway, and no
threads. ``pump`` runs the executor's queued commands and dispatches everything on the bus until
both are empty, so every step is deterministic. Every order create is counted, so a test can
assert that no client id was ever sent twice."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from trader.app import App
from trader.clock import ManualClock
from trader.config import (
    Config,
    JournalConfig,
    PaperConfig,
    ReconcileConfig,
    StrategyConfig,
    TradeConfig,
)
from trader.events import Event, QuoteTick, SubmitOrder, TradeTick
from trader.model.orders import OrderType, Side
from trader.model.units import NS
from trader.trading.strategy import OrderIntent

T0 = 1_800_000_000 * NS
SYMBOL = "BTC/USDT"


class Harness:
    """See the module docstring."""

    def __init__(
        self,
        tmp_path: Path,
        strategies: tuple[StrategyConfig, ...] = (),
        paper: dict[str, Any] | None = None,
        **sections: Any,
    ) -> None:
        self.account_file = tmp_path / "paper-account.json"
        cfg = Config(
            trade=TradeConfig(markets=(SYMBOL,)),
            paper=PaperConfig(
                **{"persist": True, "account_file": str(self.account_file), **(paper or {})}
            ),
            journal=JournalConfig(path=str(tmp_path / "journal")),
            reconcile=ReconcileConfig(retry_s=0.01),
            strategies=strategies,
            **sections,
        )
        self.clock = ManualClock(T0)
        self.app = App(cfg, self.clock)
        self.creates: Counter[str] = Counter()
        self.cancels: list[str] = []
        self.dispatched: list[Event] = []
        self.app.registry.observe(self.dispatched.append)
        gw = self.app.gateway
        create, cancel = gw.create_order, gw.cancel_order

        def counted_create(cmd: SubmitOrder) -> list[Event]:
            self.creates[cmd.client_id] += 1
            return create(cmd)

        def counted_cancel(client_id: str, symbol: str) -> list[Event]:
            self.cancels.append(client_id)
            return cancel(client_id, symbol)

        gw.create_order = counted_create  # type: ignore[method-assign]
        gw.cancel_order = counted_cancel  # type: ignore[method-assign]
        for ev in gw.load_markets([SYMBOL]) + gw.fetch_balances():
            self.dispatch(ev)

    # driving --------------------------------------------------------------------------------

    def dispatch(self, *events: Event) -> None:
        """Dispatch on the main thread (as the engine would) and run what follows."""
        for ev in events:
            self.app.engine.dispatch(ev)
        self.pump()

    def pump(self) -> None:
        """Until quiet: dispatch follow-ups and the bus, send the executor's commands."""
        app = self.app
        for _ in range(1_000):
            app.engine.drain(time.monotonic() + 5)
            if app.executor._commands.empty():  # lookups are run by the test itself
                return
            app.executor.drain(time.monotonic() + 5)
        raise AssertionError("the system did not settle")

    def quote(self, bid: str, ask: str, size: str = "10") -> None:
        """A quote stamped now."""
        now = self.clock.now_ns()
        self.dispatch(
            QuoteTick(
                ts_event=now,
                ts_recv=now,
                symbol=SYMBOL,
                bid=D(bid),
                ask=D(ask),
                bid_size=D(size),
                ask_size=D(size),
            )
        )

    def trade(self, price: str, size: str = "10") -> None:
        """A public trade stamped now."""
        now = self.clock.now_ns()
        self.dispatch(
            TradeTick(
                ts_event=now,
                ts_recv=now,
                symbol=SYMBOL,
                price=D(price),
                size=D(size),
                aggressor=Side.SELL,
                trade_id=str(now),
            )
        )

    def order(
        self, side: Side, amount: str, price: str | None = None, strategy: str = "test"
    ) -> list[Event]:
        """Hand an intent to risk as a strategy would; returns what risk decided."""
        kind = OrderType.LIMIT if price is not None else OrderType.MARKET
        out = self.app.risk.evaluate(
            OrderIntent(
                strategy=strategy,
                symbol=SYMBOL,
                side=side,
                amount=D(amount),
                order_type=kind,
                price=D(price) if price is not None else None,
            )
        )
        for ev in out:
            self.app.engine.emit(ev)
        self.pump()
        return out

    def reconcile(self, reason: str = "test") -> None:
        """One reconciliation round, fetched here instead of on the worker thread."""
        self.app.reconciler.run_round(reason)
        self.pump()

    # checking -------------------------------------------------------------------------------

    def of_type(self, cls: type) -> list[Any]:
        """Dispatched events of one class."""
        return [e for e in self.dispatched if isinstance(e, cls)]

    def assert_no_duplicate_orders(self) -> None:
        """Every client id was sent once, and the exchange holds one order per id."""
        assert self.creates and max(self.creates.values()) == 1, self.creates
        sent = [e.client_id for e in self.of_type(SubmitOrder)]
        assert len(sent) == len(set(sent)), sent
