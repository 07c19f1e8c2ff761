"""The spread market maker on scripted prices, through risk, the executor and the paper
gateway: quotes around the mid, cancel-then-requote on moves, inventory limits, and never more
than one live quote per side."""

from __future__ import annotations

import random
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.conftest import balance
from tests.harness import SYMBOL, Harness
from trader.config import StrategyConfig, build
from trader.errors import ConfigError
from trader.events import OrderCanceled, OrderFilled
from trader.model.orders import OrderStatus, Side
from trader.trading.strategies import STRATEGIES
from trader.trading.strategies.market_maker import MarketMaker, MarketMakerParams

MM = "mm"
PARAMS = {
    "spread_bps": 20,
    "amount": 0.001,
    "requote_bps": 10,
    "max_inventory": 0.002,
    "cooldown_s": 1,
}


class MMHarness(Harness):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(
            tmp_path,
            strategies=(StrategyConfig(name="market_maker", market=SYMBOL, id=MM, params=PARAMS),),
        )
        self.max_live = {Side.BUY: 0, Side.SELL: 0}

    def step(self, bid: str, ask: str) -> dict[Side, list]:
        """Next second's quote; returns our live quotes per side."""
        self.clock.advance(1.1)
        self.quote(bid, ask)
        live = self.live()
        for side, orders in live.items():
            self.max_live[side] = max(self.max_live[side], len(orders))
        return live

    def live(self) -> dict[Side, list]:
        mine = [o for o in self.app.store.open_orders(SYMBOL) if o.strategy == MM]
        return {side: [o for o in mine if o.side is side] for side in Side}


def test_quotes_requotes_fills_and_respects_inventory(tmp_path: Path) -> None:
    h = MMHarness(tmp_path)
    live = h.step("59995", "60005")  # mid 60000: buy at 60000 * (1 - 0.001) = 59940
    assert [o.price for o in live[Side.BUY]] == [D("59940.0")]
    assert live[Side.SELL] == []  # no BTC to sell yet
    first = live[Side.BUY][0].client_id
    h.step("59995", "60005")
    assert len(h.creates) == 1  # nothing new while the quote is still good
    live = h.step("60085", "60095")  # mid 60090: target 60029.91, 15 bps away: cancel
    assert h.cancels == [first] and live[Side.BUY] == []
    assert h.app.store.order(first).status is OrderStatus.CANCELED
    live = h.step("60085", "60095")  # cancel confirmed: the new quote goes out
    assert [o.price for o in live[Side.BUY]] == [D("60029.9")]
    h.step("59990", "60000")  # the ask drops through our bid: filled at 60029.9
    (fill,) = h.of_type(OrderFilled)
    assert fill.price == D("60029.9") and fill.amount == D("0.001")
    live = h.step("59990", "60000")  # now holding 0.001 BTC: quote both sides around 59995
    assert [o.price for o in live[Side.BUY]] == [D("59935.0")]
    assert [o.price for o in live[Side.SELL]] == [D("60055.0")]  # 59995 * 1.001 = 60054.995 up
    h.step("59900", "59930")  # the buy fills again: 0.002 BTC, the most we may hold
    live = h.step("59900", "59930")
    assert h.app.store.balance("BTC").total == D("0.002")
    assert live[Side.BUY] == [] and len(live[Side.SELL]) == 1  # no buy beyond max_inventory
    h.step("59900", "59930")
    assert h.live()[Side.BUY] == []
    assert h.max_live == {Side.BUY: 1, Side.SELL: 1}
    h.assert_no_duplicate_orders()


def test_a_live_buy_is_canceled_when_inventory_reaches_the_limit(tmp_path: Path) -> None:
    h = MMHarness(tmp_path)
    live = h.step("59995", "60005")
    (bid,) = live[Side.BUY]
    h.dispatch(balance("BTC", "0.0015", ts=h.clock.now_ns()))  # bought elsewhere
    h.step("59995", "60005")
    assert h.app.store.order(bid.client_id).status is OrderStatus.CANCELED
    assert any(isinstance(e, OrderCanceled) for e in h.dispatched)
    assert h.max_live[Side.BUY] == 1


def test_params_are_checked() -> None:
    assert STRATEGIES["market_maker"].Params is MarketMakerParams
    with pytest.raises(ConfigError, match="max_inventory must be at least amount"):
        build(MarketMakerParams, {"amount": 1, "max_inventory": 0.5}, "strategies[0].params")
    with pytest.raises(ConfigError, match="unknown key 'p.spread'"):
        build(MarketMakerParams, {"spread": 1}, "p")


def _walk(h: MMHarness, seed: int) -> list[tuple]:
    """A random walk of quotes, some steps big enough to requote or fill, at uneven times;
    returns the orders the strategy placed (side, price, status) and the cancels it sent, in
    order."""
    rng = random.Random(seed)
    bid = D(60_000)
    for _ in range(400):
        bid += D(rng.choice((0, 0, 1, -1, 3, -3, 40, -40, 90, -90)))
        h.clock.advance(rng.choice((0.05, 0.3, 1.5)))
        h.quote(str(bid), str(bid + 10))
    orders = {c: o for c in h.creates if (o := h.app.store.order(c))}
    return [(o.side, o.price, o.status) for o in orders.values()] + [
        ("cancel", c) for c in h.cancels
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quotes_answered_from_the_cache_do_what_a_full_evaluation_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    cached = MMHarness(tmp_path / "cached")
    got = _walk(cached, seed)
    (mm,) = cached.app.runner.strategies
    assert got and len(cached.cancels) >= 3, got  # the walk requotes and fills
    # The same walk with every quote evaluated in full (the cache never consulted).
    monkeypatch.setattr(MarketMaker, "on_quote", MarketMaker._evaluate)
    full = MMHarness(tmp_path / "full")
    assert _walk(full, seed) == got
    assert cached.of_type(OrderFilled) and [
        (f.side, f.price) for f in cached.of_type(OrderFilled)
    ] == [(f.side, f.price) for f in full.of_type(OrderFilled)]
    assert mm._settled is not None  # the cache was in use


def test_a_quote_inside_the_cached_range_reads_no_order_list(tmp_path: Path) -> None:
    h = MMHarness(tmp_path)
    h.step("59995", "60005")  # the buy quote goes out
    h.step("59995", "60005")  # now live: a full evaluation caches the range
    (mm,) = h.app.runner.strategies
    reads = []
    view = h.app.view
    h.app.runner._view = type(
        "Counting",
        (),
        {
            "open_orders": lambda self, *a: reads.append(a) or view.open_orders(*a),
            "__getattr__": lambda self, name: getattr(view, name),
        },
    )()
    h.step("59996", "60006")  # 0.2 bps: inside the range
    assert reads == [] and len(h.creates) == 1
    h.step("60085", "60095")  # 15 bps: outside, evaluated in full and canceled
    assert reads and len(h.cancels) == 1


def test_a_balance_change_ends_the_cached_range(tmp_path: Path) -> None:
    h = MMHarness(tmp_path)
    h.step("59995", "60005")
    (bid,) = h.step("59995", "60005")[Side.BUY]  # live, the range cached
    h.dispatch(balance("BTC", "0.0015", ts=h.clock.now_ns()))  # bought elsewhere: too much
    h.clock.advance(0.01)
    h.quote("59995", "60005")  # the same prices, no cooldown ended: only the balance moved
    assert h.cancels == [bid.client_id]
