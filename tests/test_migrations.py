"""The state database's schema versions (Alembic): upgrade from empty on SQLite and PostgreSQL, the
database written by the release before Alembic (tests/data/state-v0.1.db), ``fumewatch db``, and what
services and read-only commands do with a missing or outdated database. Real servers, real processes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from alerts.ledger import Ledger
from alerts.ledger.schema import metadata as ledger_metadata
from alerts.model import Event
from fumewatch import db
from ingest.db import make_engine
from ingest.state import StateDB
from ingest.state_schema import metadata as ingest_metadata

ROOT = Path(__file__).resolve().parents[1]
V01 = ROOT / "tests" / "data" / "state-v0.1.db"
#: The newest revision (fumewatch/db/migrations/versions).
HEAD = "0009"

TABLES = ("dead_letters", "events", "cases", "notices", "detector_state", "windows")


def fumewatch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fumewatch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "sub" / "state.db")
    return request.getfixturevalue("pg_empty_url")


def _diffs(state: str) -> list:
    engine = make_engine(state)
    try:
        with engine.connect() as conn:
            target = MetaData()
            for md in (ingest_metadata, ledger_metadata):
                for t in md.tables.values():
                    t.to_metadata(target)
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return [
                d
                for d in compare_metadata(ctx, target)
                if d[0] != "remove_table" or d[1].name != "alembic_version"
            ]
    finally:
        engine.dispose()


def test_upgrade_from_empty_matches_the_schema_modules(empty_state: str) -> None:
    assert db.upgrade(empty_state) == (None, db.head())
    assert db.current_revision(empty_state) == db.head() == HEAD
    assert _diffs(empty_state) == []  # the migrations build exactly what alerts/ingest's schema modules say
    assert db.upgrade(empty_state) == (db.head(), db.head())  # idempotent
    db.check(empty_state)
    # down to 0001 and up again (0009's downgrade drops gateway_connections; 0007's detector_devices;
    # 0006's device_stats; 0004's the outbox; 0003's episodes, tasks and its columns; 0002's its column
    # and index)
    engine = make_engine(empty_state)
    with engine.connect() as conn:
        command.downgrade(db.alembic_config(conn), "0008")
        conn.commit()
        assert "gateway_connections" not in set(inspect(conn).get_table_names())
        assert "owner_links" in set(inspect(conn).get_table_names())
        command.downgrade(db.alembic_config(conn), "0006")
        conn.commit()
        assert "detector_devices" not in set(inspect(conn).get_table_names())
        assert "device_stats" in set(inspect(conn).get_table_names())
        command.downgrade(db.alembic_config(conn), "0005")
        conn.commit()
        assert "device_stats" not in set(inspect(conn).get_table_names())
        command.downgrade(db.alembic_config(conn), "0003")
        conn.commit()
        assert "outbox" not in set(inspect(conn).get_table_names())
        command.downgrade(db.alembic_config(conn), "0002")
        conn.commit()
        assert not {"episodes", "tasks"} & set(inspect(conn).get_table_names())
        assert "rule" not in {c["name"] for c in inspect(conn).get_columns("events")}
        command.downgrade(db.alembic_config(conn), "0001")
        conn.commit()
        assert "claimed_by" not in {c["name"] for c in inspect(conn).get_columns("notices")}
    engine.dispose()
    assert db.current_revision(empty_state) == "0001"
    with pytest.raises(
        db.StateDBError, match=rf"at revision 0001, this release needs {HEAD}: run `fumewatch db upgrade"
    ):
        db.check(empty_state)
    assert db.upgrade(empty_state) == ("0001", HEAD)
    assert _diffs(empty_state) == []


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def test_v01_database_upgrades_with_its_data_intact(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    shutil.copy(V01, path)
    before = _counts(path)
    assert before == {
        "dead_letters": 3,
        "events": 2,
        "cases": 1,
        "notices": 4,
        "detector_state": 1,
        "windows": 6,
    }
    with pytest.raises(db.StateDBError, match="revision none"):
        db.check(str(path))  # read-only commands refuse it until it is upgraded
    assert db.upgrade(str(path)) == (None, HEAD)
    assert _counts(path) == before
    # ... and the schema a fresh database has, but for one SQLite legacy: 0.1 wrote `x TEXT PRIMARY KEY`,
    # which SQLite does not make NOT NULL (every row has a value; the Ledger always writes one)
    legacy = [d for d in _diffs(str(path)) if not (isinstance(d, list) and d[0][0] == "modify_nullable")]
    assert legacy == []
    nullable_pk = sorted(d[0][2] + "." + d[0][3] for d in _diffs(str(path)))
    assert nullable_pk == ["cases.case_id", "dead_letters.id", "detector_state.name", "events.event_id"]
    with Ledger(path) as led:
        [closed, opened] = led.list_events()
        assert (closed.level, closed.state, closed.peak_mg_m3, closed.district) == (
            "enforcement",
            "closed",
            3.3,
            "朝阳区",
        )
        assert led.get_occurrence(closed.event_id) == 3 and opened.end_ms is None
        assert len(closed.evidence) == 5
        [case] = led.list_cases()
        assert case["status"] == "assigned" and case["occurrence"] == 3
        # 0005: the case has a version and its trail starts with its opening
        assert (case["version"], case["case_type"]) == (1, "enforcement")
        assert [a["action"] for a in led.case_actions(case["case_id"])] == ["open"]
        assert {r.status for r in led.list_notices()} == {"sent", "failed", "skipped", "pending"}
        [pending] = led.pending_notices()
        assert led.notice_begin(pending.key, "owner", pending.target, pending.payload) is True  # resent
        sent = next(r for r in led.list_notices() if r.status == "sent")
        assert led.notice_begin(sent.key, sent.channel, sent.target, {}) is False  # never twice
        assert len(led.list_windows(device_id="D1")) == 5
        assert led.load_state("detector")["watermark"] == 1795667400000 + 6 * 600_000
    state = StateDB(path)
    assert state.dead_letter_counts() == {"bad_json": 1, "unknown_device": 1, "bad_crc": 1}
    assert state.dead_letters(reason="bad_json")[0].detail == {"message": "Expecting value"}
    state.close()
    r = fumewatch("db", "current", "--state", str(path))
    assert r.returncode == 0 and r.stdout.strip() == f"{HEAD} (head)", r.stderr


def test_db_commands_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    shutil.copy(V01, path)
    r = fumewatch("db", "current", "--state", str(path))
    assert r.returncode == 0 and r.stdout.startswith("none: tables of a release before Alembic"), r.stderr
    one_line_error(fumewatch("events", "--state", str(path)), "revision none", "fumewatch db upgrade --state")
    r = fumewatch("db", "upgrade", "--state", str(path))
    assert r.returncode == 0 and r.stdout.strip() == f"state database {path}: none -> {HEAD} (head)", r.stderr
    r = fumewatch("db", "upgrade", "--state", str(path))
    assert r.stdout.strip() == f"state database {path}: already at {HEAD} (head)"
    r = fumewatch("events", "--state", str(path))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr


def test_db_commands_on_postgresql(pg_empty_url: str) -> None:
    r = fumewatch("db", "current", "--state", pg_empty_url)
    assert r.returncode == 0 and r.stdout.startswith("none: empty database"), r.stderr
    r = fumewatch("db", "upgrade", "--state", pg_empty_url.replace("postgresql://", "postgresql+psycopg://"))
    assert r.returncode == 0 and r.stdout.strip().endswith(f": none -> {HEAD} (head)"), r.stderr
    # a password in the environment is used (trust auth here ignores it); never in the URL
    r = fumewatch("db", "current", "--state", pg_empty_url, env={"FUMEWATCH_STATE_PASSWORD": "s3cret"})
    assert r.returncode == 0 and r.stdout.strip() == f"{HEAD} (head)", r.stderr
    with_pw = pg_empty_url.replace("postgres@", "postgres:s3cret@")
    r = fumewatch("db", "current", "--state", with_pw)
    one_line_error(r, "must not contain a password", "FUMEWATCH_STATE_PASSWORD")
    assert "s3cret" not in r.stderr
    r = fumewatch("events", "--state", pg_empty_url)
    assert (
        r.returncode == 0
        and r.stdout.strip()
        == "kind,restaurant_id,device_id,start,end,peak_mg_m3,mean_mg_m3,limit_mg_m3,profile,rule,level"
    )
    one_line_error(
        fumewatch("db", "current", "--state", pg_empty_url + "_missing"),
        "cannot use state database",
        "does not exist",
    )


@pytest.mark.parametrize("service", ["alerts", "ingest", "run"])
def test_service_refuses_an_outdated_postgresql_database(
    pg_empty_url: str, service: str, tmp_path: Path
) -> None:
    from ingest.registry import Device, Registry

    reg = tmp_path / "registry.csv"
    Registry([Device("R1", "老王川菜馆", "朝阳区", "D1", 4)]).write_csv(reg)
    args = [service, "--state", pg_empty_url, "--registry", str(reg)]
    one_line_error(fumewatch(*args), "has no fumewatch schema", "fumewatch db upgrade --state")
    db.upgrade(pg_empty_url, "0001")
    r = fumewatch(*args, "--broker", "mqtt://127.0.0.1:1")
    one_line_error(
        r,
        f"state database at revision 0001, this release needs {HEAD}: run `fumewatch db upgrade --state postgresql://",
    )
    assert db.current_revision(pg_empty_url) == "0001"  # checked, never migrated by a service


def test_service_upgrades_an_embedded_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    shutil.copy(V01, path)
    db.prepare_for_service(str(path))  # what ingest / alerts / run do first
    assert db.current_revision(str(path)) == HEAD and _counts(path)["notices"] == 4


@pytest.mark.parametrize(
    "args",
    [
        ["events"],
        ["cases"],
        ["notices"],
        ["dead-letters"],
        ["db", "current"],
        ["report", "--since", "2026-11-01", "--until", "2026-11-02", "--out", "OUT"],
        ["api"],
    ],
)
def test_read_only_commands_create_nothing(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nowhere" / "state.db"
    args = [str(tmp_path / "r.csv") if a == "OUT" else a for a in args]
    env = {"FUMEWATCH_API_TOKENS": "reader:" + "x" * 32}
    one_line_error(
        fumewatch(*args, "--state", str(missing), env=env), f"state database {missing} does not exist"
    )
    assert not missing.parent.exists()


def test_read_only_command_refuses_an_old_sqlite_revision(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db.upgrade(str(path), "0001")
    for cmd in ("events", "cases", "notices", "dead-letters"):
        one_line_error(fumewatch(cmd, "--state", str(path)), f"at revision 0001, this release needs {HEAD}")
    assert db.current_revision(str(path)) == "0001"


# ---------------------------------------------------------------------------------------------------------
# ingest's dead letters and the API on both backends
# ---------------------------------------------------------------------------------------------------------


def test_dead_letters_on_both_backends(state_url: str) -> None:
    from ingest.model import DeadLetter

    state = StateDB(state_url)
    state.add_dead_letters(
        [
            DeadLetter(
                1000 + i, "fume/v1/x", "bad_json" if i % 3 else "bad_crc", "{x", "D1", {"n": i, "说明": "坏"}
            )
            for i in range(7)
        ]
    )
    assert state.dead_letter_counts() == {"bad_json": 4, "bad_crc": 3}
    got = state.dead_letters(since_ms=1002, until_ms=1005)
    assert [d.received_ms for d in got] == [1002, 1003, 1004] and got[0].detail == {"n": 2, "说明": "坏"}
    assert [d.received_ms for d in state.dead_letters(reason="bad_crc")] == [1000, 1003, 1006]
    state.close()
    r = fumewatch("dead-letters", "--state", state_url, "--reason", "bad_crc")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 4, r.stderr


def test_api_health_and_listings_through_the_ledger(state_url: str) -> None:
    from fastapi.testclient import TestClient

    from alerts.api import create_app
    from alerts.model import Event
    from ingest.registry import Registry

    with Ledger(state_url) as led:
        led.upsert_event(
            Event(
                "e1", "exceedance", "R1", "D1", "朝阳区", 1795667400000, pollutant="oil_fume", peak_mg_m3=3.0
            )
        )
    token = "t" * 32
    app = create_app(state_path=state_url, registry=Registry([]), tokens=[token])
    with TestClient(app) as client:
        r = client.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok", "state_db": "ok"}
        r = client.get(
            "/api/v1/events",
            params={"since": "2026-11-26", "until": "2026-11-27"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200 and [e["event_id"] for e in r.json()] == ["e1"], r.text


def test_report_on_postgresql(pg_empty_url: str, tmp_path: Path) -> None:
    """`fumewatch report` reads a PostgreSQL state database like an SQLite file (tests/test_reports.py
    runs every report test on both backends; this one drives the command)."""
    db.upgrade(pg_empty_url)
    with Ledger(pg_empty_url) as led:
        led.upsert_event(
            Event(
                "e1", "exceedance", "R1", "D1", "朝阳区", 1795667400000, 1795669200000, pollutant="oil_fume"
            )
        )
    from ingest.registry import Device, Registry

    Registry([Device("R1", "老王川菜馆", "朝阳区", "D1", 4)]).write_csv(tmp_path / "registry.csv")
    out = tmp_path / "r.csv"
    args = ["report", "--state", pg_empty_url, "--registry", str(tmp_path / "registry.csv")]
    r = fumewatch(*args, "--since", "2026-11-26", "--until", "2026-11-27", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "e1" in out.read_text(encoding="utf-8")
