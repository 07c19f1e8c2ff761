"""Portfolio arithmetic against numbers computed by hand in the comments."""

from __future__ import annotations

from decimal import Decimal as D
from types import MappingProxyType

from tests.conftest import balance, quote
from trader.clock import ManualClock
from trader.config import StoreConfig
from trader.events import OrderFilled
from trader.model.fills import apply_fill, unrealized_pnl
from trader.model.orders import Side
from trader.model.records import BalancesSnapshot, Position
from trader.store.memory import MemoryStore
from trader.store.view import ReadOnlyView
from trader.trading.portfolio import Portfolio, exposures, pnl_usd, position_rows


def fill(
    pos: Position,
    side: Side,
    price: str,
    amount: str,
    fee: str,
    fee_asset: str = "USDT",
    fee_value: str | None = None,
) -> Position:
    return apply_fill(
        pos,
        side,
        D(price),
        D(amount),
        D(fee),
        fee_asset,
        "BTC",
        "USDT",
        D(fee_value) if fee_value is not None else None,
    )


def test_buys_partial_sell_flip_through_zero_and_close_with_quote_fees() -> None:
    p = Position("BTC/USDT")
    # buy 1 @ 100, fee 0.1: long 1 @ 100, realized -0.1
    p = fill(p, Side.BUY, "100", "1", "0.1")
    assert (p.amount, p.avg_price, p.realized_pnl, p.fees) == (D(1), D(100), D("-0.1"), D("0.1"))
    # buy 1 @ 110, fee 0.11: long 2 @ (100 + 110) / 2 = 105, realized -0.21
    p = fill(p, Side.BUY, "110", "1", "0.11")
    assert (p.amount, p.avg_price, p.realized_pnl) == (D(2), D(105), D("-0.21"))
    # sell 0.5 @ 120, fee 0.06: (120 - 105) * 0.5 = 7.5 -> realized -0.21 - 0.06 + 7.5 = 7.23
    p = fill(p, Side.SELL, "120", "0.5", "0.06")
    assert (p.amount, p.avg_price, p.realized_pnl, p.fees) == (
        D("1.5"),
        D(105),
        D("7.23"),
        D("0.27"),
    )
    # marked at 100: (100 - 105) * 1.5 = -7.5
    assert unrealized_pnl(p, D(100)) == D("-7.5")
    # sell 2.5 @ 90, fee 0.225: closes 1.5 at (90 - 105) * 1.5 = -22.5, opens short 1 @ 90
    # realized 7.23 - 0.225 - 22.5 = -15.495
    p = fill(p, Side.SELL, "90", "2.5", "0.225")
    assert (p.amount, p.avg_price, p.realized_pnl) == (D(-1), D(90), D("-15.495"))
    # short 1 @ 90 marked at 80: (80 - 90) * -1 = +10
    assert unrealized_pnl(p, D(80)) == D(10)
    # buy 1 @ 95, fee 0.095: closes the short at (95 - 90) * 1 = -5 -> -15.495 - 0.095 - 5
    p = fill(p, Side.BUY, "95", "1", "0.095")
    assert (p.amount, p.avg_price, p.realized_pnl, p.fees) == (D(0), D(0), D("-20.59"), D("0.59"))
    # cross-check with the cash flows: -100 - 110 + 60 + 225 - 95 = -20, fees 0.59
    assert p.realized_pnl == D(-20) - D("0.59")


def test_fee_in_base_reduces_the_amount_held_and_is_valued_at_the_fill_price() -> None:
    p = Position("BTC/USDT")
    # buy 1 @ 100 with a 0.001 BTC fee: hold 0.999 @ 100; the fee is worth 0.1 USDT
    p = fill(p, Side.BUY, "100", "1", "0.001", fee_asset="BTC")
    assert (p.amount, p.avg_price, p.realized_pnl, p.fees) == (
        D("0.999"),
        D(100),
        D("-0.1"),
        D("0.1"),
    )
    # sell 0.5 @ 110, fee 0.055 USDT: (110 - 100) * 0.5 = 5 -> -0.1 - 0.055 + 5 = 4.845
    p = fill(p, Side.SELL, "110", "0.5", "0.055")
    assert (p.amount, p.realized_pnl, p.fees) == (D("0.499"), D("4.845"), D("0.155"))
    # unrealized at 110: 10 * 0.499 = 4.99; total 9.835 = cash -100 + 55 - 0.055 + 0.499 * 110
    assert unrealized_pnl(p, D(110)) == D("4.99")
    assert p.realized_pnl + unrealized_pnl(p, D(110)) == D(-100) + D(55) - D("0.055") + D(
        "0.499"
    ) * D(110)


