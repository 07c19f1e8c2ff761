"""The spread market maker on scripted prices, through risk, the executor and the paper
gateway: quotes around the mid, cancel-then-requote on moves, inventory limits, and never more
than one live quote per side."""

from __future__ import annotations

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
from trader.trading.strategies.market_maker import MarketMakerParams

MM = "mm"
PARAMS = {"spread_bps": 20, "amount": 0.001, "requote_bps": 10, "max_inventory": 0.002,
          "cooldown_s": 1}


class MMHarness(Harness):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, strategies=(
            StrategyConfig(name="market_maker", market=SYMBOL, id=MM, params=PARAMS),))
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
