"""The systemd notify protocol (``sd_notify``), written by hand: no dependency.

systemd passes ``NOTIFY_SOCKET`` to a ``Type=notify`` service: a unix datagram socket (a leading
``@`` means the abstract namespace). Each datagram is newline-separated ``KEY=VALUE`` lines:

- ``READY=1`` once start-up (and reconciliation, where present) is done; until then systemd
  reports the unit as "activating" and ``systemctl start`` waits.
- ``WATCHDOG=1`` at least every ``WATCHDOG_USEC`` microseconds (from ``WatchdogSec=``), or
  systemd kills and (with ``Restart=on-failure``) restarts the service. We ping at half that
  interval from an :meth:`trader.engine.Engine.every` timer, which only fires from the main loop
  between dispatches: a loop stuck in a handler stops pinging, and that is the point.
- ``STATUS=...`` a free-text line shown by ``systemctl status``.
- ``STOPPING=1`` at the start of shutdown.

Without ``NOTIFY_SOCKET`` every call is a no-op, so nothing needs systemd to run.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 0.05  # a local socket; never let a full receive buffer stall the main loop


class Notifier:
    """Sends notify messages to systemd; does nothing when ``NOTIFY_SOCKET`` is unset."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        self.failures = 0
        self.watchdog_interval_s = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False (logged once) when it failed."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.settimeout(SEND_TIMEOUT_S)
            self._sock.sendto("\n".join(lines).encode(), self._address)
            return True
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("systemd notify failed (%s); counted, logged once", exc)
            return False

    def ready(self, status: str = "") -> bool:
        """Start-up is done."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        """The main loop is alive."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """The line ``systemctl status`` shows."""
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        """Shutdown has begun."""
        return self.notify("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class StatusLine:
    """Builds the ``STATUS=`` text: trading state, queue depth, events per second."""

    def __init__(
        self, state: Callable[[], object], depth: Callable[[], int], dispatched: Callable[[], int]
    ) -> None:
        self._state = state
        self._depth = depth
        self._dispatched = dispatched
        self._last = (time.monotonic(), dispatched())

    def __call__(self) -> str:
        now, total = time.monotonic(), self._dispatched()
        t0, n0 = self._last
        self._last = (now, total)
        rate = (total - n0) / max(now - t0, 1e-9)
        return f"trading {self._state()} | queue {self._depth()} | {rate:.0f} ev/s"


def _address(value: str) -> str | bytes | None:
    """The socket address of ``NOTIFY_SOCKET``: a path, or ``@name`` in the abstract namespace."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract; not notifying", value)
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, or None when the watchdog is off or not ours."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2 / 1_000_000
