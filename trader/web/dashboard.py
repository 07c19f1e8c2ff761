"""The dashboard's JSON document (``GET /api/dashboard``), built on the HTTP thread.

It reads only what is safe from any thread: the metrics snapshot and feed states, store reads
(each a copy under the store's lock) and the :class:`~trader.web.history.History` buffers. The
page asks once for the full chart history (``?full=1``) and then every second for the tail:
the last candles and equity points and the recent fills, so a page left open costs a few
kilobytes a second and nothing accumulates on the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from trader.clock import Clock
from trader.events import Candle, OrderFilled
from trader.metrics import Metrics
from trader.store.view import StoreView
from trader.trading.portfolio import pnl_usd, position_rows, prices_of
from trader.web.history import NS, History

#: Rows in the tables.
FILL_ROWS = 15
NOTE_ROWS = 15
#: Chart points sent with every refresh after the first (the forming candle and its neighbours).
TAIL = 3


def _num(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def candle_row(c: Candle) -> list[float]:
    """[unix second, open, high, low, close]: the chart's bar."""
    return [c.start_ns // NS, float(c.open), float(c.high), float(c.low), float(c.close)]


def fill_row(f: OrderFilled) -> dict[str, Any]:
    """One fill for the table and the chart markers."""
    return {
        "id": f"{f.client_id}/{f.trade_id}",
        "t": f.ts_event / NS,
        "symbol": f.symbol,
        "side": str(f.side),
        "price": str(f.price),
        "amount": str(f.amount),
        "fee": str(f.fee),
        "fee_asset": f.fee_asset,
        "order": f.client_id,
    }


class Dashboard:
    """Builds the document from read-only sources."""

    def __init__(
        self,
        metrics: Metrics,
        view: StoreView,
        history: History,
        markets: Sequence[str],
        clock: Clock,
        message_ages: Callable[[], Mapping[str, float | None]] = dict,
    ) -> None:
        """``message_ages``: each stream's seconds since its last message (the listeners')."""
        self._metrics = metrics
        self._message_ages = message_ages
        self._view = view
        self._history = history
        self._markets = tuple(markets)
        self._clock = clock

    def document(self, full: bool) -> dict[str, Any]:
        """Everything the page shows; with ``full`` the whole chart history, else its tail."""
        now = self._clock.now_ns()
        view = self._view
        balances = view.balances()
        prices = prices_of(view)
        positions = view.positions()
        realized, unrealized = pnl_usd(positions, prices)
        fills = self._history.fills()
        equity = self._history.equity()
        return {
            "now": now / NS,
            "full": full,
            "header": self._header(),
            "balances": [
                {
                    "asset": a,
                    "free": str(b.free),
                    "used": str(b.used),
                    "total": str(b.total),
                    "usd": _num(balances.usd_values.get(a)),
                }
                for a, b in sorted(balances.balances.items())
                if b.total or b.used
            ],
            "equity_usd": str(balances.total_usd),
            "pnl": {"realized_usd": str(realized), "unrealized_usd": str(unrealized)},
            "positions": [
                {
                    "symbol": r.symbol,
                    "amount": str(r.amount),
                    "avg_price": str(r.avg_price),
                    "mark": _num(r.mark),
                    "unrealized": _num(r.unrealized),
                    "realized": str(r.realized),
                    "fees": str(r.fees),
                }
                for r in position_rows(positions, prices)
            ],
            "orders": [
                {
                    "client_id": o.client_id,
                    "symbol": o.symbol,
                    "side": str(o.side),
                    "type": str(o.order_type),
                    "amount": str(o.amount),
                    "price": _num(o.price),
                    "filled": str(o.filled),
                    "status": str(o.status),
                    "strategy": o.strategy,
                    "external": o.external,
                    "age_s": round((now - o.ts_update) / NS, 1),
                }
                for o in view.open_orders()
            ],
            "fills": [fill_row(f) for f in reversed(fills[-FILL_ROWS:])],
            "fills_total": self._metrics.snapshot["events"].get("OrderFilled", 0),
            "signals": [
                {
                    "t": s.ts_event / NS,
                    "strategy": s.strategy,
                    "symbol": s.symbol,
                    "kind": str(s.kind),
                    "note": s.note,
                }
                for s in reversed(view.signals()[-NOTE_ROWS:])
            ],
            "denials": [
                {
                    "t": d.ts_event / NS,
                    "strategy": d.strategy,
                    "symbol": d.symbol,
                    "side": str(d.side),
                    "amount": str(d.amount),
                    "reason": d.reason,
                }
                for d in reversed(self._history.denials()[-NOTE_ROWS:])
            ],
            "feeds": self._feeds(now),
            "markets": self._market_rows(),
            "charts": {
                s: {
                    "candles": [
                        candle_row(c)
                        for c in (view.candles(s) if full else view.candles(s)[-TAIL:])
                    ],
                    "markers": [
                        fill_row(f)
                        for f in (fills if full else fills[-FILL_ROWS:])
                        if f.symbol == s
                    ],
                }
                for s in self._markets
            },
            "equity": [[t, float(v)] for t, v in (equity if full else equity[-TAIL:])],
        }

    def _header(self) -> dict[str, Any]:
        status = self._metrics.status()
        return {
            "name": status.get("name", ""),
            "exchange": status.get("exchange", ""),
            "mode": status.get("mode", ""),
            "session": status.get("session", ""),
            "trading_state": status["trading_state"],
            "halts": [{"cause": c, "reason": r} for c, r in self._history.halts()],
            "uptime_s": status["uptime_s"],
            "events_per_s": status["events_per_s"],
            "queue_depth": status["queue_depth"],
            "open_orders": status["open_orders"],
        }

    def _feeds(self, now: int) -> list[dict[str, Any]]:
        notes = self._history.feeds()
        ages = self._message_ages()
        rows = []
        for name, (state, since) in sorted(self._metrics.feeds.items()):
            n = notes.get(name)
            rows.append(
                {
                    "feed": name,
                    "state": state,
                    "since_s": round((now - since) / NS, 1),
                    "message_age_s": None if (age := ages.get(name)) is None else round(age, 1),
                    "reconnects": n.reconnects if n else 0,
                    "last_error": n.last_error if n else "",
                    "last_error_age_s": round((now - n.last_error_ns) / NS, 1)
                    if n and n.last_error_ns
                    else None,
                }
            )
        return rows

    def _market_rows(self) -> list[dict[str, Any]]:
        ages = self._metrics.market_ages()
        rows = []
        for s in self._markets:
            q = self._view.quote(s)
            rows.append(
                {
                    "symbol": s,
                    "price": _num(self._view.last_price(s)),
                    "bid": _num(q.bid) if q else None,
                    "ask": _num(q.ask) if q else None,
                    "data_age_s": None if (age := ages.get(s)) is None else round(age, 2),
                }
            )
        return rows
