"""scripts/ctl.py against a local stand-in for trader's HTTP control endpoint.

The stand-in implements the documented API (the ``stats`` branch builds the real one):
``GET /status`` -> 200 JSON; ``POST /halt`` (optional JSON body ``{"reason", "cancel_orders"}``),
``POST /resume``, ``POST /cancel-all`` -> 202.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.redis_server import free_port
from trader.config import Config

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ctl.py"
_spec = importlib.util.spec_from_file_location("ctl", SCRIPT)
ctl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ctl)

STATUS = {
    "trading_state": "active",
    "queue_depth": 3,
    "events_per_s": 120.5,
    "total_balance_usd": "10000.00",
    "open_orders": 1,
    "strategies": [{"id": "ma_cross:BTC/USDT", "enabled": True}],
}


class StandIn(ThreadingHTTPServer):
    """Records every request; answers like trader does (or with ``fail`` as the status)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str, bytes]] = []
        self.fail: int | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def _answer(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(("GET", self.path, b""))
        if self.server.fail:
            self._answer(self.server.fail, {"error": "boom"})
        elif self.path == "/status":
            self._answer(200, STATUS)
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(("POST", self.path, body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"error": "send the token"})
        elif self.server.fail:
            self._answer(self.server.fail, {"error": "boom"})
        elif self.path in ("/halt", "/resume", "/cancel-all"):
            self._answer(202, {"accepted": self.path.strip("/")})
        else:
            self._answer(404, {"error": "not found"})

    def log_message(self, *args: object) -> None:
        pass


TOKEN = "ctl-test-token"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADER_API_TOKEN", TOKEN)


@pytest.fixture
def server() -> Iterator[StandIn]:
    srv = StandIn()
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), name="stand-in", daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(2)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = ctl.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_prints_every_field(server: StandIn, capsys) -> None:
    code, out, _ = run(capsys, "status", "--port", str(server.port))
    assert code == 0
    assert server.requests == [("GET", "/status", b"")]
    lines = out.splitlines()
    assert lines[0] == "trading_state:     active"
    assert "queue_depth:       3" in lines and "total_balance_usd: 10000.00" in lines
    assert 'strategies:        [{"id": "ma_cross:BTC/USDT", "enabled": true}]' in lines


def test_halt_sends_reason_and_cancel_orders(server: StandIn, capsys) -> None:
    code, out, _ = run(
        capsys,
        "halt",
        "--reason",
        "exchange maintenance",
        "--cancel-orders",
        "--port",
        str(server.port),
    )
    assert code == 0 and out.startswith("halt: accepted")
    method, path, body = server.requests[0]
    assert (method, path) == ("POST", "/halt")
    assert json.loads(body) == {"reason": "exchange maintenance", "cancel_orders": True}
    run(capsys, "halt", "--port", str(server.port))
    assert json.loads(server.requests[1][2]) == {"reason": "operator", "cancel_orders": False}


def test_resume_and_cancel_all(server: StandIn, capsys) -> None:
    assert run(capsys, "resume", "--port", str(server.port))[0] == 0
    assert run(capsys, "resume", "--reason", "fixed", "--port", str(server.port))[0] == 0
    assert run(capsys, "cancel-all", "--port", str(server.port))[0] == 0
    assert run(capsys, "resume", "--force", "--port", str(server.port))[0] == 0
    assert server.requests == [
        ("POST", "/resume", b'{"reason": "operator", "force": false}'),
        ("POST", "/resume", b'{"reason": "fixed", "force": false}'),
        ("POST", "/cancel-all", b"{}"),
        ("POST", "/resume", b'{"reason": "operator", "force": true}'),
    ]


def test_the_token_comes_from_the_instances_token_file(
    server: StandIn, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADER_API_TOKEN")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"metrics: {{port: {server.port}}}\njournal: {{path: {tmp_path / 'data' / 'journal'}}}\n"
    )
    code, _, err = run(capsys, "halt", "--config", str(cfg))
    assert code == 2 and "api-token" in err and "TRADER_API_TOKEN" in err  # not written yet
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "api-token").write_text(TOKEN + "\n")
    assert run(capsys, "halt", "--config", str(cfg))[0] == 0
    (tmp_path / "data" / "api-token").write_text("wrong\n")
    code, _, err = run(capsys, "halt", "--config", str(cfg))
    assert code == 1 and "HTTP 401" in err


@pytest.mark.parametrize("status", [404, 500, 503])
def test_an_error_answer_exits_1_with_the_status(server: StandIn, capsys, status: int) -> None:
    server.fail = status
    code, _, err = run(capsys, "halt", "--port", str(server.port))
    assert code == 1 and f"HTTP {status}" in err and "boom" in err


def test_nothing_listening_exits_3(capsys) -> None:
    port = free_port()
    code, _, err = run(capsys, "status", "--port", str(port))
    assert code == 3
    assert f"no answer on 127.0.0.1:{port}" in err and "is trader running" in err


def test_port_from_the_config(server: StandIn, capsys, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    if "metrics" in {f.name for f in dataclasses.fields(Config)}:
        cfg.write_text(f"metrics: {{port: {server.port}}}\n")
        code, out, err = run(capsys, "status", "--config", str(cfg))
        assert code == 0 and "trading_state:" in out, err
    else:  # the metrics section (stats branch) is not merged yet
        cfg.write_text("general: {name: x}\n")
        code, _, err = run(capsys, "status", "--config", str(cfg))
        assert code == 2 and "sets no metrics.port" in err and "--port" in err
    cfg.write_text("general: {nmae: x}\n")
    code, _, err = run(capsys, "status", "--config", str(cfg))
    assert code == 2 and "unknown key 'general.nmae'" in err


def test_the_script_runs_from_the_command_line(server: StandIn) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER")}
    env["TRADER_API_TOKEN"] = TOKEN
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "status", "--port", str(server.port)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "trading_state:" in out.stdout
    usage = subprocess.run(
        [sys.executable, str(SCRIPT), "explode"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
