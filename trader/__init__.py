"""trader: an event-driven, multi-threaded trading system for crypto exchanges.

The package layout is the architecture (see ``README.md`` and ``trader/app.py``):

- ``model``: the ground floor (orders and their states, symbols, records, fill accounting, time
  units), importing only the stdlib; ``config``: the configuration as plain data;
- ``events``: every fact and command, as frozen dataclasses that round-trip through JSON;
- ``bus`` and ``engine``: the one queue and the main loop that dispatches by event class;
- ``store``: all state, lock-guarded, read through immutable snapshots;
- ``exchange``: the gateway Protocol and its implementations (paper, ccxt);
- ``feeds``: worker threads that turn the outside world into events;
- ``trading``: strategies, risk and execution;
- ``app``: the one module that builds everything and holds the event -> handlers table
  (``registries``: the strategy and exchange names a config refers to, checked there).
"""

__version__ = "0.1.0"
