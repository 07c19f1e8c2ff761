"""Execution: recorded before sent, never a blind retry of a create, cancel and cancel-all,
cancel on exit, and the operator kill switch through the whole App."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from tests.conftest import order_filled, submit_order
from tests.harness import SYMBOL, Harness
from trader.clock import ManualClock
from trader.config import ExecutionConfig, StoreConfig
from trader.errors import ErrorKind, InvalidOrderError, OrderNotFoundError, TemporaryError
from trader.events import (
    CancelAllOrders,
    CancelOrder,
    Event,
    HaltTrading,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    OrderStatusUnknown,
    OrderSubmitted,
    ResumeTrading,
    SubmitOrder,
    TradingState,
)
from trader.model.orders import OrderStatus, OrderType, Side
from trader.stats import Stats
from trader.store.memory import MemoryStore
from trader.store.view import ReadOnlyView
from trader.trading.execution import Executor

# ---------------------------------------------------------------------- executor alone


class Scripted:
    """A gateway whose answers are scripted; counts every create."""

    def __init__(
        self,
        create: list,
        lookups: list | None = None,
        trades: list | None = None,
        cancel: list | None = None,
    ) -> None:
        self.create_script, self.lookups = create, list(lookups or [])
        self.trades, self.cancel_script = trades or [], list(cancel or [])
        self.creates: list[str] = []
        self.cancels: list[str] = []

    def _next(self, script: list, *args: object) -> list[Event]:
        item = script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item(*args) if callable(item) else item

    def create_order(self, cmd: SubmitOrder) -> list[Event]:
        self.creates.append(cmd.client_id)
        return self._next(self.create_script)

    def fetch_order(self, client_id: str, symbol: str) -> OrderStatusReport:
        return self._next(self.lookups)

    def fetch_my_trades(self, symbol: str, since_ns: int) -> list[OrderFilled]:
        return self.trades

    def cancel_order(self, client_id: str, symbol: str) -> list[Event]:
        self.cancels.append(client_id)
        return self._next(self.cancel_script)


def cmd(cid: str = "c1") -> SubmitOrder:
    """A market buy of 1."""
    return submit_order(cid, Side.BUY, "1", symbol=SYMBOL)


def report(status: OrderStatus, filled: str = "1", cid: str = "c1") -> OrderStatusReport:
    return OrderStatusReport(
        ts_event=1,
        ts_recv=1,
        client_id=cid,
        exchange_id="9",
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        status=status,
        amount=D(1),
        filled=D(filled),
    )


def fill(cid: str, trade_id: str, amount: str) -> OrderFilled:
    """A buy's fill, not its last."""
    return order_filled(cid, trade_id, amount, final=False, exchange_id="9", symbol=SYMBOL)


def run(gateway: Any, commands: list, until, store: MemoryStore | None = None) -> list:
    """Run an executor on ``gateway`` in its thread, submit ``commands`` and return what it
    published once ``until(published)`` holds (or after 5 s)."""
    published: list = []
    view = ReadOnlyView(store or MemoryStore(StoreConfig()))
    ex = Executor(
        gateway,
        published.append,
        view,
        ManualClock(1),
        Stats(),
        lookup_attempts=3,
        lookup_backoff_s=0.001,
    )
    stop = threading.Event()
    t = threading.Thread(target=ex.run, args=(stop,), name="executor")
    t.start()
    for c in commands:
        ex.submit(c)
    deadline = time.monotonic() + 5
    while not until(published) and time.monotonic() < deadline:
        stop.wait(0.002)
    stop.set()
    t.join(2)
    assert not t.is_alive()
    return published


