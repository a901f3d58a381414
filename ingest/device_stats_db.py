"""The ``device_stats`` rows of the state database: adding counts to them, and reading them back.

:func:`add_buckets` runs inside the caller's write transaction (:class:`ingest.state.StateDB`, with the
dead letters the counts belong to). Several ingest workers (``--shared-group``) add to the same rows, so
it reads the rows it touches, adds in Python (the JSON maps cannot be added in SQL the same way on both
backends) and upserts: on SQLite the ``BEGIN IMMEDIATE`` of the transaction already serialises writers,
on PostgreSQL an advisory lock taken for the rest of the transaction does.

:func:`summaries` and :func:`unregistered` are what ``fumewatch devices`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection, func, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from ingest.device_stats import HOUR_MS, MAPS, Bucket
from ingest.state_schema import dead_letters, device_stats

#: pg_advisory_xact_lock key that serialises the writers of device_stats ("devs").
_STATS_LOCK = 0x64657673
_KEYS_PER_QUERY = 200


def _row(device_id: str, bucket_ms: int, b: Bucket) -> dict:
    row = {
        "device_id": device_id,
        "bucket_ms": bucket_ms,
        "readings": b.readings,
        "first_received_ms": b.first_received_ms,
        "last_received_ms": b.last_received_ms,
        "last_reading_ms": b.last_reading_ms,
        "interval_s": b.interval_s,
        "crc_failures": b.crc_failures,
    }
    for name in MAPS:
        row[name] = orjson.dumps(getattr(b, name)).decode()
    return row


def _bucket(r) -> Bucket:  # a row of device_stats
    b = Bucket(
        first_received_ms=r.first_received_ms,
        last_received_ms=r.last_received_ms,
        readings=r.readings,
        last_reading_ms=r.last_reading_ms,
        interval_s=r.interval_s,
        crc_failures=r.crc_failures,
    )
    for name in MAPS:
        setattr(b, name, orjson.loads(getattr(r, name) or "{}"))
    return b


def add_buckets(conn: Connection, buckets: dict[tuple[str, int], Bucket]) -> None:
    """Add ``buckets`` to their rows (created when missing), in the caller's write transaction."""
    if not buckets:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _STATS_LOCK})
    t = device_stats.c
    keys = list(buckets)
    merged: dict[tuple[str, int], Bucket] = {}
    for i in range(0, len(keys), _KEYS_PER_QUERY):
        part = keys[i : i + _KEYS_PER_QUERY]
        q = select(device_stats).where(tuple_(t.device_id, t.bucket_ms).in_(part))
        for r in conn.execute(q):
            merged[(r.device_id, r.bucket_ms)] = _bucket(r)
    rows = []
    for key, b in buckets.items():
        stored = merged.get(key)
        rows.append(_row(*key, stored.merge(b) if stored is not None else b))
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(device_stats)
    names = [c.name for c in device_stats.columns if c.name not in ("device_id", "bucket_ms")]
    stmt = stmt.on_conflict_do_update(
        index_elements=["device_id", "bucket_ms"], set_={n: stmt.excluded[n] for n in names}
    )
    for i in range(0, len(rows), _KEYS_PER_QUERY):
        conn.execute(stmt, rows[i : i + _KEYS_PER_QUERY])


def purge_batch(before_ms: int, limit: int):
    """A DELETE of at most ``limit`` rows of hours that ended before ``before_ms``."""
    t = device_stats.c
    old = select(t.device_id, t.bucket_ms).where(t.bucket_ms + HOUR_MS <= before_ms).limit(limit).subquery()
    return device_stats.delete().where(
        tuple_(t.device_id, t.bucket_ms).in_(select(old.c.device_id, old.c.bucket_ms))
    )


@dataclass(slots=True)
class Summary:
    """One device over a period (the hours that overlap it), and its last times ever (within retention)."""

    device_id: str
    last_reading_ms: int | None = None
    last_received_ms: int | None = None
    #: The period's counts; None when nothing was received from the device in it.
    period: Bucket | None = None


def summaries(conn: Connection, since_ms: int) -> dict[str, Summary]:
    """Every device with a ``device_stats`` row: its last times, and its counts since ``since_ms``
    (by the hour: the hour holding ``since_ms`` counts whole)."""
    t = device_stats.c
    out: dict[str, Summary] = {}
    q = select(t.device_id, func.max(t.last_reading_ms), func.max(t.last_received_ms)).group_by(t.device_id)
    for device_id, last_reading, last_received in conn.execute(q):
        out[device_id] = Summary(device_id, last_reading, last_received)
    q = select(device_stats).where(t.bucket_ms > since_ms - HOUR_MS).order_by(t.bucket_ms)
    for r in conn.execute(q):
        s = out.setdefault(r.device_id, Summary(r.device_id))
        b = _bucket(r)
        s.period = b if s.period is None else s.period.merge(b)
    return out


@dataclass(slots=True)
class Unregistered:
    """A device id that is not in the registry, from its ``unknown_device`` dead letters."""

    device_id: str
    topics: dict[str, int] = field(default_factory=dict)  # topic -> dead letters written
    count: int = 0  # written and held back by the rate cap
    held_back: int = 0
    first_ms: int | None = None
    last_ms: int | None = None


def unregistered(conn: Connection, since_ms: int) -> tuple[list[Unregistered], int]:
    """(device ids seen since ``since_ms`` that are not in the registry, most dead letters first; how many
    ``unknown_device`` dead letters the all-devices cap held back without recording their device)."""
    t = dead_letters.c
    found: dict[str, Unregistered] = {}
    q = (
        select(t.device_id, t.topic, func.count(), func.min(t.received_ms), func.max(t.received_ms))
        .where(t.reason == "unknown_device", t.received_ms >= since_ms)
        .group_by(t.device_id, t.topic)
    )
    for device_id, topic, n, first, last in conn.execute(q):
        u = found.setdefault(device_id, Unregistered(device_id))
        u.topics[topic] = n
        u.count += n
        u.first_ms = first if u.first_ms is None else min(u.first_ms, first)
        u.last_ms = last if u.last_ms is None else max(u.last_ms, last)
    unattributed = 0
    # what the rate caps held back: one dead_letter_overflow row per device and minute, by reason
    q = select(t.device_id, t.received_ms, t.detail).where(
        t.reason == "dead_letter_overflow", t.received_ms >= since_ms, t.detail.contains("unknown_device")
    )
    for device_id, received_ms, detail in conn.execute(q):
        doc = orjson.loads(detail)
        n = doc.get("by_reason", {}).get("unknown_device", 0)
        if not isinstance(n, int) or n <= 0:
            continue
        if not device_id:
            unattributed += n
            continue
        u = found.setdefault(device_id, Unregistered(device_id))
        u.count += n
        u.held_back += n
        start = doc.get("minute_start_ms", received_ms)  # the summary is stamped at the minute's end
        u.first_ms = start if u.first_ms is None else min(u.first_ms, start)
        u.last_ms = received_ms if u.last_ms is None else max(u.last_ms, received_ms)
    ranked = sorted(found.values(), key=lambda u: (-u.count, u.device_id))
    return ranked, unattributed
