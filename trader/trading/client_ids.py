"""Client order ids: unique across restarts, deterministic within a session, short enough for
every exchange we stream."""

from __future__ import annotations

from trader.model.units import NS_PER_MS

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _BASE36[r] + out
        if not n:
            return out


class ClientIdGenerator:
    """Client order ids ``<prefix>-<session>-<seq>``: unique across restarts (the session is the
    start time in milliseconds, base 36, so even a restart within the same second gets new
    ids), deterministic within a session, at most 36 characters of ``[a-z0-9-]`` (Binance and
    Bybit both accept 36)."""

    MAX_LEN = 36

    def __init__(self, prefix: str, session_start_ns: int) -> None:
        self.prefix = f"{prefix}-"  # what every id of this system starts with, in any session
        self._head = f"{self.prefix}{_base36(session_start_ns // NS_PER_MS)}-"
        self._seq = 0
        if len(self._head) > self.MAX_LEN - 8:
            raise ValueError(f"client id prefix {prefix!r} is too long")

    def next(self) -> str:
        """The next id."""
        self._seq += 1
        return f"{self._head}{self._seq}"
