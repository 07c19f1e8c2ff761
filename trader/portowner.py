"""Which process listens on a local TCP port (Linux: ``/proc/net/tcp*`` and ``/proc/*/fd``), so
"port in use" can say by whom. Best effort: None when it cannot be found (another user's
process, no ``/proc``)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from trader.errors import OperationalError

_LISTEN = "0A"


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[str]:
    """The socket inodes listening on ``port`` (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == _LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def port_owner(port: int, proc: Path = Path("/proc")) -> str | None:
    """``"pid 1234 (name)"`` of a process holding a socket listening on ``port``, or None."""
    targets = {f"socket:[{inode}]" for inode in listening_inodes(port, proc)}
    if not targets:
        return None
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in os.scandir(pid_dir / "fd"):
                if os.readlink(fd.path) in targets:
                    name = (pid_dir / "comm").read_text().strip()
                    return f"pid {pid_dir.name} ({name})"
        except OSError:  # gone, or not ours to look at
            continue
    return None


def describe_port_in_use(host: str, port: int, reason: str) -> str:
    """The one line saying a port cannot be listened on, and by whom it is held if known."""
    owner = port_owner(port)
    held = f"; held by {owner}" if owner else ""
    return f"metrics.port: cannot listen on {host}:{port}: {reason}{held}"


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`OperationalError` when ``host:port`` cannot be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OperationalError(
                describe_port_in_use(host, port, exc.strerror or str(exc))
            ) from None
