"""``trader-ctl``: control a running trader over its local HTTP endpoint (127.0.0.1,
``metrics.port``).

    trader-ctl status                         [--port N | --config PATH]
    trader-ctl halt [--reason TEXT] [--cancel-orders]
    trader-ctl resume [--reason TEXT]
    trader-ctl cancel-all

``status`` prints the instance's state (trading state, queue depth, events/s, total balance in
USD, open orders, strategies). ``halt`` stops new orders (``--cancel-orders`` also cancels the
open ones), ``resume`` allows them again, ``cancel-all`` cancels every open order. The instance
answers 202 (accepted) to the commands and applies them on its main loop; check with ``status``.

The port is ``--port``, or ``metrics.port`` of ``--config`` (default ``config.yaml``, with the same
``TRADER__...`` environment overrides as trader itself).

Exit codes: 0 done, 1 the instance refused or failed, 2 usage or config error, 3 no answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from trader.config import load_config
from trader.errors import ConfigError

HOST = "127.0.0.1"
TIMEOUT_S = 5.0
COMMANDS = {"halt": "/halt", "resume": "/resume", "cancel-all": "/cancel-all"}


class CtlError(Exception):
    """A failure with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse_args(argv)
    try:
        port = args.port if args.port is not None else port_from_config(args.config)
        if args.command == "status":
            print(format_status(request(port, "GET", "/status")))
            return 0
        body: dict[str, Any] | None = None
        if args.command == "halt":
            body = {"reason": args.reason or "operator", "cancel_orders": args.cancel_orders}
        elif args.command == "resume" and args.reason:
            body = {"reason": args.reason}
        reply = request(port, "POST", COMMANDS[args.command], body)
        print(f"{args.command}: accepted" + (f" ({reply})" if reply else ""))
        return 0
    except CtlError as exc:
        print(f"ctl: {exc}", file=sys.stderr)
        return exc.code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="Control a running trader instance.")
    where = argparse.ArgumentParser(add_help=False)
    group = where.add_mutually_exclusive_group()
    group.add_argument("--port", type=int, help="the instance's metrics.port")
    group.add_argument("--config", default="config.yaml",
                       help="read metrics.port from this config (default config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", parents=[where], help="show the instance's state")
    halt = sub.add_parser("halt", parents=[where], help="stop new orders")
    halt.add_argument("--reason", help="why (logged and journaled)")
    halt.add_argument("--cancel-orders", action="store_true", help="also cancel open orders")
    resume = sub.add_parser("resume", parents=[where], help="allow new orders again")
    resume.add_argument("--reason", help="why (logged and journaled)")
    sub.add_parser("cancel-all", parents=[where], help="cancel every open order")
    return parser.parse_args(argv)


def port_from_config(path: str) -> int:
    """``metrics.port`` of the config at ``path``."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise CtlError(f"config error: {exc}", 2) from None
    metrics = getattr(cfg, "metrics", None)
    port = getattr(metrics, "port", None)
    if not port:
        raise CtlError(f"{path} sets no metrics.port (the HTTP endpoint is off); use --port", 2)
    return int(port)


def request(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the instance; the decoded JSON reply (or text), or :class:`CtlError`."""
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data or None, method=method)
    if method == "POST":  # with or without a body: the endpoint refuses other POSTs (CSRF guard)
        req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(req, timeout=TIMEOUT_S) as resp:
            status, text = resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace").strip()
        raise CtlError(f"{method} {path}: HTTP {exc.code} {text}".rstrip(), 1) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CtlError(f"no answer on {HOST}:{port} ({reason}); is trader running with "
                       "metrics.port set?", 3) from None
    expected = 200 if method == "GET" else 202
    if status != expected:
        raise CtlError(f"{method} {path}: HTTP {status} (expected {expected}) {text}", 1)
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text.strip()


def format_status(status: Any) -> str:
    """``/status`` as aligned ``key: value`` lines (nested values as compact JSON)."""
    if not isinstance(status, dict):
        return str(status)
    width = max((len(k) for k in status), default=0)
    lines = []
    for key, value in status.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(", ", ": "))
        lines.append(f"{key + ':':<{width + 1}} {value}")
    return "\n".join(lines)
