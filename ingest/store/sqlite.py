"""Embedded SQLite store: one file, WAL, idempotent on (device_id, time_ms): the first stored value wins
(``ON CONFLICT DO NOTHING``); a later different one is reported to ``on_conflict`` (ingest.duplicates).

Write path (BENCHMARKS.md has the measurements behind each choice):

- Rows go in as multi-row ``INSERT ... VALUES (...),(...)`` statements of up to 256 rows: one
  statement is one ``sqlite3_step``, during which the sqlite3 module releases the GIL once, so the MQTT
  thread keeps decoding while SQLite works. ``executemany`` releases and re-takes the GIL for every row,
  and under contention each re-take waits for the other thread.
- Booleans are bound as ints (see ``_row``).
- A 64 MiB page cache keeps the hot pages of the table and its index in memory.
- One secondary index, ``(restaurant_id, time_ms)``. A time range over every device (the alerts warm-up,
  ``fumewatch readings --since``) reads ``{table}_devices``, each device's first and last time, and then
  each device's rows through the primary key, instead of a ``(time_ms)`` index: keeping that index cost
  about a quarter of every insert (issue 14, BENCHMARKS.md). Files written before keep their rows; the
  index is dropped and the per-device spans filled when such a file is opened.
- WAL checkpoints every 16384 pages (64 MiB) instead of SQLite's 1000: a checkpoint copies pages to the
  database file and fsyncs it, and doing that every 4 MB cost more than the inserts themselves.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
from collections.abc import Callable

import orjson

from ingest.duplicates import first_wins_conflicts
from ingest.model import Reading
from ingest.state import connect
from ingest.store.base import Batch, Store, rollback

log = logging.getLogger("fumewatch.ingest")

_COLUMNS = (
    "device_id",
    "time_ms",
    "restaurant_id",
    "district",
    "oil_fume_mg_m3",
    "oil_fume_ref_mg_m3",
    "ref_converted",
    "pm_mg_m3",
    "nmhc_mg_m3",
    "flow_m3_h",
    "fan_on",
    "purifier_on",
    "source",
    "flags",
    "extra",
    "excluded",
)
#: Columns added after the first release (flags, unknown entries, exclusion): added to older files on open.
_ADDED = {"flags": "TEXT", "extra": "TEXT", "excluded": "TEXT"}

_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    device_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    restaurant_id TEXT NOT NULL,
    district TEXT NOT NULL,
    oil_fume_mg_m3 REAL NOT NULL,
    oil_fume_ref_mg_m3 REAL NOT NULL,
    ref_converted INTEGER NOT NULL,
    pm_mg_m3 REAL,
    nmhc_mg_m3 REAL,
    flow_m3_h REAL,
    fan_on INTEGER,
    purifier_on INTEGER,
    source TEXT NOT NULL,
    flags TEXT,     -- JSON object: the HJ 212 data flag of each value (NULL for JSON input)
    extra TEXT,     -- JSON object: entries the device's dialect does not know, as sent
    excluded TEXT,  -- why the reading is not judged (flag_D, rs_3, ...); NULL when it is
    PRIMARY KEY (device_id, time_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {name}_restaurant_time ON {name} (restaurant_id, time_ms);
"""

