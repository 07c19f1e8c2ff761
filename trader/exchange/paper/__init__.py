"""The paper exchange (one module per job: ``orders`` (a paper order and the price rules),
``account`` (funds), ``persistence`` (the account file), ``gateway`` (matching, behind the
Gateway Protocol)): a simulated account and order matching on top of real (or simulated)
market data, behind the same :class:`~trader.exchange.gateway.Gateway` Protocol as a live
exchange. Chosen once by the wiring; no other code knows it is trading on paper.

Matching rules (made to be honest rather than flattering):

- **Latency.** An order is acknowledged at once but works only ``latency_ms`` later, by the
  injected clock: it meets the first quote after that, not the one it was sent on.
- **Market orders** fill at the opposite side of the book (the ask for a buy), moved against us
  by ``slippage_bps``. With no quote yet they are rejected.
- **Limit orders** that cross the book when they start working fill at once at the opposite
  side, as a taker. Otherwise they rest and fill at their limit price, as a maker, only when the
  market trades *through* them: a public trade strictly beyond the price (below a buy, above a
  sell), or the opposite quote strictly beyond it (an ask below a resting buy). A trade *at* the
  price does not fill: others were queued there first.
- **Partial fills** (``partial_fills``): every fill is capped by the size the market shows (the
  quote's ``ask_size``/``bid_size`` for takers and quote crossings, the trade's size for trades
  through), shared by our orders in time priority; the rest fills on later quotes and trades.
- **Fees** are ``fee_rate`` of the notional, charged in the quote asset.
- **Funds.** An order locks what it may need (``used``): a buy its notional plus fee at the limit
  (market: the ask plus slippage), a sell its amount; an order the free balance cannot cover is
  rejected as insufficient funds. A market order whose price moved past what was locked takes
  the difference from free funds, or is canceled for the rest when there is none.

**Restart rule.** With an ``account_file``, the account (balances, working orders, the last
closed orders and fills) is saved after every change by the ``paper-account`` writer thread
(``persistence.AccountWriter``: nothing is encoded or written on the main thread): changes are
coalesced into at most one write every ``persistence.WRITE_INTERVAL_S``, each write a snapshot
taken under the gateway's lock, written to a temporary file, fsynced, renamed over the old one,
and the folder fsynced; so a crash (kill -9 included) leaves either the old or the new whole
account, never a torn one, at most one interval plus one write behind, and a clean stop writes
the final state. On start the file is loaded and ``starting_balances`` are ignored (delete the
file to start over). Working orders did not fill while the process was down, since no market data
was seen then; they resume matching on the first quotes and trades after the restart, and start-up
reconciliation adopts them (their client ids carry our prefix). A file that cannot be read stops
the start with a clear error rather than being overwritten.

The gateway keeps its own copy of the latest quotes (fed by the main thread's ``on_quote``) and
guards all its state with one lock, because the executor thread and the main thread both call it.
Their results reach the bus in either order, so everything is stamped under that lock with the
account's time (the clock, never going back) and every balance with the account's sequence
(``BalanceUpdate.seq``): the store keeps the newest balance whichever arrives last.
"""

from trader.exchange.paper.gateway import PaperGateway

__all__ = ["PaperGateway"]
