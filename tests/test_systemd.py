"""systemd: the notify protocol on a real unix datagram socket, the watchdog stopping when the
loop is stuck, the unit file, and logs without timestamps under journald."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_service
from tests.subproc import read_rest
from tests.test_start import fast_config, wait_for
from trader.app import App
from trader.bus import Bus
from trader.clock import LiveClock
from trader.config import LogFormat, config_from_dict
from trader.engine import Engine, Registry
from trader.events import Heartbeat
from trader.logsetup import setup_logging
from trader.stats import Stats
from trader.systemd import Notifier

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "trader.service"


class NotifyListener:
    """The systemd side: a bound datagram socket collecting (time, message) pairs."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind_to = b"\0" + address[1:].encode() if address.startswith("@") else address
        self.sock.bind(bind_to)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def collect(self, until: float) -> None:
        """Receive until the monotonic time ``until``."""
        while time.monotonic() < until:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, line: str, timeout: float = 20) -> None:
        """Receive until a message containing ``line`` arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line in m.split("\n") for _, m in self.messages):
                return
            self.collect(time.monotonic() + 0.05)
        raise AssertionError(f"{line} not received: {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[NotifyListener]:
    listener = NotifyListener(f"@trader-test-{uuid.uuid4().hex}")
    yield listener
    listener.close()


@pytest.fixture
def path_listener() -> Iterator[NotifyListener]:
    # A short folder: unix socket paths are limited to 107 bytes, pytest's tmp_path can be longer.
    folder = tempfile.mkdtemp(prefix="trader-")
    listener = NotifyListener(os.path.join(folder, "notify"))
    yield listener
    listener.close()
    shutil.rmtree(folder)


def kinds(messages: list[tuple[float, str]]) -> list[str]:
    """Each message's first line's key: READY, WATCHDOG, STATUS, STOPPING."""
    return [m.split("\n")[0].split("=")[0] for _, m in messages]


def test_start_script_sends_ready_watchdog_status_then_stopping(
    tmp_path: Path, abstract_listener: NotifyListener
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env.update(NOTIFY_SOCKET=abstract_listener.address, WATCHDOG_USEC="200000")
    proc = start_service(fast_config(tmp_path), ROOT, env)
    try:
        abstract_listener.wait_for("READY=1")
        abstract_listener.collect(time.monotonic() + 1.2)
        proc.send_signal(signal.SIGTERM)
        abstract_listener.wait_for("STOPPING=1", timeout=5)
        out, _ = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    seen = kinds(abstract_listener.messages)
    assert seen[0] == "READY", seen
    ready = abstract_listener.messages[0][1]
    assert ready.startswith("READY=1\nSTATUS=trading active | queue ")
    stopping = seen.index("STOPPING")
    assert seen.count("STOPPING") == 1 and "STOPPING" not in seen[:stopping]
    between = seen[1:stopping]
    # 1.2 s at a 0.1 s watchdog interval, STATUS every 0.5 s (general.stats_interval_s)
    assert between.count("WATCHDOG") >= 6 and between.count("STATUS") >= 2, seen
    assert "WATCHDOG" not in seen[stopping:]  # no pings once shutdown began
    status = next(m for _, m in abstract_listener.messages if m.startswith("STATUS="))
    assert status.startswith("STATUS=trading active | queue ") and status.endswith(" ev/s")
    assert "Traceback" not in out


def test_a_watchdog_kill_prints_every_thread_s_stack(tmp_path: Path) -> None:
    """systemd's watchdog sends SIGABRT: the journal then shows where the loop was stuck."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    proc = start_service(fast_config(tmp_path), ROOT, env)
    try:
        wait_for(proc, "started trader")
        wait_for(proc, "STATS ")  # logged by a main-loop timer: the main loop runs
        proc.send_signal(signal.SIGABRT)
        out = read_rest(proc)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in out and "most recent call first" in out
    assert 'app.py", line' in out and "in run" in out  # the main loop's frames


def test_watchdog_pings_stop_while_a_handler_blocks_the_loop(path_listener: NotifyListener) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": path_listener.address, "WATCHDOG_USEC": "40000"})
    assert notifier.watchdog_interval_s == 0.02
    stats = Stats()
    bus = Bus(100, 1.0, stats)
    registry = Registry()
    engine = Engine(bus, registry, stats, LiveClock(), get_timeout=0.01)
    engine.every(notifier.watchdog_interval_s, notifier.watchdog)
    release, entered = threading.Event(), threading.Event()

    def stuck(_ev: Heartbeat) -> None:
        entered.set()
        release.wait(2)

    registry.register(Heartbeat, stuck)
    stop = threading.Event()
    loop = threading.Thread(target=engine.run, args=(stop,), name="test-loop")
    loop.start()
    try:
        path_listener.collect(time.monotonic() + 0.2)
        bus.publish(Heartbeat(ts_event=1, ts_recv=1, queue_depth=0, dispatched=0))
        assert entered.wait(2)
        blocked_at = time.monotonic()
        path_listener.collect(blocked_at + 0.5)
        released_at = time.monotonic()
        release.set()
        path_listener.collect(released_at + 0.2)
    finally:
        release.set()
        stop.set()
        loop.join(2)
        notifier.close()
    times = [t for t, m in path_listener.messages if m == "WATCHDOG=1"]
    assert sum(t < blocked_at for t in times) >= 3  # pinging while the loop ran
    # stuck: at most one ping already in flight, then silence until released
    assert sum(blocked_at + 0.05 < t < released_at for t in times) == 0, times
    assert sum(t > released_at for t in times) >= 3  # and pinging again


