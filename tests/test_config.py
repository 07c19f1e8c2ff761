"""Strict config loading: every error names its key; secrets never printed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from trader.app import App, RunMode
from trader.config import Mode, config_from_dict, load_config, redacted
from trader.errors import ConfigError
from trader.registries import check_config
from trader.trading.strategies.ma_cross import MaCross

ROOT = Path(__file__).resolve().parent.parent


def load(doc: str, env: dict | None = None):
    """Load as ``scripts/start.py`` does: the config, then the names the wiring resolves."""
    cfg = config_from_dict(yaml.safe_load(doc) or {}, env or {})
    check_config(cfg)
    return cfg


def test_shipped_config_is_valid_and_commented() -> None:
    cfg = load_config(ROOT / "config.yaml", env={})
    check_config(cfg)
    assert cfg.exchange.name == "simulated" and cfg.exchange.mode is Mode.PAPER
    assert cfg.trade.markets == ("BTC/USDT", "ETH/USDT")
    assert cfg.journal.path == "data/journal"
    assert cfg.paper.starting_balances == {"USDT": Decimal(10000)}
    assert len(cfg.strategies) == 3
    text = (ROOT / "config.yaml").read_text()
    for key in ("name:", "mode:", "sandbox:", "urls:", "markets:", "path:"):
        line = next(l for l in text.splitlines() if l.strip().startswith(key))
        assert "#" in line, f"{key} is not commented"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("exchange: {nmae: binance}", "unknown key 'exchange.nmae' (did you mean 'name'?)"),
        ("tarde: {}", "unknown key 'tarde' (did you mean 'trade'?)"),
        (
            "exchange: {urls: {rest_url: x}}",
            "unknown key 'exchange.urls.rest_url' (did you mean 'rest'?)",
        ),
        ("exchange: {mode: demo}", "exchange.mode: 'demo' is not one of paper, live"),
        ("exchange: {sandbox: 'yes'}", "exchange.sandbox: expected true or false"),
        ("exchange: {timeout_ms: 5}", "exchange.timeout_ms: 5 is below the minimum 100"),
        ("exchange: {timeout_ms: fast}", "exchange.timeout_ms: expected an integer"),
        ("trade: {markets: BTC/USDT}", "trade.markets: expected a list"),
        ("trade: {markets: [btcusdt]}", "trade.markets[0]: 'btcusdt' is not like BASE/QUOTE"),
        ("trade: {markets: []}", "trade.markets: list at least one market"),
        ("paper: {fee_rate: abc}", "paper.fee_rate: expected a number"),
        ("paper: {fee_rate: 0.5}", "paper.fee_rate: 0.5 is above the maximum 0.1"),
        (
            "paper: {starting_balances: {USDT: lots}}",
            "paper.starting_balances.USDT: expected a number",
        ),
        ("general: []", "general: expected a mapping"),
        ("exchange: {urls: {rest: 'http://h:1/api'}}", "exchange.urls.rest"),
        ("exchange: {mode: live}", "exchange.mode: live needs a real exchange"),
        (
            "strategies: [{name: ma_cros, market: BTC/USDT}]",
            "strategies[0].name: unknown strategy 'ma_cros' (did you mean 'ma_cross'?)",
        ),
        (
            "strategies: [{name: ma_cross, market: XRP/USDT}]",
            "strategies[0].market: XRP/USDT is not in trade.markets",
        ),
        (
            "strategies: [{name: ma_cross, market: BTC/USDT, params: {fsat: 3}}]",
            "unknown key 'strategies[0].params.fsat' (did you mean 'fast'?)",
        ),
        (
            "strategies: [{name: ma_cross, market: BTC/USDT, params: {fast: 9, slow: 3}}]",
            "strategies[0].params: need 1 <= fast < slow",
        ),
        ("strategies: [{market: BTC/USDT}]", "missing key 'strategies[0].name'"),
        ("trade: {markets: [DOGE/USDT]}", "simulated.start_prices: no start price for DOGE/USDT"),
    ],
)
def test_each_config_error_names_its_key(doc: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(doc)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_live_mode_needs_keys_from_the_environment() -> None:
    doc = "exchange: {name: binance, mode: live}"
    with pytest.raises(ConfigError, match="TRADER_API_KEY and TRADER_API_SECRET"):
        load(doc)
    cfg = load(doc, {"TRADER_API_KEY": "k", "TRADER_API_SECRET": "s"})
    assert cfg.secrets.has_keys


def test_secrets_are_never_printed() -> None:
    env = {"TRADER_API_KEY": "AKIA-very-secret-key", "TRADER_API_SECRET": "sshh-secret-value"}
    cfg = load("", env)
    assert cfg.secrets.api_key == "AKIA-very-secret-key"
    for text in (yaml.safe_dump(redacted(cfg)), repr(cfg), repr(cfg.secrets), str(cfg)):
        assert "AKIA-very-secret-key" not in text and "sshh-secret-value" not in text
    assert "TRADER_API_KEY: <set>" in yaml.safe_dump(redacted(cfg))


def test_secrets_in_the_file_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key 'secrets'"):
        load("secrets: {api_key: x}")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("exchange: {name: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml", env={})


def test_strategy_names_are_checked_against_the_registry_the_wiring_is_given() -> None:
    """Config is plain data: a strategy name means something only to a registry."""
    cfg = config_from_dict(
        {"strategies": [{"name": "mine", "market": "BTC/USDT", "params": {"fast": 2, "slow": 3}}]},
        {},
    )
    with pytest.raises(ConfigError, match=r"^strategies\[0\].name: unknown strategy 'mine'$"):
        App(cfg, mode=RunMode.REPLAY)
    check_config(cfg, {"mine": MaCross})
    app = App(cfg, mode=RunMode.REPLAY, strategies={"mine": MaCross})
    assert [type(s) for s in app.runner.strategies] == [MaCross]
