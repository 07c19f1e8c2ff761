"""Hostile configs: every one gives exit 2 and ONE line naming the key or the file, never a
traceback or a hang. Hand-written files (encodings, devices, FIFOs, depth, alias bombs,
duplicate keys, NaN/Infinity, wrong top-level types, NUL bytes, absurd values) and hypothesis
strategies over the schema; in-process through the CLI's ``main``, a few as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_metrics import free_port
from trader.cli.start import main as start_main
from trader.config import Config, config_from_dict
from trader.config.loader import _leaves
from trader.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
LEAVES = dict(_leaves(Config, ""))
FLOAT_KEYS = sorted(k for k, tp in LEAVES.items() if tp is float)
TIME_BOUND_S = 2.0


@pytest.fixture(autouse=True)
def no_trader_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("TRADER")]:
        monkeypatch.delenv(var)


def check(capsys: pytest.CaptureFixture, path: Path | str, *names: str, code: int = 2) -> str:
    """``--check-config`` on ``path`` exits ``code`` with one line naming one of ``names``."""
    t0 = time.monotonic()
    got = start_main(["--config", str(path), "--check-config"])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert any(name in lines[0] for name in names), (names, lines[0])
    assert len(lines[0]) < 400, lines[0]
    assert elapsed < TIME_BOUND_S
    return lines[0]


def nested(key: str, value: Any) -> dict:
    doc: Any = value
    for part in reversed(key.split(".")):
        doc = {part: doc}
    return doc


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e999"])
def test_nan_and_infinity_are_refused_for_every_float_key_in_the_file_and_the_env(
    key: str, value: str
) -> None:
    section, _, leaf = key.partition(".")
    text = f"{section}:\n  {leaf}: {value}\n" if leaf else f"{section}: {value}\n"
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        config_from_dict(yaml.safe_load(text), {})
    var = "TRADER__" + key.replace(".", "__").upper()
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        config_from_dict({}, {var: value})


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

HOSTILE: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "latin-1": ("general: {name: caf\xe9}\n".encode("latin-1"), ("not UTF-8",)),
    "utf-16": ("general: {name: x}\n".encode("utf-16"), ("not UTF-8",)),
    "binary": (bytes(range(256)), ("not UTF-8",)),
    "deep-flow": (b"general: " + b"[" * 600 + b"]" * 600 + b"\n", ("nested deeper",)),
    "deep-block": ("".join(f"{'  ' * i}k{i}:\n" for i in range(600)).encode(), ("nested deeper",)),
    "alias-bomb": (ALIAS_BOMB.encode(), ("aliases",)),
    "alias": (b"general: &g {name: x}\nexchange: *g\n", ("aliases",)),
    "duplicate": (
        b"exchange:\n  mode: paper\n  name: binance\n  mode: live\n",
        ("line 4: key 'mode' repeats the key at line 2",),
    ),
    "duplicate-section": (b"general: {name: a}\ngeneral: {name: b}\n", ("line 2",)),
    "top-false": (b"false\n", ("top level must be a mapping",)),
    "top-zero": (b"0\n", ("top level must be a mapping",)),
    "top-empty-string": (b"''\n", ("top level must be a mapping",)),
    "top-list": (b"[]\n", ("top level must be a mapping",)),
    "nul-journal": (b'journal: {path: "data/j\\0x"}\n', ("journal.path: contains a NUL",)),
    "nul-account": (
        b'paper: {persist: true, account_file: "a\\0b"}\n',
        ("paper.account_file: contains a NUL",),
    ),
    "price-zero": (
        b"simulated: {start_prices: {BTC/USDT: 0}}\n",
        ("simulated.start_prices.BTC/USDT",),
    ),
    "price-negative": (
        b"simulated: {start_prices: {BTC/USDT: -5}}\n",
        ("simulated.start_prices.BTC/USDT",),
    ),
    "price-huge": (
        b"simulated: {start_prices: {BTC/USDT: 1e300}}\n",
        ("simulated.start_prices.BTC/USDT",),
    ),
    "price-tiny": (
        b"simulated: {start_prices: {BTC/USDT: 1e-30}}\n",
        ("simulated.start_prices.BTC/USDT",),
    ),
    "balance-negative": (
        b"paper: {starting_balances: {USDT: -100}}\n",
        ("paper.starting_balances.USDT",),
    ),
    "redis-port-big": (
        b"storage: {redis_url: 'redis://127.0.0.1:99999/0'}\n",
        ("storage.redis_url",),
    ),
    "redis-port-abc": (
        b"storage: {redis_url: 'redis://127.0.0.1:abc/0'}\n",
        ("storage.redis_url",),
    ),
    "redis-unix": (b"storage: {redis_url: 'unix:///tmp/redis.sock'}\n", ("storage.redis_url",)),
    "risk-unbounded": (b"risk: {max_order_notional: 1e300}\n", ("risk.max_order_notional",)),
    "huge-int": (b"bus: {maxsize: " + b"9" * 5000 + b"}\n", ("invalid YAML", "bus.maxsize")),
    "huge-string-key": (b"x" * 100_000 + b": 1\n", ("invalid YAML",)),
    "long-unknown-key": (b'"' + b"x" * 1000 + b'": 1\n', ("unknown key 'xxx",)),
    "tab": (b"general:\n\tname: x\n", ("invalid YAML",)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_config_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, name: str
) -> None:
    content, expected = HOSTILE[name]
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    line = check(capsys, path, *expected)
    assert line.startswith("config error: ")


def test_an_empty_file_means_every_default(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# nothing set\n")
    assert start_main(["--config", str(path), "--check-config"]) == 0
    out = capsys.readouterr().out
    assert ": valid;" in out and "# default" in out and "# file" not in out


def test_devices_fifos_and_folders_are_refused_without_reading(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    check(capsys, fifo, f"config file {fifo}: not a regular file")
    check(capsys, "/dev/zero", "config file /dev/zero: not a regular file")
    check(capsys, tmp_path, "not a regular file")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 * 1024 * 1024))
    check(capsys, big, "larger than")


def test_a_secret_file_that_is_not_utf8_is_one_line(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\xff\xfe\x00k")
    secret.chmod(0o600)
    monkeypatch.setenv("TRADER_API_SECRET_FILE", str(secret))
    config = tmp_path / "config.yaml"
    config.write_text("general: {name: x}\n")
    check(capsys, config, "TRADER_API_SECRET_FILE", "not UTF-8")


def test_check_config_checks_the_paths_and_the_port(tmp_path: Path, capsys) -> None:
    import socket

    config = tmp_path / "config.yaml"
    (tmp_path / "afile").write_text("")
    config.write_text(f"journal: {{path: {tmp_path / 'afile'}}}\n")
    check(capsys, config, "journal.path: ", "is not a folder")
    config.write_text("journal: {path: /proc/self/journal}\n")
    check(capsys, config, "journal.path: /proc/self/journal is in a kernel file system")
    (tmp_path / "account").mkdir()
    config.write_text(
        f"paper: {{persist: true, account_file: {tmp_path / 'account'}}}\n"
        f"journal: {{path: {tmp_path / 'journal'}}}\n"
    )
    check(capsys, config, "paper.account_file: ", "is a folder")
    port = free_port()
    config.write_text(f"metrics: {{port: {port}}}\njournal: {{path: {tmp_path / 'journal'}}}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        line = check(capsys, config, f"metrics.port: cannot listen on 127.0.0.1:{port}", code=1)
    assert f"held by pid {os.getpid()}" in line
    assert start_main(["--config", str(config), "--check-config"]) == 0


# ---------------------------------------------------------------------- hypothesis over the schema

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["\0", "a\0b", "1e300", "-1", "NaN", "Infinity", "\n", "unix:///x"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(LEAVES)), value=HOSTILE_VALUES)
def test_any_value_for_any_key_loads_or_is_one_line_naming_the_key(key: str, value: Any) -> None:
    t0 = time.monotonic()
    try:
        config_from_dict(nested(key, value), {})
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 400
        section = key.split(".")[0]
        assert (
            section in message
            or "simulated.start_prices" in message
            or "trade.markets" in message
            or "strategies" in message
        ), message
    assert time.monotonic() - t0 < TIME_BOUND_S


@settings(max_examples=100, deadline=None)
@given(key=st.sampled_from(sorted(LEAVES)), value=HOSTILE_VALUES)
def test_any_env_override_loads_or_is_one_line_naming_the_variable(key: str, value: Any) -> None:
    var = "TRADER__" + key.replace(".", "__").upper()
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    try:
        config_from_dict({}, {var: text})
    except ConfigError as exc:
        assert "\n" not in str(exc) and (
            key in str(exc)
            or var in str(exc)
            or "simulated.start_prices" in str(exc)
            or "trade.markets" in str(exc)
        ), str(exc)


# ---------------------------------------------------------------------- real processes


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"simulated: {tick_interval_s: .nan}\n", "simulated.tick_interval_s: expected a finite"),
        (ALIAS_BOMB.encode(), "aliases"),
    ],
)
def test_start_py_prints_one_line_and_exits_2(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER")}
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "start.py"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("config error: ") and expected in line


def test_start_py_on_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "start.py"), "--config", str(fifo)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"config error: config file {fifo}: not a regular file"
    ]
