"""The state database (SQLite, WAL): dead letters here; the alerts service adds its own tables.

One file shared by ingest and alerts (``--state PATH``); readers in other processes are fine while a
service writes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from ingest.model import DeadLetter

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    device_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL,
    payload_excerpt TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_ms);
"""


def connect(path: str | Path) -> sqlite3.Connection:
    """Open an SQLite file the fumewatch way: WAL, busy timeout, usable from the service's threads."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class StateDB:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = connect(path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def add_dead_letters(self, items: list[DeadLetter]) -> None:
        if not items:
            return
        rows = [
            (
                d.received_ms,
                d.topic,
                d.device_id,
                d.reason,
                d.payload_excerpt,
                orjson.dumps(d.detail).decode(),
            )
            for d in items
        ]
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO dead_letters (received_ms, topic, device_id, reason, payload_excerpt, detail) "
                "VALUES (?,?,?,?,?,?)",
                rows,
            )
            self._conn.execute("COMMIT")

    def dead_letters(
        self, since_ms: int | None = None, until_ms: int | None = None, reason: str | None = None
    ) -> list[DeadLetter]:
        q = "SELECT received_ms, topic, device_id, reason, payload_excerpt, detail FROM dead_letters WHERE 1=1"
        args: list = []
        if since_ms is not None:
            q += " AND received_ms >= ?"
            args.append(since_ms)
        if until_ms is not None:
            q += " AND received_ms < ?"
            args.append(until_ms)
        if reason:
            q += " AND reason = ?"
            args.append(reason)
        q += " ORDER BY id"
        with self._lock:
            rows = self._conn.execute(q, args).fetchall()
        return [
            DeadLetter(
                received_ms=r[0],
                topic=r[1],
                device_id=r[2],
                reason=r[3],
                payload_excerpt=r[4],
                detail=orjson.loads(r[5]),
            )
            for r in rows
        ]

    def dead_letter_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason ORDER BY 2 DESC"
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
