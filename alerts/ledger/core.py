"""The :class:`Ledger`: events, enforcement cases, detector snapshots and finalised windows (notices: the
:class:`~alerts.ledger.notices.NoticeGate` it inherits).

Concurrency model. SQLite (embedded): one writer thread per process (the alerts service) plus any number
of readers in other processes (``fumewatch events``, reports); WAL lets readers see the last committed
snapshot while the writer holds a transaction, writers take the lock up front (``BEGIN IMMEDIATE``) and a
busy timeout makes a second writer wait instead of failing; ``synchronous=FULL``. PostgreSQL: every write
is one transaction (READ COMMITTED) that locks the rows it reads before it changes them
(``SELECT ... FOR UPDATE``) or changes them in one statement (``INSERT ... ON CONFLICT``), so two processes
updating one case or claiming one notice queue on the row instead of overwriting each other. Within a
process the Ledger is guarded by a lock, so helper threads may use it too.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, inspect, not_, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import ColumnElement

from alerts.ledger.casework import CASE_COLUMNS, CaseworkStore, case_from_row
from alerts.ledger.episodes import EpisodeStore
from alerts.ledger.event_rows import _dumps, _event_cols, _event_from_row, _event_row
from alerts.ledger.notices import NoticeGate
from alerts.ledger.outbox import OutboxStore
from alerts.ledger.owner import OwnerStore
from alerts.ledger.schema import (
    _EVENT_COLUMNS,
    cases,
    events,
    metadata,
)
from alerts.ledger.state import StateStore
from alerts.ledger.windows import WindowStore
from alerts.model import Event
from ingest.db import begin_write, display, is_sqlite, make_engine
from ingest.timeutil import now_ms


def _where(table: Any, since_ms: int | None, until_ms: int | None, **equals: Any) -> ColumnElement[bool]:
    """Filter for the listings: overlap with ``[since_ms, until_ms)`` on start_ms/end_ms (an open
    record, end NULL, overlaps every later period) and ``column = value`` for each value not None."""
    conds: list[ColumnElement[bool]] = []
    if since_ms is not None:
        conds.append(or_(table.c.end_ms.is_(None), table.c.end_ms >= since_ms))
    if until_ms is not None:
        conds.append(table.c.start_ms < until_ms)
    conds += [table.c[col] == val for col, val in equals.items() if val is not None]
    return and_(true(), *conds)


class Ledger(NoticeGate, WindowStore, EpisodeStore, OutboxStore, CaseworkStore, StateStore, OwnerStore):
    """The alerts state database at ``path``: an SQLite path (created with its parent folder if missing)
    or a ``postgresql://user@host/db`` URL (password from the environment, see :mod:`ingest.db`).

    Missing ledger tables are created (a fresh database for tests and tools); the command line versions
    the schema with Alembic (``fumewatch db upgrade``). A database older than the code is refused.
    """

    #: A pending claim by another live process is honoured this long (then it is taken over).
    claim_lease_s = 600.0

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = str(Path(path)) if is_sqlite(path) else display(path)
        self._engine = make_engine(path, busy_timeout_s)
        self.dialect = self._engine.dialect.name
        self.claimant = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.RLock()
        self._tx: Connection | None = None
        self._stmts: dict[str, Any] = {}
        if not self._schema_present():  # readers of an existing database never take the write lock
            with self.transaction() as c:
                metadata.create_all(c, checkfirst=True)

    def _schema_present(self) -> bool:
        with self._engine.connect() as c:
            insp = inspect(c)
            names = set(insp.get_table_names())
            if not {t.name for t in metadata.tables.values()} <= names:
                return False
            if "dismissed_by" not in {col["name"] for col in insp.get_columns("events")}:
                raise ValueError(
                    f"state database {self.path} predates this release's schema: "
                    f"run `fumewatch db upgrade --state {self.path}`"
                )
        return True

    # -- plumbing -----------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``); nested uses join the outer one.

        Use it to make several writes atomic, e.g. the detector snapshot together with the events it
        opened: ``with ledger.transaction(): ledger.save_state(...); ledger.upsert_event(...)``.
        Never hold it across network I/O.
        """
        with self._lock:
            if self._tx is not None:
                yield self._tx
                return
            conn = self._engine.connect()
            try:
                begin_write(conn)
                self._tx = conn
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            finally:
                self._tx = None
                conn.close()

    def _read(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        with self._lock:
            if self._tx is not None:  # inside our own transaction: see its uncommitted writes
                return list(self._tx.execute(stmt, params).all())
            with self._engine.connect() as c:
                return list(c.execute(stmt, params).all())

    def _prepared(self, name: str, build: Callable[[], Any]) -> Any:
        """The statement ``name``, built once per Ledger (values are bound at execution): building a
        statement costs more than running it on SQLite, and the hot paths run per window."""
        stmt = self._stmts.get(name)
        if stmt is None:
            stmt = self._stmts[name] = build()
        return stmt

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT (with ``on_conflict_do_update``/``_nothing``) for ``table``."""
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    @property
    def engine(self) -> Any:
        return self._engine

    def ping(self) -> bool:
        """Whether the database answers a query on the events table (health checks)."""
        try:
            self._read(select(events.c.event_id).limit(1))
        except Exception:  # noqa: BLE001 - any driver error means "not answering"
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events -------------------------------------------------------------------------------------------

    def upsert_event(self, event: Event) -> Event:
        """Insert or update ``event`` by ``event_id`` (idempotent); return the stored record.

        Every field is updated from ``event`` except ``level`` (and the ladder occurrence) and
        ``episode_id``, which keep the value first assigned: an event passed with an empty level, or a
        different one, never changes it. A closed event is not reopened by an ``open`` version of it (a
        stale snapshot, e.g. the ``opened`` transition's copy reaching the notifier after the close was
        stored), and an open event is not taken back to a snapshot older (in event time, :func:`asof_ms`)
        than the stored one: those updates are ignored.
        """
        ts = now_ms()
        stmt = self._prepared("upsert_event", self._upsert_event)
        with self.transaction() as c:
            c.execute(stmt, {**_event_row(event), "created_ms": ts, "updated_ms": ts})
            stored = self.get_event(event.event_id)
        assert stored is not None
        return stored

    def _upsert_event(self) -> Any:
        t = events.c
        stmt = self._insert(events)
        ex = stmt.excluded
        set_: dict[str, Any] = {c: ex[c] for c in _EVENT_COLUMNS if c not in ("event_id", "level")}
        set_["level"] = case((t.level != "", t.level), else_=ex.level)
        set_["episode_id"] = case((t.episode_id != "", t.episode_id), else_=ex.episode_id)
        set_["asof_ms"] = ex.asof_ms
        set_["updated_ms"] = ex.updated_ms
        return stmt.on_conflict_do_update(
            index_elements=[t.event_id],
            set_=set_,
            # a closed event is never reopened, and an open one never goes back to an older snapshot
            where=and_(
                not_(and_(t.state == "closed", ex.state == "open")),
                or_(ex.state == "closed", t.asof_ms.is_(None), ex.asof_ms >= t.asof_ms),
            ),
        )

    def get_event(self, event_id: str) -> Event | None:
        q = self._prepared(
            "get_event", lambda: select(*_event_cols()).where(events.c.event_id == bindparam("b_id"))
        )
        rows = self._read(q, {"b_id": event_id})
        return _event_from_row(rows[0]) if rows else None

    def existing_event_ids(self, event_ids: list[str]) -> list[str]:
        """Those of ``event_ids`` that are in the ledger, in the given order (one query)."""
        if not event_ids:
            return []
        have = {r[0] for r in self._read(select(events.c.event_id).where(events.c.event_id.in_(event_ids)))}
        return [i for i in event_ids if i in have]

    def list_events(
        self,
        since_ms: int | None = None,
        until_ms: int | None = None,
        restaurant_id: str | None = None,
        district: str | None = None,
        kind: str | None = None,
        state: str | None = None,
        include_dismissed: bool = False,
    ) -> list[Event]:
        """Events overlapping ``[since_ms, until_ms)``, ordered by start then id.

        Overlap: ``start < until`` and (``end >= since`` or the event is still open, ``end`` NULL).
        Events a case dismissed (device fault, invalid data) are left out unless ``include_dismissed``:
        reports, listings and the ladder no longer count them.
        """
        where = _where(
            events, since_ms, until_ms, restaurant_id=restaurant_id, district=district, kind=kind, state=state
        )
        if not include_dismissed:
            where = and_(where, events.c.dismissed_by == "")
        q = select(*_event_cols()).where(where).order_by(events.c.start_ms, events.c.event_id)
        return [_event_from_row(r) for r in self._read(q)]

    def set_level(self, event_id: str, level: str, occurrence: int | None = None) -> str:
        """Assign ``level`` (and the ladder occurrence) unless one is already set; return the stored level."""
        t = events.c
        with self.transaction() as c:
            c.execute(
                update(events)
                .where(t.event_id == event_id, t.level == "")
                .values(level=level, occurrence=occurrence, updated_ms=now_ms())
            )
            row = c.execute(select(t.level).where(t.event_id == event_id)).first()
        if row is None:
            raise KeyError(f"no event {event_id!r} in the ledger")
        return str(row[0])

    def get_occurrence(self, event_id: str) -> int | None:
        """The event's position on its restaurant's ladder, as recorded with its level (None if unset)."""
        rows = self._read(select(events.c.occurrence).where(events.c.event_id == event_id))
        return rows[0][0] if rows else None

    # -- cases --------------------------------------------------------------------------------------------

    def upsert_case(self, case: dict[str, Any]) -> None:
        """Insert or refresh an enforcement case (see :func:`alerts.enforcement.ladder.build_case`), by ``case_id``.

        A refresh keeps ``created_ms`` and the stored ``status`` (inspectors may have moved it on). The
        stored row is locked while it is read and rewritten, so a concurrent status change is not lost.
        A new case gets its opening audit record (``case_actions`` seq 1, actor ``system``).
        """
        ts = now_ms()
        t = cases.c
        with self.transaction() as c:
            old = c.execute(
                select(t.status, t.created_ms).where(t.case_id == case["case_id"]).with_for_update()
            ).first()
            record = dict(case)
            if old is not None:
                record["status"], record["created_ms"] = old[0], old[1]
            record.setdefault("status", "open")
            record.setdefault("created_ms", ts)
            case_type = record.setdefault("case_type", "enforcement")
            stmt = self._insert(cases).values(
                case_id=record["case_id"],
                event_id=record["event_id"],
                restaurant_id=record.get("restaurant_id", ""),
                device_id=record.get("device_id", ""),
                district=record.get("district", ""),
                status=record["status"],
                start_ms=record["start_ms"],
                end_ms=record.get("end_ms"),
                record=_dumps(record),
                created_ms=record["created_ms"],
                updated_ms=ts,
                case_type=case_type,
            )
            ex = stmt.excluded
            c.execute(
                stmt.on_conflict_do_update(
                    index_elements=[t.case_id],
                    set_={"end_ms": ex.end_ms, "record": ex.record, "updated_ms": ex.updated_ms},
                )
            )
            if old is None:
                why = {
                    "enforcement": "enforcement step of the ladder",
                    "owner_unreachable": "owner not reached",
                    "rectification": "the owner's submission through the owner page: review it (整改核查)",
                }
                self.record_case_opened(
                    c, record["case_id"], record["created_ms"], why.get(case_type, case_type)
                )

    def list_cases(
        self,
        since_ms: int | None = None,
        until_ms: int | None = None,
        restaurant_id: str | None = None,
        district: str | None = None,
        status: str | None = None,
        case_type: str | None = None,
        assignee: str | None = None,
    ) -> list[dict[str, Any]]:
        """Case records (dicts as built by :func:`alerts.enforcement.ladder.build_case`) with their
        lifecycle columns (as :meth:`get_case`), same overlap rule as events."""
        where = _where(
            cases,
            since_ms,
            until_ms,
            restaurant_id=restaurant_id,
            district=district,
            status=status,
            case_type=case_type,
            assignee=assignee,
        )
        t = cases.c
        cols = [t.record, t.updated_ms, *(t[c] for c in CASE_COLUMNS)]
        q = select(*cols).where(where).order_by(t.start_ms, t.case_id)
        return [case_from_row(r) for r in self._read(q)]

    def cases_updated_since(self, since_ms: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Case records (as :meth:`list_cases`, with ``updated_ms``) changed after ``since_ms``, oldest change
        first: for copying case states elsewhere (the dashboards' ``fume_case``) without rereading all."""
        t = cases.c
        cols = [t.record, t.updated_ms, *(t[c] for c in CASE_COLUMNS)]
        q = select(*cols).where(t.updated_ms > since_ms).order_by(t.updated_ms, t.case_id).limit(limit)
        return [case_from_row(r) for r in self._read(q)]
