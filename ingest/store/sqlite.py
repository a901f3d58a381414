"""Embedded SQLite store: one file, WAL, idempotent on (device_id, time_ms)."""

from __future__ import annotations

import threading

from ingest.model import Reading
from ingest.state import connect
from ingest.store.base import Batch, Store

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
)

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
    PRIMARY KEY (device_id, time_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {name}_restaurant_time ON {name} (restaurant_id, time_ms);
CREATE INDEX IF NOT EXISTS {name}_time ON {name} (time_ms);
"""

#: Minute/real-time samples; HJ 212 hourly averages go to ``readings_hourly``.
TABLE = "readings"
HOURLY_TABLE = "readings_hourly"

_INSERT = "INSERT OR REPLACE INTO {name} ({cols}) VALUES ({marks})".format(
    name="{name}", cols=",".join(_COLUMNS), marks=",".join("?" * len(_COLUMNS))
)


def _row(r: Reading) -> tuple:
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


class SQLiteStore(Store):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._conn = connect(path)
        for name in (TABLE, HOURLY_TABLE):
            self._conn.executescript(_TABLE.format(name=name))
        self._lock = threading.Lock()
        self._insert = _INSERT.format(name=TABLE)
        self._insert_hourly = _INSERT.format(name=HOURLY_TABLE)

    def write(self, batch: Batch) -> None:
        rows = []
        hourly = []
        for _token, readings in batch:
            for r in readings:
                (hourly if r.interval_s >= 3600 else rows).append(_row(r))
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                if rows:
                    conn.executemany(self._insert, rows)
                if hourly:
                    conn.executemany(self._insert_hourly, hourly)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
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
        q = f"SELECT {','.join(_COLUMNS)} FROM {HOURLY_TABLE if hourly else TABLE} WHERE 1=1"
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
        with self._lock:
            cur = self._conn.execute(q, args)
            rows = cur.fetchall()
        out = []
        for row in rows:
            d = dict(zip(_COLUMNS, row, strict=True))
            d["ref_converted"] = bool(d["ref_converted"])
            for k in ("fan_on", "purifier_on"):
                if d[k] is not None:
                    d[k] = bool(d[k])
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
