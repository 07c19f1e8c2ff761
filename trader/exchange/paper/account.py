"""The paper account's funds: free and used per asset, an order's locked funds being part of
``used``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from trader.events import BalanceUpdate
from trader.exchange.paper.orders import ZERO, PaperOrder


class Funds:
    """Free and used balance per asset (guarded by the gateway's lock)."""

    def __init__(self, free: Mapping[str, Decimal], used: Mapping[str, Decimal]) -> None:
        self.free: dict[str, Decimal] = dict(free)
        self.used: dict[str, Decimal] = dict(used)
        self.seq = 0  # balance events stamped so far: their order is the account's order

    def assets(self) -> list[str]:
        """Every asset the account has held, sorted."""
        return sorted(self.free)

    def free_of(self, asset: str) -> Decimal:
        """The free balance of ``asset``."""
        return self.free.get(asset, ZERO)

    def move(self, asset: str, free_delta: Decimal, used_delta: Decimal) -> None:
        """Add the deltas to ``asset``'s free and used balances."""
        self.free[asset] = self.free.get(asset, ZERO) + free_delta
        self.used[asset] = self.used.get(asset, ZERO) + used_delta

    def lock(self, order: PaperOrder, asset: str, amount: Decimal) -> None:
        """Hold ``amount`` of ``asset`` for ``order``."""
        self.move(asset, -amount, amount)
        order.locked = amount

    def spend(self, order: PaperOrder, asset: str, amount: Decimal) -> bool:
        """Pay ``amount`` from the order's locked funds, then from free funds; False (nothing
        paid) when free funds cannot cover the rest."""
        from_locked = min(order.locked, amount)
        rest = amount - from_locked
        if rest > self.free.get(asset, ZERO):
            return False
        order.locked -= from_locked
        self.used[asset] = self.used.get(asset, ZERO) - from_locked
        self.free[asset] = self.free.get(asset, ZERO) - rest
        return True

    def release(self, order: PaperOrder) -> str:
        """Free what ``order`` still holds; returns the asset it was locked in."""
        asset = order.locked_asset
        self.move(asset, order.locked, -order.locked)
        order.locked = ZERO
        return asset

    def balance(self, asset: str, now: int) -> BalanceUpdate:
        """``asset``'s balance as an event, stamped with the next sequence number (called
        under the gateway's lock, after the change, with the account's time ``now``)."""
        free, used = self.free.get(asset, ZERO), self.used.get(asset, ZERO)
        self.seq += 1
        return BalanceUpdate(
            ts_event=now,
            ts_recv=now,
            asset=asset,
            free=free,
            used=used,
            total=free + used,
            seq=self.seq,
        )