def test_accepted_then_timeout_is_looked_up_with_its_fills_and_never_resent() -> None:
    gw = Scripted(
        [TemporaryError("read timeout")],
        lookups=[OrderNotFoundError("not yet"), report(OrderStatus.FILLED)],
        trades=[fill("c1", "t1", "0.4"), fill("other", "t2", "1"), fill("c1", "t3", "0.6")],
    )
    out = run(gw, [cmd()], lambda p: any(isinstance(e, OrderStatusReport) for e in p))
    assert gw.creates == ["c1"]
    assert isinstance(out[0], OrderStatusUnknown)
    assert [(type(e).__name__, getattr(e, "trade_id", "")) for e in out[1:]] == [
        ("OrderFilled", "t1"),
        ("OrderFilled", "t3"),
        ("OrderStatusReport", ""),
    ]


def test_5xx_and_gateway_bugs_make_the_order_unknown_not_retried() -> None:
    gw = Scripted(
        [TemporaryError("HTTP 503"), RuntimeError("bug in a parser")],
        lookups=[report(OrderStatus.OPEN, "0"), report(OrderStatus.CANCELED, "0")],
    )
    out = run(
        gw, [cmd("c1"), cmd("c2")], lambda p: sum(isinstance(e, OrderStatusReport) for e in p) == 2
    )
    assert gw.creates == ["c1", "c2"]
    assert [e.client_id for e in out if isinstance(e, OrderStatusUnknown)] == ["c1", "c2"]


def test_invalid_order_is_rejected_at_once_without_lookup() -> None:
    gw = Scripted([InvalidOrderError("-1013 LOT_SIZE")])
    out = run(gw, [cmd()], lambda p: bool(p))
    assert [type(e) for e in out] == [OrderRejected]
    assert out[0].kind is ErrorKind.INVALID_ORDER and gw.creates == ["c1"]


def test_cancel_of_a_vanished_order_reports_what_became_of_it() -> None:
    gw = Scripted(
        [],
        lookups=[report(OrderStatus.FILLED, cid="c1"), OrderNotFoundError("gone")],
        cancel=[OrderNotFoundError("-2011"), OrderNotFoundError("-2011")],
        trades=[fill("c1", "t1", "1")],
    )
    out = run(
        gw,
        [
            CancelOrder(ts_event=1, ts_recv=1, client_id="c1", symbol=SYMBOL),
            CancelOrder(ts_event=1, ts_recv=1, client_id="c2", symbol=SYMBOL),
        ],
        lambda p: any(isinstance(e, OrderCanceled) for e in p),
    )
    assert gw.cancels == ["c1", "c2"]
    assert [type(e) for e in out] == [OrderFilled, OrderStatusReport, OrderCanceled]
    assert out[1].status is OrderStatus.FILLED
    assert out[2].client_id == "c2" and out[2].reason == "not found on the exchange"


def test_cancel_all_leaves_external_orders_alone() -> None:
    store = MemoryStore(StoreConfig(), own_prefix="trd-")
    for cid in ("trd-a-1", "web-7"):
        store.on_order_report(report(OrderStatus.OPEN, "0", cid=cid))
    gw = Scripted([], cancel=[[OrderCanceled(ts_event=1, ts_recv=1, client_id="trd-a-1")]])
    out = run(gw, [CancelAllOrders(ts_event=1, ts_recv=1)], lambda p: bool(p), store)
    assert gw.cancels == ["trd-a-1"] and store.order("web-7").external
    assert [e.client_id for e in out] == ["trd-a-1"]


# ---------------------------------------------------------------------- the whole App


