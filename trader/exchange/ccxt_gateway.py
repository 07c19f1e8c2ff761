"""The ccxt gateway: a real exchange account behind the :class:`~trader.exchange.gateway.Gateway`
Protocol (and, built without keys, the :class:`MarketDataSource` of the paper gateway).

- Two ccxt instances per account, each behind its own lock (the sync client's rate limiter
  and nonce are not thread-safe: ccxt issues 2252, 3189, 26968): one for polls and lookups, one
  for order creates and cancels only, so an order never waits behind a slow poll. They share
  one rate-limit budget (:class:`~trader.exchange.ccxt_client.SharedRateLimit`) and one
  rate-limit pause. ``enableRateLimit`` stays on (see :mod:`trader.exchange.ccxt_client`).
- Errors are translated once (:mod:`trader.exchange.ccxt_errors`). A rate limit (429/418)
  pauses every REST call of this gateway until its ``Retry-After`` has passed: until then each
  call fails at once with ``RateLimitedError`` and nothing is sent, so no thread sleeps holding
  the lock and no caller hammers an exchange that asked for quiet (a 418 ban can last days).
  An order create refused that way (or by a 429 itself) comes back as ``OrderRejected`` of kind
  ``RATE_LIMITED``: the exchange provably did not take it.
- Decimal in and out: quantities go to ccxt as strings; every float ccxt returns becomes
  ``Decimal(str(x))`` (the conversions are :mod:`trader.exchange.ccxt_convert`).
- Orders carry our client id (``newClientOrderId`` on Binance, ccxt's ``clientOrderId``
  elsewhere) and are looked up by it (``origClientOrderId`` on Binance, ``orderLinkId`` on
  Bybit), so an order whose create timed out can be found without sending it again. Once an
  order's exchange id is known (from the create answer or a poll) it is used instead. Which
  calls find an order, and whether a fill says how much of its order is filled, depends on the
  exchange: :mod:`trader.exchange.lookups` chooses from ccxt's capabilities (on Bybit: open
  orders, then the order history, then executions; never ccxt's 500-order ``fetch_order``).
"""

from __future__ import annotations

import difflib
import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ccxt

from trader.clock import Clock
from trader.config import ExchangeConfig, Secrets
from trader.errors import (
    BadResponseError,
    ConfigError,
    ErrorKind,
    OrderNotFoundError,
    RateLimitedError,
    TraderError,
    UnknownOutcomeError,
)
from trader.events import (
    BalanceUpdate,
    Event,
    MarketUpdated,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReport,
    QuoteTick,
    SubmitOrder,
)
from trader.exchange.ccxt_client import SharedRateLimit, make_exchange
from trader.exchange.ccxt_convert import (
    STATUS,
    ZERO,
    balance_update,
    dec,
    market_updated,
    ns,
    order_filled,
    order_fills,
    quote_tick,
    status_report,
    wire,
)
from trader.exchange.ccxt_errors import translate
from trader.exchange.known_orders import KnownOrders
from trader.exchange.lookups import client_id_params, order_lookup
from trader.model.orders import OrderStatus
from trader.model.units import NS_PER_MS

log = logging.getLogger(__name__)

DEFAULT_PAUSE_S = 10.0  # a 429 without Retry-After


F = TypeVar("F", bound=Callable[..., Any])


