"""The benchmark harness (bench/) on tiny sizes: every benchmark runs and its counts add up.

No timing is asserted: speed is bench/run.py's business (BENCHMARKS.md). These tests only prove that the
harness measures what it says (all messages arrive, every reading is stored once, the latency benchmark
finds its notices) so that a broken harness cannot report a good number.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # `bench` is a folder of the repository, not an installed package

from bench import alerts_bench, influx_bench, ingest_bench, ingest_process, run  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated")  # apprise, Python 3.13 removal


@pytest.mark.integration
def test_process_rounds_time_the_real_process_against_both_protocols(
    mosquitto_binary: str, tmp_path: Path
) -> None:
    # 1,500 messages: more than one batch of 500, so that there are commits after the first to time
    out = ingest_process.process_rounds(tmp_path, n_messages=1500, n_devices=10, rounds=2)
    assert len(out["rounds"]) == 2
    for r in out["rounds"]:
        p = r["process"]
        assert p["rows"] == p["distinct"] == p["messages"] == 1500  # every message received and stored once
        assert p["lossless"] and p["dead_letters"] == 0
        assert p["rows_at_first_commit"] < 1500 and p["readings_s"] > 0
        assert r["bare3"]["msg_s"] > 0 and r["bare5"]["msg_s"] > 0
        assert r["ceiling_msg_s"] == max(r["bare3"]["msg_s"], r["bare5"]["msg_s"])
        assert r["ratio"] == pytest.approx(p["msg_s"] / r["ceiling_msg_s"])


@pytest.mark.integration
def test_process_rounds_batched_into_influxdb(
    influxd_binary: str, mosquitto_binary: str, tmp_path: Path
) -> None:
    influx = ingest_process.servers_module().InfluxDB1Server(tmp_path / "influxdb").start()
    try:
        out = ingest_process.process_rounds(
            tmp_path / "run", n_messages=20, per_message=100, n_devices=5, rounds=1, bare=False, influx=influx
        )
    finally:
        influx.stop()
    (r,) = out["rounds"]
    assert r["process"]["rows"] == 2000 and r["process"]["messages"] == 20 and r["process"]["lossless"]
    assert "bare3" not in r


def test_row_clock_times_the_commits_of_another_connection(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "fume.db"
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE readings (device_id TEXT, time_ms INTEGER, PRIMARY KEY (device_id, time_ms))")

    def writer() -> None:
        for k in range(5):
            time.sleep(0.05)
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO readings VALUES (?, ?)", [("D", k * 10 + i) for i in range(10)])
            conn.execute("COMMIT")

    t = threading.Thread(target=writer)
    t.start()
    obs = ingest_process.RowClock(db, os.getpid()).wait(50, timeout_s=10)
    t.join()
    assert (obs.rows_first, obs.rows_last) == (10, 50)
    assert obs.commits == 5
    assert 0.15 < obs.t_last - obs.t_first < 2
    assert obs.rate() == pytest.approx(40 / (obs.t_last - obs.t_first))


def test_stop_stats_reads_the_last_stop_line() -> None:
    log = (
        "ts=1 level=INFO event=ingest_stop messages=1 dead_letters=0\n"
        "ts=2 level=INFO event=ingest_stop messages=300 readings_received=300 dead_letters=2 acked=300\n"
    )
    assert ingest_process.stop_stats(log) == {
        "messages": 300,
        "readings_received": 300,
        "dead_letters": 2,
        "acked": 300,
    }
    assert ingest_process.stop_stats("no such line") == {}


@pytest.mark.integration
def test_ceiling_and_ingest_single(mosquitto_binary: str, tmp_path: Path) -> None:
    out = ingest_bench.ceiling_and_ingest(tmp_path, n_messages=300, n_devices=10, rounds=2)
    assert len(out["rounds"]) == 2
    for r in out["rounds"]:
        assert r["rows"] == 300  # every message stored once
        assert r["dead_letters"] == 0
        assert r["bare_msg_s"] > 0 and r["ingest_msg_s"] > 0
        assert r["ratio"] == pytest.approx(r["ingest_msg_s"] / r["bare_msg_s"])


@pytest.mark.integration
def test_ingest_batched_stores_every_reading(mosquitto_binary: str, tmp_path: Path) -> None:
    out = ingest_bench.ceiling_and_ingest(
        tmp_path, n_messages=20, per_message=60, n_devices=5, rounds=1, bare=False
    )
    (r,) = out["rounds"]
    assert r["rows"] == 20 * 60
    assert "bare_msg_s" not in r


@pytest.mark.integration
def test_scale_out_loses_and_duplicates_nothing(mosquitto_binary: str, tmp_path: Path) -> None:
    out = ingest_bench.scale_out(tmp_path, n_messages=400, n_devices=10)
    for workers in (1, 2):
        res = out["runs"][workers]
        assert res["rows"] == res["distinct_keys"] == res["messages_total"] == 400
        assert res["lost"] == res["duplicated"] == 0
        assert len(res["messages_per_worker"]) == workers
    assert all(n > 0 for n in out["runs"][2]["messages_per_worker"])  # the shared subscription split them
    assert out["ratio"] > 0


@pytest.mark.integration
@pytest.mark.parametrize(
    ("disk_buffer", "first_wins", "age_days"),
    [(False, False, 30), (True, False, 30), (True, True, 0), (True, True, 30)],
)
def test_influx_write_stores_every_point(
    influxd_binary: str, tmp_path: Path, disk_buffer: bool, first_wins: bool, age_days: float
) -> None:
    out = influx_bench.influx_write(
        tmp_path,
        n_points=5000,
        n_devices=50,
        disk_buffer=disk_buffer,
        first_wins=first_wins,
        age_days=age_days,
    )
    assert out["stored"] == out["points"] == 5000
    assert out["failed"] == 0
    assert out["acknowledged_writes"] == 5000 // 500


def test_detector_replay_finds_the_planted_events() -> None:
    out = alerts_bench.detector_replay(20_000, n_devices=100)
    assert out["readings"] == 20_000
    assert out["events"].get("exceedance", 0) >= 2  # the violators (every 50th kitchen) at lunch
    assert out["events"].get("purifier_off", 0) >= 1
    assert out["windows"] > 0


def test_alert_latency_measures_every_notice(tmp_path: Path) -> None:
    out = alerts_bench.alert_latency(tmp_path, n_devices=40, n_events=4, spacing_s=0.01)
    assert out["events"] == 4
    assert out["notices_sent"] == out["webhook_received"] == 4
    assert out["sent_ms"]["n"] == out["claimed_ms"]["n"] == 4
    assert 0 <= out["claimed_ms"]["p50"] <= out["sent_ms"]["p99"]


def test_memory_child_holds_the_state(tmp_path: Path) -> None:
    out = alerts_bench.memory(tmp_path, n_devices=300, readings_per_device=2)
    assert out["devices"] == 300 and out["backend"] == "sqlite"
    assert out["detector_readings"] == 600 + 7 * alerts_bench.TOUCHED  # then 7 commits of 10 changed
    assert out["rss_after_commit_mb"] > 0 and out["rss_peak_mb"] >= out["rss_after_commit_mb"]
    assert out["state_bytes"] > 0 and out["device_rows"] == 300
    assert len(out["commit_touched_all_ms"]) == 7 and out["commit_touched_ms"] > 0


@pytest.mark.integration
def test_run_prints_table_saves_json_and_ends_with_the_ratio(
    mosquitto_binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    tiny = run.Sizes(1500, 1, 5, 1, 5000, 10_000, 1, 20, 2, 0, 200, 1, 200)
    monkeypatch.setattr(run, "QUICK", tiny)
    code = run.main(
        ["--quick", "--only", "paho_ceiling,ingest_single,detector_replay", "--results", str(tmp_path)]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("ingest_ratio=") and float(lines[-1].split("=")[1]) > 0
    (saved,) = tmp_path.glob("*-quick.json")
    doc = json.loads(saved.read_text())
    assert {r["name"] for r in doc["results"]} == {"paho_ceiling", "ingest_single", "detector_replay"}
    assert all(not r["error"] for r in doc["results"])
    assert doc["machine"]["nproc"] >= 1
