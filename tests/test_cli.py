"""The console entry points (``setup.cfg``) and ``python -m trader``, as installed in the venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Each command and an option only its own parser has.
COMMANDS = {
    "trader": "--check-config",
    "trader-ctl": "cancel-all",
    "trader-replay": "--until",
    "trader-backtest": "--sample-s",
}


def help_of(argv: list[str]) -> str:
    """``argv --help``'s output; it must exit 0."""
    res = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return res.stdout


def after_usage(help_text: str) -> str:
    """The help without its usage lines (they name the program, and wrap by its length)."""
    return help_text.split("\n\n", 1)[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_console_script_help(name: str) -> None:
    exe = BIN / name
    assert exe.exists(), f"{exe} missing: install the package (pip install -e .)"
    out = help_of([str(exe)])
    assert out.startswith(f"usage: {name} ")
    assert COMMANDS[name] in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_script_in_a_checkout_is_the_same_program(name: str) -> None:
    script = ROOT / "scripts" / f"{name.removeprefix('trader-') if '-' in name else 'start'}.py"
    installed = after_usage(help_of([str(BIN / name)]))
    assert after_usage(help_of([sys.executable, str(script)])) == installed


def test_python_m_trader_is_the_trader_command() -> None:
    out = help_of([sys.executable, "-m", "trader"])
    assert out.startswith("usage: python -m trader ")
    assert after_usage(out) == after_usage(help_of([str(BIN / "trader")]))
