"""Reconciliation's comparison: the store against what the exchange said, pure.

:func:`compare` takes the store's view and one round's :class:`Fetched` answer and returns a
:class:`Comparison`: the differences (rows for the table, :func:`render`) and the exchange's view
as the events that apply it. It reads the view and nothing else; the flow around it (fetch on a
worker thread, compare on the main thread, retry) is :class:`~trader.trading.reconcile.Reconciler`.

Rules of the comparison:

- the exchange is the truth, applied through the same events and state machine as live data;
- orders in flight (PENDING, UNKNOWN) are the executor's to resolve and are skipped, except
  those restored from an earlier process (last updated before this one started): no executor
  holds them any more, so they are looked up and settled like open ones (not found: canceled);
- an open order with our client-id prefix that the store does not know was placed by an earlier
  session: it is adopted (recorded as ours, so cancel-all covers it; no strategy owns it);
- any other order the store does not know is recorded as external and left alone (never
  canceled); it does not block trading;
- a fill the store has not applied (by trade id) is applied, up to the amount the exchange says
  is filled; fills of orders the store does not know are not applied (they belong to an earlier
  session's closed orders, or to someone else);
- a store ahead of the exchange's answer (a fill or a cancel processed after the fetch) is not
  "corrected" backwards: the next round checks again;
- a spot position larger than the account's holdings of its base asset (summed over the markets
  sharing that base; positions are net of fees paid in the base) is a difference, reported and
  blocking, never corrected: the fills say one thing, the exchange another, and only the
  operator can tell which (a resume accepts it). Holdings beyond our positions are normal
  (bought outside this system), so only a position the holdings cannot cover is flagged. When
  an order of that base is ahead of the answer (its fill came after the fetch), the holdings
  are older than the position too: checked again next round, like the order;
- fills the exchange reports are applied with ``ts_recv`` set to the comparison time: they
  reach us now, and must not count as hours of dispatch lag;
- a balance the store lacks is taken at once (nothing disagrees: it does not block trading); a
  balance that differs is taken only when the same difference is seen in two rounds in a row,
  because a fill between the fetch and the comparison makes the store newer than the fetched
  value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from trader.events import (
    BalanceUpdate,
    Event,
    ExchangeStateFetched,
    OrderCanceled,
    OrderFilled,
    OrderStatusReport,
)
from trader.model.market import split_symbol
from trader.model.orders import OrderStatus
from trader.model.records import Balance, Order
from trader.store.view import StoreView

ZERO = Decimal(0)
_IN_FLIGHT = (OrderStatus.PENDING, OrderStatus.UNKNOWN)
_LIVE = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True)
class Fetched:
    """What the exchange said in one round."""

    open_orders: tuple[OrderStatusReport, ...] = ()
    looked_up: tuple[OrderStatusReport, ...] = ()
    not_found: tuple[str, ...] = ()
    trades: tuple[OrderFilled, ...] = ()
    balances: tuple[BalanceUpdate, ...] = ()

    def to_event(self, round_: int, now: int) -> ExchangeStateFetched:
        """As one journaled event."""
        return ExchangeStateFetched(
            ts_event=now,
            ts_recv=now,
            round=round_,
            open_orders=self.open_orders,
            looked_up=self.looked_up,
            not_found=self.not_found,
            trades=self.trades,
            balances=self.balances,
        )

    @classmethod
    def from_event(cls, ev: ExchangeStateFetched) -> Fetched:
        """Inverse of :meth:`to_event`."""
        return cls(ev.open_orders, ev.looked_up, ev.not_found, ev.trades, ev.balances)


BalanceKey = tuple[Decimal, Decimal]  # (free, used)


@dataclass(frozen=True)
class Row:
    """One difference, for the table."""

    kind: str  # order, fills, position, balance
    key: str  # client id or asset
    store: str
    exchange: str
    action: str
    blocking: bool  # trading stays halted because of it


@dataclass
class Comparison:
    """The result of :func:`compare`."""

    rows: list[Row] = field(default_factory=list)
    corrections: list[Event] = field(default_factory=list)
    # balance differences seen this round, to confirm next round: asset -> (store, exchange)
    balance_diffs: dict[str, tuple[BalanceKey, BalanceKey]] = field(default_factory=dict)
    ignored_trades: int = 0  # fills of orders the store does not know
    ahead: set[str] = field(default_factory=set)  # symbols of orders ahead of the answer

    @property
    def blocking(self) -> int:
        """Differences that keep trading halted."""
        return sum(r.blocking for r in self.rows)


def _order_text(
    status: OrderStatus, filled: Decimal, amount: Decimal, price: Decimal | None
) -> str:
    at = f" @ {price}" if price is not None else ""
    return f"{status} {filled}/{amount}{at}"


def _desc(o: Order | OrderStatusReport) -> str:
    return _order_text(o.status, o.filled, o.amount, o.price)


def _missing_fills(
    order: Order, target: Decimal, trades: Sequence[OrderFilled]
) -> list[OrderFilled]:
    """Fills the store has not applied, oldest first, up to ``target`` filled."""
    gap = target - order.filled_by_fills
    out = []
    for t in sorted(trades, key=lambda t: t.ts_event):
        if gap <= 0:
            break
        if not order.has_fill(t.trade_id):
            out.append(t)
            gap -= t.amount
    return out


def _store_ahead(o: Order, r: OrderStatusReport) -> bool:
    return o.filled > r.filled or (o.status.is_final and not r.status.is_final)


def compare(
    view: StoreView,
    fetched: Fetched,
    owns: Callable[[str], bool],
    previous_balance_diffs: dict[str, tuple[BalanceKey, BalanceKey]],
    now: int,
    started_ns: int = 0,
) -> Comparison:
    """Compare the store with what the exchange said; pure apart from reading the view.
    Orders in flight last updated before ``started_ns`` (this process's start) are settled."""
    out = Comparison()
    _compare_orders(view, fetched, owns, out, now, started_ns)
    _compare_positions(view, fetched.balances, out)
    _compare_balances(view.balances().balances, fetched.balances, previous_balance_diffs, out, now)
    return out


def settled(o: Order, started_ns: int) -> bool:
    """Open on the exchange as far as we know, or in flight but left by an earlier process."""
    return o.status in _LIVE or (o.status in _IN_FLIGHT and o.ts_update < started_ns)


def _compare_orders(
    view: StoreView,
    fetched: Fetched,
    owns: Callable[[str], bool],
    out: Comparison,
    now: int,
    started_ns: int,
) -> None:
    reports = {r.client_id: r for r in (*fetched.open_orders, *fetched.looked_up)}
    trades: dict[str, list[OrderFilled]] = {}
    for t in fetched.trades:
        trades.setdefault(t.client_id, []).append(t)
    for cid in sorted(set(reports) | set(trades)):
        r, fills, o = reports.get(cid), trades.get(cid, []), view.order(cid)
        if o is None:
            if r is None:
                out.ignored_trades += len(fills)
            elif owns(cid) and not r.status.is_final:
                out.rows.append(
                    Row("order", cid, "-", _desc(r), "adopted: placed by an earlier session", True)
                )
                out.corrections.append(r)
            elif not r.status.is_final:
                out.rows.append(Row("order", cid, "-", _desc(r), "external: left alone", False))
                out.corrections.append(r)
            continue
        if o.external or (o.status in _IN_FLIGHT and o.ts_update >= started_ns):
            continue
        status_differs = r is not None and (o.status != r.status or o.filled != r.filled)
        if r is not None and status_differs and _store_ahead(o, r):
            out.ahead.add(o.symbol)
            out.rows.append(
                Row(
                    "order",
                    cid,
                    _desc(o),
                    _desc(r),
                    "store is ahead of the answer: checked again",
                    True,
                )
            )
            continue
        missing = _missing_fills(o, max(o.filled, r.filled if r else ZERO), fills)
        if not status_differs and not missing:
            continue
        if missing:
            amount = sum((f.amount for f in missing), ZERO)
            out.rows.append(
                Row(
                    "fills",
                    cid,
                    f"{len(o.fills)} applied",
                    f"{len(missing)} more, {amount}",
                    "applied",
                    True,
                )
            )
            out.corrections.extend(replace(f, ts_recv=now) for f in missing)
        if status_differs:
            assert r is not None
            if o.status.is_final:  # both final, different: the state machine cannot move it
                out.rows.append(
                    Row(
                        "order",
                        cid,
                        _desc(o),
                        _desc(r),
                        "final in both: status kept, check by hand",
                        False,
                    )
                )
            else:
                out.rows.append(Row("order", cid, _desc(o), _desc(r), "corrected", True))
                out.corrections.append(r)
    for cid in fetched.not_found:
        o = view.order(cid)
        if o is not None and not o.external and settled(o, started_ns):
            out.rows.append(Row("order", cid, _desc(o), "not found", "marked canceled", True))
            out.corrections.append(
                OrderCanceled(
                    ts_event=now,
                    ts_recv=now,
                    client_id=cid,
                    reason="not found on the exchange at reconciliation",
                )
            )


def _compare_positions(view: StoreView, fetched: Sequence[BalanceUpdate], out: Comparison) -> None:
    if not fetched:
        return  # no balances in this answer: nothing to check against
    held = {b.asset: b.total for b in fetched}
    by_base: dict[str, list[tuple[str, Decimal]]] = {}
    for symbol, pos in sorted(view.positions().items()):
        if pos.amount:
            by_base.setdefault(split_symbol(symbol)[0], []).append((symbol, pos.amount))
    for base, positions in by_base.items():
        amount = sum((a for _, a in positions), ZERO)
        if amount > held.get(base, ZERO):
            ahead = any(s in out.ahead for s, _ in positions)
            out.rows.append(
                Row(
                    "position",
                    ", ".join(s for s, _ in positions),
                    f"{amount} {base}",
                    f"holds {held.get(base, ZERO)} {base}",
                    "store is ahead of the answer: checked again"
                    if ahead
                    else "position exceeds holdings: check by hand, resume to accept",
                    True,
                )
            )


def _compare_balances(
    held: Mapping[str, Balance],
    fetched: Sequence[BalanceUpdate],
    previous: dict[str, tuple[BalanceKey, BalanceKey]],
    out: Comparison,
    now: int,
) -> None:
    exchange = {b.asset: b for b in fetched}
    for asset in sorted(set(held) | set(exchange)):
        s, e = held.get(asset), exchange.get(asset)
        s_key = (s.free, s.used) if s else (ZERO, ZERO)
        e_key = (e.free, e.used) if e else (ZERO, ZERO)
        if s_key == e_key:
            continue
        s_text, e_text = (f"free {k[0]} used {k[1]}" for k in (s_key, e_key))
        if s is None:  # nothing to disagree with: taken, and agreed
            assert e is not None
            out.rows.append(Row("balance", asset, "-", e_text, "taken", False))
            out.corrections.append(e)
        elif previous.get(asset) == (s_key, e_key):
            out.rows.append(Row("balance", asset, s_text, e_text, "corrected", True))
            out.corrections.append(
                e
                or BalanceUpdate(
                    ts_event=now, ts_recv=now, asset=asset, free=ZERO, used=ZERO, total=ZERO
                )
            )
        else:
            out.rows.append(
                Row("balance", asset, s_text, e_text, "corrected if still so next round", True)
            )
            out.balance_diffs[asset] = (s_key, e_key)


def render(rows: Sequence[Row]) -> str:
    """The differences as a fixed-width table."""
    header = ("what", "id", "store", "exchange", "action")
    cells = [header] + [(r.kind, r.key, r.store, r.exchange, r.action) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
