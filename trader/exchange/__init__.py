"""The exchange boundary: the gateway Protocol and its implementations.

Only this package may import ccxt; its errors are translated into ``trader.errors`` here.
"""
