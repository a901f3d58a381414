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
    # five kitchens as HJ 212 data loggers over TCP through the gateway: every frame answered and stored
    flat = " ".join(out.split())
    assert "5 data loggers connected to the gateway at 127.0.0.1:" in flat
    assert "300 frames, 300 answered with a 9014 once the broker had them, 0 unanswered; 300 readings" in flat


def _demo(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    env.update(COLUMNS="160", PYTHONPATH=str(REPO))
    argv = ["--restaurants", "3", "--hours", "4", "--duration", "2", "--broker", "mosquitto", *extra]
    return subprocess.run(
        [sys.executable, "-m", "fumewatch", "demo", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=240,
        env=env,
    )


@pytest.mark.integration
def test_demo_never_touches_files_it_did_not_create(tmp_path, mosquitto_binary):
    """Real data in data/ (the paths ingest and alerts use) is byte-identical after `fumewatch demo`."""
    data = tmp_path / "data"
    data.mkdir()
    real = {
        "state.db": b"SQLite format 3\x00 pretend this is a city's ledger",
        "registry.csv": "restaurant_id,name,district,device_id,stove_heads\nR9,真实餐馆,A,D9,2\n".encode(),
        "fumewatch.db": b"SQLite format 3\x00 pretend these are a year of readings",
    }
    for name, content in real.items():
        (data / name).write_bytes(content)
    proc = _demo(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name, content in real.items():
        assert (data / name).read_bytes() == content, name
    demo = data / "demo"
    assert (demo / ".fumewatch-demo").is_file()
    assert sqlite3.connect(demo / "fumewatch.db").execute("SELECT COUNT(*) FROM readings").fetchone()[0] > 0
    assert (demo / "registry.csv").read_text(encoding="utf-8").startswith("restaurant_id,")
    assert "data/demo/state.db" in proc.stdout
    # a second run starts fresh in its own directory (it may delete what it made itself)
    proc = _demo(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name, content in real.items():
        assert (data / name).read_bytes() == content, name


def test_demo_refuses_a_directory_with_files_it_did_not_create(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.db").write_bytes(b"real ledger")
    proc = _demo(tmp_path, "--data-dir", "data")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(
        "fumewatch demo: --data-dir data holds files the demo did not create (state.db)"
    )
    assert (data / "state.db").read_bytes() == b"real ledger"
    assert sorted(p.name for p in data.iterdir()) == ["state.db"]  # no marker, nothing written


def test_demo_workspace_cleans_only_its_own_files(tmp_path):
    from fumewatch.demo import workspace

    d = workspace.prepare(tmp_path / "w")
    (d / "state.db").write_bytes(b"demo")
    (d / "state.db-wal").write_bytes(b"demo")
    workspace.prepare(d)
    assert sorted(p.name for p in d.iterdir()) == [".fumewatch-demo"]
    (d / "notes.txt").write_text("mine")
    with pytest.raises(workspace.DemoDirError, match="notes.txt"):
        workspace.prepare(d)
    assert (d / "notes.txt").read_text() == "mine"


@pytest.mark.integration
def test_demo_shows_the_silting_kitchens_maintenance_reminder(tmp_path, mosquitto_binary):
    """From 10 restaurants the demo has a kitchen whose purifier silts up: its two weeks before the day
    are replayed first, it is reminded (清洗提醒) before any exceedance, and cleaned on the day. Its kitchen
    whose sensor reads zero at dinner is a data-integrity finding (suspect_zero)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "demo",
            *("--restaurants", "10", "--hours", "24", "--duration", "6", "--broker", "mosquitto"),
            *("--data-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "the kitchen whose purifier silts up" in out
    assert "the maintenance reminder as its owner received it" in out
    assert "【清洗提醒】" in out and "不是处罚通知" in out
    state = sqlite3.connect(tmp_path / "state.db")
    rows = state.execute(
        "SELECT restaurant_id, start_ms, level FROM events WHERE kind = 'maintenance_reminder'"
    ).fetchall()
    assert len(rows) == 1 and rows[0][2] in ("", None)  # one reminder, never on the ladder
    rid, at = rows[0][0], rows[0][1]
    first = state.execute(
        "SELECT MIN(start_ms) FROM events WHERE kind = 'exceedance' AND restaurant_id = ?", (rid,)
    ).fetchone()[0]
    assert first is None or first > at  # before any exceedance
    assert "back_under" in out  # cleaned on the simulated day: no longer near the limit
    # the kitchen whose sensor reads zero at dinner: a data-integrity finding for inspectors
    (finding,) = state.execute("SELECT rule FROM events WHERE kind = 'data_integrity'").fetchall()
    assert finding[0] == "suspect_zero" and "suspect_zero" in out
