"""The listing commands as a person uses them: display-zone times, rounded readings, refused mistakes.

readings, dead-letters, events, cases and notices run as real ``python -m fumewatch`` processes against a
store and a state database written here. Mistakes (a period that ends before it starts, a path that does
not exist) end with rc 2 and one line on stderr, never a traceback or an empty database.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from servers import run_fumewatch

from alerts.ledger import Ledger
from alerts.model import Event
from ingest.model import DeadLetter, Reading
from ingest.state import StateDB
from ingest.store.sqlite import SQLiteStore
from ingest.timeutil import parse_time

REPO = Path(__file__).resolve().parent.parent
T0 = parse_time("2026-11-20T02:00:00Z")  # 10:00 in Asia/Shanghai


run_cli = run_fumewatch  # python -m fumewatch ARGV in cwd (tests/servers.py)


def one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"fumewatch {command}: ")
    return lines[0]


def _event(n: int, kind: str, level: str, rid: str) -> Event:
    return Event(
        event_id=f"E{n}",
        kind=kind,
        restaurant_id=rid,
        device_id=f"D-{rid}",
        district="Xuhui",
        start_ms=T0 + n * 3_600_000,
        end_ms=T0 + n * 3_600_000 + 1_800_000,
        pollutant="oil_fume",
        peak_mg_m3=3.14159,
        mean_mg_m3=2.5,
        limit_mg_m3=2.0,
        profile="gb18483",
        level=level,
        state="closed",
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("listings")
    store = SQLiteStore(str(d / "fumewatch.db"))
    store.set_on_durable(lambda tokens: None)
    r = Reading(
        time_ms=T0,
        device_id="D-R1",
        restaurant_id="R1",
        district="Xuhui",
        oil_fume_mg_m3=0.39945400000000003,
        oil_fume_ref_mg_m3=0.1 + 0.2,
        ref_converted=True,
        pm_mg_m3=1.0000000001,
        flow_m3_h=4321.06,
        fan_on=True,
        purifier_on=False,
    )
    store.write([(1, [r])])
    store.close()
    state = StateDB(d / "state.db")
    state.add_dead_letters([DeadLetter(T0 + 250, "fume/v1/X/reading", "unknown_device", "{}", "X")])
    state.close()
    with Ledger(d / "state.db") as ledger:
        plan = [
            (1, "exceedance", "education", "R1", "opened"),
            (2, "exceedance", "warning", "R2", "opened"),
            (2, "exceedance", "warning", "R2", "closed"),
            (3, "purifier_off", "", "R1", "opened"),
            (4, "offline", "", "R2", "opened"),
        ]
        for n, kind, level, rid, action in plan:
            e = ledger.upsert_event(_event(n, kind, level, rid))
            payload = {
                "kind": kind,
                "level": level,
                "action": action,
                "restaurant_id": rid,
                "device_id": e.device_id,
            }
            ledger.notice_begin(f"{e.event_id}:{action}", "owner", f"json://owner/{rid}", payload)
            ledger.notice_done(f"{e.event_id}:{action}", f"json://owner/{rid}", ok=(n != 4), error="boom")
        # a row whose payload does not carry the event (older rows): the level comes from the event
        e = ledger.upsert_event(_event(5, "exceedance", "enforcement", "R1"))
        ledger.notice_begin("E5:opened", "inspector", "json://inspector", {"restaurant_id": "R1"})
    (d / "registry.csv").write_text(
        "restaurant_id,name,district,device_id,stove_heads\nR1,A,Xuhui,D-R1,2\nR2,B,Xuhui,D-R2,2\n",
        encoding="utf-8",
    )
    db = sqlite3.connect(d / "state.db")
    with db:
        for n in range(1, 6):
            db.execute("UPDATE notices SET created_ms = ? WHERE event_id = ?", (T0 + n * 3_600_000, f"E{n}"))
        db.execute("UPDATE notices SET created_ms = created_ms + 1800000 WHERE action = 'closed'")
    db.close()
    return d


def rows(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def test_readings_show_display_time_and_instrument_resolution(workdir):
    [r] = rows(run_cli(workdir, "readings", "--store", "fumewatch.db"))
    assert r["time"] == "2026-11-20T10:00:00+08:00"
    assert (r["oil_fume_mg_m3"], r["oil_fume_ref_mg_m3"], r["pm_mg_m3"], r["flow_m3_h"]) == (
        "0.399",
        "0.3",
        "1.0",
        "4321.1",
    )
    [j] = json.loads(run_cli(workdir, "readings", "--store", "fumewatch.db", "--format", "json").stdout)
    assert (j["time"], j["time_ms"], j["oil_fume_mg_m3"]) == ("2026-11-20T10:00:00+08:00", T0, 0.399)


def test_dead_letters_events_cases_show_display_time(workdir):
    [d] = rows(run_cli(workdir, "dead-letters", "--state", "state.db"))
    assert d["received"] == "2026-11-20T10:00:00.250+08:00"
    [dj] = json.loads(run_cli(workdir, "dead-letters", "--state", "state.db", "--format", "json").stdout)
    assert dj["received_ms"] == T0 + 250
    ev = rows(run_cli(workdir, "events", "--state", "state.db", "--kind", "exceedance"))
    assert [(e["start"], e["end"], e["peak_mg_m3"]) for e in ev][0] == (
        "2026-11-20T11:00:00+08:00",
        "2026-11-20T11:30:00+08:00",
        "3.142",
    )
    ej = json.loads(run_cli(workdir, "events", "--state", "state.db", "--format", "json").stdout)
    assert ej[0]["start_ms"] == T0 + 3_600_000 and ej[0]["start"] == "2026-11-20T11:00:00+08:00"
    assert rows(run_cli(workdir, "cases", "--state", "state.db")) == []  # cases come from the ladder


def test_notices_have_time_and_level_and_filter_on_them(workdir):
    got = rows(run_cli(workdir, "notices", "--state", "state.db"))
    assert list(got[0]) == [
        "time",
        "level",
        "restaurant_id",
        "channel",
        "target",
        "status",
        "attempts",
        "key",
        "error",
    ]
    assert [(n["time"], n["level"], n["key"]) for n in got] == [
        ("2026-11-20T11:00:00+08:00", "education", "E1:opened"),
        ("2026-11-20T12:00:00+08:00", "warning", "E2:opened"),
        ("2026-11-20T12:30:00+08:00", "closed", "E2:closed"),
        ("2026-11-20T13:00:00+08:00", "purifier_off", "E3:opened"),
        ("2026-11-20T14:00:00+08:00", "offline", "E4:opened"),
        ("2026-11-20T15:00:00+08:00", "enforcement", "E5:opened"),
    ]

    def keys(*argv: str) -> list[str]:
        return [n["key"] for n in rows(run_cli(workdir, "notices", "--state", "state.db", *argv))]

    assert keys("--level", "warning") == ["E2:opened"]
    assert keys("--level", "closed") == ["E2:closed"]
    assert keys("--level", "enforcement") == ["E5:opened"]
    assert keys("--restaurant", "R2") == ["E2:opened", "E2:closed", "E4:opened"]
    assert keys("--status", "failed") == ["E4:opened"]
    assert keys("--status", "pending") == ["E5:opened"]
    assert keys("--since", "2026-11-20T12:30:00+08:00", "--until", "2026-11-20T14:00:00+08:00") == [
        "E2:closed",
        "E3:opened",
    ]
    assert keys("--since", "2026-11-20", "--until", "2026-11-21", "--level", "offline") == ["E4:opened"]
    [j] = json.loads(
        run_cli(workdir, "notices", "--state", "state.db", "--level", "education", "--format", "json").stdout
    )
    assert (j["time"], j["created_ms"], j["action"], j["event_id"]) == (
        "2026-11-20T11:00:00+08:00",
        T0 + 3_600_000,
        "opened",
        "E1",
    )


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("readings", ["--store", "fumewatch.db"]),
        ("dead-letters", ["--state", "state.db"]),
        ("events", ["--state", "state.db"]),
        ("cases", ["--state", "state.db"]),
        ("notices", ["--state", "state.db"]),
        ("report", ["--state", "state.db", "--out", "r.csv"]),
    ],
)
@pytest.mark.parametrize(
    ("since", "until"), [("2026-11-21", "2026-11-20"), ("2026-11-20T10:00:00+08:00", "2026-11-20T02:00:00Z")]
)
def test_a_period_that_ends_before_it_starts_is_refused(workdir, command, flags, since, until):
    proc = run_cli(workdir, command, *flags, "--since", since, "--until", until)
    line = one_line_error(proc, command)
    assert f"--since {since} is not before --until {until}" in line


@pytest.mark.parametrize(
    ("command", "flag", "what"),
    [
        ("readings", "--store", "store"),
        ("dead-letters", "--state", "state database"),
        ("events", "--state", "state database"),
        ("cases", "--state", "state database"),
        ("notices", "--state", "state database"),
    ],
)
def test_a_read_only_command_refuses_a_missing_path_and_creates_nothing(tmp_path, command, flag, what):
    proc = run_cli(tmp_path, command, flag, "typo.db")
    line = one_line_error(proc, command)
    assert line.startswith(f"fumewatch {command}: {what} typo.db does not exist (from {flag} or [ingest] ")
    assert not (tmp_path / "typo.db").exists()
    assert list(tmp_path.iterdir()) == []


def test_report_refuses_a_missing_store_and_state(workdir, tmp_path):
    proc = run_cli(
        workdir, "report", "--registry", "registry.csv", "--state", "state.db", "--store", "typo.db", "--since", "2026-11-20",
        "--until", "2026-11-21", "--out", str(tmp_path / "r.html"),
    )  # fmt: skip
    assert "typo.db does not exist" in one_line_error(proc, "report")
    assert not (workdir / "typo.db").exists()
    proc = run_cli(tmp_path, "report", "--state", "nope.db", "--since", "2026-11-20", "--until", "2026-11-21",
                   "--out", "r.csv")  # fmt: skip
    assert "state database nope.db does not exist" in one_line_error(proc, "report")
    proc = run_cli(workdir, "report", "--registry", "nope.csv", "--since", "2026-11-20", "--until", "2026-11-21",
                   "--state", "state.db", "--out", str(tmp_path / "r.csv"))  # fmt: skip
    line = one_line_error(proc, "report")
    assert line == (
        "fumewatch report: registry nope.csv does not exist (from --registry or [ingest] registry); "
        "check the path"
    )


def test_open_store_read_only_never_creates_a_database(tmp_path):
    from ingest.store import open_store

    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_store(str(tmp_path / "typo.db"), read_only=True)
    assert not (tmp_path / "typo.db").exists()


# ---------------------------------------------------------------------------------------------------------
# --utc, the rule column, nested times of cases and events (SQLite and PostgreSQL), invalid zones
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "flags", "column", "display", "utc"),
    [
        ("readings", ["--store", "fumewatch.db"], "time", "2026-11-20T10:00:00+08:00", "2026-11-20T02:00:00+00:00"),
        ("dead-letters", ["--state", "state.db"], "received", "2026-11-20T10:00:00.250+08:00",
         "2026-11-20T02:00:00.250+00:00"),
        ("events", ["--state", "state.db"], "start", "2026-11-20T11:00:00+08:00", "2026-11-20T03:00:00+00:00"),
        ("notices", ["--state", "state.db"], "time", "2026-11-20T11:00:00+08:00", "2026-11-20T03:00:00+00:00"),
    ],
)  # fmt: skip
def test_every_listing_prints_display_time_or_utc_with_utc(workdir, command, flags, column, display, utc):
    assert rows(run_cli(workdir, command, *flags))[0][column] == display
    assert rows(run_cli(workdir, command, *flags, "--utc"))[0][column] == utc
    [j, *_] = json.loads(run_cli(workdir, command, *flags, "--format", "json", "--utc").stdout)
    assert j[column] == utc
    [j, *_] = json.loads(run_cli(workdir, command, *flags, "--format", "json").stdout)
    assert j[column] == display
    # --utc changes what is printed, not how a time without offset is read (the display zone)
    since = ["--since", "2026-11-20T10:00", "--until", "2026-11-20T10:00:01"]
    if command in ("readings", "dead-letters"):
        assert [r[column] for r in rows(run_cli(workdir, command, *flags, "--utc", *since))] == [utc]


def test_events_list_the_rule_column(workdir):
    proc = run_cli(workdir, "events", "--state", "state.db")
    assert list(rows(proc)[0]) == list(__import__("alerts.model", fromlist=["x"]).EVENT_CSV_COLUMNS)
    assert "rule" in rows(proc)[0]
    assert (
        "rule" in json.loads(run_cli(workdir, "events", "--state", "state.db", "--format", "json").stdout)[0]
    )


def _case_world(state: str) -> None:
    from alerts.enforcement.ladder import build_case

    e = Event(
        event_id="C1",
        kind="exceedance",
        restaurant_id="R1",
        device_id="D-R1",
        district="Xuhui",
        start_ms=T0,
        end_ms=T0 + 1_800_000,
        pollutant="oil_fume",
        peak_mg_m3=3.0,
        mean_mg_m3=2.5,
        limit_mg_m3=2.0,
        profile="gb18483",
        level="enforcement",
        state="closed",
        evidence=[{"start_ms": T0 + i * 600_000, "end_ms": T0 + (i + 1) * 600_000, "mean_mg_m3": 2.5} for i in range(3)],
        rule="gb18483",
        judgement={"groups": [{"start_ms": T0, "end_ms": T0 + 1_800_000, "mean_mg_m3": 2.5, "exceeds": True}]},
    )  # fmt: skip
    with Ledger(state) as ledger:
        ledger.upsert_event(e)
        case = build_case(e, created_ms=T0 + 3_600_000)
        case["evidence"]["receipts"] = [{"channel": "owner", "sent_ms": T0 + 3_660_000}]  # nested deeper
        ledger.upsert_case(case)


def test_cases_json_shows_every_nested_time_in_the_display_zone(tmp_path, state_url):
    _case_world(state_url)
    [c] = rows(run_cli(tmp_path, "cases", "--state", state_url))
    assert (c["case_id"], c["start"], c["end"]) == (
        c["case_id"],
        "2026-11-20T10:00:00+08:00",
        "2026-11-20T10:30:00+08:00",
    )
    [j] = json.loads(run_cli(tmp_path, "cases", "--state", state_url, "--format", "json").stdout)
    assert (j["start"], j["start_ms"], j["created"]) == (
        "2026-11-20T10:00:00+08:00",
        T0,
        "2026-11-20T11:00:00+08:00",
    )
    windows = j["evidence"]["windows"]
    assert [(w["start"], w["end"]) for w in windows][0] == (
        "2026-11-20T10:00:00+08:00",
        "2026-11-20T10:10:00+08:00",
    )
    assert windows[0]["start_ms"] == T0  # the machine key stays
    assert j["evidence"]["receipts"][0]["sent"] == "2026-11-20T11:01:00+08:00"
    # a stored UTC text without an _ms twin is shown in the display zone too
    assert j["evidence"]["readings"]["first_start"] == "2026-11-20T10:00:00+08:00"
    assert not re.search(r'\d\dZ"', json.dumps(j))  # no bare UTC time left
    [u] = json.loads(run_cli(tmp_path, "cases", "--state", state_url, "--format", "json", "--utc").stdout)
    assert (u["start"], u["evidence"]["windows"][0]["end"]) == (
        "2026-11-20T02:00:00+00:00",
        "2026-11-20T02:10:00+00:00",
    )
    assert u["evidence"]["receipts"][0]["sent"] == "2026-11-20T03:01:00+00:00"  # fmt: skip


def test_events_json_shows_evidence_times_and_rule(tmp_path, state_url):
    _case_world(state_url)
    [e] = json.loads(run_cli(tmp_path, "events", "--state", state_url, "--format", "json").stdout)
    assert [w["start"] for w in e["evidence"]] == [
        "2026-11-20T10:00:00+08:00",
        "2026-11-20T10:10:00+08:00",
        "2026-11-20T10:20:00+08:00",
    ]
    assert e["evidence"][0]["start_ms"] == T0
    [u] = json.loads(run_cli(tmp_path, "events", "--state", state_url, "--format", "json", "--utc").stdout)
    assert (u["start"], u["evidence"][2]["end"]) == ("2026-11-20T02:00:00+00:00", "2026-11-20T02:30:00+00:00")


def test_events_rule_round_trips_to_the_listings(tmp_path, state_url):
    _case_world(state_url)
    [e] = rows(run_cli(tmp_path, "events", "--state", state_url))
    assert e["rule"] == "gb18483"
    [j] = json.loads(run_cli(tmp_path, "events", "--state", state_url, "--format", "json").stdout)
    assert j["rule"] == "gb18483"


def test_events_json_judgement_times_are_shown(tmp_path, state_url):
    _case_world(state_url)
    [j] = json.loads(run_cli(tmp_path, "events", "--state", state_url, "--format", "json").stdout)
    group = j["judgement"]["groups"][0]
    assert (group["start"], group["end"], group["start_ms"]) == (
        "2026-11-20T10:00:00+08:00",
        "2026-11-20T10:30:00+08:00",
        T0,
    )


def test_present_times_walks_any_depth():
    from fumewatch.cli.common import present_times

    doc = {
        "a_ms": T0,
        "a": "2026-11-20T02:00:00Z",
        "n": [{"b_ms": T0 + 1, "x": {"c_ms": T0}}],
        "flag_ms": True,
    }
    assert present_times(doc, "Asia/Shanghai") == {
        "a_ms": T0,
        "a": "2026-11-20T10:00:00+08:00",
        "n": [{"b_ms": T0 + 1, "b": "2026-11-20T10:00:00.001+08:00", "x": {"c_ms": T0, "c": "2026-11-20T10:00:00+08:00"}}],
        "flag_ms": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('display_tz = "Asia/Shangai"\n', "display_tz"),
        ('[notify]\ndisplay_tz = "UTC+8"\n', "[notify] display_tz"),
    ],
)
@pytest.mark.parametrize("command", ["events", "cases", "notices", "dead-letters", "readings"])
def test_an_invalid_display_zone_is_refused_naming_the_key(tmp_path, toml, key, command):
    (tmp_path / "bad.toml").write_text(toml, encoding="utf-8")
    line = one_line_error(run_cli(tmp_path, command, "--config", "bad.toml"), command)
    assert f"bad.toml: {key}: unknown time zone" in line
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.toml"]
