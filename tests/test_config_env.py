"""Environment overrides (TRADER__SECTION__KEY), provenance in --check-config, secret files."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from trader.config import (
    StorageBackend,
    config_with_sources,
    dump_with_sources,
    load_config_sources,
    redacted,
)
from trader.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def load(doc: str, env: dict[str, str]):
    return config_with_sources(yaml.safe_load(doc) or {}, env)


def test_overrides_are_parsed_as_yaml_and_win_over_the_file() -> None:
    cfg, sources = load(
        "exchange: {name: simulated, timeout_ms: 5000}\nbus: {maxsize: 50}",
        {
            "TRADER__EXCHANGE__TIMEOUT_MS": "2000",
            "TRADER__EXCHANGE__SANDBOX": "true",
            "TRADER__TRADE__MARKETS": "[BTC/USDT]",
            "TRADER__PAPER__STARTING_BALANCES__BTC": "0.5",
            "TRADER__STORAGE__BACKEND": "redis",
            "TRADER__EXCHANGE__URLS__REST": "http://127.0.0.1:8080",
            "TRADER_API_KEY": "k",
        },
    )
    assert cfg.exchange.timeout_ms == 2000 and cfg.exchange.sandbox is True
    assert cfg.trade.markets == ("BTC/USDT",)
    assert cfg.paper.starting_balances == {"BTC": Decimal("0.5")}
    assert cfg.storage.backend is StorageBackend.REDIS
    assert cfg.exchange.urls.rest == "http://127.0.0.1:8080"
    assert sources["exchange.timeout_ms"] == "env TRADER__EXCHANGE__TIMEOUT_MS"
    assert sources["exchange.name"] == "file"
    assert sources["bus.maxsize"] == "file"
    assert sources["bus.put_timeout_s"] == "default"
    assert (
        sources["paper.starting_balances"] == "default + env TRADER__PAPER__STARTING_BALANCES__BTC"
    )
    assert sources["secrets.TRADER_API_KEY"] == "environment"
    assert sources["secrets.TRADER_API_SECRET"] == "not set"


def test_a_mapping_key_is_added_to_the_file_s_mapping() -> None:
    cfg, sources = load(
        "paper: {starting_balances: {USDT: 100}}", {"TRADER__PAPER__STARTING_BALANCES__BTC": "2"}
    )
    assert cfg.paper.starting_balances == {"USDT": Decimal(100), "BTC": Decimal(2)}
    assert sources["paper.starting_balances"] == "file + env TRADER__PAPER__STARTING_BALANCES__BTC"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "TRADER__EXCHANGE__NMAE",
            "x",
            "TRADER__EXCHANGE__NMAE: unknown key 'exchange.nmae' (did you mean 'exchange.name'?)",
        ),
        ("TRADER__EXCHNGE__NAME", "x", "unknown key 'exchnge' (did you mean 'exchange'?)"),
        ("TRADER__EXCHANGE", "x", "TRADER__EXCHANGE: 'exchange' is a section"),
        (
            "TRADER__EXCHANGE__NAME__X",
            "x",
            "TRADER__EXCHANGE__NAME__X: 'exchange.name' takes a whole",
        ),
        ("TRADER__EXCHANGE____NAME", "x", "empty key"),
        ("TRADER__SECRETS__API_KEY", "x", "unknown key 'secrets'"),
        ("TRADER__EXCHANGE__TIMEOUT_MS", "fast", "exchange.timeout_ms: expected an integer"),
        ("TRADER__EXCHANGE__MODE", "[unclosed", "TRADER__EXCHANGE__MODE: not a valid YAML value"),
        ("TRADER__STORAGE__REDIS_URL", "redis://:hunter2@h:6379/0", "TRADER_REDIS_PASSWORD"),
        ("TRADER__STORAGE__REDIS_URL", "http://h:6379", "must start with redis://"),
    ],
)
def test_bad_overrides_are_errors_naming_the_variable(var: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load("", {var: value})
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)


def test_check_config_output_shows_origins_and_parses_back() -> None:
    cfg, sources = load(
        "general: {name: bot1}",
        {"TRADER__EXCHANGE__SANDBOX": "true", "TRADER_API_SECRET": "s3cr3t-value"},
    )
    text = dump_with_sources(cfg, sources)
    lines = {l.split(":")[0].strip(): l for l in text.splitlines()}
    assert text.splitlines()[1] == f"{'  name: bot1':<44} # file"
    assert lines["sandbox"].endswith("# env TRADER__EXCHANGE__SANDBOX")
    assert lines["backend"].endswith("# default")
    assert lines["TRADER_API_SECRET"].split("#")[0].strip() == "TRADER_API_SECRET: <set>"
    assert lines["TRADER_API_SECRET"].endswith("# environment")
    assert "s3cr3t-value" not in text
    assert yaml.safe_load(text) == redacted(cfg)


def secret_file(tmp_path: Path, mode: int, text: str = "file-secret-value\n") -> Path:
    path = tmp_path / "api_secret"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_secret_file_with_mode_0600_is_read(tmp_path: Path) -> None:
    path = secret_file(tmp_path, 0o600)
    cfg, sources = load("", {"TRADER_API_SECRET_FILE": str(path)})
    assert cfg.secrets.api_secret == "file-secret-value"  # trailing newline stripped
    assert sources["secrets.TRADER_API_SECRET"] == f"file {path} (TRADER_API_SECRET_FILE)"
    assert "file-secret-value" not in dump_with_sources(cfg, sources) + repr(cfg)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_secret_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, mode)
    with pytest.raises(ConfigError) as err:
        load("", {"TRADER_API_SECRET_FILE": str(path)})
    assert str(err.value) == (
        f"TRADER_API_SECRET_FILE: {path} has mode {mode:04o}; a secret file must be readable "
        f"by its owner only (chmod 600 {path})"
    )


def test_secret_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read .*missing"):
        load("", {"TRADER_API_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="is empty"):
        load("", {"TRADER_API_KEY_FILE": str(secret_file(tmp_path, 0o600, "\n"))})
    with pytest.raises(ConfigError, match="not a regular file"):
        load("", {"TRADER_API_KEY_FILE": str(tmp_path)})
    with pytest.raises(ConfigError, match="set TRADER_API_KEY or TRADER_API_KEY_FILE, not both"):
        load("", {"TRADER_API_KEY": "a", "TRADER_API_KEY_FILE": str(secret_file(tmp_path, 0o600))})


def test_check_config_command_line(tmp_path: Path) -> None:
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text("general: {name: bot1}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER")}
    env.update(TRADER__GENERAL__LOG_LEVEL="DEBUG", TRADER_API_KEY="cli-secret-key")
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "start.py"),
            "--config",
            str(cfg_file),
            "--check-config",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "log_level: DEBUG" in out.stdout and "# env TRADER__GENERAL__LOG_LEVEL" in out.stdout
    assert "cli-secret-key" not in out.stdout + out.stderr
    env["TRADER__GENERAL__NAEM"] = "x"
    bad = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "start.py"),
            "--config",
            str(cfg_file),
            "--check-config",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "config error: TRADER__GENERAL__NAEM: unknown key "
        "'general.naem' (did you mean 'general.name'?)"
    )


def test_load_config_sources_reads_the_shipped_file() -> None:
    cfg, sources = load_config_sources(ROOT / "config.yaml", env={})
    assert sources["storage.backend"] == "file" and cfg.storage.backend is StorageBackend.MEMORY
    assert all(v in ("file", "default", "not set") for v in sources.values())
