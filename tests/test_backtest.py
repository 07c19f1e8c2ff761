"""Backtests over a generated CSV whose result is computed by hand, the report, bad data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from trader.backtest import DataError, read_csv, run_csv, run_journals
from trader.config import config_from_dict
from trader.events import MarketData, MarketUpdated
from trader.journal import read_events

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600
T0 = 1_700_000_000

# MaCross(fast=2, slow=3, amount=1), spread 0, slippage 0, fee 0.1%, 10000 USDT:
#   bar 3 sets the sign (-1); bar 5: fast 98.5 > slow 98.33 -> BUY 1 @ 100, fee 0.1
#   bar 8: fast 102.5 < slow 103 -> SELL 1 @ 95, fee 0.095: trip -0.1 - 5 - 0.095 = -5.195
#   bar 10: fast 97 > slow 96.33 -> BUY 1 @ 100, fee 0.1
#   bar 13: fast 107.5 < slow 107.67 -> SELL 1 @ 103, fee 0.103: trip -0.1 + 3 - 0.103 = 2.797
# Equity after each bar: 10000 x4, 9999.9, 10003.9, 10009.9 (peak), 9994.805 x2,
# 9994.705 (low), 10002.705, 10006.705, 9997.602 x2. Final 10000 - 0.398 fees - 2 = 9997.602.
CLOSES = [100, 99, 98, 97, 100, 104, 110, 95, 94, 100, 108, 112, 103, 102]

CONFIG = {
    "trade": {"markets": ["BTC/USDT"]},
    "paper": {"starting_balances": {"USDT": 10000}, "fee_rate": 0.001, "slippage_bps": 0},
    "simulated": {"spread_bps": 0},
    "strategies": [
        {"name": "ma_cross", "market": "BTC/USDT", "params": {"fast": 2, "slow": 3, "amount": 1}}
    ],
}


def write_bars(path: Path, closes: list[float], start: int = T0) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        prev = closes[0]
        for i, c in enumerate(closes):
            w.writerow([start + i * HOUR, prev, max(prev, c), min(prev, c), c, 10])
            prev = c
    return path


def test_ma_cross_over_a_known_path_gives_the_hand_computed_result(tmp_path: Path) -> None:
    cfg = config_from_dict(CONFIG, {})
    result = run_csv(cfg, {"BTC/USDT": read_csv(write_bars(tmp_path / "btc.csv", CLOSES))})
    assert [(f.side, f.price, f.amount, f.fee) for f in result.fills] == [
        ("buy", D(100), D(1), D("0.1")),
        ("sell", D(95), D(1), D("0.095")),
        ("buy", D(100), D(1), D("0.1")),
        ("sell", D(103), D(1), D("0.103")),
    ]
    assert [f.ts_ns for f in result.fills] == [(T0 + n * HOUR) * 10**9 for n in (5, 8, 10, 13)]
    assert result.round_trips == [D("-5.195"), D("2.797")]
    assert result.win_rate == D("0.5")
    assert result.fees == {"USDT": D("0.398")}
    assert result.start_equity == D(10000) and result.end_equity == D("9997.602")
    assert result.total_return == D("-0.0002398")
    assert result.max_drawdown == (D("10009.9") - D("9994.705")) / D("10009.9")
    assert len(result.equity) == len(CLOSES)
    assert result.fills[0].strategy == "ma_cross:BTC/USDT"


def test_cli_prints_the_figures_and_writes_the_report(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    bars = write_bars(tmp_path / "btc.csv", CLOSES)
    out = tmp_path / "report"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "backtest.py"),
            f"BTC/USDT={bars}",
            "--config",
            str(cfg),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "return        -0.02%" in res.stdout
    assert "max drawdown  0.15%" in res.stdout
    assert "4 fills, 2 round trips, win rate 50.0%" in res.stdout
    assert "0.3980 USDT" in res.stdout
    assert (out / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(out / "trades.csv")))
    assert [(r["side"], r["price"]) for r in rows] == [
        ("buy", "100"),
        ("sell", "95"),
        ("buy", "100"),
        ("sell", "103"),
    ]
    assert len(list(csv.DictReader(open(out / "equity.csv")))) == len(CLOSES)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,open,high,low,close,volume\n1,1,1,1,1,1\n", "missing columns ['timestamp']"),
        ("timestamp,open,high,low,close,volume\n1700000000,1,1,1,x,1\n", "bad.csv:2: cannot parse"),
        (
            "timestamp,open,high,low,close,volume\n1700000000,1,1,1,1,1\n1700000000,1,1,1,1,1\n",
            "bad.csv:3: timestamps must increase",
        ),
        ("timestamp,open,high,low,close,volume\n1700000000,1,2,1,3,1\n", "bad.csv:2: inconsistent"),
    ],
)
def test_bad_csv_is_refused_with_its_place(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_csv(path)


def test_timestamps_in_ms_and_iso_are_read(tmp_path: Path) -> None:
    path = tmp_path / "ms.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "1700000000000,1,1,1,1,1\n2023-11-14T22:13:21Z,1,1,1,1,1\n"
    )
    assert [b.start_ns for b in read_csv(path)] == [T0 * 10**9, (T0 + 1) * 10**9]


def test_backtest_over_a_journal_uses_its_market_data(tmp_path: Path) -> None:
    from tests.test_replay import record_session

    journal, _ = record_session(tmp_path, steps=400)
    cfg = config_from_dict(
        {
            **CONFIG,
            "trade": {"markets": ["BTC/USDT", "ETH/USDT"]},
            "strategies": [
                {
                    "name": "ma_cross",
                    "market": "BTC/USDT",
                    "params": {"fast": 2, "slow": 3, "amount": 0.01},
                }
            ],
        },
        {},
    )
    result = run_journals(cfg, [journal])
    assert result.symbols == ("BTC/USDT",)
    recorded = [
        e
        for e in read_events(journal)
        if getattr(e, "symbol", None) == "BTC/USDT" and isinstance(e, (MarketData, MarketUpdated))
    ]
    assert result.events == len(recorded)
    assert result.fills, "the strategy traded on the recorded prices"
    assert all(f.strategy == "ma_cross:BTC/USDT" for f in result.fills)


def test_the_report_of_a_journal_backtest_charts_the_journal_candles(tmp_path: Path) -> None:
    from tests.test_replay import record_session
    from trader.cli import backtest

    journal, _ = record_session(tmp_path, steps=400)
    cfg = {
        **CONFIG,
        "strategies": [
            {
                "name": "ma_cross",
                "market": "BTC/USDT",
                "params": {"fast": 2, "slow": 3, "amount": 0.01},
            }
        ],
    }
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    out = tmp_path / "report"
    assert (
        backtest.main(
            [
                str(journal),
                "--config",
                str(tmp_path / "config.yaml"),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    page = (out / "report.html").read_text()
    report = json.loads(page.split("const REPORT = ", 1)[1].split(";</script>", 1)[0])
    candles = report["candles"]["BTC/USDT"]
    assert len(candles) > 1 and all(len(c) == 5 for c in candles)
