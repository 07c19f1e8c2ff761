"""The paper gateway: fills at the opposite side with fees, resting limits, rejections."""

from __future__ import annotations

import json
import threading
from decimal import Decimal as D

import pytest

from tests.conftest import quote, trade
from tests.conftest import submit_order as order
from trader.clock import ManualClock
from trader.errors import ConfigError, ErrorKind, OrderNotFoundError
from trader.events import (
    BalanceUpdate,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    StorageFailed,
    StorageRecovered,
)
from trader.exchange.paper import PaperGateway
from trader.model.orders import OrderStatus, OrderType, Side


class NoSource:
    def load_markets(self, symbols):
        return []

    def fetch_tickers(self, symbols):
        return []


def gw(slippage: str = "0") -> PaperGateway:
    g = PaperGateway(NoSource(), ManualClock(10), {"USDT": D("10000")}, D("0.001"), D(slippage))
    g.on_quote(quote(bid="100", ask="101", size="100"))
    return g


def balances(g: PaperGateway) -> dict:
    return {b.asset: (b.free, b.used) for b in g.fetch_balances()}


def test_market_buy_fills_at_the_ask_with_fee_in_quote() -> None:
    g = gw()
    events = g.create_order(order("b1", Side.BUY, "2"))
    assert isinstance(events[0], OrderAccepted)
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert fill.price == D("101") and fill.amount == D("2") and fill.is_final
    assert fill.fee == D("0.202") and fill.fee_asset == "USDT"
    assert fill.liquidity is Liquidity.TAKER
    assert balances(g) == {
        "USDT": (D("10000") - D("202") - D("0.202"), D(0)),
        "BTC": (D("2"), D(0)),
    }
    assert {e.asset for e in events if isinstance(e, BalanceUpdate)} == {"BTC", "USDT"}


def test_market_sell_fills_at_the_bid_with_slippage() -> None:
    g = gw(slippage="100")  # 1%
    g.create_order(order("b1", Side.BUY, "1"))
    events = g.create_order(order("s1", Side.SELL, "1"))
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert fill.price == D("99.00")  # bid 100 moved 1% against us
    assert fill.fee == D("0.0990")


def test_limit_rests_locks_funds_and_fills_when_the_market_reaches_it() -> None:
    g = gw()
    events = g.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "95"))
    assert [type(e) for e in events] == [OrderAccepted, BalanceUpdate]
    assert balances(g)["USDT"] == (D("10000") - D("95.095"), D("95.095"))
    assert [r.client_id for r in g.fetch_open_orders(["BTC/USDT"])] == ["l1"]
    assert g.on_quote(quote(bid="96", ask="97")) == []  # not reached
    assert g.on_trade(trade(price="95")) == []  # a trade at the price is not through it
    out = g.on_trade(trade(price="94.99"))
    fill = next(e for e in out if isinstance(e, OrderFilled))
    assert fill.price == D("95") and fill.liquidity is Liquidity.MAKER
    assert balances(g)["USDT"] == (D("10000") - D("95.095"), D(0))
    assert g.fetch_order("l1", "BTC/USDT").status is OrderStatus.FILLED
    assert g.fetch_open_orders(["BTC/USDT"]) == []


def test_a_resting_sell_does_not_fill_at_its_own_price_only_through_it() -> None:
    """The sell side of the rule above: a bid or a trade *at* the price leaves it resting."""
    g = gw()
    g.create_order(order("b1", Side.BUY, "2"))
    events = g.create_order(order("s1", Side.SELL, "1", OrderType.LIMIT, "105"))
    assert [type(e) for e in events] == [OrderAccepted, BalanceUpdate]
    assert g.on_quote(quote(bid="105", ask="106")) == []  # the bid at the price: not through
    assert g.on_trade(trade(price="105")) == []  # a trade at the price: others were first
    assert g.fetch_order("s1", "BTC/USDT").status is OrderStatus.OPEN
    out = g.on_trade(trade(price="105.01"))
    fill = next(e for e in out if isinstance(e, OrderFilled))
    assert fill.price == D("105") and fill.liquidity is Liquidity.MAKER


