"""The alerts state database: idempotent upserts, filters, snapshots, the notice gate, concurrency, secrets.

Tests taking ``ledger`` or ``state_url`` run twice: on an SQLite file and on a private PostgreSQL
database (tests/conftest.py section 5). Races between real processes: tests/test_ledger_concurrency.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.ledger import Ledger, mask_target, scrub
from alerts.model import EXCEEDANCE, OFFLINE, Event, WindowResult

ROOT = Path(__file__).resolve().parents[1]
T0 = 1795667400000
H = 3_600_000


def ev(event_id: str, start: int, end: int | None = None, **kw: object) -> Event:
    base: dict = dict(
        event_id=event_id,
        kind=EXCEEDANCE,
        restaurant_id="R1",
        device_id="D1",
        district="朝阳区",
        start_ms=start,
        end_ms=end,
        pollutant="oil_fume",
        peak_mg_m3=3.2,
        mean_mg_m3=2.6,
        limit_mg_m3=2.0,
        profile="gb18483",
        state="closed" if end is not None else "open",
    )
    base.update(kw)
    return Event(**base)


@pytest.fixture
def ledger(state_url: str) -> Iterator[Ledger]:
    led = Ledger(state_url)
    try:
        yield led
    finally:
        led.close()


def test_upsert_event_is_idempotent_and_updates(ledger: Ledger) -> None:
    e = ev("e1", T0, evidence=[{"start_ms": T0, "mean_mg_m3": 2.5}])
    ledger.upsert_event(e)
    ledger.upsert_event(e)
    assert len(ledger.list_events()) == 1
    got = ledger.get_event("e1")
    assert got == e  # every field round-trips, evidence included
    e.end_ms, e.state, e.peak_mg_m3 = T0 + H, "closed", 4.0
    stored = ledger.upsert_event(e)
    assert (stored.end_ms, stored.state, stored.peak_mg_m3) == (T0 + H, "closed", 4.0)
    assert ledger.get_event("missing") is None
    # a stale open copy (the "opened" transition's snapshot arriving late) does not reopen it
    stale = ev("e1", T0)
    assert ledger.upsert_event(stale).state == "closed"
    assert ledger.get_event("e1").end_ms == T0 + H


def test_level_is_kept_once_assigned(ledger: Ledger) -> None:
    ledger.upsert_event(ev("e1", T0))
    assert ledger.set_level("e1", "warning", 2) == "warning"
    assert ledger.set_level("e1", "education", 1) == "warning"
    assert ledger.upsert_event(ev("e1", T0, level="enforcement")).level == "warning"
    assert ledger.upsert_event(ev("e1", T0, level="")).level == "warning"
    assert ledger.get_occurrence("e1") == 2
    assert ledger.upsert_event(ev("e2", T0 + 1, level="education")).level == "education"
    with pytest.raises(KeyError):
        ledger.set_level("nope", "education")


def test_list_events_filters_with_overlap(ledger: Ledger) -> None:
    ledger.upsert_event(ev("before", T0 - 5 * H, T0 - 4 * H))
    ledger.upsert_event(ev("spans", T0 - H, T0 + H))
    ledger.upsert_event(ev("inside", T0 + H, T0 + 2 * H, restaurant_id="R2", district="海淀区"))
    ledger.upsert_event(ev("open", T0 - 10 * H))  # still open: overlaps everything after its start
    ledger.upsert_event(ev("after", T0 + 3 * H, T0 + 4 * H, kind=OFFLINE))
    ids = lambda es: [e.event_id for e in es]  # noqa: E731
    assert ids(ledger.list_events(since_ms=T0, until_ms=T0 + 3 * H)) == ["open", "spans", "inside"]
    assert ids(ledger.list_events(since_ms=T0 - 4 * H, until_ms=T0 - 3 * H)) == ["open", "before"]
    assert ids(ledger.list_events(restaurant_id="R2")) == ["inside"]
    assert ids(ledger.list_events(district="海淀区")) == ["inside"]
    assert ids(ledger.list_events(kind=OFFLINE)) == ["after"]
    assert ids(ledger.list_events(state="open")) == ["open"]
    assert ids(ledger.list_events(until_ms=T0 - 10 * H)) == []  # until is exclusive


def test_state_round_trip(ledger: Ledger, state_url: str) -> None:
    snap = {"open": {"D1|oil_fume": {"start_ms": T0, "over": [2.5, 3.1]}}, "note": "油烟", "watermark": T0}
    assert ledger.load_state("detector") is None
    ledger.save_state("detector", snap)
    assert ledger.load_state("detector") == snap
    ledger.save_state("detector", {"v": 2})
    assert ledger.load_state("detector") == {"v": 2}
    with Ledger(state_url) as other:
        assert other.load_state("detector") == {"v": 2}


def test_state_and_events_commit_together_or_not_at_all(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError):
        with ledger.transaction():
            ledger.save_state("detector", {"v": 1})
            ledger.upsert_event(ev("e1", T0))
            raise RuntimeError("crash before commit")
    assert ledger.load_state("detector") is None and ledger.get_event("e1") is None
    with ledger.transaction():
        ledger.save_state("detector", {"v": 1})
        ledger.upsert_event(ev("e1", T0))
    assert ledger.load_state("detector") == {"v": 1} and ledger.get_event("e1") is not None


def test_windows_idempotent_and_frame(ledger: Ledger) -> None:
    ws = [
        WindowResult(
            "D1", T0 + i * 600_000, T0 + (i + 1) * 600_000, 10, 10, True, "", 1.0 + i, 2.0 + i, i > 0
        )
        for i in range(3)
    ]
    assert ledger.add_windows(ws) == 3
    ledger.add_windows(ws)
    ledger.add_windows([WindowResult("D1", T0, T0 + 600_000, 9, 10, True, "", 1.5, 2.5, False)])
    ledger.add_windows(
        [WindowResult("D1", T0, T0 + 600_000, 9, 10, True, "", 0.3, 0.4, False, pollutant="pm")]
    )
    ledger.add_windows([WindowResult("D2", T0, T0 + 600_000, 2, 10, False, "incomplete", None, None, False)])
    got = ledger.list_windows(device_id="D1", pollutant="oil_fume")
    assert len(got) == 3 and got[0].mean_mg_m3 == 1.5 and got[0].samples == 9 and got[1] == ws[1]
    assert len(ledger.list_windows(since_ms=T0 + 600_000, until_ms=T0 + 1_200_000)) == 1
    assert [w.device_id for w in ledger.list_windows(device_ids=["D2"])] == ["D2"]
    df = ledger.windows_frame(device_id="D1")
    assert list(df.columns)[:3] == ["device_id", "pollutant", "start_ms"] and len(df) == 4
    assert df["exceeds"].dtype == bool
    assert ledger.add_windows([]) == 0


def test_notice_gate(ledger: Ledger) -> None:
    payload = {"title": "t", "body": "正文", "device_id": "D1", "restaurant_id": "R1"}
    url = "json://hooks.example.com/a"
    assert ledger.notice_begin("e1:opened", "owner", url, payload) is True
    [p] = ledger.pending_notices()
    assert (p.key, p.event_id, p.action, p.channel, p.device_id, p.status) == (
        "e1:opened",
        "e1",
        "opened",
        "owner",
        "D1",
        "pending",
    )
    assert p.payload == payload
    ledger.notice_done("e1:opened", url, False, "HTTP 503", 4)
    assert ledger.notice_status("e1:opened", url) == "failed"
    assert ledger.notice_begin("e1:opened", "owner", url, payload) is True  # a failed one may be retried
    ledger.notice_done("e1:opened", url, True, "", 1)
    assert ledger.notice_begin("e1:opened", "owner", url, payload) is False  # sent: never again
    assert ledger.notice_skip("e1:opened", "owner", url, "x", payload) is False
    ledger.notice_done("e1:opened", url, False, "late failure", 1)  # never downgrades a sent notice
    [rec] = ledger.list_notices(event_id="e1")
    assert (rec.status, rec.attempts, rec.error) == ("sent", 5, "")
    assert ledger.pending_notices() == []
    # another target of the same transition is independent
    assert ledger.notice_begin("e1:opened", "inspector", "json://cases.example.com/b", payload) is True
    assert ledger.notice_skip("e1:closed", "owner", "owner:none", "no URL", payload) is True
    assert {r.status for r in ledger.list_notices(status="skipped")} == {"skipped"}
    assert ledger.notice_keys(["e1"]) == {"e1:opened", "e1:closed"}
    with pytest.raises(KeyError):
        ledger.notice_done("e9:opened", url, True)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("mailto://user:secretpw@example.com?to=a@b.c", "mailto://***@example.com"),
        ("mailtos://shop%40qq.com:pw@smtp.qq.com:465?from=x@qq.com", "mailtos://***@smtp.qq.com:465"),
        ("json://user:tok@127.0.0.1:8080/hook?token=abc", "json://***@127.0.0.1:8080"),
        ("jsons://hooks.example.com/path/SECRETPATH?x=1", "jsons://hooks.example.com"),
        ("dingtalk://0123456789abcdef0123456789abcdef/", "dingtalk://***"),
        ("wecombot://a1b2c3d4-e5f6-7890-abcd-ef0123456789", "wecombot://***"),
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345", "tgram://***"),
        ("json://[::1]:9000/x", "json://[::1]:9000"),
        ("json://localhost/x", "json://localhost"),
        ("mailto://127.0.0.1:2525#2", "mailto://127.0.0.1:2525#2"),
        ("mqtt:fume/v1/alerts/R1", "mqtt:fume/v1/alerts/R1"),
    ],
)
def test_mask_target(url: str, masked: str) -> None:
    assert mask_target(url) == masked
    assert mask_target(masked) == masked


def test_scrub_error_text() -> None:
    text = "failed to reach json://u:p4ss@hooks.example.com/x?token=zz9 with password=hunter2"
    out = scrub(text)
    assert "p4ss" not in out and "zz9" not in out and "hunter2" not in out
    assert "json://***@hooks.example.com" in out
    assert len(scrub("x" * 2000)) == 500


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    led = Ledger(path)
    secrets = ["secretpw", "0123456789abcdef0123456789abcdef", "hunter2", "SECRETPATH"]
    payload = {"title": "t", "body": "b"}
    for url in (
        "mailto://user:secretpw@example.com",
        "dingtalk://0123456789abcdef0123456789abcdef/",
        "jsons://hooks.example.com/SECRETPATH",
    ):
        led.notice_begin("e1:opened", "owner", url, payload)
        led.notice_done("e1:opened", url, False, f"could not post to {url} password=hunter2", 1)
    raw_open = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    led.close()
    raw_closed = path.read_bytes()
    for s in secrets:
        assert s.encode() not in raw_open and s.encode() not in raw_closed, s


_READER = r"""
import sys, time
from alerts.ledger import Ledger
t = time.monotonic()
led = Ledger(sys.argv[1], busy_timeout_s=5)
print(len(led.list_events()), len(led.list_notices()), round(time.monotonic() - t, 3))
"""


def _read_in_other_process(path: Path | str) -> tuple[int, int, float]:
    out = subprocess.run(
        [sys.executable, "-c", _READER, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), float(out[2])


def test_reader_in_another_process_during_a_write(state_url: str) -> None:
    path = state_url
    led = Ledger(path)
    led.upsert_event(ev("e1", T0))
    with led.transaction():  # the writer is mid-transaction (uncommitted event + pending notice)
        led.upsert_event(ev("e2", T0 + H))
        led.notice_begin("e2:opened", "owner", "json://h.example.com/x", {})
        events, notices, took = _read_in_other_process(path)
        assert (events, notices) == (1, 0)  # the last committed snapshot ...
        assert took < 4  # ... without waiting for the writer
    assert _read_in_other_process(path)[:2] == (2, 1)
    led.close()


def test_concurrent_reader_connection_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writer = Ledger(path)
    reader = Ledger(path)
    raw = sqlite3.connect(path, timeout=5, isolation_level=None)
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def write() -> None:
        try:
            for i in range(200):
                with writer.transaction():
                    writer.upsert_event(ev(f"e{i:03d}", T0 + i * 1000))
                    writer.save_state("detector", {"n": i + 1})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=write)
    t.start()
    try:
        while not done.is_set():
            seen.append(len(reader.list_events()))
            # one read transaction = one snapshot: the detector state and the events written with it
            raw.execute("BEGIN")
            n = raw.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            row = raw.execute("SELECT data FROM detector_state WHERE name = 'detector'").fetchone()
            raw.execute("COMMIT")
            assert (json.loads(row[0])["n"] if row else 0) == n
            seen.append(n)
    finally:
        t.join()
    assert not errors
    assert len(reader.list_events()) == 200 and reader.load_state("detector") == {"n": 200}
    assert len(seen) > 2 and seen == sorted(seen)  # committed data only grows, as every reader sees it
    raw.close()
    reader.close()
    writer.close()


def test_shares_the_file_with_ingest_dead_letters(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, reason TEXT)")
    conn.execute("INSERT INTO dead_letters (reason) VALUES ('bad_json')")
    conn.commit()
    conn.close()
    with Ledger(path) as led:
        led.upsert_event(ev("e1", T0))
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"dead_letters", "events", "cases", "notices", "detector_state", "windows"} <= tables
    assert conn.execute("SELECT reason FROM dead_letters").fetchall() == [("bad_json",)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