#: Each device's first and last reading time in a table: what a time range over every device reads.
_SPANS = """
CREATE TABLE IF NOT EXISTS {name}_devices (
    device_id TEXT PRIMARY KEY,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""
_SPAN_UPSERT = (
    "INSERT INTO {name}_devices (device_id, first_ms, last_ms) VALUES (?, ?, ?) ON CONFLICT (device_id) "
    "DO UPDATE SET first_ms = min(first_ms, excluded.first_ms), last_ms = max(last_ms, excluded.last_ms)"
)

#: Minute/real-time samples; HJ 212 hourly averages go to ``readings_hourly``.
TABLE = "readings"
HOURLY_TABLE = "readings_hourly"


#: Page cache of the store's connection (negative = KiB, SQLite's convention).
CACHE_KIB = 65536
#: WAL pages between automatic checkpoints (SQLite's default is 1000).
WAL_AUTOCHECKPOINT_PAGES = 16384
#: Largest number of rows in one INSERT statement (a power of two). 13 parameters a row: SQLite allows
#: 32766 parameters since 3.32 and 999 before, where the statements are cut to 64 rows.
CHUNK_ROWS = 256


def _chunk_rows(conn: sqlite3.Connection) -> int:
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_COLUMNS)
    rows = CHUNK_ROWS
    while rows > limit and rows > 1:
        rows //= 2
    return rows


def _chunks(n: int, chunk: int = CHUNK_ROWS) -> list[int]:
    """Statement sizes for ``n`` rows: full chunks, then powers of two, so that at most nine statement
    shapes per table are ever prepared (and stay in the connection's statement cache)."""
    sizes = [chunk] * (n // chunk)
    rest = n % chunk
    size = chunk // 2
    while rest:
        if rest >= size:
            sizes.append(size)
            rest -= size
        size //= 2
    return sizes


def _row(r: Reading) -> tuple:
    # Booleans become ints here: the sqlite3 module binds a bool only after a failed adapter lookup
    # (two attribute look-ups that raise), which cost more than the whole insert.
    return (
        r.device_id,
        r.time_ms,
        r.restaurant_id,
        r.district,
        r.oil_fume_mg_m3,
        r.oil_fume_ref_mg_m3,
        1 if r.ref_converted else 0,
        r.pm_mg_m3,
        r.nmhc_mg_m3,
        r.flow_m3_h,
        None if r.fan_on is None else int(r.fan_on),
        None if r.purifier_on is None else int(r.purifier_on),
        r.source,
    )


def _row_hj212(r: Reading) -> tuple:
    """:func:`_row` plus the HJ 212 columns (flags, extra, excluded)."""
    return (
        *_row(r),
        None if r.flags is None else orjson.dumps(r.flags).decode(),
        None if r.extra is None else orjson.dumps(r.extra).decode(),
        r.excluded or None,
    )


def _plain(r: Reading) -> bool:
    return r.flags is None and r.extra is None and not r.excluded


def _runs(readings: list[Reading]) -> list[tuple[bool, list[Reading]]]:
    """Consecutive runs of plain readings (JSON: no flags, no extra, judged) and HJ 212 ones, in order, so
    that plain rows bind only the first 13 columns (binding three more NULLs per row cost about 40 % of
    the insert) while the batch keeps its order (the first of two rows for one key wins)."""
    if all(map(_plain, readings)):
        return [(True, readings)]
    out: list[tuple[bool, list[Reading]]] = []
    for r in readings:
        p = _plain(r)
        if out and out[-1][0] == p:
            out[-1][1].append(r)
        else:
            out.append((p, [r]))
    return out


class SQLiteStore(Store):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._conn = connect(path)
        self._conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        for name in (TABLE, HOURLY_TABLE):
            self._conn.executescript(_TABLE.format(name=name))
            self._spans_table(name)
            have = {row[1] for row in self._conn.execute(f"PRAGMA table_info({name})")}
            for col, kind in _ADDED.items():
                if col not in have:  # a file written before #13: same rows, the new columns empty
                    self._conn.execute(f"ALTER TABLE {name} ADD COLUMN {col} {kind}")
        self._lock = threading.Lock()
        self._chunk = _chunk_rows(self._conn)
        self._statements: dict[tuple[str, int, bool], str] = {}
        #: Called with (refused reading, stored row) pairs: the first stored value for a (device, time) wins
        #: (ingest.duplicates); set by the ingest service, which dead-letters them.
        self.on_conflict: Callable[[list[tuple[Reading, dict]]], None] | None = None

    def _spans_table(self, name: str) -> None:
        """Create ``{name}_devices``; in a file from before it, fill it from the rows and drop the
        ``(time_ms)`` index it replaces (one pass over the primary key, once)."""
        c = self._conn
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        if c.execute(exists, (f"{name}_devices",)).fetchone():
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            if not c.execute(exists, (f"{name}_devices",)).fetchone():  # another process may have been first
                if c.execute(
                    f"SELECT 1 FROM {name} LIMIT 1"
                ).fetchone():  # rows from before: say why it waits
                    log.info("event=store_upgrade path=%s table=%s step=device_spans", self.path, name)
                c.execute(_SPANS.format(name=name).strip())
                c.execute(
                    f"INSERT INTO {name}_devices SELECT device_id, MIN(time_ms), MAX(time_ms) FROM {name} "
                    "GROUP BY device_id"
                )
                c.execute(f"DROP INDEX IF EXISTS {name}_time")
            c.execute("COMMIT")
        except BaseException:
            rollback(c)
            raise

    def _statement(self, table: str, rows: int, plain: bool = True) -> str:
        sql = self._statements.get((table, rows, plain))
        if sql is None:
            cols = _COLUMNS[: -len(_ADDED)] if plain else _COLUMNS
            one = "(" + ",".join("?" * len(cols)) + ")"
            sql = (
                f"INSERT INTO {table} ({','.join(cols)}) VALUES "
                + ",".join([one] * rows)
                + " ON CONFLICT (device_id, time_ms) DO NOTHING"
            )
            self._statements[(table, rows, plain)] = sql
        return sql

    def _update_spans(self, table: str, readings: list[Reading]) -> None:
        """Widen the devices' first/last times in ``{table}_devices`` to cover ``readings``."""
        spans: dict[str, list[int]] = {}
        for r in readings:
            span = spans.get(r.device_id)
            if span is None:
                spans[r.device_id] = [r.time_ms, r.time_ms]
            elif r.time_ms < span[0]:
                span[0] = r.time_ms
            elif r.time_ms > span[1]:
                span[1] = r.time_ms
        self._conn.executemany(_SPAN_UPSERT.format(name=table), [(d, a, b) for d, (a, b) in spans.items()])

    def _insert_rows(self, table: str, readings: list[Reading]) -> None:
        flat = itertools.chain.from_iterable
        for plain, run in _runs(readings):
            row = _row if plain else _row_hj212
            i = 0
            for size in _chunks(len(run), self._chunk):
                self._conn.execute(
                    self._statement(table, size, plain), list(flat(map(row, run[i : i + size])))
                )
                i += size

    def write(self, batch: Batch) -> None:
        rows: list[Reading] = []
        for _token, readings in batch:
            rows.extend(readings)
        hourly: list[Reading] = []
        if any(r.interval_s >= 3600 for r in rows):  # HJ 212 hourly means (CN 2061) have their own table
            hourly = [r for r in rows if r.interval_s >= 3600]
            rows = [r for r in rows if r.interval_s < 3600]
        conflicts: list[tuple[Reading, dict]] = []
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                before = conn.total_changes
                if rows:
                    self._insert_rows(TABLE, rows)
                if hourly:
                    self._insert_rows(HOURLY_TABLE, hourly)
                if conn.total_changes - before < len(rows) + len(hourly):  # some were already stored
                    conflicts = first_wins_conflicts(conn, TABLE, rows) + first_wins_conflicts(
                        conn, HOURLY_TABLE, hourly
                    )
                # after the count above: these upserts are changes too
                if rows:
                    self._update_spans(TABLE, rows)
                if hourly:
                    self._update_spans(HOURLY_TABLE, hourly)
                conn.execute("COMMIT")
            except BaseException:  # e.g. "database or disk is full": nothing was written, the caller retries
                rollback(conn)
                raise
        if conflicts and self.on_conflict is not None:
            self.on_conflict(conflicts)  # dead letters, committed before the messages are acknowledged
        self._on_durable([t for t, _ in batch])

    def query(
        self,
        *,
        restaurant_id: str | None = None,
        device_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        hourly: bool = False,
    ) -> list[dict]:
        table = HOURLY_TABLE if hourly else TABLE
        with self._lock:
            if device_id is None and restaurant_id is None and (since_ms is not None or until_ms is not None):
                # every device in a time range: the devices whose span overlaps it, each by its key
                lo, hi = -(2**62) if since_ms is None else since_ms, 2**62 if until_ms is None else until_ms
                devices = [
                    d
                    for (d,) in self._conn.execute(
                        f"SELECT device_id FROM {table}_devices WHERE last_ms >= ? AND first_ms < ?", (lo, hi)
                    )
                ]
                rows = []
                q = f"SELECT {','.join(_COLUMNS)} FROM {table} WHERE device_id = ? AND time_ms >= ? AND time_ms < ?"
                for d in devices:
                    rows += self._conn.execute(q, (d, lo, hi)).fetchall()
                rows.sort(key=lambda row: (row[1], row[0]))
            else:
                q = f"SELECT {','.join(_COLUMNS)} FROM {table} WHERE 1=1"
                args: list = []
                for col, op, val in (
                    ("restaurant_id", "=", restaurant_id),
                    ("device_id", "=", device_id),
                    ("time_ms", ">=", since_ms),
                    ("time_ms", "<", until_ms),
                ):
                    if val is not None:
                        q += f" AND {col} {op} ?"
                        args.append(val)
                q += " ORDER BY time_ms, device_id"
                rows = self._conn.execute(q, args).fetchall()
        out = []
        for row in rows:
            d = dict(zip(_COLUMNS, row, strict=True))
            d["ref_converted"] = bool(d["ref_converted"])
            for k in ("fan_on", "purifier_on"):
                if d[k] is not None:
                    d[k] = bool(d[k])
            for k in ("flags", "extra"):
                if d[k] is not None:
                    d[k] = orjson.loads(d[k])
            d["excluded"] = d["excluded"] or ""
            out.append(d)
        return out

    def count(self) -> int:
        with self._lock:
            return self._conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]

    def counts_by_restaurant(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT restaurant_id, COUNT(*) FROM {TABLE} GROUP BY restaurant_id ORDER BY restaurant_id"
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                self._conn.close()