@pytest.mark.parametrize(
    ("side", "price", "at", "through"),
    [
        (Side.BUY, "95", quote(bid="94", ask="95"), quote(bid="94", ask="94.99")),
        (Side.SELL, "105", quote(bid="105", ask="106"), quote(bid="105.01", ask="106")),
    ],
)
def test_a_resting_limit_fills_on_a_quote_through_its_price_not_at_it(
    side: Side, price: str, at: object, through: object
) -> None:
    g = gw()
    g.create_order(order("b1", Side.BUY, "2"))
    g.create_order(order("l1", side, "1", OrderType.LIMIT, price))
    assert g.on_quote(at) == []
    out = g.on_quote(through)
    fill = next(e for e in out if isinstance(e, OrderFilled))
    assert fill.price == D(price) and fill.liquidity is Liquidity.MAKER


def test_crossing_limit_fills_at_once_at_the_opposite_side() -> None:
    g = gw()
    events = g.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "105"))
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert fill.price == D("101")


def test_cancel_releases_locked_funds() -> None:
    g = gw()
    g.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "90"))
    events = g.cancel_order("l1", "BTC/USDT")
    assert isinstance(events[0], OrderCanceled)
    assert balances(g)["USDT"] == (D("10000"), D(0))
    with pytest.raises(OrderNotFoundError):
        g.cancel_order("nope", "BTC/USDT")


def test_insufficient_funds_and_duplicate_ids_are_rejected() -> None:
    g = gw()
    (rej,) = g.create_order(order("s1", Side.SELL, "1"))
    assert isinstance(rej, OrderRejected) and rej.kind is ErrorKind.INSUFFICIENT_FUNDS
    (rej,) = g.create_order(order("b1", Side.BUY, "1000"))
    assert rej.kind is ErrorKind.INSUFFICIENT_FUNDS
    g.create_order(order("b2", Side.BUY, "1"))
    (dup,) = g.create_order(order("b2", Side.BUY, "1"))
    assert isinstance(dup, OrderRejected) and "duplicate" in dup.reason


def test_no_quote_yet_is_rejected_as_temporary() -> None:
    g = PaperGateway(NoSource(), ManualClock(1), {"USDT": D(100)}, D("0.001"))
    (rej,) = g.create_order(order("b1", Side.BUY, "1"))
    assert rej.kind is ErrorKind.TEMPORARY


# ---------------------------------------------------------------------- honest fills


def fills(events: list) -> list[tuple[D, D, bool]]:
    return [(e.price, e.amount, e.is_final) for e in events if isinstance(e, OrderFilled)]


def test_a_market_order_takes_only_the_displayed_size_and_the_rest_on_later_quotes() -> None:
    g = PaperGateway(NoSource(), ManualClock(10), {"USDT": D("100000")}, D(0))
    g.on_quote(quote(bid="100", ask="101", size="0.4"))
    out = g.create_order(order("m1", Side.BUY, "1"))
    assert fills(out) == [(D(101), D("0.4"), False)]
    assert g.fetch_order("m1", "BTC/USDT").status is OrderStatus.PARTIALLY_FILLED
    out = g.on_quote(quote(bid="101", ask="102", size="0.5"))
    assert fills(out) == [(D(102), D("0.5"), False)]
    out = g.on_quote(quote(bid="102", ask="103", size="5"))
    assert fills(out) == [(D(103), D("0.1"), True)]
    r = g.fetch_order("m1", "BTC/USDT")
    assert r.status is OrderStatus.FILLED and r.avg_price == D("101.7")  # 40.4 + 51 + 10.3
    assert balances(g)["USDT"] == (D("100000") - D("101.7"), D(0))  # nothing left locked


