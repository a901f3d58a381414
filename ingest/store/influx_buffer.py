"""A bounded, disk-backed buffer in front of InfluxDB, so an InfluxDB outage costs no data.

Lines are appended to an SQLite file (WAL) and committed; from then on they are durable and the MQTT
messages behind them may be acknowledged. A drain thread posts them to InfluxDB in order, in batches,
through influxdb-client's WriteApi, and deletes each batch once InfluxDB accepted it. While InfluxDB is
down the drain retries with back-off (1 s doubling to ``[influx] buffer_retry_max_s``) and the backlog
grows; at ``max_points``
:class:`BufferFull` is raised, the ingest service stops acknowledging and the broker holds the messages
(explicit, logged). Resending after a crash is harmless: a point with the same series and time replaces
itself in InfluxDB.

A batch InfluxDB rejects for good (a point beyond the retention policy, a field type conflict: 400/422)
is bisected to find the offending points (:func:`~ingest.store.faults.split_rejected`); they are handed
to ``reject`` (the ingest service commits them as dead letters) and the rest drains, so one bad point
never blocks the buffer. The drain thread catches every error, counts it in ``health`` and retries.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from ingest.model import DeadLetter
from ingest.state import connect
from ingest.store.base import rollback
from ingest.store.faults import (
    PERMANENT,
    TRANSIENT,
    Backoff,
    WriteHealth,
    classify,
    error_message,
    split_rejected,
)
from ingest.timeutil import now_ms

log = logging.getLogger("fumewatch.store.influx_buffer")

_SCHEMA = "CREATE TABLE IF NOT EXISTS buffer (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL)"


def dead_letters(rejected: list[tuple[str, str]], url: str) -> list[DeadLetter]:
    """Dead letters (reason ``store_rejected``) for line-protocol points InfluxDB refused for good."""
    received = now_ms()
    out = []
    for line, message in rejected:
        m = _DEVICE.search(line)
        device = re.sub(r"\\(.)", r"\1", m.group(1)) if m else ""
        out.append(
            DeadLetter(
                received_ms=received,
                topic="",
                reason="store_rejected",
                payload_excerpt=line[:256],
                device_id=device[:128],
                detail={"message": message[:300], "store": "influxdb", "url": url},
            )
        )
    return out


_DEVICE = re.compile(r",device_id=((?:[^,\\ ]|\\.)*)")


class BufferFull(RuntimeError):
    """The disk buffer holds ``max_points``; nothing more is accepted until InfluxDB drains it."""


class DiskBuffer:
    def __init__(
        self,
        path: str,
        post: Callable[[list[str]], None],
        *,
        max_points: int,
        batch_points: int = 5000,
        retry_max_s: float = 30.0,
        reject: Callable[[list[tuple[str, str]]], None] | None = None,
    ) -> None:
        self.path = path
        self._post = post
        self.max_points = max_points
        self.batch_points = batch_points
        self.retry_max_s = retry_max_s
        self._reject = reject or (lambda rejected: None)
        self.health = WriteHealth("influx-drain")
        self.full_since: float | None = None  # set while append() refuses (BufferFull)
        self._conn = connect(path)
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self.backlog = self._conn.execute("SELECT COUNT(*) FROM buffer").fetchone()[0]
        self.drained = 0
        self.failures = 0
        self.outage_since: float | None = None
        self._thread = threading.Thread(target=self._drain_loop, name="influx-drain", daemon=True)
        self._thread.start()
        if self.backlog:
            log.info("event=influx_buffer_resume backlog=%d path=%s", self.backlog, path)

    def append(self, lines: list[str], *, bounded: bool = True) -> None:
        if not lines:
            return
        with self._lock:
            if bounded and self.backlog + len(lines) > self.max_points:
                if self.full_since is None:
                    self.full_since = time.monotonic()
                raise BufferFull(
                    f"InfluxDB buffer full ({self.backlog} of {self.max_points} points): not acknowledging"
                )
            try:
                self._conn.execute("BEGIN")
                self._conn.executemany("INSERT INTO buffer (line) VALUES (?)", ((ln,) for ln in lines))
                self._conn.execute("COMMIT")
            except BaseException:  # disk full: nothing was taken, the caller retries
                rollback(self._conn)
                raise
            self.backlog += len(lines)
            if bounded:
                self.full_since = None
            self._wake.notify_all()

    def _drain_loop(self) -> None:
        """Never ends before close(): every error is classified, counted and retried (module docstring)."""
        backoff = Backoff(1.0, self.retry_max_s)
        while True:
            try:
                if not self._drain_once():
                    return
                backoff.reset()
            except Exception as exc:  # transient (InfluxDB down, 5xx, disk full under the buffer, a bug)
                kind = classify(exc)
                if self.health.failure(TRANSIENT if kind == PERMANENT else kind, exc):
                    self.outage_since = time.monotonic()
                    log.error(
                        "event=influx_unreachable backlog=%d error=%s", self.backlog, error_message(exc)[:200]
                    )
                self.failures += 1
                with self._lock:
                    if self._stop:
                        return
                    self._wake.wait(backoff.next())

    def _drain_once(self) -> bool:
        """Post the oldest batch; False when stopping. Raises when it could not make progress."""
        with self._lock:
            while not self._stop and self.backlog == 0:
                self._wake.wait(1.0)
            if self._stop and (self.backlog == 0 or self.outage_since is not None):
                return False
            rows = self._conn.execute(
                "SELECT id, line FROM buffer ORDER BY id LIMIT ?", (self.batch_points,)
            ).fetchall()
        if not rows:
            with self._lock:
                self.backlog = 0
            return True
        lines = [r[1] for r in rows]
        self.health.begin()
        try:
            self._post(lines)
        except Exception as exc:
            if classify(exc) != PERMANENT:
                raise
            self.health.failure(PERMANENT, exc)
            # The server refused some of these points for good: find them, keep them as dead letters
            # (committed before the buffer forgets them), let the rest through.
            rejected = split_rejected(lines, self._post)
            log.error(
                "event=influx_points_rejected points=%d of=%d error=%s",
                len(rejected),
                len(lines),
                rejected[0][1][:200] if rejected else error_message(exc)[:200],
            )
            if rejected:
                self._reject(rejected)
                self.health.rejected(len(rejected))
        if self.outage_since is not None:
            log.info(
                "event=influx_back outage_s=%.0f backlog=%d",
                time.monotonic() - self.outage_since,
                self.backlog,
            )
            self.outage_since = None
        with self._lock:
            self._conn.execute("DELETE FROM buffer WHERE id <= ?", (rows[-1][0],))
            self.backlog -= len(rows)
            self.drained += len(rows)
            self._wake.notify_all()
        self.health.success()
        return True

    def problems(self, stall_s: float) -> list[dict]:
        out: list[dict] = []
        if not self._thread.is_alive() and not self._stop:
            out.append({"check": "worker_dead", "thread": self._thread.name})
        full_recently = self.full_since is not None
        if full_recently or self.backlog >= self.max_points:
            out.append({"check": "buffer_full", "backlog": self.backlog, "max_points": self.max_points})
        stuck = self.health.stuck_for()
        if self.backlog and stuck > stall_s:
            out.append(
                {
                    "check": "buffer_stuck",
                    "backlog": self.backlog,
                    "stuck_for_s": round(stuck, 1),
                    "error": self.health.last_error,
                }
            )
        return out

    def wait_empty(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.backlog > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.1))
        return True

    def close(self, drain_timeout_s: float = 10.0) -> None:
        """Try to drain (InfluxDB up), then stop; what is left stays on disk for the next start."""
        if self.outage_since is None:
            self.wait_empty(drain_timeout_s)
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        self._thread.join(timeout=drain_timeout_s + 5)
        with self._lock:
            self._conn.close()
