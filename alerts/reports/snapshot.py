"""Reading the alerts state database for a report: one read transaction (a consistent snapshot while the
alerts service keeps writing); windows are aggregated in SQLite, never row by row in Python.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from alerts.ledger import _EVENT_COLUMNS, SENT, Ledger
from alerts.reports.model import _JUDGED_POLLUTANT, ReportError
from ingest.registry import Registry

#: The events table's columns, less the evidence JSON (not needed for the tables).
_EVENT_SQL_COLUMNS = tuple(c for c in _EVENT_COLUMNS if c != "evidence")
_WINDOW_TOTALS = (
    "windows",
    "samples",
    "expected_samples",
    "valid_windows",
    "compliant_windows",
    "exceeding_windows",
)


class _Reader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        return self.conn.execute(sql, tuple(args)).fetchall()


@contextmanager
def _snapshot(ledger: Ledger) -> Iterator[_Reader]:
    """A read-only connection to the ledger's file inside one read transaction (a consistent snapshot).

    An in-memory ledger (tests) is read through its own connection under its lock.
    """
    if ledger.path == ":memory:":
        with ledger._lock:  # noqa: SLF001 - same package; an in-memory database has no second connection
            yield _Reader(ledger._conn)  # noqa: SLF001
        return
    conn = sqlite3.connect(ledger.path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only=1")
        conn.execute("BEGIN")
        yield _Reader(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()


def check_filters(
    ledger: Ledger, registry: Registry, district: str | None, restaurant_id: str | None
) -> None:
    """Raise :class:`ReportError` when ``district`` or ``restaurant_id`` is known neither to the registry
    nor to the events of the state database (a typo must not give an empty report that looks clean)."""
    with _snapshot(ledger) as db:
        if district is not None and not any(d.district == district for d in registry):
            if not db.rows("SELECT 1 FROM events WHERE district = ? LIMIT 1", (district,)):
                known = sorted({d.district for d in registry})
                shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
                raise ReportError(f"unknown district {district!r}; known: {shown}")
        if restaurant_id is not None and not any(d.restaurant_id == restaurant_id for d in registry):
            if not db.rows("SELECT 1 FROM events WHERE restaurant_id = ? LIMIT 1", (restaurant_id,)):
                raise ReportError(
                    f"unknown restaurant {restaurant_id!r} (not in the registry nor in any event)"
                )


def _read_events(db: _Reader, since_ms: int, until_ms: int, restaurant_id: str | None, district: str | None):
    # The overlap rule of Ledger.list_events, in this snapshot and without parsing every evidence list.
    where = "(end_ms IS NULL OR end_ms >= ?) AND start_ms < ?"
    args: list[Any] = [since_ms, until_ms]
    for col, val in (("restaurant_id", restaurant_id), ("district", district)):
        if val is not None:
            where += f" AND {col} = ?"
            args.append(val)
    events = db.rows(
        f"SELECT {', '.join(_EVENT_SQL_COLUMNS)} FROM events WHERE {where} ORDER BY start_ms, event_id", args
    )
    where_n = (
        "(e.end_ms IS NULL OR e.end_ms >= ?) AND e.start_ms < ?"
        + (" AND e.restaurant_id = ?" if restaurant_id is not None else "")
        + (" AND e.district = ?" if district is not None else "")
    )
    notices = db.rows(
        "SELECT n.event_id, COUNT(*) FROM notices n JOIN events e ON e.event_id = n.event_id "
        f"WHERE n.status = ? AND {where_n} GROUP BY n.event_id",
        [SENT, *args],
    )
    return events, dict(notices)


def _window_devices(db: _Reader) -> list[str]:
    """Every device id in the windows table: a skip-scan over the primary key (one seek per device)."""
    out: list[str] = []
    row = db.rows("SELECT MIN(device_id) FROM windows")
    while row and row[0][0] is not None:
        out.append(row[0][0])
        row = db.rows("SELECT MIN(device_id) FROM windows WHERE device_id > ?", (out[-1],))
    return out


def _window_totals(db: _Reader, device_ids: list[str], since_ms: int, until_ms: int) -> pd.DataFrame:
    """Per device: windows, samples, expected, valid, compliant, exceeding (oil-fume windows in the period).

    One aggregate query; each device's rows are one primary-key range (device, pollutant, start).
    """
    cols = ["device_id", *_WINDOW_TOTALS]
    if not device_ids:
        return pd.DataFrame(columns=cols)
    sql = (
        "SELECT device_id, COUNT(*), SUM(samples), SUM(expected), SUM(valid), "
        "SUM(CASE WHEN valid AND NOT exceeds THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN valid AND exceeds THEN 1 ELSE 0 END) "
        "FROM windows WHERE device_id IN ({ids}) AND pollutant = ? AND start_ms >= ? AND start_ms < ? "
        "GROUP BY device_id"
    )
    try:  # one query, the id list as one JSON parameter (no limit on the number of SQL variables)
        rows = db.rows(
            sql.format(ids="SELECT value FROM json_each(?)"),
            (json.dumps(device_ids), _JUDGED_POLLUTANT, since_ms, until_ms),
        )
    except sqlite3.OperationalError:  # an SQLite built without JSON1: chunks of bound parameters
        rows = []
        for i in range(0, len(device_ids), 500):
            chunk = device_ids[i : i + 500]
            rows += db.rows(
                sql.format(ids=", ".join("?" * len(chunk))), (*chunk, _JUDGED_POLLUTANT, since_ms, until_ms)
            )
    return pd.DataFrame(rows, columns=cols)