def test_the_displayed_size_is_shared_by_our_orders_in_time_priority() -> None:
    g = PaperGateway(NoSource(), ManualClock(10), {"USDT": D("100000")}, D(0))
    g.on_quote(quote(bid="100", ask="101", size="10"))
    g.create_order(order("l1", Side.BUY, "3", OrderType.LIMIT, "99"))
    g.create_order(order("l2", Side.BUY, "3", OrderType.LIMIT, "99"))
    out = g.on_quote(quote(bid="97", ask="98", size="4"))  # the ask crosses both: 4 to share
    assert [(e.client_id, e.amount) for e in out if isinstance(e, OrderFilled)] == [
        ("l1", D(3)),
        ("l2", D(1)),
    ]
    out = g.on_trade(trade(price="98.5"))  # a trade of 1 through the price
    assert [(e.client_id, e.amount, e.price) for e in out if isinstance(e, OrderFilled)] == [
        ("l2", D(1), D(99))
    ]


def test_a_crossing_limit_takes_what_is_shown_and_rests_for_the_rest() -> None:
    g = PaperGateway(NoSource(), ManualClock(10), {"USDT": D("100000")}, D(0))
    g.on_quote(quote(bid="100", ask="101", size="1"))
    out = g.create_order(order("l1", Side.BUY, "3", OrderType.LIMIT, "102"))
    assert fills(out) == [(D(101), D(1), False)]
    assert g.on_quote(quote(bid="101", ask="102", size="5")) == []  # at the price: not through
    out = g.on_quote(quote(bid="100", ask="101.5", size="5"))
    assert fills(out) == [(D(102), D(2), True)]  # resting: fills at its own price, as a maker
    assert [e.liquidity for e in out if isinstance(e, OrderFilled)] == [Liquidity.MAKER]


def test_without_partial_fills_the_whole_amount_fills() -> None:
    g = PaperGateway(NoSource(), ManualClock(10), {"USDT": D("100000")}, D(0), partial_fills=False)
    g.on_quote(quote(bid="100", ask="101", size="0.1"))
    assert fills(g.create_order(order("m1", Side.BUY, "2"))) == [(D(101), D(2), True)]


def test_latency_an_order_works_only_after_latency_ms_on_a_later_quote() -> None:
    clock = ManualClock(1_000_000_000)
    g = PaperGateway(NoSource(), clock, {"USDT": D("100000")}, D(0), latency_ms=250)
    g.on_quote(quote(bid="100", ask="101", size="10"))
    out = g.create_order(order("m1", Side.BUY, "1"))
    assert [type(e) for e in out] == [OrderAccepted, BalanceUpdate]  # acknowledged, not filled
    clock.advance(0.2)
    assert g.on_quote(quote(bid="101", ask="102", size="10")) == []  # still on its way
    clock.advance(0.05)
    out = g.on_quote(quote(bid="103", ask="104", size="10"))
    assert fills(out) == [(D(104), D(1), True)]  # the price when it arrived, not when sent


def test_latency_also_delays_resting_limits() -> None:
    clock = ManualClock(1_000_000_000)
    g = PaperGateway(NoSource(), clock, {"USDT": D("100000")}, D(0), latency_ms=100)
    g.on_quote(quote(bid="100", ask="101", size="10"))
    g.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "99"))
    assert g.on_trade(trade(price="98")) == []  # traded through before our order arrived
    clock.advance(0.1)
    assert fills(g.on_trade(trade(price="98"))) == [(D(99), D(1), True)]


def test_a_market_buy_whose_price_ran_away_is_canceled_for_want_of_funds() -> None:
    clock = ManualClock(1)
    g = PaperGateway(NoSource(), clock, {"USDT": D("101")}, D(0), latency_ms=1)
    g.on_quote(quote(bid="100", ask="101", size="10"))
    g.create_order(order("m1", Side.BUY, "1"))
    clock.advance(0.001)
    out = g.on_quote(quote(bid="110", ask="111", size="10"))
    (canceled,) = [e for e in out if isinstance(e, OrderCanceled)]
    assert "insufficient USDT at fill time" in canceled.reason
    assert balances(g)["USDT"] == (D("101"), D(0))


# ---------------------------------------------------------------------- restart