def test_sell_with_fee_in_base_gives_away_amount_plus_fee() -> None:
    p = fill(Position("BTC/USDT"), Side.BUY, "100", "2", "0")
    # sell 1 @ 120 paying 0.01 BTC: 1.01 leaves at cost 100 -> 120 - 101 = 19 net
    p = fill(p, Side.SELL, "120", "1", "0.01", fee_asset="BTC")
    assert (p.amount, p.realized_pnl) == (D("0.99"), D(19))


def test_fee_in_a_third_asset_counts_only_with_a_value() -> None:
    p = fill(Position("BTC/USDT"), Side.BUY, "100", "1", "0.01", fee_asset="BNB")
    assert (p.amount, p.realized_pnl, p.fees) == (D(1), D(0), D(0))
    p = fill(Position("BTC/USDT"), Side.BUY, "100", "1", "0.01", fee_asset="BNB", fee_value="3")
    assert (p.amount, p.realized_pnl, p.fees) == (D(1), D(-3), D(3))


def test_the_store_values_a_third_asset_fee_through_usd_prices() -> None:
    store = MemoryStore(StoreConfig())
    store.on_quote(quote("BNB/USDT", "299", "301"))  # BNB = 300 USD
    store.on_order_filled(
        OrderFilled(
            ts_event=1,
            ts_recv=1,
            client_id="x",
            exchange_id="1",
            trade_id="t1",
            symbol="BTC/USDT",
            side=Side.BUY,
            price=D(100),
            amount=D(1),
            fee=D("0.01"),
            fee_asset="BNB",
            filled_total=D(1),
            is_final=True,
        )
    )
    # 0.01 BNB * 300 USD / 1 USD per USDT = 3 USDT
    assert store.position("BTC/USDT").realized_pnl == D(-3)


def test_pnl_in_usd_converts_each_quote_asset() -> None:
    positions = {
        "BTC/USDT": Position("BTC/USDT", D("1.5"), D(105), D("7.23")),
        "ETH/BTC": Position("ETH/BTC", D(2), D("0.05"), D("0.001")),
        "XYZ/ABC": Position("XYZ/ABC", D(1), D(1), D(5)),  # ABC has no USD price: left out
    }
    prices = {"BTC/USDT": D(100), "ETH/BTC": D("0.06")}
    realized, unrealized = pnl_usd(positions, prices)
    # realized 7.23 + 0.001 BTC * 100 = 7.33
    assert realized == D("7.33")
    # unrealized (100 - 105) * 1.5 = -7.5 plus (0.06 - 0.05) * 2 BTC * 100 = 2 -> -5.5
    assert unrealized == D("-5.5")
    rows = position_rows(positions, prices)
    assert [r.symbol for r in rows] == ["BTC/USDT", "ETH/BTC", "XYZ/ABC"]
    assert rows[0].unrealized == D("-7.5") and rows[2].unrealized is None


def test_exposure_per_asset_is_the_usd_value_held_outside_usd() -> None:
    snap = BalancesSnapshot(
        MappingProxyType({}),
        MappingProxyType(
            {"BTC": D(3000), "USDT": D(1000), "DOGE": None, "ETH": D(0), "SOL": D(150)}
        ),
        D(4150),
    )
    assert exposures(snap) == {"BTC": D(3000), "SOL": D(150)}


def test_equity_is_sampled_into_a_bounded_series() -> None:
    store = MemoryStore(StoreConfig())
    clock = ManualClock(1_000)
    pf = Portfolio(ReadOnlyView(store), clock, max_samples=3)
    store.on_quote(quote("BTC/USDT", "99", "101"))
    store.on_balance(balance("USDT", "1000"))
    for i in range(5):
        store.on_balance(balance("BTC", str(i)))
        clock.advance(60)
        pf.sample()
    curve = pf.equity_curve()
    # three samples kept: 1000 + 2 * 100, + 3 * 100, + 4 * 100
    assert [v for _, v in curve] == [D(1200), D(1300), D(1400)]
    assert [t for t, _ in curve] == [1_000 + k * 60_000_000_000 for k in (3, 4, 5)]
    snap = pf.snapshot()
    assert snap.equity == D(1400) and snap.exposures == {"BTC": D(400)}
