"""InfluxDB store: writes through influxdb-client's batching WriteApi, reads with InfluxQL on /query.

Writes go to /api/v2/write (InfluxDB 2.x, 3.x, 1.8+). Reads use the v1-compatible /query endpoint with
InfluxQL, which 1.x, 2.x (DBRP mapping) and 3.x all serve (Flux is not used: InfluxDB 3 dropped it).

Acknowledgement: each line we hand to the WriteApi is remembered with the token (MQTT message) it came
from; the WriteApi's success callback returns the exact lines of each accepted batch, so a token is
reported durable only when every one of its points was accepted by InfluxDB.

Schema: measurement ``fume_reading`` (configurable; hourly averages in ``<measurement>_hourly``), tags
restaurant_id, device_id, district, fields oil_fume_mg_m3, oil_fume_ref_mg_m3, pm_mg_m3, nmhc_mg_m3,
flow_m3_h (floats), fan_on, purifier_on, ref_converted (integers 0/1, so InfluxQL can average them),
source (string). Time precision: milliseconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import replace

import urllib3

from ingest.config import InfluxSettings
from ingest.duplicates import MEASURED
from ingest.model import Reading
from ingest.store.base import Batch, Store
from ingest.store.faults import PERMANENT, classify, split_rejected
from ingest.store.first_wins import TAGS
from ingest.store.influx_query import InfluxQLError, InfluxReader  # noqa: F401 (InfluxQLError: the CLI)
from ingest.store.line_protocol import (  # noqa: F401 (re-exported: alerts.influx_sink uses them)
    _escape_str_field,
    _escape_tag,
    quote_ident,
    quote_literal,
    to_line,
)

log = logging.getLogger("fumewatch.store.influx")

#: Devices per InfluxQL query of the first-wins lookup (ingest/store/first_wins.py).
LOOKUP_DEVICES = 200
#: Up to this span of times one lookup asks by time alone (every device's points in it come back).
LOOKUP_SPAN_MS = 3_600_000


class _Token:
    __slots__ = ("value", "remaining")

    def __init__(self, value: Hashable, remaining: int) -> None:
        self.value = value
        self.remaining = remaining


class InfluxStore(InfluxReader, Store):
    kind = "influxdb"

    def __init__(
        self,
        url: str,
        settings: InfluxSettings,
        *,
        read_only: bool = False,
        buffer_path: str | None = None,
        first_wins_path: str | None = None,
        skew_s: float = 300.0,
    ) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.settings = settings
        self.measurement = settings.measurement
        self._token = settings.token.get_secret_value()
        self._pending: dict[bytes, deque[_Token]] = {}
        self._pending_points = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.failed_points = 0
        self.written_points = 0
        self._http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED" if settings.verify_ssl else "CERT_NONE",
            ca_certs=settings.ca_file or None,
            cert_file=settings.cert_file or None,
            key_file=settings.key_file or None,
            timeout=urllib3.Timeout(total=settings.timeout_ms / 1000),
            retries=False,
        )
        self._client = None
        self._write_api = None
        self._buffer = None
        self._first = None
        #: Called with (refused reading, first admitted values) pairs (ingest.duplicates.ConflictSink).
        self.on_conflict: Callable[[list[tuple[Reading, dict]]], None] | None = None
        if not read_only:
            self._open_writer()
            if first_wins_path:
                from ingest.store.first_wins import FirstWinsIndex

                self._first = FirstWinsIndex(
                    first_wins_path,
                    horizon_h=settings.first_wins_hours,
                    skew_s=skew_s,
                    lookup=self._stored,
                    lookup_required=not buffer_path,  # the disk buffer takes readings while InfluxDB is down
                )
            if buffer_path:
                from ingest.store.influx_buffer import DiskBuffer

                self._buffer = DiskBuffer(
                    buffer_path,
                    self._post_sync,
                    max_points=settings.buffer_max_points,
                    batch_points=settings.batch_size,
                    retry_max_s=settings.buffer_retry_max_s,
                    reject=self._reject_lines,
                )

    # ------------------------------------------------------------------ writing
    def _open_writer(self) -> None:
        from influxdb_client import InfluxDBClient, WriteOptions

        s = self.settings
        self._client = InfluxDBClient(
            url=self.url,
            token=self._token or "fumewatch",
            org=s.org,
            timeout=s.timeout_ms,
            verify_ssl=s.verify_ssl,
            ssl_ca_cert=s.ca_file or None,
            cert_file=s.cert_file or None,
            cert_key_file=s.key_file or None,
            enable_gzip=False,
        )
        self._write_api = self._client.write_api(
            write_options=WriteOptions(
                batch_size=s.batch_size,
                flush_interval=s.flush_interval_ms,
                jitter_interval=0,
                retry_interval=1000,
                max_retries=5,
                max_retry_delay=30_000,
                exponential_base=2,
            ),
            success_callback=self._on_success,
            error_callback=self._on_error,
        )

    def _post_sync(self, lines: list[str]) -> None:
        """One ordered, synchronous write (the disk buffer's drain); raises when InfluxDB refuses."""
        if self._sync_api is None:
            from influxdb_client.client.write_api import SYNCHRONOUS

            self._sync_api = self._client.write_api(write_options=SYNCHRONOUS)  # type: ignore[union-attr]
        self._sync_api.write(
            bucket=self.settings.bucket, org=self.settings.org, record=lines, write_precision="ms"
        )
        self.written_points += len(lines)

    _sync_api = None

    def _admit(self, batch: Batch) -> Batch:
        """``batch`` without the readings that contradict a first admitted value (reported to
        ``on_conflict``, which dead-letters them before any of their messages is acknowledged)."""
        if self._first is None:
            return batch
        verdict = self._first.admit([r for _, rs in batch for r in rs])
        if not verdict.conflicts and not verdict.tags:
            return batch
        if verdict.conflicts and self.on_conflict is not None:
            self.on_conflict(verdict.conflicts)
        refused = {id(r) for r, _ in verdict.conflicts}
        tags = verdict.tags

        def admitted(r: Reading) -> Reading:
            if id(r) not in tags:
                return r
            restaurant, district = tags[id(r)]  # a repeat: rewritten in the series it was first stored in
            return replace(r, restaurant_id=restaurant, district=district)

        return [(t, [admitted(r) for r in rs if id(r) not in refused]) for t, rs in batch]

    def _stored(self, readings: list[Reading], hourly: bool) -> dict[tuple[str, int], dict]:
        """What InfluxDB holds for the (device, time) of ``readings``: the FirstWinsIndex's lookup for
        readings older than it remembers. A batch spanning at most :data:`LOOKUP_SPAN_MS` is one query by
        time; a longer one is one query per :data:`LOOKUP_DEVICES` devices (a query per device made a
        1,000-device backfill spend its time in round trips)."""
        m = f"{self.measurement}_hourly" if hourly else self.measurement
        wanted = {(r.device_id, r.time_ms) for r in readings}
        devices = sorted({r.device_id for r in readings})
        cols = ",".join((*MEASURED, "restaurant_id", "district", "device_id"))
        out: dict[tuple[str, int], dict] = {}
        lo, hi = min(t for _, t in wanted), max(t for _, t in wanted)
        # many devices over a short span (a city's backlog): one query by time alone is far cheaper for
        # InfluxDB than one OR-ing hundreds of tag values; a long span is asked per group of devices
        groups = (
            [set(devices)]
            if hi - lo <= LOOKUP_SPAN_MS
            else [set(devices[i : i + LOOKUP_DEVICES]) for i in range(0, len(devices), LOOKUP_DEVICES)]
        )
        for part in groups:
            times = [t for d, t in wanted if d in part]
            where = f"time >= {min(times)}ms AND time <= {max(times)}ms"
            if hi - lo > LOOKUP_SPAN_MS:
                where = (
                    "("
                    + " OR ".join(f"device_id = {quote_literal(d)}" for d in sorted(part))
                    + ") AND "
                    + where
                )
            q = f"SELECT {cols} FROM {quote_ident(m)} WHERE {where}"
            for s in self.influxql(q):
                idx = {c: i for i, c in enumerate(s["columns"])}
                for v in s["values"]:
                    key = (v[idx["device_id"]], int(v[idx["time"]]))
                    if key in wanted and key not in out:
                        out[key] = {c: v[idx[c]] if c in idx else None for c in (*MEASURED, *TAGS)}
        return out

    def write(self, batch: Batch) -> None:
        if self._write_api is None:
            raise RuntimeError("store opened read-only")
        batch = self._admit(batch)
        if self._buffer is not None:
            # Durable once on disk: acknowledge now, the drain thread delivers in order.
            hourly = f"{self.measurement}_hourly"
            buffered = [
                to_line(r, hourly if r.interval_s >= 3600 else self.measurement)
                for _, rs in batch
                for r in rs
            ]
            self._buffer.append(buffered)  # BufferFull: not acknowledged, the broker keeps the messages
            self._on_durable([t for t, _ in batch])
            return
        lines: list[str] = []
        immediate: list[Hashable] = []
        hourly_m = f"{self.measurement}_hourly"
        with self._lock:
            for token, readings in batch:
                if not readings:
                    immediate.append(token)
                    continue
                tok = _Token(token, len(readings))
                for r in readings:
                    line = to_line(r, hourly_m if r.interval_s >= 3600 else self.measurement)
                    self._pending.setdefault(line.encode(), deque()).append(tok)
                    lines.append(line)
                self._pending_points += len(readings)
        if immediate:
            self._on_durable(immediate)
        if lines:
            self._write_api.write(
                bucket=self.settings.bucket, org=self.settings.org, record=lines, write_precision="ms"
            )

    def write_lines(self, lines: list[str]) -> None:
        """Write other measurements (the alerts service's windows and events) through the same WriteApi.

        Not tracked for acknowledgement: these rows are derived data, rebuilt from the state database.
        """
        if self._write_api is None:
            raise RuntimeError("store opened read-only")
        if self._buffer is not None:
            self._buffer.append(lines, bounded=False)
            return
        if lines:
            self._write_api.write(
                bucket=self.settings.bucket, org=self.settings.org, record=lines, write_precision="ms"
            )

    def _settle(self, data: bytes, ok: bool) -> list[Hashable]:
        done: list[Hashable] = []
        with self._lock:
            for line in data.split(b"\n"):
                q = self._pending.get(line)
                if not q:
                    continue
                tok = q.popleft()
                if not q:
                    del self._pending[line]
                self._pending_points -= 1
                if ok:
                    self.written_points += 1
                    tok.remaining -= 1
                    if tok.remaining == 0:
                        done.append(tok.value)
                else:
                    self.failed_points += 1
            if self._pending_points == 0:
                self._idle.notify_all()
        return done

    def _on_success(self, conf: tuple, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        done = self._settle(raw, True)
        if done:
            self._on_durable(done)

    def _on_error(self, conf: tuple, data: bytes | str, exc: Exception) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if classify(exc) == PERMANENT:  # find the rejected points off the WriteApi's thread
            threading.Thread(target=self._resolve_rejected, args=(raw,), name="influx-reject").start()
            return
        self._settle(raw, False)
        # The MQTT messages behind these points stay unacknowledged: the broker redelivers them.
        log.error("event=influx_write_failed points=%d error=%s", raw.count(b"\n") + 1, _short(exc))

    def _resolve_rejected(self, raw: bytes) -> None:
        """Without the disk buffer: bisect a rejected batch, dead-letter the bad points, settle the rest."""
        lines = raw.decode().split("\n")
        try:
            self._reject_lines(split_rejected(lines, self._post_sync))
        except Exception as exc:
            self._settle(raw, False)
            log.error("event=influx_write_failed points=%d error=%s", len(lines), _short(exc))
            return
        done = self._settle(raw, True)
        if done:
            self._on_durable(done)

    def _reject_lines(self, rejected: list[tuple[str, str]]) -> None:
        from ingest.store.influx_buffer import dead_letters

        if rejected:
            self._on_rejected(dead_letters(rejected, self.url))

    def problems(self, stall_s: float) -> list[dict]:
        return self._buffer.problems(stall_s) if self._buffer is not None else []

    def workers(self) -> dict[str, bool]:
        if self._buffer is None:
            return {}
        return {self._buffer._thread.name: self._buffer._thread.is_alive()}

    def write_health(self) -> list:
        return [self._buffer.health] if self._buffer is not None else []

    @property
    def backlog(self) -> int:
        """Points accepted but not yet in InfluxDB (disk buffer, or in the WriteApi's hands)."""
        if self._buffer is not None:
            return self._buffer.backlog
        return self._pending_points

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every point handed to the WriteApi has been accepted or has failed.

        With the disk buffer, written points are already durable: nothing to wait for."""
        if self._buffer is not None:
            return
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending_points > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(min(left, 0.1))

    def close(self) -> None:
        if self._buffer is not None:
            self._buffer.close()  # drains while InfluxDB answers; the rest waits on disk
            self._buffer = None
        if self._write_api is not None:
            # close() flushes the batching buffer and waits for the writes in flight.
            self._write_api.close()
            self._write_api = None
            self.flush(timeout_s=5)
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._first is not None:
            self._first.close()
            self._first = None
        self._http.clear()


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:300]