def test_open_orders_and_balances_survive_a_restart(tmp_path) -> None:
    path = tmp_path / "data" / "paper-account.json"
    clock = ManualClock(10)

    def start() -> PaperGateway:
        return PaperGateway(NoSource(), clock, {"USDT": D("10000")}, D("0.001"), account_file=path)

    g = start()
    assert g.writer is not None
    g.on_quote(quote(bid="100", ask="101", size="100"))
    g.create_order(order("b1", Side.BUY, "2"))
    g.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "95"))
    g.create_order(order("s1", Side.SELL, "1", OrderType.LIMIT, "120"))
    before = balances(g)
    assert not path.exists()  # the caller's thread never writes: the writer does
    g.writer.flush()
    g.writer.flush()  # nothing changed since: not written again
    assert g.writer.writes == 1  # three changes, one write
    assert path.exists() and not path.with_name(path.name + ".tmp").exists()

    g2 = start()  # a new process: starting_balances are ignored, the file wins
    assert balances(g2) == before
    assert [r.client_id for r in g2.fetch_open_orders(["BTC/USDT"])] == ["l1", "s1"]
    assert g2.fetch_order("b1", "BTC/USDT").status is OrderStatus.FILLED
    assert [f.client_id for f in g2.fetch_my_trades("BTC/USDT", 0)] == ["b1"]
    (dup,) = g2.create_order(order("l1", Side.BUY, "1", OrderType.LIMIT, "95"))
    assert isinstance(dup, OrderRejected)  # ids are remembered across the restart
    assert g2.on_quote(quote(bid="96", ask="97", size="100")) == []
    out = g2.on_trade(trade(price="94"))  # matching resumes on market data after the restart
    assert fills(out) == [(D(95), D(1), True)]
    assert g2.writer is not None
    g2.writer.flush()
    assert start().fetch_order("l1", "BTC/USDT").status is OrderStatus.FILLED
    assert g2.create_order(order("n1", Side.BUY, "1"))[0].exchange_id == "paper-4"


# Written by the version 1 gateway: one filled market buy (b1), one resting limit buy (l1).
V1_FILE = (
    '{"version":1,"seq":2,"balances":{"BTC":{"free":"2","used":"0"},"USDT":{"free":"9702.703","'
    'used":"95.095"}},"orders":[{"cmd":{"type":"SubmitOrder","ts_event":1,"ts_recv":1,"client_i'
    'd":"b1","symbol":"BTC/USDT","side":"buy","order_type":"market","amount":"2","price":null,"'
    'strategy":""},"exchange_id":"paper-1","active_at":10,"status":"filled","filled":"2","cost"'
    ':"202","locked":"0","resting":false,"fills":1},{"cmd":{"type":"SubmitOrder","ts_event":1,"'
    'ts_recv":1,"client_id":"l1","symbol":"BTC/USDT","side":"buy","order_type":"limit","amount"'
    ':"1","price":"95","strategy":""},"exchange_id":"paper-2","active_at":10,"status":"open","f'
    'illed":"0","cost":"0","locked":"95.095","resting":true,"fills":0}],"fills":[{"type":"Order'
    'Filled","ts_event":10,"ts_recv":10,"client_id":"b1","exchange_id":"paper-1","trade_id":"pa'
    'per-1-1","symbol":"BTC/USDT","side":"buy","price":"101","amount":"2","fee":"0.202","fee_as'
    'set":"USDT","filled_total":"2","is_final":true,"liquidity":"taker"}]}'
)


def test_a_version_1_account_file_still_loads_and_is_rewritten_as_version_2(tmp_path) -> None:
    path = tmp_path / "paper-account.json"
    path.write_text(V1_FILE)
    g = PaperGateway(NoSource(), ManualClock(10), {}, D("0.001"), account_file=path)
    assert balances(g) == {"BTC": (D(2), D(0)), "USDT": (D("9702.703"), D("95.095"))}
    assert g.fetch_order("b1", "BTC/USDT").status is OrderStatus.FILLED
    (fill,) = g.fetch_my_trades("BTC/USDT", 0)
    assert (fill.trade_id, fill.price, fill.fee, fill.liquidity) == (
        "paper-1-1",
        D(101),
        D("0.202"),
        Liquidity.TAKER,
    )
    (working,) = g.fetch_open_orders(["BTC/USDT"])
    assert (working.client_id, working.price) == ("l1", D(95))
    g.on_quote(quote(bid="100", ask="101", size="100"))
    assert fills(g.on_trade(trade(price="94"))) == [(D(95), D(1), True)]
    assert g.writer is not None
    g.writer.flush()
    saved = json.loads(path.read_text())
    assert saved["version"] == 2 and "type" not in saved["fills"][0]
    assert (
        PaperGateway(NoSource(), ManualClock(10), {}, D("0.001"), account_file=path)
        .fetch_order("l1", "BTC/USDT")
        .status
        is OrderStatus.FILLED
    )


