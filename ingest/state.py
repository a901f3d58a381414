"""The state database: dead letters here; the alerts ledger adds its own tables (``alerts.ledger``).

One database shared by ingest and alerts (``--state``): an SQLite file (WAL; readers in other processes
are fine while a service writes) or PostgreSQL (``postgresql://user@host/db``, see :mod:`ingest.db`).
The schema is :mod:`ingest.state_schema`; the command line migrates it (``fumewatch db upgrade``).
:func:`connect` is the raw-sqlite3 helper the embedded readings store uses (not part of the state DB).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson
from sqlalchemy import func, inspect, select

from ingest.db import begin_write, display, make_engine
from ingest.model import DeadLetter
from ingest.state_schema import dead_letters, metadata


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
    """Dead letters in the state database at ``path`` (an SQLite path or a postgresql:// URL).

    The table is created when missing (an unmigrated database; ``fumewatch db upgrade`` versions it).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = display(path)
        self._engine = make_engine(path)
        self._lock = threading.Lock()
        with self._engine.connect() as conn:
            present = inspect(conn).has_table("dead_letters")
        if not present:
            with self._engine.connect() as conn:
                begin_write(conn)
                metadata.create_all(conn, checkfirst=True)
                conn.commit()

    def add_dead_letters(self, items: list[DeadLetter]) -> None:
        if not items:
            return
        rows = [
            {
                "received_ms": d.received_ms,
                "topic": d.topic,
                "device_id": d.device_id,
                "reason": d.reason,
                "payload_excerpt": d.payload_excerpt,
                "detail": orjson.dumps(d.detail).decode(),
            }
            for d in items
        ]
        with self._lock, self._engine.connect() as conn:
            begin_write(conn)
            conn.execute(dead_letters.insert(), rows)
            conn.commit()

    def dead_letters(
        self, since_ms: int | None = None, until_ms: int | None = None, reason: str | None = None
    ) -> list[DeadLetter]:
        t = dead_letters.c
        q = select(t.received_ms, t.topic, t.device_id, t.reason, t.payload_excerpt, t.detail)
        if since_ms is not None:
            q = q.where(t.received_ms >= since_ms)
        if until_ms is not None:
            q = q.where(t.received_ms < until_ms)
        if reason:
            q = q.where(t.reason == reason)
        with self._lock, self._engine.connect() as conn:
            rows = conn.execute(q.order_by(t.id)).all()
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
        t = dead_letters.c
        n = func.count().label("n")
        q = select(t.reason, n).group_by(t.reason).order_by(n.desc())
        with self._lock, self._engine.connect() as conn:
            rows = conn.execute(q).all()
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        with self._lock:
            self._engine.dispose()
