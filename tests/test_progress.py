"""Progress bars: replay and backtest, run as real subprocesses, draw a tqdm bar on a
pseudo-terminal and nothing when their output is piped."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

from tests.test_backtest import CONFIG, write_bars
from tests.test_replay import record_session, session_config

ROOT = Path(__file__).resolve().parent.parent
# tqdm's frame: "replay: 100%|██████████| 41.2k/41.2k [00:00<00:00, 1.2MB/s, 400 events]"
FINAL_FRAME = r"{desc}: 100%\|[█#]+\| \S+/\S+ \[[^\]]*, [\d,]+ events\]"


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The command lines, by name: a replay and two backtests (of a journal, of CSV bars)."""
    tmp = tmp_path_factory.mktemp("progress")
    journal, _ = record_session(tmp, steps=400)
    session = tmp / "session.yaml"
    session.write_text(yaml.safe_dump(session_config(tmp)))
    bars_config = tmp / "bars.yaml"
    bars_config.write_text(yaml.safe_dump(CONFIG))
    bars = write_bars(tmp / "btc.csv", [100 + (i % 17) for i in range(3000)])
    replay = [sys.executable, str(ROOT / "scripts" / "replay.py")]
    backtest = [sys.executable, str(ROOT / "scripts" / "backtest.py")]
    return {
        "replay": [*replay, str(journal), "--config", str(session)],
        "backtest-journal": [
            *backtest,
            str(journal),
            "--config",
            str(session),
            "--out",
            str(tmp / "report-journal"),
        ],
        "backtest-csv": [
            *backtest,
            f"BTC/USDT={bars}",
            "--config",
            str(bars_config),
            "--out",
            str(tmp / "report-csv"),
        ],
    }


def run_in_pty(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a 120-column pseudo-terminal; return its
    exit code and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.2)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal closed it
                break
            if not data:
                break
            out += data
        code = proc.wait(5)
    finally:
        proc.kill()
        os.close(master)
    return code, out.decode("utf-8", "replace")


@pytest.mark.parametrize("name", ["replay", "backtest-journal", "backtest-csv"])
def test_a_terminal_shows_a_bar_and_a_pipe_none(commands: dict[str, list[str]], name: str) -> None:
    desc = name.split("-")[0]
    code, shown = run_in_pty(commands[name])
    assert code == 0, shown
    assert re.search(FINAL_FRAME.format(desc=desc), shown), shown
    assert "\r" in shown  # redrawn in place

    piped = subprocess.run(commands[name], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert "%|" not in piped.stdout + piped.stderr and "\r" not in piped.stderr
    summary = "events by type" if desc == "replay" else "max drawdown"
    assert summary in shown and summary in piped.stdout


def test_no_progress_turns_the_bar_off_on_a_terminal(commands: dict[str, list[str]]) -> None:
    for name in ("replay", "backtest-csv"):
        code, shown = run_in_pty([*commands[name], "--no-progress"])
        assert code == 0, shown
        assert "%|" not in shown, shown
