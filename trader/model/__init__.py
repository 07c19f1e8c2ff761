"""The ground floor: the trading model every layer shares, importing nothing but the stdlib.

- :mod:`trader.model.units`: time units (integer nanoseconds);
- :mod:`trader.model.orders`: sides, order types, statuses and the order state machine;
- :mod:`trader.model.market`: symbols, USD assets and prices, rounding to a market's steps;
- :mod:`trader.model.records`: the immutable records the store hands out;
- :mod:`trader.model.fills`: fill accounting (a position after a fill, fees, PnL).
"""
