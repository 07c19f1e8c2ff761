"""Reading a subprocess's output in tests."""

from __future__ import annotations

import subprocess
import threading


def read_rest(proc: subprocess.Popen, timeout: float = 10) -> str:
    """The rest of the output until the process exits (killed after ``timeout``). Not
    ``communicate(timeout=...)``: it reads the pipe beneath the text buffer and misses lines
    ``readline`` already buffered."""
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        out = proc.stdout.read()
        proc.wait()
    finally:
        killer.cancel()
    return out