def _reads_answer(unknown_outcome: bool = False) -> Callable[[F], F]:
    """Turn a malformed answer (a field missing or of the wrong kind) into ``BadResponseError``,
    or ``UnknownOutcomeError`` for an order create: it was answered, so the order may exist."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: CcxtGateway, *args: Any) -> Any:
            try:
                return fn(self, *args)
            except TraderError:
                raise
            except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError) as exc:
                cls = UnknownOutcomeError if unknown_outcome else BadResponseError
                raise cls(f"{self._ex.id} {fn.__name__}: unexpected answer: {exc!r}") from exc

        return wrapper  # type: ignore[return-value]

    return decorate


class CcxtGateway:
    """A ccxt exchange account; see the module docstring."""

    def __init__(
        self,
        exchange: ccxt.Exchange,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
        orders_exchange: ccxt.Exchange | None = None,
    ) -> None:
        """``orders_exchange``: a second instance for order creates and cancels (the order
        lane); None sends them through ``exchange``, behind the same lock."""
        self._ex = exchange
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()  # every ccxt call of _ex
        self._orders_ex = orders_exchange or exchange
        self._orders_lock = self._lock if orders_exchange is None else threading.Lock()
        self._paused_until = 0.0  # monotonic seconds; under _lock
        self._ids = client_id_params(exchange.id)
        self._lookup = order_lookup(exchange, self._ids.lookup)
        self._known = KnownOrders(exchange.id)
        self._state = threading.Lock()  # _nonzero; never held during I/O
        self._nonzero: set[str] = set()  # assets last reported non-zero
        self._warned_no_trades = False

    @classmethod
    def from_config(
        cls,
        cfg: ExchangeConfig,
        secrets: Secrets | None,
        clock: Clock,
        symbols: Sequence[str] = (),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> CcxtGateway:
        """A gateway for ``cfg``; ``secrets`` None gives a public-only market-data source (and
        no order lane)."""
        exchange = make_exchange(cfg, secrets, symbols)
        if secrets is None:
            return cls(exchange, clock, monotonic)
        orders = make_exchange(cfg, secrets, symbols)
        SharedRateLimit(exchange.rateLimit).install(exchange, orders)
        return cls(exchange, clock, monotonic, orders)

    @property
    def exchange(self) -> ccxt.Exchange:
        """The ccxt instance (for tests and diagnostics; call it only through this gateway)."""
        return self._ex

    # ------------------------------------------------------------------ the one way to ccxt

    def _call(
        self, method: str, *args: Any, order_create: bool = False, order_lane: bool = False
    ) -> Any:
        """Call ``exchange.method(*args)`` under the lock (of the order lane's instance for
        ``order_lane``), translating every failure."""
        lock, ex = (self._orders_lock, self._orders_ex) if order_lane else (self._lock, self._ex)
        with lock:
            wait = self._paused_until - self._monotonic()
            if wait > 0:
                raise RateLimitedError(
                    f"{self._ex.id}: REST paused for {wait:.1f}s more after a rate limit", wait
                )
            ex.last_http_response = ex.last_json_response = ex.last_response_headers = None
            try:
                result = getattr(ex, method)(*args)
            except Exception as exc:  # noqa: BLE001 - translated, nothing escapes untranslated
                err = translate(
                    exc,
                    ex.last_response_headers,
                    order_create,
                    ex.last_json_response,
                    self._clock.now_ns() // NS_PER_MS,
                    (ex.apiKey, ex.secret, ex.password),
                )
                if isinstance(err, RateLimitedError):
                    pause = DEFAULT_PAUSE_S if err.retry_after_s is None else err.retry_after_s
                    err.retry_after_s = pause
                    self._paused_until = self._monotonic() + pause
                    log.warning(
                        "%s rate limited: every REST call paused for %.1fs (%s)", ex.id, pause, err
                    )
                raise err from exc
            if ex.last_json_response is None and (ex.last_http_response or "").strip():
                body = ex.last_http_response[:120]
                cls = UnknownOutcomeError if order_create else BadResponseError
                raise cls(f"{ex.id} {method}: answer is not JSON: {body!r}")
            return result

    # ------------------------------------------------------------------ market data

    @_reads_answer()
    def load_markets(self, symbols: Sequence[str]) -> list[MarketUpdated]:
        """Trading rules of ``symbols``; a symbol the exchange does not list is a config error."""
        markets = self._call("load_markets")
        if self._orders_ex is not self._ex:  # the order lane needs them too, without a request
            with self._orders_lock:
                self._orders_ex.set_markets(self._ex.markets, self._ex.currencies)
        for s in symbols:
            if s not in markets:
                hint = difflib.get_close_matches(s, list(markets), n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise ConfigError(
                    f"trade.markets: {s} is not a market on {self._ex.id}{suggestion}"
                )
        now = self._clock.now_ns()
        return [market_updated(markets[s], self._ex.precisionMode, now) for s in symbols]

    @_reads_answer()
    def fetch_tickers(self, symbols: Sequence[str]) -> list[QuoteTick]:
        """Top of book of ``symbols``: one request for all where the exchange has
        ``fetchTickers``, else (and for a single symbol, which costs less) one per symbol."""
        if len(symbols) > 1 and self._ex.has.get("fetchTickers"):
            tickers = self._call("fetch_tickers", list(symbols))
        else:
            tickers = {s: self._call("fetch_ticker", s) for s in symbols}
        now = self._clock.now_ns()
        quotes = (quote_tick(s, tickers.get(s), now) for s in symbols)
        return [q for q in quotes if q is not None]  # None: no book now (a halted market)

    # ------------------------------------------------------------------ account

    @_reads_answer()
    def fetch_balances(self) -> list[BalanceUpdate]:
        """Every asset with a balance, and every asset that had one at the previous call (so a
        balance going to zero is reported once)."""
        raw = self._call("fetch_balance")
        now = self._clock.now_ns()
        ts = ns(raw.get("timestamp"), now)
        totals = raw.get("total") or {}
        out = []
        with self._state:
            previous = self._nonzero
            self._nonzero = set()
            for asset in sorted(set(totals) | previous):
                row = raw.get(asset) or {}
                total = dec(row.get("total"))
                if total:
                    self._nonzero.add(asset)
                elif asset not in previous:
                    continue
                out.append(balance_update(asset, row, total, ts, now))
        return out

    @_reads_answer()
    def fetch_open_orders(self, symbols: Sequence[str]) -> list[OrderStatusReport]:
        """Open orders in ``symbols`` (one request per symbol: Binance charges 80x the weight
        for all symbols at once)."""
        out = []
        for s in symbols:
            for raw in self._call("fetch_open_orders", s):
                out.append(self._report(raw))
        return out

    @_reads_answer()
    def fetch_order(self, client_id: str, symbol: str) -> OrderStatusReport:
        """One order by our client id; ``OrderNotFoundError`` when the exchange has none."""
        exchange_id = self._known.exchange_id(client_id)
        raw = self._lookup.find(self._call, client_id, exchange_id, symbol)
        if raw.get("clientOrderId") not in (None, client_id):
            raise OrderNotFoundError(
                f"{self._ex.id}: asked for {client_id}, got {raw.get('clientOrderId')}"
            )
        return self._report(raw, client_id)

    @_reads_answer()
    def fetch_my_trades(self, symbol: str, since_ns: int) -> list[OrderFilled]:
        """Our fills in ``symbol`` since ``since_ns``, each with its order's client id and
        cumulative filled amount: as the fill reports them where it does (Bybit executions),
        else from one order lookup per order with fills (final orders cached)."""
        if not self._ex.has.get("fetchMyTrades"):
            if not self._warned_no_trades:
                self._warned_no_trades = True
                log.warning(
                    "%s has no fetchMyTrades in ccxt: fills come only from order "
                    "answers and streams",
                    self._ex.id,
                )
            return []
        trades = self._call("fetch_my_trades", symbol, since_ns // NS_PER_MS)
        by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in sorted(trades, key=lambda t: t.get("timestamp") or 0):
            by_order[str(t.get("order"))].append(t)
        now = self._clock.now_ns()
        out: list[OrderFilled] = []
        for order_id, group in by_order.items():
            states = [s for s in map(self._lookup.fill_state, group) if s is not None]
            if len(states) == len(group):
                for t, st in zip(group, states, strict=True):
                    own = {"id": order_id, "symbol": symbol, "clientOrderId": st.client_id}
                    cid = self._known.client_id(own)
                    out.append(order_filled(t, own, cid, st.filled_total, st.final, now))
                continue
            order = self._order_for_fills(order_id, symbol)
            amounts = sum((dec(t.get("amount")) for t in group), ZERO)
            filled = dec(order.get("filled")) if order else amounts
            answer = order or {"id": order_id, "symbol": symbol}
            closed = order is not None and order.get("status") == "closed"
            cid = self._known.client_id(answer)
            out += order_fills(group, answer, cid, filled - amounts, closed, now)
        return out

    def _order_for_fills(self, order_id: str, symbol: str) -> dict[str, Any] | None:
        cached = self._known.final_order(order_id)
        if cached is not None:
            return cached
        try:
            order = self._lookup.find(self._call, "", order_id, symbol)
        except OrderNotFoundError:
            return None  # fills of an order too old to query: reported without its total
        if STATUS.get(order.get("status") or "", OrderStatus.OPEN).is_final:
            self._known.remember_final(order_id, order)
        return order

    # ------------------------------------------------------------------ orders

    @_reads_answer(unknown_outcome=True)
    def create_order(self, cmd: SubmitOrder) -> list[Event]:
        """Send an order with our client id; returns it accepted, with any fills the answer
        already holds (a stream or the poller may report them again: the store drops repeats).
        A timeout or 5xx raises
        ``UnknownOutcomeError`` (the executor looks the order up); a rate limit returns
        ``OrderRejected``."""
        price = None if cmd.price is None else wire(cmd.price)
        try:
            raw = self._call(
                "create_order",
                cmd.symbol,
                cmd.order_type.value,
                cmd.side.value,
                wire(cmd.amount),
                price,
                {self._ids.create: cmd.client_id},
                order_create=True,
                order_lane=True,
            )
        except RateLimitedError as exc:
            now = self._clock.now_ns()
            return [
                OrderRejected(
                    ts_event=now,
                    ts_recv=now,
                    client_id=cmd.client_id,
                    reason=str(exc),
                    kind=ErrorKind.RATE_LIMITED,
                )
            ]
        now = self._clock.now_ns()
        exchange_id = str(raw.get("id") or "")
        if exchange_id:
            self._known.remember(cmd.client_id, exchange_id)
        ts = ns(raw.get("timestamp"), now)
        events: list[Event] = [
            OrderAccepted(
                ts_event=ts, ts_recv=now, client_id=cmd.client_id, exchange_id=exchange_id
            )
        ]
        raw = {**raw, "clientOrderId": cmd.client_id, "side": cmd.side.value, "symbol": cmd.symbol}
        closed = raw.get("status") == "closed"
        cid = self._known.client_id(raw)
        events += order_fills(raw.get("trades") or [], raw, cid, ZERO, closed, now)
        status = STATUS.get(raw.get("status") or "")
        if status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            events.append(
                OrderCanceled(
                    ts_event=ts,
                    ts_recv=now,
                    client_id=cmd.client_id,
                    reason=f"{raw.get('status')} at once",
                    expired=status is OrderStatus.EXPIRED,
                )
            )
        return events

    @_reads_answer()
    def cancel_order(self, client_id: str, symbol: str) -> list[Event]:
        """Cancel one order by our client id."""
        exchange_id = self._known.exchange_id(client_id)
        if exchange_id:
            self._call("cancel_order", exchange_id, symbol, order_lane=True)
        else:
            self._call("cancel_order", None, symbol, {self._ids.lookup: client_id}, order_lane=True)
        now = self._clock.now_ns()
        return [OrderCanceled(ts_event=now, ts_recv=now, client_id=client_id, reason="canceled")]

    def close(self) -> None:
        """Close the HTTP session."""
        try:
            self._ex.session.close()
            self._orders_ex.session.close()
        except Exception:  # noqa: BLE001 - closing at exit must not fail the shutdown
            log.debug("closing the %s session failed", self._ex.id, exc_info=True)

    # ------------------------------------------------------------------ answers

    def _report(self, raw: dict[str, Any], client_id: str | None = None) -> OrderStatusReport:
        """``raw`` as a report, its client id and exchange id remembered."""
        now = self._clock.now_ns()
        client_id = client_id or self._known.client_id(raw)
        self._known.remember(client_id, str(raw.get("id") or ""))
        return status_report(raw, client_id, now)
