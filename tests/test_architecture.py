"""The import rules, checked from the source: every import of every module under ``trader/``,
including imports inside functions (lazy ones) and ``TYPE_CHECKING`` blocks.

Imports point down: the model at the bottom, then events, store, exchange, feeds, trading, and
the wiring on top. A failure prints the offending import chain.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trader"

# (importer prefix, forbidden prefixes, why)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("trader.model", ("trader",), "the model is the ground floor: stdlib only"),
    ("trader.errors", ("trader",), "errors are imported by config: stdlib only"),
    ("trader.codec", ("trader",), "the codec serves every layer: stdlib only"),
    (
        "trader.config",
        ("trader",),
        "config is plain data: nothing from trader but the errors and the codec",
    ),
    ("trader.events", ("trader.feeds", "trader.exchange", "trader.trading"), "the core"),
    ("trader.bus", ("trader.feeds", "trader.exchange", "trader.trading"), "the core"),
    ("trader.engine", ("trader.feeds", "trader.exchange", "trader.trading"), "the core"),
    ("trader.feeds", ("trader.store", "trader.trading"), "feeds publish events, nothing more"),
    ("trader.store", ("trader.exchange", "trader.trading"), "the store sits below them"),
    ("trader.exchange", ("trader.trading",), "the exchange sits below trading"),
]
ALLOWED: dict[str, tuple[str, ...]] = {"trader.config": ("trader.errors", "trader.codec")}
CCXT_OWNER = "trader.exchange"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a (possibly relative) ``from`` import names."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path, modules: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import anywhere in the file (functions and
    ``TYPE_CHECKING`` blocks included). ``from pkg import name`` counts as importing
    ``pkg.name`` when that is a module, else ``pkg``."""
    name = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, path.name == "__init__.py", node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in modules else target), node.lineno


def build_graph() -> dict[str, dict[str, int]]:
    """trader module -> {imported module (trader or third-party): first line}."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(path, modules):
            edges.setdefault(target, line)
        graph[name] = edges
    return graph


GRAPH = build_graph()


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def where(graph: dict[str, dict[str, int]], src: str, dst: str) -> str:
    return f"{src} -> {dst} ({module_path(src)}:{graph[src][dst]})"


def module_path(module: str) -> str:
    path = ROOT / Path(*module.split("."))
    file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return str(file.relative_to(ROOT))


def violations(graph: dict[str, dict[str, int]]) -> list[str]:
    """Every import that breaks a rule, with the line it is on."""
    found = []
    for src, edges in sorted(graph.items()):
        for dst in edges:
            for prefix, forbidden, why in RULES:
                if not within(src, prefix) or within(dst, prefix):
                    continue
                if any(within(dst, a) for a in ALLOWED.get(prefix, ())):
                    continue
                if any(within(dst, f) for f in forbidden):
                    found.append(f"{where(graph, src, dst)}: {why}")
            if within(dst, "ccxt") and not within(src, CCXT_OWNER):
                found.append(f"{where(graph, src, dst)}: only {CCXT_OWNER} imports ccxt")
    return found


def package_edge(src: str, dst: str) -> bool:
    """A package's ``__init__`` importing its own submodules (a re-export) is not a cycle:
    importing the submodule loads the package first, but the package does not need to be
    complete for it."""
    return within(dst, src) and (ROOT / Path(*src.split("."))).is_dir()


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle among trader modules, as a chain, or None."""
    internal = {
        src: [d for d in edges if d in graph and not package_edge(src, d)]
        for src, edges in graph.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(internal[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(internal):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def lazy_imports() -> Iterator[tuple[str, str, int]]:
    """(module, imported module, line) of every import that is not at a module's top level
    (inside a function, or under ``if TYPE_CHECKING``)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in sorted(files.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and id(node) not in top:
                yield from ((name, a.name, node.lineno) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and id(node) not in top:
                target = resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    yield name, (sub if sub in files else target), node.lineno


def test_the_graph_holds_lazy_imports() -> None:
    """Imports inside functions are edges too, or a lazy import could hide a cycle."""
    lazy = list(lazy_imports())
    assert lazy, "no lazy import found: the test would not know whether it sees them"
    for src, dst, _ in lazy:
        assert dst in GRAPH[src], (src, dst)


# What a lazy import may defer: a heavy or optional dependency loaded only when it is used.
LAZY_OK = (
    "trader.exchange.ccxt_gateway",
    "trader.exchange.ccxt_client",
    "trader.store.redis",
    "matplotlib",
    "ccxt",
    "redis",
    "apprise",
)


def test_lazy_imports_only_defer_heavy_dependencies() -> None:
    """No import is made lazy to dodge a cycle: each one defers ccxt, redis or matplotlib."""
    found = [
        f"{src} -> {dst} ({module_path(src)}:{line})"
        for src, dst, line in lazy_imports()
        if not any(within(dst, ok) for ok in LAZY_OK)
    ]
    assert not found, "lazy imports that are not for a heavy dependency:\n  " + "\n  ".join(found)


def test_no_import_breaks_a_layer_rule() -> None:
    found = violations(GRAPH)
    assert not found, "imports against the layering:\n  " + "\n  ".join(found)


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + "\n  -> ".join(
        where(GRAPH, a, b) for a, b in zip(cycle, cycle[1:], strict=False)
    )


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ("trader.model.fills", "trader.store.memory"),
        ("trader.config.schema", "trader.exchange.ccxt_client"),
        ("trader.feeds.simulated", "trader.store.memory"),
        ("trader.store.memory", "trader.trading.portfolio"),
        ("trader.events", "trader.trading.strategy"),
        ("trader.exchange.paper", "trader.trading.risk"),
        ("trader.trading.risk", "ccxt"),
    ],
)
def test_the_checks_catch_a_forbidden_import(src: str, dst: str) -> None:
    """Each rule fails when a forbidden import is added (and the cycle check sees it)."""
    graph = {k: dict(v) for k, v in GRAPH.items()}
    graph[src][dst] = 1
    assert any(f"{src} -> {dst}" in v for v in violations(graph))


def test_the_cycle_check_reports_the_chain() -> None:
    graph = {k: dict(v) for k, v in GRAPH.items()}
    graph["trader.model.orders"]["trader.store.memory"] = 1
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert "trader.model.orders" in cycle and "trader.store.memory" in cycle