def test_a_corrupt_account_file_stops_the_start_and_is_kept(tmp_path) -> None:
    path = tmp_path / "paper-account.json"
    path.write_text('{"version": 1, "balances": ')
    with pytest.raises(ConfigError, match="cannot be read .*delete it"):
        PaperGateway(NoSource(), ManualClock(1), {}, D(0), account_file=path)
    assert path.read_text() == '{"version": 1, "balances": '
    for bad in (
        V1_FILE.replace('"version":1', '"version":3'),
        V1_FILE.replace('"type":"OrderFilled"', '"type":"QuoteTick"'),
        V1_FILE.replace('"cost":"202"', '"cost":"lots"'),
    ):
        path.write_text(bad)
        with pytest.raises(ConfigError, match="cannot be read"):
            PaperGateway(NoSource(), ManualClock(1), {}, D(0), account_file=path)
        assert path.read_text() == bad


@pytest.mark.parametrize(
    "bad",
    [
        b"[]",
        b"null",
        b'{"version": 2, "seq": 1, "balances": [], "orders": [], "fills": []}',
        b'{"version": 2, "seq": 1, "balances": {"USDT": {"free": "NaN", "used": "0"}}, '
        b'"orders": [], "fills": []}',
        b'{"version": 2, "seq": 1, "balances": {"USDT": {"free": "-5", "used": "0"}}, '
        b'"orders": [], "fills": []}',
        b'{"version": 2, "seq": "x", "balances": {}, "orders": [], "fills": []}',
        b"\xff\xfe{\x00}\x00",
    ],
    ids=["list", "null", "balances-list", "nan", "negative", "seq-string", "utf16"],
)
def test_an_account_file_of_the_wrong_shape_is_one_line_and_kept(tmp_path, bad: bytes) -> None:
    path = tmp_path / "paper-account.json"
    path.write_bytes(bad)
    with pytest.raises(ConfigError, match=f"paper account file {path} cannot be read") as err:
        PaperGateway(NoSource(), ManualClock(1), {}, D(0), account_file=path)
    assert "\n" not in str(err.value)
    assert path.read_bytes() == bad


