"""Reading the alerts state database for a report: one read transaction (a consistent snapshot while the
alerts service keeps writing); windows are aggregated in the database, never row by row in Python.

The queries are SQLAlchemy Core on the ledger's own engine and tables, so a report reads an SQLite file
and a PostgreSQL database alike. The snapshot: SQLite in WAL mode pins it at the first read of a
deferred transaction; PostgreSQL gets a ``REPEATABLE READ, READ ONLY`` transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, Connection, and_, case, cast, false, func, literal_column, or_, select

from alerts.ledger import _EVENT_COLUMNS, SENT, Ledger
from alerts.ledger.schema import cases, events, notices, windows
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
    "business_windows",
    "business_samples",
    "business_expected",
)
#: Device ids bound per aggregate query (SQLite's old limit is 999 bound parameters a statement).
_IDS_PER_QUERY = 500


class _Reader:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, stmt: Any) -> list[tuple]:
        return [tuple(r) for r in self.conn.execute(stmt).all()]


@contextmanager
def _snapshot(ledger: Ledger) -> Iterator[_Reader]:
    """One read-only transaction on the ledger's database (a consistent snapshot); nothing is written.

    An in-memory ledger (tests) has a single connection: it is read under the ledger's lock.
    """
    with ledger._lock if ledger.path == ":memory:" else nullcontext():  # noqa: SLF001 - same package
        conn = ledger.engine.connect()
        try:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")  # deferred: the first read pins the WAL snapshot
            else:
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _Reader(conn)
        finally:
            conn.rollback()  # read only: nothing to commit
            conn.close()


def _period(since_ms: int, until_ms: int, restaurant_id: str | None, district: str | None) -> list[Any]:
    """The overlap rule of :meth:`Ledger.list_events` (an open event, end NULL, overlaps every later
    period) and the equality filters, on the events table."""
    e = events.c
    conds: list[Any] = [or_(e.end_ms.is_(None), e.end_ms >= since_ms), e.start_ms < until_ms]
    if restaurant_id is not None:
        conds.append(e.restaurant_id == restaurant_id)
    if district is not None:
        conds.append(e.district == district)
    return conds


def check_filters(
    ledger: Ledger, registry: Registry, district: str | None, restaurant_id: str | None
) -> None:
    """Raise :class:`ReportError` when ``district`` or ``restaurant_id`` is known neither to the registry
    nor to the events of the state database (a typo must not give an empty report that looks clean)."""
    with _snapshot(ledger) as db:
        if district is not None and not any(d.district == district for d in registry):
            if not db.rows(select(events.c.event_id).where(events.c.district == district).limit(1)):
                known = sorted({d.district for d in registry})
                shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
                raise ReportError(f"unknown district {district!r}; known: {shown}")
        if restaurant_id is not None and not any(d.restaurant_id == restaurant_id for d in registry):
            if not db.rows(select(events.c.event_id).where(events.c.restaurant_id == restaurant_id).limit(1)):
                raise ReportError(
                    f"unknown restaurant {restaurant_id!r} (not in the registry nor in any event)"
                )


def _read_events(db: _Reader, since_ms: int, until_ms: int, restaurant_id: str | None, district: str | None):
    """The events of the period (without their evidence lists) and, per event, the notices sent."""
    conds = _period(since_ms, until_ms, restaurant_id, district)
    rows = db.rows(
        select(*(events.c[c] for c in _EVENT_SQL_COLUMNS))
        .where(*conds)
        .order_by(events.c.start_ms, events.c.event_id)
    )
    sent = db.rows(
        select(notices.c.event_id, func.count())
        .select_from(notices.join(events, events.c.event_id == notices.c.event_id))
        .where(notices.c.status == SENT, *conds)
        .group_by(notices.c.event_id)
    )
    return rows, {event_id: int(n) for event_id, n in sent}


def _window_devices(db: _Reader) -> list[str]:
    """Every device id in the windows table: a skip-scan over the primary key (one seek per device)."""
    out: list[str] = []
    first = func.min(windows.c.device_id)
    row = db.rows(select(first))
    while row and row[0][0] is not None:
        out.append(row[0][0])
        row = db.rows(select(first).where(windows.c.device_id > out[-1]))
    return out


def _window_totals(
    db: _Reader,
    device_ids: list[str],
    since_ms: int,
    until_ms: int,
    business: list[tuple[int, int]] | None = None,
) -> pd.DataFrame:
    """Per device: windows, samples, expected, valid, compliant, exceeding (oil-fume windows in the
    period), and of them the windows starting in ``business`` (``[start, end)`` intervals,
    :func:`alerts.reports.expected.business_intervals`) with their samples and expected samples.

    One aggregate query per ``_IDS_PER_QUERY`` devices; each device's rows are one primary-key range
    (device, pollutant, start). Sums are cast to BIGINT so that PostgreSQL answers integers, not NUMERIC.
    The business intervals are inlined integers (not bound parameters: a year is 730 of them).
    """
    cols = ["device_id", *_WINDOW_TOTALS]
    if not device_ids:
        return pd.DataFrame(columns=cols)
    w = windows.c

    def total(expr: Any) -> Any:
        return cast(func.sum(expr), BigInteger)

    valid = w.valid != 0

    def ms(v: int) -> Any:
        return literal_column(str(int(v)), BigInteger)

    in_hours = or_(false(), *(and_(w.start_ms >= ms(a), w.start_ms < ms(b)) for a, b in business or ()))
    rows: list[tuple] = []
    for i in range(0, len(device_ids), _IDS_PER_QUERY):
        chunk = device_ids[i : i + _IDS_PER_QUERY]
        rows += db.rows(
            select(
                w.device_id,
                func.count(),
                total(w.samples),
                total(w.expected),
                total(w.valid),
                total(case((and_(valid, w.exceeds == 0), 1), else_=0)),
                total(case((and_(valid, w.exceeds != 0), 1), else_=0)),
                total(case((in_hours, 1), else_=0)),
                total(case((in_hours, w.samples), else_=0)),
                total(case((in_hours, w.expected), else_=0)),
            )
            .where(
                w.device_id.in_(chunk),
                w.pollutant == _JUDGED_POLLUTANT,
                w.start_ms >= since_ms,
                w.start_ms < until_ms,
            )
            .group_by(w.device_id)
        )
    return pd.DataFrame(rows, columns=cols)


def _read_cases(
    db: _Reader, since_ms: int, until_ms: int, restaurant_id: str | None, district: str | None
) -> list[dict[str, Any]]:
    """The case records overlapping the period, as :meth:`Ledger.list_cases` returns them (the record with
    the stored status), read in the report's snapshot."""
    import json

    c = cases.c
    conds: list[Any] = [or_(c.end_ms.is_(None), c.end_ms >= since_ms), c.start_ms < until_ms]
    if restaurant_id is not None:
        conds.append(c.restaurant_id == restaurant_id)
    if district is not None:
        conds.append(c.district == district)
    q = select(c.record, c.status).where(and_(*conds)).order_by(c.start_ms, c.case_id)
    out = [{**json.loads(record), "status": status} for record, status in db.rows(q)]
    for rec in out:  # the record's receipts date from its last refresh: read the notices as they are now
        ids = sorted({e["event_id"] for p in rec.get("episodes") or [] for e in p.get("events") or []})
        if ids:
            rec["receipts"] = _receipts(db, ids)
    return out


def _receipts(db: _Reader, event_ids: list[str]) -> list[dict[str, Any]]:
    """The notices of these events, shaped as the case file's receipts."""
    import json

    n = notices.c
    cols = (n.key, n.event_id, n.action, n.channel, n.target, n.status, n.attempts, n.error, n.payload)
    q = select(*cols, n.created_ms, n.updated_ms).where(n.event_id.in_(event_ids[:_IDS_PER_QUERY]))
    out = []
    for key, ev, action, channel, target, status, attempts, error, payload, created, updated in db.rows(q):
        template = (json.loads(payload or "{}") or {}).get("template", "")
        out.append(
            {
                **dict(key=key, event_id=ev, action=action, channel=channel, target=target, status=status),
                **dict(attempts=attempts, error=error, template=template),
                **dict(created_ms=created, updated_ms=updated),
            }
        )
    return out
