"""Log formats: JSON lines a log shipper parses back, secrets scrubbed from them as from text,
and text without timestamps under journald."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import start_service
from tests.subproc import read_rest
from tests.test_start import fast_config, wait_for
from trader.config import LogFormat, config_from_dict
from trader.errors import ErrorKind
from trader.events import OrderFilled, OrderRejected
from trader.logsetup import setup_logging
from trader.model.orders import Side

ROOT = Path(__file__).resolve().parent.parent
CANARY = "canary-secret-5f2a9c"


def json_lines(err: str) -> list[dict]:
    """Every stderr line parsed as one JSON object (fails on a line that is not)."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_json_lines_carry_time_level_thread_logger_message_and_the_event(
    capsys, restore_logging
) -> None:
    setup_logging("INFO", [], LogFormat.JSON)
    fill = OrderFilled(
        ts_event=1_700_000_000_000_000_000,
        ts_recv=1_700_000_000_000_000_001,
        client_id="c-1",
        exchange_id="x-1",
        trade_id="t-1",
        symbol="BTC/USDT",
        side=Side.BUY,
        price=Decimal("60000.5"),
        amount=Decimal("0.01"),
        fee=Decimal("0.6"),
        fee_asset="USDT",
        filled_total=Decimal("0.01"),
        is_final=True,
    )
    worker = threading.Thread(
        target=lambda: logging.getLogger("trader.report").info(
            "TRADE %s", 'BUY "quoted"\nline', extra={"event": fill}
        ),
        name="reporter-1",
    )
    worker.start()
    worker.join(2)
    logging.getLogger("trader").warning("plain")
    first, second = json_lines(capsys.readouterr().err)
    assert first["level"] == "INFO" and first["thread"] == "reporter-1"
    assert first["logger"] == "trader.report" and first["message"] == 'TRADE BUY "quoted"\nline'
    stamp = datetime.fromisoformat(first["time"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(stamp.tzinfo) - stamp).total_seconds()) < 5
    assert first["event"] == {
        "type": "OrderFilled",
        "ts_event": 1_700_000_000_000_000_000,
        "ts_recv": 1_700_000_000_000_000_001,
        "client_id": "c-1",
        "exchange_id": "x-1",
        "trade_id": "t-1",
        "symbol": "BTC/USDT",
        "side": "buy",
        "price": "60000.5",
        "amount": "0.01",
        "fee": "0.6",
        "fee_asset": "USDT",
        "filled_total": "0.01",
        "is_final": True,
        "liquidity": "unknown",
        "venue_order_type": None,
        "time_in_force": None,
        "order_price": None,
        "order_amount": None,
        "stop_price": None,
        "cum_quote": None,
        "fee_rate": None,
    }
    assert second["message"] == "plain" and second["level"] == "WARNING"
    assert "event" not in second and "exc" not in second


@pytest.mark.parametrize("log_format", [LogFormat.TEXT, LogFormat.JSON])
def test_a_canary_secret_is_scrubbed_from_message_traceback_and_event(
    capsys, restore_logging, log_format: LogFormat
) -> None:
    setup_logging("DEBUG", [CANARY], log_format)
    log = logging.getLogger("trader")
    rejected = OrderRejected(
        ts_event=1,
        ts_recv=1,
        client_id="c-9",
        reason=f"bad signature for key {CANARY}",
        kind=ErrorKind.AUTHENTICATION,
    )
    log.warning("REJECTED %s", rejected.reason, extra={"event": rejected})
    try:
        raise ValueError(f"request with {CANARY}")
    except ValueError:
        log.exception("failed %s", CANARY)
    err = capsys.readouterr().err
    assert CANARY not in err
    if log_format is LogFormat.JSON:
        rejected_line, failed = json_lines(err)
        assert rejected_line["message"] == "REJECTED bad signature for key ***"
        assert rejected_line["event"]["reason"] == "bad signature for key ***"
        assert failed["message"] == "failed ***"
        assert failed["exc"].endswith("ValueError: request with ***")
    else:
        assert "REJECTED bad signature for key ***" in err and "failed ***" in err
        assert "ValueError: request with ***" in err


def test_the_service_logs_json_with_the_trade_events(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env["TRADER__GENERAL__LOG_FORMAT"] = "json"
    proc = start_service(fast_config(tmp_path), ROOT, env)
    try:
        lines = wait_for(proc, "TRADE ")
        proc.send_signal(signal.SIGTERM)
        out = "".join(lines) + read_rest(proc)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    records = json_lines(out)
    assert {"time", "level", "thread", "logger", "message"} <= set(records[0])
    trade = next(r for r in records if r["message"].startswith("TRADE "))
    assert trade["event"]["type"] == "OrderFilled" and trade["event"]["symbol"] == "BTC/USDT"
    assert trade["thread"] == "MainThread" and trade["logger"] == "trader"
    assert any(r.get("event", {}).get("type") == "ShutdownRequested" for r in records)


def test_log_format_is_a_config_key() -> None:
    assert config_from_dict({}, {}).general.log_format is LogFormat.TEXT
    cfg = config_from_dict({"general": {"log_format": "json"}}, {})
    assert cfg.general.log_format is LogFormat.JSON
    with pytest.raises(Exception, match="log_format"):
        config_from_dict({"general": {"log_format": "xml"}}, {})


def test_control_characters_in_logged_values_cannot_forge_a_line(capsys, restore_logging) -> None:
    setup_logging("INFO", [], LogFormat.TEXT)
    log = logging.getLogger("trader")
    log.warning("started %s", "evil\nCRITICAL trader: forged\x1b[2J")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed for %s", "x\ry")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("started evil\\nCRITICAL trader: forged\\x1b[2J")
    assert lines[1].endswith("failed for x\\ry")
    assert lines[2] == "Traceback (most recent call last):"  # a traceback keeps its lines
    assert not any(line.startswith("CRITICAL") for line in lines)
