"""The state database: dead letters and device counters here; the alerts ledger adds its own tables
(``alerts.ledger``).

One database shared by ingest and alerts (``--state``): an SQLite file (WAL; readers in other processes
are fine while a service writes) or PostgreSQL (``postgresql://user@host/db``, see :mod:`ingest.db`).
The schema is :mod:`ingest.state_schema`; the command line migrates it (``fumewatch db upgrade``).
:func:`connect` is the raw-sqlite3 helper the embedded readings store uses (not part of the state DB).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import orjson
from sqlalchemy import func, inspect, select

from ingest import device_stats_db
from ingest.config import DeadLetterSettings
from ingest.db import begin_write, display, make_engine
from ingest.device_stats import Bucket, DeviceStats
from ingest.model import DeadLetter
from ingest.state_schema import dead_letters, metadata

log = logging.getLogger("fumewatch.ingest")

#: Reason of the dead letter that summarises what a minute's cap held back.
OVERFLOW = "dead_letter_overflow"
MINUTE_MS = 60_000
#: Hard bounds of one stored dead letter, whatever its producer cut: excerpt characters, detail bytes.
MAX_EXCERPT_CHARS = 1024
#: How far back a redelivered message's dead letter is looked for (the broker redelivers on reconnect).
REDELIVERY_WINDOW_MS = 3_600_000
MAX_DETAIL_BYTES = 2048
#: Seconds between two writes of the device counters of readings (those of dead letters go with them).
STATS_FLUSH_S = 5.0
_ALL = "*"  # the overflow bucket of the cap over all devices


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

    Writes are bounded (``[deadletters]``): at most ``max_per_device_per_minute`` per device and
    ``max_per_minute`` over all devices are written per minute of ``received_ms``; the rest are counted
    (``dropped_by_reason``) and summarised in one :data:`OVERFLOW` dead letter per device when the minute
    ends, so nothing disappears silently. A writer (the first :meth:`add_dead_letters`) starts a
    maintenance thread that writes those summaries and deletes rows older than ``retention_days``.

    With :meth:`track_devices` (the ingest service) it also keeps the ``device_stats`` rows: the counts
    of each dead letter are added in the transaction that writes it (before the caps, so what the caps
    hold back is counted too; a redelivery already written is not), those of readings and notes every
    :data:`STATS_FLUSH_S` and on :meth:`close`; retention deletes the rows with the dead letters.
    """

    def __init__(self, path: str | Path, limits: DeadLetterSettings | None = None) -> None:
        self.path = display(path)
        self.limits = limits or DeadLetterSettings()
        self._engine = make_engine(path)
        self._lock = threading.RLock()
        self._minute = -1  # the minute (received_ms // 60000) the counts below are for
        self._written: dict[str, int] = {}  # device -> dead letters written this minute
        self._written_all = 0
        self._over: dict[str, dict[str, int]] = {}  # device (or _ALL) -> reason -> held back this minute
        self.dropped_by_reason: dict[str, int] = {}  # held back by the caps since start, by reason
        self.overflow_summaries = 0
        self.purged = 0  # rows deleted by retention since start
        self.redelivered = 0  # dead letters of redelivered messages already written once
        self._last_purge = float("-inf")
        self._maint: threading.Thread | None = None
        self._closing = threading.Event()
        self.device_stats: DeviceStats | None = None
        self.device_stats_purged = 0
        self._last_stats = time.monotonic()
        with self._engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
        if not {t.name for t in metadata.sorted_tables} <= present:
            with self._engine.connect() as conn:
                begin_write(conn)
                metadata.create_all(conn, checkfirst=True)
                conn.commit()

    def add_dead_letters(self, items: list[DeadLetter]) -> None:
        """Write ``items`` within the caps (the rest counted, summarised when their minute ends)."""
        if not items:
            return
        with self._lock:
            self._start_maintenance()
            items = self._not_seen_before(items)
            counted = self.device_stats.count_dead(items) if self.device_stats is not None else {}
            self._insert(self._admit(items), counted)

    def track_devices(self, stats: DeviceStats) -> None:
        """Keep ``stats`` in ``device_stats`` (the ingest service's counters, ingest.device_stats)."""
        with self._lock:
            self.device_stats = stats
            self._start_maintenance()

    def _start_maintenance(self) -> None:
        if self._maint is None and not self._closing.is_set():
            self._maint = threading.Thread(target=self._maintain, name="dead-letters", daemon=True)
            self._maint.start()

    def _not_seen_before(self, items: list[DeadLetter]) -> list[DeadLetter]:
        """``items`` without the dead letters of a broker *redelivery* (``detail.redelivered``: the MQTT
        DUP flag) already written from the first delivery (same topic, reason and excerpt within
        :data:`REDELIVERY_WINDOW_MS`): ingest killed between committing the dead letter and acknowledging
        its message must not record it twice. Counted in ``redelivered``."""
        again = [d for d in items if d.detail.get("redelivered")]
        if not again:
            return items
        t = dead_letters.c
        seen: set[int] = set()
        with self._engine.connect() as conn:
            for d in again:
                q = (
                    select(t.id)
                    .where(
                        t.received_ms >= d.received_ms - REDELIVERY_WINDOW_MS,
                        t.topic == d.topic,
                        t.reason == d.reason,
                        t.payload_excerpt == d.payload_excerpt[:MAX_EXCERPT_CHARS],
                    )
                    .limit(1)
                )
                if conn.execute(q).first() is not None:
                    seen.add(id(d))
        self.redelivered += len(seen)
        return [d for d in items if id(d) not in seen]

    def _admit(self, items: list[DeadLetter]) -> list[DeadLetter]:
        per_device, per_all = self.limits.max_per_device_per_minute, self.limits.max_per_minute
        keep: list[DeadLetter] = []
        for d in items:
            minute = d.received_ms // MINUTE_MS
            if minute > self._minute:
                keep.extend(self._close_minute())
                self._minute = minute
            device = d.device_id
            n = self._written.get(device, 0)
            if d.reason == OVERFLOW or (
                (not per_device or n < per_device) and not (per_all and self._written_all >= per_all)
            ):
                self._written[device] = n + 1
                self._written_all += 1
                keep.append(d)
                continue
            bucket = device if per_device and n >= per_device else _ALL
            by_reason = self._over.setdefault(bucket, {})
            by_reason[d.reason] = by_reason.get(d.reason, 0) + 1
            self.dropped_by_reason[d.reason] = self.dropped_by_reason.get(d.reason, 0) + 1
        return keep

    def _close_minute(self) -> list[DeadLetter]:
        """The summaries of the minute being counted (then forgotten): one per device that overflowed."""
        out = []
        start = self._minute * MINUTE_MS
        for device, by_reason in self._over.items():
            n = sum(by_reason.values())
            cap = self.limits.max_per_minute if device == _ALL else self.limits.max_per_device_per_minute
            who = "all devices" if device == _ALL else f"device {device!r}"
            out.append(
                DeadLetter(
                    received_ms=start + MINUTE_MS - 1,
                    topic="",
                    reason=OVERFLOW,
                    payload_excerpt="",
                    device_id="" if device == _ALL else device,
                    detail={
                        "message": f"{n} more dead letters of {who} in this minute were not written "
                        f"(cap {cap} per minute); counted by reason in by_reason",
                        "dropped": n,
                        "by_reason": dict(sorted(by_reason.items())),
                        "minute_start_ms": start,
                        "cap": cap,
                    },
                )
            )
            log.warning("event=dead_letter_overflow device=%s dropped=%d", device, n)
        self.overflow_summaries += len(out)
        self._over, self._written, self._written_all = {}, {}, 0
        return out

    def flush_overflow(self, now_ms: int | None = None) -> int:
        """Write the summaries of a minute that has ended (every pending one when ``now_ms`` is None)."""
        with self._lock:
            if not self._over:
                return 0
            if now_ms is not None and now_ms // MINUTE_MS <= self._minute:
                return 0
            out = self._close_minute()
            self._insert(out)
            return len(out)

    def _insert(self, items: list[DeadLetter], counted: dict[tuple[str, int], Bucket] | None = None) -> None:
        """Write ``items`` and the device counts ``counted`` in one transaction."""
        if not items and not counted:
            return
        rows = [
            {
                "received_ms": d.received_ms,
                "topic": d.topic,
                "device_id": d.device_id,
                "reason": d.reason,
                "payload_excerpt": d.payload_excerpt[:MAX_EXCERPT_CHARS],
                "detail": _detail_text(d.detail),
            }
            for d in items
        ]
        with self._lock, self._engine.connect() as conn:
            begin_write(conn)
            if rows:
                conn.execute(dead_letters.insert(), rows)
            device_stats_db.add_buckets(conn, counted or {})
            conn.commit()

    def flush_device_stats(self) -> int:
        """Add the device counts waiting since the last write to ``device_stats``; returns the rows
        touched. When the database fails they wait for the next try (and the error is raised)."""
        stats = self.device_stats
        if stats is None:
            return 0
        with self._lock:
            self._last_stats = time.monotonic()
            taken = stats.take()
            if not taken:
                return 0
            try:
                with self._engine.connect() as conn:
                    begin_write(conn)
                    device_stats_db.add_buckets(conn, taken)
                    conn.commit()
            except Exception:
                stats.restore(taken)
                raise
        return len(taken)

    def purge_expired(self, now_ms: int | None = None) -> int:
        """Delete dead letters older than ``retention_days``, ``purge_batch_rows`` per transaction (other
        writers wait for one batch, not for all); returns the number deleted."""
        days = self.limits.retention_days
        if not days:
            return 0
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        cutoff = now - int(days * 86_400_000)
        t = dead_letters.c
        batch = select(t.id).where(t.received_ms < cutoff).limit(self.limits.purge_batch_rows)
        total = 0
        while True:
            with self._lock, self._engine.connect() as conn:
                begin_write(conn)
                n = conn.execute(dead_letters.delete().where(t.id.in_(batch))).rowcount
                conn.commit()
            total += n
            self.purged += n
            if n < self.limits.purge_batch_rows or self._closing.is_set():
                break
        if total:
            log.info("event=dead_letters_purged rows=%d older_than_days=%s", total, days)
        rows = 0
        while not self._closing.is_set():
            with self._lock, self._engine.connect() as conn:
                begin_write(conn)
                n = conn.execute(device_stats_db.purge_batch(cutoff, self.limits.purge_batch_rows)).rowcount
                conn.commit()
            rows += n
            if n < self.limits.purge_batch_rows:
                break
        self.device_stats_purged += rows
        if rows:
            log.info("event=device_stats_purged rows=%d older_than_days=%s", rows, days)
        return total

    def _maintain(self) -> None:
        """Overflow summaries a second after their minute ends; retention every ``purge_interval_s``."""
        while not self._closing.wait(1.0):
            try:
                self.flush_overflow(time.time_ns() // 1_000_000 - 1000)
                if time.monotonic() - self._last_stats >= STATS_FLUSH_S:
                    self.flush_device_stats()
                if time.monotonic() - self._last_purge >= self.limits.purge_interval_s:
                    self._last_purge = time.monotonic()
                    self.purge_expired()
            except Exception:  # the database is away: try again next time, the service goes on
                log.exception("event=dead_letter_maintenance_failed")

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

    def device_summaries(self, since_ms: int) -> dict[str, device_stats_db.Summary]:
        """Each device's last times and its counts since ``since_ms`` (``fumewatch devices``)."""
        with self._lock, self._engine.connect() as conn:
            return device_stats_db.summaries(conn, since_ms)

    def unregistered_devices(self, since_ms: int) -> tuple[list[device_stats_db.Unregistered], int]:
        """Device ids of ``unknown_device`` dead letters since ``since_ms`` (``devices --unregistered``)."""
        with self._lock, self._engine.connect() as conn:
            return device_stats_db.unregistered(conn, since_ms)

    def close(self) -> None:
        self._closing.set()
        if self._maint is not None:
            self._maint.join(timeout=10)
        with self._lock:
            try:
                self.flush_overflow()  # a stop mid-minute still writes what the cap held back
                try:
                    self.flush_device_stats()
                except Exception:  # counters only: the stop goes on, and says what it could not write
                    n = self.device_stats.pending if self.device_stats is not None else 0
                    log.exception("event=device_stats_not_written device_hours=%d", n)
            finally:
                self._engine.dispose()


def _detail_text(detail: dict) -> str:
    text = orjson.dumps(detail).decode()
    if len(text) <= MAX_DETAIL_BYTES:
        return text
    message = str(detail.get("message", ""))[: MAX_DETAIL_BYTES // 2]
    return orjson.dumps({"message": message, "truncated": True}).decode()