@pytest.mark.parametrize("reconcile", [True, False])
def test_ready_waits_for_the_start_up_reconciliation(
    monkeypatch: pytest.MonkeyPatch, path_listener: NotifyListener, reconcile: bool, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_listener.address)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    app = App(
        config_from_dict(
            {
                "reconcile": {"enabled": reconcile},
                "poller": {"balances_every_s": 0, "open_orders_every_s": 0},
                "journal": {"path": str(tmp_path / "journal")},
            },
            {},
        )
    )
    app.start()
    loop = threading.Thread(target=app.run, name="test-loop")
    try:
        path_listener.collect(time.monotonic() + 0.1)
        before_loop = kinds(path_listener.messages)
        loop.start()
        path_listener.wait_for("READY=1", timeout=5)
        path_listener.wait_for("WATCHDOG=1", timeout=5)
    finally:
        app.request_stop("test")
        if loop.is_alive():
            loop.join(5)
        app.shutdown()
    if reconcile:  # the round completes on the main loop: nothing before it runs
        assert before_loop == [] and app.stats.dispatched["ReconciliationCompleted"] >= 1
    else:
        assert before_loop[:1] == ["READY"]
    ready = next(m for _, m in path_listener.messages if m.startswith("READY=1"))
    assert "STATUS=trading active" in ready
    assert kinds(path_listener.messages)[0] == "READY"  # no ping or status before READY


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval_s is None
    assert notifier.ready("x") is False and notifier.watchdog() is False
    assert notifier.stopping() is False
    notifier.close()


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_pid() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}
    assert Notifier(env).watchdog_interval_s == 15.0
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 15.0
    assert Notifier({**env, "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert Notifier({**env, "WATCHDOG_USEC": "junk"}).watchdog_interval_s is None


def test_a_vanished_socket_is_logged_once_and_never_raises(caplog) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": f"/tmp/no-such-dir-{uuid.uuid4().hex}/notify"})
    with caplog.at_level(logging.WARNING):
        assert notifier.watchdog() is False and notifier.watchdog() is False
    assert notifier.failures == 2
    assert sum("systemd notify failed" in r.getMessage() for r in caplog.records) == 1


def test_unit_file_has_the_required_settings() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/trader",
        "KillSignal=SIGTERM",
        "User=trader",
        "EnvironmentFile=/etc/trader/trader.env",
    ):
        assert line in text.splitlines(), line
    for key in ("WatchdogSec=", "TimeoutStopSec="):
        assert any(l.startswith(key) and l[len(key) :].strip() for l in text.splitlines()), key


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (not a systemd system)",
)
def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout and this interpreter.
    text = UNIT.read_text().replace("/opt/trader/.venv/bin/python", sys.executable)
    unit = tmp_path / "trader.service"
    unit.write_text(text.replace("/opt/trader/", f"{ROOT}/"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30
    )
    problems = [l for l in (result.stdout + result.stderr).splitlines() if "trader.service" in l]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (not a systemd system)",
)
def test_unit_file_is_rated_2_0_or_lower_by_systemd_analyze_security(tmp_path: Path) -> None:
    unit = tmp_path / "trader.service"
    unit.write_text(UNIT.read_text())
    # --threshold=20: exit non-zero above an exposure of 2.0.
    result = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--threshold=20",
            "--no-pager",
            str(unit),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    out = result.stdout + result.stderr
    score = re.search(r"Overall exposure level for trader.service: (\d+\.\d)", out)
    assert score, out
    assert float(score.group(1)) <= 2.0 and result.returncode == 0, out


@pytest.mark.parametrize("journal", ["JOURNAL_STREAM", "INVOCATION_ID", None])
def test_logs_drop_their_timestamp_under_journald(
    monkeypatch, capsys, restore_logging, journal: str | None
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    if journal:
        monkeypatch.setenv(journal, "8:12345" if journal == "JOURNAL_STREAM" else uuid.uuid4().hex)
    setup_logging("INFO")
    logging.getLogger("trader").info("hello journal")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("trader: hello journal")
    if journal:
        assert line.startswith("INFO    MainThread")
    else:
        assert line[:12].count(":") == 2 and line[8] == "."  # 19:38:39.747


def test_json_logs_keep_their_time_under_journald(monkeypatch, capsys, restore_logging) -> None:
    """A log shipper reading the journal's JSON messages still wants each record's own time."""
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging("INFO", [], LogFormat.JSON)
    logging.getLogger("trader").info("hello journal")
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["message"] == "hello journal" and record["time"].endswith("+00:00")
