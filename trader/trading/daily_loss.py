"""The daily loss count: realized plus unrealized PnL (USD) since the UTC day began, measured
against two limits from ``[risk]``:

- ``daily_loss_soft_limit`` (0: off): below ``-soft`` trading goes REDUCING, so positions can
  still be closed but nothing adds to them;
- ``daily_loss_limit`` (0: off): below ``-limit`` trading is HALTED.

The soft limit must be below the hard one when both are set (a soft limit at or past the hard
one would never be seen). The count starts at the first check of each UTC day, or at an
operator resume; a new day lifts both. It survives restarts: the day and the PnL it counts from
are saved with the ledger (:meth:`DailyLoss.saved`) and loaded at start (:meth:`DailyLoss.load`),
so a restart within the day goes on counting from where the day began.
:class:`~trader.trading.risk.Risk` turns the levels into trading states.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from enum import Enum

from trader.clock import Clock
from trader.config import RiskConfig
from trader.errors import ConfigError

DAY_NS = 86_400 * 1_000_000_000


class LossLevel(Enum):
    """Where today's PnL stands against the limits."""

    WITHIN = "within"
    SOFT = "soft"  # below -daily_loss_soft_limit: reduce only
    HARD = "hard"  # below -daily_loss_limit: halt


class DailyLoss:
    """Today's PnL against the soft and hard limits; main thread only."""

    def __init__(self, cfg: RiskConfig, clock: Clock, pnl: Callable[[], Decimal]) -> None:
        """``pnl()`` is the current realized plus unrealized PnL in USD. Raises ``ConfigError``
        when the soft limit is not below the hard one."""
        self.soft = cfg.daily_loss_soft_limit
        self.hard = cfg.daily_loss_limit
        if self.soft and self.hard and self.soft >= self.hard:
            raise ConfigError(
                f"risk.daily_loss_soft_limit: {self.soft} must be below "
                f"risk.daily_loss_limit ({self.hard}), or 0 (off)"
            )
        self._clock = clock
        self._pnl = pnl
        self._day = -1
        self._day_start = Decimal(0)

    @property
    def enabled(self) -> bool:
        """True when either limit is set."""
        return bool(self.soft or self.hard)

    def saved(self) -> tuple[int, Decimal]:
        """(the UTC day counted, the PnL it counts from), for the saved state; day -1: none."""
        return self._day, self._day_start

    def load(self, day: int, day_start: Decimal) -> None:
        """Go on with a count saved by an earlier process (a different day starts afresh at
        the next check)."""
        self._day, self._day_start = day, day_start

    def restart(self) -> None:
        """Count afresh from now (an operator resume accepts the loss so far)."""
        self._day_start = self._pnl()

    def check(self) -> tuple[bool, LossLevel, Decimal]:
        """(a new UTC day began, the level, today's PnL)."""
        pnl = self._pnl()
        day = self._clock.now_ns() // DAY_NS
        new_day = day != self._day
        if new_day:
            self._day, self._day_start = day, pnl
        today = pnl - self._day_start
        if self.hard and today < -self.hard:
            return new_day, LossLevel.HARD, today
        if self.soft and today < -self.soft:
            return new_day, LossLevel.SOFT, today
        return new_day, LossLevel.WITHIN, today
