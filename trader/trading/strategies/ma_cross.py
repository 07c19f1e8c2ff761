"""Moving-average cross: buy when the fast average of closes crosses above the slow one, sell
what it holds when it crosses below. Spot only: it never sells more than the free base balance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from trader.events import Candle, SignalKind
from trader.model.market import split_symbol
from trader.model.orders import Side
from trader.store.view import StoreView
from trader.trading.strategy import OrderIntent, Output, Strategy


@dataclass(frozen=True)
class MaCrossParams:
    """Parameters of :class:`MaCross`."""

    fast: int = 5
    slow: int = 20
    amount: Decimal = Decimal("0.001")

    def __post_init__(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError("need 1 <= fast < slow")
        if self.amount <= 0:
            raise ValueError("amount must be positive")


class MaCross(Strategy):
    """Trades the cross of two simple moving averages of closed candles."""

    Params = MaCrossParams
    params: MaCrossParams

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._last_diff_sign = 0
        self._last_start = -1

    def on_candle(self, ev: Candle, view: StoreView) -> Iterable[Output]:
        """Act once per closed candle."""
        if not ev.closed or ev.start_ns == self._last_start:
            return ()
        self._last_start = ev.start_ns
        p = self.params
        # Only the window is read and copied (a backtest calls this on every bar): at most one
        # forming candle sits at the end, unless updates were missed; then the whole history.
        window = view.candles(self.symbol, last=p.slow + 1)
        closes = [c.close for c in window if c.closed][-p.slow :]
        if len(closes) < p.slow and len(window) == p.slow + 1:
            closes = [c.close for c in view.candles(self.symbol) if c.closed][-p.slow :]
        if len(closes) < p.slow:
            return ()
        fast = sum(closes[-p.fast :]) / p.fast
        slow = sum(closes[-p.slow :]) / p.slow
        sign = (fast > slow) - (fast < slow)
        previous, self._last_diff_sign = self._last_diff_sign, sign
        if previous == 0 or sign == previous or sign == 0:
            return ()
        if sign > 0:
            note = f"fast {fast:.2f} crossed above slow {slow:.2f}"
            return (
                self.signal(SignalKind.LONG, note),
                OrderIntent(strategy=self.id, symbol=self.symbol, side=Side.BUY, amount=p.amount),
            )
        base, _ = split_symbol(self.symbol)
        held = view.balance(base)
        out: list[Output] = [self.signal(SignalKind.FLAT, f"fast {fast:.2f} crossed below slow")]
        if held is not None and held.free > 0:
            amount = min(p.amount, held.free)
            out.append(
                OrderIntent(strategy=self.id, symbol=self.symbol, side=Side.SELL, amount=amount)
            )
        return out