def test_an_order_is_recorded_before_it_is_sent(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    seen: list = []
    create = h.app.gateway.create_order

    def check(c: SubmitOrder) -> list[Event]:
        seen.append(h.app.store.order(c.client_id))
        return create(c)

    h.app.gateway.create_order = check  # type: ignore[method-assign]
    h.quote("60000", "60010")
    h.order(Side.BUY, "0.01")
    (recorded,) = seen
    assert recorded is not None and recorded.status is OrderStatus.PENDING
    names = [type(e).__name__ for e in h.dispatched]
    assert names.index("OrderSubmitted") < names.index("SubmitOrder") < names.index("OrderFilled")
    assert h.app.store.order(recorded.client_id).status is OrderStatus.FILLED


def test_accepted_then_timeout_through_the_app_leaves_one_order_and_one_position(
    tmp_path: Path,
) -> None:
    """The exchange takes the order, the answer is lost: the lookup finds it; nothing is sent
    twice and the position counts the fill once, even when the fill also arrives again."""
    h = Harness(tmp_path)
    h.app.executor._backoff = 0.0  # look up at once (pumped by hand)
    paper_create = h.app.gateway.create_order

    def accept_then_time_out(c: SubmitOrder) -> list[Event]:
        paper_create(c)
        raise TemporaryError("read timeout after the exchange accepted")

    h.app.gateway.create_order = accept_then_time_out  # type: ignore[method-assign]
    h.quote("60000", "60010")
    (sub, _) = h.order(Side.BUY, "0.01")
    assert h.app.store.order(sub.client_id).status is OrderStatus.UNKNOWN
    for _ in range(3):
        h.app.executor._run_lookups()
        h.pump()
    order = h.app.store.order(sub.client_id)
    assert order.status is OrderStatus.FILLED and order.filled == D("0.01")
    assert len(h.app.gateway.fetch_my_trades(SYMBOL, 0)) == 1  # one order, one fill
    (fill_ev,) = h.of_type(OrderFilled)
    h.dispatch(fill_ev)  # the same fill again, e.g. from the user stream
    assert h.app.store.position(SYMBOL).amount == D("0.01") and h.app.store.duplicate_fills == 1
    h.assert_no_duplicate_orders()


def test_kill_switch_halts_cancels_open_orders_and_resume_trades_again(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.quote("60000", "60010")
    h.order(Side.BUY, "0.01", "59000")
    h.order(Side.BUY, "0.01", "59500")
    assert len(h.app.store.open_orders()) == 2
    now = h.clock.now_ns()
    h.dispatch(HaltTrading(ts_event=now, ts_recv=now, reason="ctl halt", cancel_orders=True))
    assert h.app.risk.state is TradingState.HALTED
    assert h.app.store.open_orders() == () and h.app.gateway.fetch_open_orders([SYMBOL]) == []
    assert len(h.of_type(OrderCanceled)) == 2
    (denied,) = [e for e in h.order(Side.BUY, "0.01") if isinstance(e, OrderDenied)]
    assert denied.reason == "trading is halted (operator: ctl halt)"
    h.dispatch(ResumeTrading(ts_event=now, ts_recv=now, reason="ctl resume"))
    assert h.app.risk.state is TradingState.ACTIVE
    assert isinstance(h.order(Side.BUY, "0.01")[0], OrderSubmitted)
    h.assert_no_duplicate_orders()


def test_halt_without_cancel_keeps_orders(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.quote("60000", "60010")
    h.order(Side.BUY, "0.01", "59000")
    now = h.clock.now_ns()
    h.dispatch(HaltTrading(ts_event=now, ts_recv=now, reason="pause"))
    assert h.app.risk.state is TradingState.HALTED and len(h.app.store.open_orders()) == 1
    assert h.cancels == []


def test_cancel_open_orders_on_exit(tmp_path: Path) -> None:
    h = Harness(tmp_path / "on", execution=ExecutionConfig(cancel_open_orders_on_exit=True))
    h.quote("60000", "60010")
    h.order(Side.BUY, "0.01", "59000")
    totals = h.app.shutdown()
    assert h.app.gateway.fetch_open_orders([SYMBOL]) == []
    assert [o.status for o in h.app.store.orders()] == [OrderStatus.CANCELED]
    assert totals["left_on_queue"] == 0


def test_open_orders_stay_on_exit_by_default(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.quote("60000", "60010")
    h.order(Side.BUY, "0.01", "59000")
    h.app.shutdown()
    assert len(h.app.gateway.fetch_open_orders([SYMBOL])) == 1 and h.cancels == []
    assert [type(e) for e in h.of_type(OrderAccepted)] == [OrderAccepted]
