"""Make ``tests/data/state-v0.1.db``: a state database as written by the release before Alembic (0.1).

The file holds what the pre-Alembic code (commit f05a2e4: ``alerts/ledger.py`` with hand-written
``CREATE TABLE IF NOT EXISTS`` strings, ``ingest/state.py`` likewise) writes: two exceedance events
(one closed with a level, one open), an enforcement case (status moved on by an inspector), notices in
each status, finalised windows, a detector snapshot and dead letters. ``tests/test_migrations.py``
upgrades a copy of it and checks that every row survives.

This script must run against that pre-change code, not the current one (today's Ledger would write an
Alembic-managed database, which is not what the test is about). To regenerate it::

    git worktree add /tmp/fw-v01 f05a2e4
    cd /tmp/fw-v01 && PYTHONPATH=. python /path/to/tests/data/make_state_v01.py tests/data/state-v0.1.db

Timestamps are fixed (``T0``) and ``created_ms``/``updated_ms`` columns come from the clock, so two
runs differ only in those.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from alerts.enforcement.ladder import build_case
from alerts.ledger import Ledger
from alerts.model import EXCEEDANCE, Event, WindowResult
from ingest.model import DeadLetter
from ingest.state import StateDB

T0 = 1795667400000  # 2026-11-26T09:50:00+08:00
W = 600_000


def main(out: str) -> None:
    path = Path(out)
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    state = StateDB(path)
    state.add_dead_letters(
        [
            DeadLetter(
                T0 + 1, "fume/v1/R1/D1", "bad_json", "{not json", "D1", {"message": "Expecting value"}
            ),
            DeadLetter(T0 + 2, "fume/v1/R2/D2", "unknown_device", '{"device_id":"D9"}', "D9", {}),
            DeadLetter(T0 + 3, "fume/v1/hj212", "bad_crc", "##0101QN=2016...", "", {"message": "CRC 1C80"}),
        ]
    )
    state.close()
    led = Ledger(path)
    windows = [
        WindowResult("D1", T0 + i * W, T0 + (i + 1) * W, 10, 10, True, "", 2.1 + i / 10, 2.9 + i / 10, True)
        for i in range(5)
    ]
    windows.append(WindowResult("D2", T0, T0 + W, 3, 10, False, "incomplete", None, None, False))
    led.add_windows(windows)
    closed = Event(
        event_id="D1:oil_fume:1795667400000",
        kind=EXCEEDANCE,
        restaurant_id="R1",
        device_id="D1",
        district="朝阳区",
        start_ms=T0,
        end_ms=T0 + 5 * W,
        pollutant="oil_fume",
        peak_mg_m3=3.3,
        mean_mg_m3=2.3,
        limit_mg_m3=2.0,
        profile="gb18483",
        state="closed",
        evidence=[{"start_ms": w.start_ms, "mean_mg_m3": w.mean_mg_m3} for w in windows[:5]],
    )
    opened = Event(
        event_id="D3:oil_fume:1795671000000",
        kind=EXCEEDANCE,
        restaurant_id="R3",
        device_id="D3",
        district="海淀区",
        start_ms=T0 + 6 * W,
        pollutant="oil_fume",
        peak_mg_m3=2.4,
        mean_mg_m3=2.2,
        limit_mg_m3=2.0,
        profile="gb18483",
        state="open",
    )
    with led.transaction():
        led.upsert_event(closed)
        led.upsert_event(opened)
        led.save_state(
            "detector", {"watermark": T0 + 6 * W, "open": {"D3|oil_fume": {"start_ms": T0 + 6 * W}}}
        )
    led.set_level(closed.event_id, "enforcement", 3)
    case = build_case(closed, windows[:5], occurrence=3, created_ms=T0 + 5 * W)
    led.upsert_case(case)
    led.set_case_status(case["case_id"], "assigned")
    pay = {"title": "油烟超标告知", "body": "正文", "device_id": "D1", "restaurant_id": "R1"}
    led.notice_begin(f"{closed.event_id}:opened", "owner", "json://u:pw@hooks.example.com/a", pay)
    led.notice_done(f"{closed.event_id}:opened", "json://u:pw@hooks.example.com/a", True, "", 1)
    led.notice_begin(f"{closed.event_id}:closed", "inspector", "json://cases.example.com/b", pay)
    led.notice_done(f"{closed.event_id}:closed", "json://cases.example.com/b", False, "HTTP 503", 3)
    led.notice_skip(f"{closed.event_id}:opened", "mqtt", "owner:none", "no owner_notify URL", pay)
    led.notice_begin(
        f"{opened.event_id}:opened", "owner", "json://hooks.example.com/c", {**pay, "device_id": "D3"}
    )
    led.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.close()
    for p in path.parent.glob(path.name + "-*"):
        p.unlink()
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_name("state-v0.1.db")))
