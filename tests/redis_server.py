"""A real ``redis-server`` for tests: a free port on 127.0.0.1, a temp dir, append-only file
with ``appendfsync always`` (an acknowledged write survives ``kill -9``). ``.ci/run`` installs
the binary; without it the tests that need it are skipped with the reason."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process that can be killed and started again on the same port and
    data."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        if REDIS_SERVER is None:
            pytest.skip(
                "redis-server is not installed here (CI installs it: see .ci/run; "
                "locally: apt-get install -y redis-server)"
            )
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The URL trader's config takes (no password: that comes from the environment)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start and wait until it answers."""
        cmd = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--logfile",
            "redis.log",
            "--daemonize",
            "no",
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.02)
        raise RuntimeError(
            f"redis-server on {self.port} did not start: "
            f"{(self.dir / 'redis.log').read_text()[-2000:]}"
        )

    def kill(self) -> None:
        """``kill -9``: no shutdown save, only what the append-only file already holds."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        """Stop it if running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def client(self):  # noqa: ANN201 - redis.Redis, imported lazily
        """A client with decoded responses."""
        import redis

        return redis.Redis(
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=2,
            socket_connect_timeout=1,
        )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started server, stopped after the test."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()
