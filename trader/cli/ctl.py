"""``trader-ctl``: control a running trader over its local HTTP endpoint (127.0.0.1,
``metrics.port``).

    trader-ctl status                         [--port N | --config PATH]
    trader-ctl halt [--reason TEXT] [--cancel-orders]
    trader-ctl resume [--reason TEXT] [--force]
    trader-ctl cancel-all

``status`` prints the instance's state (trading state, queue depth, events/s, total balance in
USD, open orders, strategies). ``halt`` stops new orders (``--cancel-orders`` also cancels the
open ones), ``resume`` lifts the operator's halt (``--force``: every halt, the daily loss and a
pending reconciliation too), ``cancel-all`` cancels every open order. The instance answers 202
(accepted) to the commands and applies them on its main loop; check with ``status``.

The port is ``--port``, or ``metrics.port`` of ``--config`` (default ``config.yaml``, with the same
``TRADER__...`` environment overrides as trader itself). The commands send the API token:
``TRADER_API_TOKEN`` (or ``TRADER_API_TOKEN_FILE``), else the ``api-token`` file the instance
wrote next to its journal (found through the config).

Exit codes: 0 done, 1 the instance refused or failed, 2 usage or config error, 3 no answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from trader.config import Config, api_token_path, load_config
from trader.config.loader import read_text_file
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
        cfg = read_config(args.config) if args.port is None else None
        port = args.port if cfg is None else port_of(cfg, args.config)
        if args.command == "status":
            print(format_status(request(port, "GET", "/status")))
            return 0
        body: dict[str, Any] = {}
        if args.command == "halt":
            body = {"reason": args.reason or "operator", "cancel_orders": args.cancel_orders}
        elif args.command == "resume":
            body = {"reason": args.reason or "operator", "force": args.force}
        reply = request(port, "POST", COMMANDS[args.command], body, token_of(cfg, args.config))
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
    group.add_argument(
        "--config",
        default="config.yaml",
        help="read metrics.port from this config (default config.yaml)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", parents=[where], help="show the instance's state")
    halt = sub.add_parser("halt", parents=[where], help="stop new orders")
    halt.add_argument("--reason", help="why (logged and journaled)")
    halt.add_argument("--cancel-orders", action="store_true", help="also cancel open orders")
    resume = sub.add_parser("resume", parents=[where], help="allow new orders again")
    resume.add_argument("--reason", help="why (logged and journaled)")
    resume.add_argument(
        "--force",
        action="store_true",
        help="also clear the automatic halts (daily loss, reconciliation)",
    )
    sub.add_parser("cancel-all", parents=[where], help="cancel every open order")
    return parser.parse_args(argv)


def read_config(path: str) -> Config:
    """The config at ``path`` (with the environment's overrides and secrets)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CtlError(f"config error: {exc}", 2) from None


def port_of(cfg: Config, path: str) -> int:
    """``metrics.port`` of the config."""
    port = cfg.metrics.port
    if not port:
        raise CtlError(f"{path} sets no metrics.port (the HTTP endpoint is off); use --port", 2)
    return port


def token_of(cfg: Config | None, path: str) -> str:
    """The API token: ``TRADER_API_TOKEN``, else from the config at ``path`` (its
    ``TRADER_API_TOKEN_FILE``, else the instance's token file next to the journal)."""
    if os.environ.get("TRADER_API_TOKEN"):
        return os.environ["TRADER_API_TOKEN"]
    if cfg is None:
        if not Path(path).exists():
            raise CtlError(
                f"no API token: set TRADER_API_TOKEN, or give the instance's "
                f"--config ({path} not found)",
                2,
            )
        cfg = read_config(path)
    if cfg.secrets.api_token:
        return cfg.secrets.api_token
    token_path = api_token_path(cfg)
    try:
        token = read_text_file(token_path, 4096, "API token file").strip()
    except ConfigError as exc:
        raise CtlError(
            f"{exc} (it is written at the instance's first start; or set TRADER_API_TOKEN)", 2
        ) from None
    if not token:
        raise CtlError(f"API token file {token_path} is empty", 2)
    return token


def request(
    port: int, method: str, path: str, body: dict[str, Any] | None = None, token: str = ""
) -> Any:
    """One request to the instance; the decoded JSON reply (or text), or :class:`CtlError`."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method)
    if method == "POST":  # with or without a body: the endpoint refuses other POSTs (CSRF guard)
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(req, timeout=TIMEOUT_S) as resp:
            status, text = resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace").strip()
        raise CtlError(f"{method} {path}: HTTP {exc.code} {text}".rstrip(), 1) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CtlError(
            f"no answer on {HOST}:{port} ({reason}); is trader running with metrics.port set?", 3
        ) from None
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
