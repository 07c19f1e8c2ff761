"""Symbols and assets: splitting ccxt's unified symbols, USD prices of assets, and rounding to a
market's price and amount steps."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from trader.model.orders import Side

USD_QUOTES = ("USDT", "USD", "USDC")
USD_ASSETS = frozenset({"USD", "USDT", "USDC"})


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTC/USDT"`` -> ``("BTC", "USDT")`` (ccxt's unified symbols; ``:SETTLE`` ignored)."""
    base, _, quote = symbol.partition("/")
    return base, quote.partition(":")[0]


def usd_price(asset: str, prices: Mapping[str, Decimal | None]) -> Decimal | None:
    """USD price of ``asset`` through a USD/USDT/USDC quote, or through BTC; None when unknown.

    USD stablecoins count as 1 USD.
    """
    if asset in USD_ASSETS:
        return Decimal(1)
    for quote in USD_QUOTES:
        px = prices.get(f"{asset}/{quote}")
        if px:
            return px
    via_btc = prices.get(f"{asset}/BTC")
    if via_btc and asset != "BTC":
        btc = usd_price("BTC", prices)
        if btc:
            return via_btc * btc
    return None


def quantize_down(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``step`` (0 step leaves it unchanged)."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def quantize_passive(price: Decimal, step: Decimal, side: Side) -> Decimal:
    """Round a limit price to ``step`` toward the passive side: a buy down, a sell up."""
    if step <= 0:
        return price
    rounding = ROUND_DOWN if side is Side.BUY else ROUND_UP
    return (price / step).to_integral_value(rounding=rounding) * step