def test_an_unwritable_account_file_is_reported_and_trading_goes_on(tmp_path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    reported: list = []
    g = PaperGateway(
        NoSource(),
        ManualClock(1),
        {"USDT": D(1000)},
        D(0),
        account_file=blocker / "paper-account.json",
        publish=reported.append,
    )
    assert g.writer is not None
    g.on_quote(quote(bid="100", ask="101", size="10"))
    out = g.create_order(order("b1", Side.BUY, "1"))
    assert any(isinstance(e, OrderFilled) for e in out)
    g.writer.flush()
    (failed,) = reported
    assert isinstance(failed, StorageFailed) and failed.component == "paper-account"
    g.create_order(order("b2", Side.BUY, "1"))
    g.writer.flush()
    assert reported == [failed]  # reported once
    blocker.unlink()
    blocker.mkdir()
    g.writer.flush()  # the failed write is retried without a new change
    assert isinstance(reported[-1], StorageRecovered)
    assert (
        PaperGateway(
            NoSource(), ManualClock(1), {}, D(0), account_file=blocker / "paper-account.json"
        )
        .fetch_order("b2", "BTC/USDT")
        .status
        is OrderStatus.FILLED
    )


def test_the_writer_thread_coalesces_changes_and_writes_the_last_state_at_stop(tmp_path) -> None:
    path = tmp_path / "paper-account.json"
    g = PaperGateway(NoSource(), ManualClock(1), {"USDT": D(10_000)}, D(0), account_file=path)
    assert g.writer is not None and g.writer.name == "paper-account"
    stop = threading.Event()
    thread = threading.Thread(target=g.writer.run, args=(stop,), name=g.writer.name)
    thread.start()
    g.on_quote(quote(bid="100", ask="101", size="1000"))
    for i in range(200):
        g.create_order(order(f"b{i}", Side.BUY, "0.01"))
    stop.set()
    g.writer.close()
    thread.join(5)
    assert not thread.is_alive()
    assert 1 <= g.writer.writes < 200  # coalesced
    saved = json.loads(path.read_text())
    assert saved["seq"] == 200 and len(saved["fills"]) == 200  # the last state
    assert not path.with_name(path.name + ".tmp").exists()


def test_closed_orders_are_forgotten_oldest_closed_first_and_working_ones_never(
    monkeypatch,
) -> None:
    from trader.exchange.paper import gateway

    monkeypatch.setattr(gateway, "MAX_CLOSED_ORDERS", 3)
    g = gw()
    g.create_order(order("rest", Side.BUY, "1", OrderType.LIMIT, "50"))  # works throughout
    g.create_order(order("late", Side.BUY, "1", OrderType.LIMIT, "60"))
    for cid in ("m1", "m2", "m3"):
        g.create_order(order(cid, Side.BUY, "1"))  # filled at once: closed in this order
    g.cancel_order("late", "BTC/USDT")  # placed second, closed last
    g.create_order(order("m4", Side.BUY, "1"))
    assert g.fetch_order("rest", "BTC/USDT").status is OrderStatus.OPEN
    for gone in ("m1", "m2"):
        with pytest.raises(OrderNotFoundError):
            g.fetch_order(gone, "BTC/USDT")
    assert [g.fetch_order(c, "BTC/USDT").status for c in ("m3", "late", "m4")] == [
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.FILLED,
    ]


def test_quotes_between_the_resting_orders_touch_none_and_a_new_order_moves_the_edge() -> None:
    """A quote crossing no resting price matches nothing; the edges follow every new, filled
    and canceled order."""
    g = gw()
    g.create_order(order("b1", Side.BUY, "2"))
    g.create_order(order("l95", Side.BUY, "1", OrderType.LIMIT, "95"))
    g.create_order(order("s110", Side.SELL, "1", OrderType.LIMIT, "110"))
    assert g.on_quote(quote(bid="96", ask="97")) == []  # between: nothing crosses
    g.create_order(order("l96", Side.BUY, "1", OrderType.LIMIT, "96.5"))  # rests: the best bid
    out = g.on_quote(quote(bid="95.5", ask="96.4"))  # through 96.5 only, not 95
    assert [e.client_id for e in out if isinstance(e, OrderFilled)] == ["l96"]
    g.cancel_order("s110", "BTC/USDT")
    out = g.on_quote(quote(bid="111", ask="112"))  # the canceled sell is gone
    assert not [e for e in out if isinstance(e, OrderFilled)]
    out = g.on_quote(quote(bid="93", ask="94"))  # through 95
    assert [e.client_id for e in out if isinstance(e, OrderFilled)] == ["l95"]


def test_an_order_on_its_way_is_matched_though_the_resting_ones_are_not_crossed() -> None:
    clock = ManualClock(1_000_000_000)
    g = PaperGateway(NoSource(), clock, {"USDT": D("100000")}, D(0), latency_ms=100)
    g.on_quote(quote(bid="100", ask="101", size="10"))
    g.create_order(order("l95", Side.BUY, "1", OrderType.LIMIT, "95"))
    clock.advance(0.1)
    assert g.on_quote(quote(bid="100", ask="101", size="10")) == []  # l95 now rests
    assert g.on_quote(quote(bid="100", ask="101", size="10")) == []  # not crossed
    g.create_order(order("m1", Side.BUY, "1"))
    clock.advance(0.1)
    assert fills(g.on_quote(quote(bid="100", ask="101", size="10"))) == [(D(101), D(1), True)]
