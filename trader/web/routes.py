"""The dashboard's GET routes, answered for :mod:`trader.httpapi`.

    GET /                  the page (static/index.html)
    GET /static/<file>     its script, style sheet and the vendored lightweight-charts build
    GET /api/dashboard     the JSON document (``?full=1``: with the whole chart history)

Read-only: every state-changing action stays a POST of the operator API. The static files are
read once at start from the package (a fixed table: no path from a request reaches the disk).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qs

from trader.web.dashboard import Dashboard

_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer: body, content type, and whether a browser may cache it."""

    body: bytes
    content_type: str
    cache: bool = False


def static_files() -> dict[str, bytes]:
    """``relative path -> content`` of every file under ``trader/web/static``."""
    root = resources.files("trader.web") / "static"
    out: dict[str, bytes] = {}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                stack.append((entry, f"{prefix}{entry.name}/"))
            elif entry.name.rpartition(".")[2] in _TYPES:
                out[prefix + entry.name] = entry.read_bytes()
    return out


class WebRoutes:
    """Answers the dashboard's paths; :meth:`get` returns None for any other path."""

    def __init__(self, dashboard: Dashboard) -> None:
        self._dashboard = dashboard
        self._files = static_files()

    def get(self, path: str, query: str) -> Response | None:
        """The answer to ``GET path?query``, or None when the path is not the dashboard's."""
        if path == "/":
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/") :])
        if path == "/api/dashboard":
            full = parse_qs(query).get("full", ["0"])[0] == "1"
            doc = self._dashboard.document(full)
            return Response(json.dumps(doc, separators=(",", ":")).encode(), "application/json")
        return None

    def _static(self, name: str) -> Response | None:
        body = self._files.get(name)
        if body is None:
            return None
        ctype = _TYPES[name.rpartition(".")[2]]
        return Response(body, ctype, cache=name.startswith("vendor/"))
