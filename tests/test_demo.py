"""`fumewatch demo` (what `make demo` runs) as a real process, on both embedded brokers."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.integration
@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_demo_runs_and_stores_everything(tmp_path, broker, mosquitto_binary):
    env = {**os.environ, "COLUMNS": "160"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "demo",
            "--restaurants",
            "6",
            "--hours",
            "14",
            "--duration",
            "4",
            "--broker",
            broker,
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"broker: {broker}" in out
    assert "readings stored from 6 restaurants" in out
    assert "Dead letters" in out
    db = sqlite3.connect(tmp_path / "fumewatch.db")
    stored = db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
    assert f"{stored:,} readings stored" in out
    assert stored >= 6 * 14 * 60 * 0.8  # one reading a minute, less the offline device's gap
    state = sqlite3.connect(tmp_path / "state.db")
    dead = state.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
    assert dead > 0  # the demo injects broken input on purpose
    assert (tmp_path / "registry.csv").read_text(encoding="utf-8").startswith("restaurant_id,")
