"""The README and docs/ stay true: every command shown parses, every config key named exists.

Commands: each shell command in a fenced code block (every line of a ``bash`` block, the ``$ ``
lines of other blocks) or an inline code span that runs ``python scripts/X.py``, ``python -m
trader`` or a ``trader`` console script is run with ``--help`` instead of its arguments (keeping
``trader-ctl``'s subcommand) and must exit 0; each ``--option`` it shows must be in that help.

Config keys: a dotted key in an inline code span whose first part is a config section
(``journal.flush_interval_s``), and every ``TRADER__A__B`` variable anywhere, must name a field of
the schema (:class:`trader.config.Config`, walked through its dataclasses).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import re
import shlex
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trader.config import Config

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
CONSOLE_SCRIPTS = {"trader", "trader-ctl", "trader-replay", "trader-backtest"}
WITH_SUBCOMMAND = {"trader-ctl", "scripts/ctl.py"}
# Shown on purpose as the error a typo gives (docs/configuration.md); must stay an unknown key.
DELIBERATE_TYPOS = {"exchange.nmae", "TRADER__EXCHANGE__NMAE"}
PLACEHOLDERS = {"TRADER__SECTION__KEY"}
FILE_SUFFIXES = {"py", "json", "jsonl", "yaml", "yml", "csv", "png", "md", "service", "txt"}
SECTIONS = [f.name for f in dataclasses.fields(Config)]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
DOTTED = re.compile(r"(?<![\w./-])((?:%s)(?:\.[A-Za-z_]\w*)+)" % "|".join(SECTIONS))
ENV_VAR = re.compile(r"\bTRADER__[A-Z0-9_]*[A-Z0-9]\b")


# ------------------------------------------------------------------------------ config keys


def key_exists(parts: list[str], cls: Any = Config) -> bool:
    """Whether ``parts`` is a path through the config schema (below a mapping, any key)."""
    if not parts:
        return True
    if not dataclasses.is_dataclass(cls):
        return False
    hints = typing.get_type_hints(cls)
    field = next((f for f in dataclasses.fields(cls) if f.name == parts[0]), None)
    if field is None:
        return False
    hint = hints[field.name]
    origin = typing.get_origin(hint)
    if origin in (dict, collections.abc.Mapping, typing.Mapping):
        return len(parts) <= 2
    if origin is tuple:  # e.g. strategies: tuple[StrategyConfig, ...]
        hint = typing.get_args(hint)[0]
    return key_exists(parts[1:], hint)


def dotted_exists(key: str) -> bool:
    """``risk.max_order_notional`` -> whether the schema has it."""
    return key_exists(key.split("."))


def env_var_exists(var: str) -> bool:
    """``TRADER__RISK__MAX_ORDER_NOTIONAL`` -> whether the schema has the key (below a mapping
    the key's case is kept, and any key goes)."""
    return key_exists([p.lower() for p in var.removeprefix("TRADER__").split("__")])


def config_keys(text: str) -> Iterator[str]:
    """Dotted keys (in inline code) and ``TRADER__`` variables (anywhere) in ``text``."""
    prose = FENCE.sub("", text)
    for span in INLINE.findall(prose):
        for key in DOTTED.findall(span):
            if key.rsplit(".", 1)[1] not in FILE_SUFFIXES:
                yield key
    yield from ENV_VAR.findall(text)


def unknown_keys(text: str) -> list[str]:
    """The keys ``text`` mentions that the schema does not have."""
    bad = []
    for key in config_keys(text):
        if key in PLACEHOLDERS or key in DELIBERATE_TYPOS:
            continue
        ok = env_var_exists(key) if key.startswith("TRADER__") else dotted_exists(key)
        if not ok:
            bad.append(key)
    return bad


# --------------------------------------------------------------------------------- commands


def shell_lines(text: str) -> Iterator[str]:
    """Command lines: every line of a bash block, ``$ `` lines of other blocks, inline code."""
    for lang, block in FENCE.findall(text):
        block = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        for line in block.splitlines():
            if lang in ("bash", "sh", "shell"):
                yield line.removeprefix("$ ")
            elif line.startswith("$ "):
                yield line[2:]
    yield from INLINE.findall(FENCE.sub("", text))


def our_commands(line: str) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """(the program with its subcommand, the options shown) for each of our programs in ``line``."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # not shell (an unbalanced quote in prose)
        return
    segment: list[str] = []
    for word in [*words, "&&"]:
        if word not in ("&&", "||", ";", "|"):
            segment.append(word)
            continue
        found = program(segment)
        if found is not None:
            yield found
        segment = []


def program(words: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    """``(("trader-ctl", "halt"), ["--reason", "--cancel-orders"])`` for one simple command."""
    if (
        len(words) >= 2
        and words[0] in ("python", "python3")
        and re.fullmatch(r"scripts/(start|ctl|replay|backtest)\.py", words[1])
    ):
        prog, args = (words[1],), words[2:]
    elif words[:3] in (["python", "-m", "trader"], ["python3", "-m", "trader"]):
        prog, args = ("-m", "trader"), words[3:]
    elif words and words[0] in CONSOLE_SCRIPTS:
        prog, args = (words[0],), words[1:]
    else:
        return None
    if prog[0] in WITH_SUBCOMMAND and args and not args[0].startswith("-"):
        prog, args = (*prog, args[0]), args[1:]
    args = [a.lstrip("[") for a in args]  # [--config config.yaml]: an optional part
    return prog, [a.split("=", 1)[0] for a in args if a.startswith("--")]


def argv(prog: tuple[str, ...]) -> list[str]:
    """The command line that runs ``prog`` here."""
    if prog[0] == "-m":
        return [sys.executable, *prog]
    if prog[0].startswith("scripts/"):
        return [sys.executable, str(ROOT / prog[0]), *prog[1:]]
    exe = BIN / prog[0]
    assert exe.exists(), f"{exe} missing: install the package (pip install -e .)"
    return [str(exe), *prog[1:]]


def doc_commands() -> dict[tuple[str, ...], dict[str, set[str]]]:
    """Each program shown -> each option shown with it -> where."""
    found: dict[tuple[str, ...], dict[str, set[str]]] = {}
    for doc in DOCS:
        for line in shell_lines(doc.read_text(encoding="utf-8")):
            for prog, options in our_commands(line):
                shown = found.setdefault(prog, {})
                for opt in ["", *options]:
                    shown.setdefault(opt, set()).add(doc.name)
    return found


def unknown_options(prog: tuple[str, ...], options: list[str]) -> list[str] | str:
    """Options ``prog --help`` does not list, or the help's error when it does not exit 0."""
    res = subprocess.run(
        [*argv(prog), "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    if res.returncode != 0:
        return f"exit {res.returncode}: {res.stderr.strip()}"
    return [o for o in options if o and not re.search(re.escape(o) + r"(?![\w-])", res.stdout)]


COMMANDS = doc_commands()


def test_the_docs_show_our_commands() -> None:
    shown = {prog[0] for prog in COMMANDS}
    assert CONSOLE_SCRIPTS <= shown, CONSOLE_SCRIPTS - shown
    assert "scripts/start.py" in shown


@pytest.mark.parametrize("prog", sorted(COMMANDS), ids=" ".join)
def test_every_command_shown_parses(prog: tuple[str, ...]) -> None:
    options = COMMANDS[prog]
    assert unknown_options(prog, list(options)) == [], {o: sorted(options[o]) for o in options}


def test_every_config_key_mentioned_exists() -> None:
    bad = {doc.name: unknown_keys(doc.read_text(encoding="utf-8")) for doc in DOCS}
    assert {name: keys for name, keys in bad.items() if keys} == {}


def test_the_docs_mention_config_keys() -> None:
    keys = {k for doc in DOCS for k in config_keys(doc.read_text(encoding="utf-8"))}
    assert {"journal.flush_interval_s", "metrics.port", "TRADER__GENERAL__LOG_LEVEL"} <= keys


def anchors(doc: Path) -> set[str]:
    """The ``#anchor`` of each heading of ``doc``, as GitHub makes them."""
    heads = re.findall(r"^#+ (.+)$", FENCE.sub("", doc.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_every_link_between_the_pages_resolves() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"\w+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists() or (anchor and anchor not in anchors(dest)):
                broken.append(f"{doc.name}: {target}")
    assert broken == []


# ------------------------------------------------------------------- the checks catch typos


def test_a_misspelled_key_is_reported() -> None:
    text = (
        "Set `journal.flush_interval_s` and `risk.max_order_notional: 5`, "
        "`paper.starting_balances.BTC`, `strategies.params.x`, `exchange.urls.ws`, "
        "`trader/journal.py`, `TRADER__PAPER__STARTING_BALANCES__BTC=1`; but not "
        "`journal.flush_intervl_s`, `risk.max_order_usd`, `exchange.urls.wss` or\n"
        "```bash\nTRADER__RISK__MAX_ORDR_NOTIONAL=5 trader\n```\n"
    )
    assert unknown_keys(text) == [
        "journal.flush_intervl_s",
        "risk.max_order_usd",
        "exchange.urls.wss",
        "TRADER__RISK__MAX_ORDR_NOTIONAL",
    ]
    for typo in DELIBERATE_TYPOS:  # the docs' example of an error stays an error
        assert not (env_var_exists(typo) if typo.startswith("TRADER__") else dotted_exists(typo))


def test_a_misspelled_command_or_option_is_reported() -> None:
    text = (
        "```bash\npython scripts/ctl.py hlt --reason x   # typo\n"
        "trader-replay data/journal \\\n    --untill 5\n```\n"
        "and `trader --check-config`\n"
    )
    shown = [found for line in shell_lines(text) for found in our_commands(line)]
    assert shown == [
        (("scripts/ctl.py", "hlt"), ["--reason"]),
        (("trader-replay",), ["--untill"]),
        (("trader",), ["--check-config"]),
    ]
    assert "invalid choice" in unknown_options(("scripts/ctl.py", "hlt"), ["--reason"])
    assert unknown_options(("trader-replay",), ["--untill", "--until"]) == ["--untill"]
    assert unknown_options(("trader",), ["--check-config"]) == []
