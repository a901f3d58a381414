"""A bounded, disk-backed buffer in front of InfluxDB, so an InfluxDB outage costs no data.

Lines are appended to an SQLite file (WAL) and committed; from then on they are durable and the MQTT
messages behind them may be acknowledged. A drain thread posts them to InfluxDB in order, in batches,
through influxdb-client's WriteApi, and deletes each batch once InfluxDB accepted it. While InfluxDB is
down the drain retries with back-off (1 s doubling to 30 s) and the backlog grows; at ``max_points``
:class:`BufferFull` is raised, the ingest service stops acknowledging and the broker holds the messages
(explicit, logged). Resending after a crash is harmless: a point with the same series and time replaces
itself in InfluxDB.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ingest.state import connect

log = logging.getLogger("fumewatch.store.influx_buffer")

_SCHEMA = "CREATE TABLE IF NOT EXISTS buffer (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL)"


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
    ) -> None:
        self.path = path
        self._post = post
        self.max_points = max_points
        self.batch_points = batch_points
        self.retry_max_s = retry_max_s
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
                raise BufferFull(
                    f"InfluxDB buffer full ({self.backlog} of {self.max_points} points): not acknowledging"
                )
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT INTO buffer (line) VALUES (?)", ((ln,) for ln in lines))
            self._conn.execute("COMMIT")
            self.backlog += len(lines)
            self._wake.notify_all()

    def _drain_loop(self) -> None:
        delay = 1.0
        while True:
            with self._lock:
                while not self._stop and self.backlog == 0:
                    self._wake.wait(1.0)
                if self._stop and (self.backlog == 0 or self.outage_since is not None):
                    return
                rows = self._conn.execute(
                    "SELECT id, line FROM buffer ORDER BY id LIMIT ?", (self.batch_points,)
                ).fetchall()
            if not rows:
                with self._lock:
                    self.backlog = 0
                continue
            try:
                self._post([r[1] for r in rows])
            except Exception as exc:
                self.failures += 1
                if self.outage_since is None:
                    self.outage_since = time.monotonic()
                    log.error("event=influx_unreachable backlog=%d error=%s", self.backlog, str(exc)[:200])
                with self._lock:
                    if self._stop:
                        return
                    self._wake.wait(delay)
                delay = min(self.retry_max_s, delay * 2)
                continue
            if self.outage_since is not None:
                log.info(
                    "event=influx_back outage_s=%.0f backlog=%d",
                    time.monotonic() - self.outage_since,
                    self.backlog,
                )
                self.outage_since = None
            delay = 1.0
            with self._lock:
                self._conn.execute("DELETE FROM buffer WHERE id <= ?", (rows[-1][0],))
                self.backlog -= len(rows)
                self.drained += len(rows)
                self._wake.notify_all()

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
