"""Pure parsers: one module per venue, each a table from wire type to a function turning a
decoded payload into events (see ``common.py`` for the shared contract)."""
