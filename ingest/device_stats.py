"""What ingest saw of each device, counted as it goes (issue 13, ``fumewatch devices``).

When a new vendor's monitors are connected, the operator's questions are per device: does it talk at all
(last received), do its readings arrive (last reading time, interval), which HJ 212 data flags and which
factor codes our dialect does not know does it send, are its frames admitted by a CRC variant or refused
for their CRC, and what else is dead-lettered. Reading the readings store or the capped dead letters
cannot answer that, so the service counts it here:

- :meth:`DeviceStats.observe`: each message's readings and ``Outcome.notes`` (called by the service with
  its received time); :meth:`DeviceStats.count_dead`: each dead letter before the rate caps (called by
  :class:`ingest.state.StateDB`, so a dead letter and its count are committed in one transaction).
- The counts wait in :class:`Bucket` s, one per (device, UTC hour of receipt), until the state database
  takes them (:meth:`take`; :meth:`restore` puts them back when the write failed) and adds them to its
  ``device_stats`` rows (``ingest/device_stats_db.py``).
- Totals since start feed ``/metrics`` (``ingest/metrics.py``).

Everything is bounded, since topics and frames are untrusted input: only registry devices are counted
(an unknown device is a dead letter, listed by ``fumewatch devices --unregistered``), ids are cut to
:data:`MAX_ID_CHARS`, a row keeps at most :data:`MAX_CODES` unknown codes and :data:`MAX_KEYS` flags,
note kinds, CRC variants and dead-letter reasons (the rest summed under ``other``), the metrics at most
:data:`MAX_UNKNOWN_SERIES` device/code series, and each device's interval is the median gap between its
last :data:`RECENT_TIMES` distinct reading times.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ingest.model import DeadLetter, Reading

log = logging.getLogger("fumewatch.ingest")

HOUR_MS = 3_600_000
MAX_ID_CHARS = 128
#: Distinct unknown factor codes kept per row; more are summed under :data:`OTHER`.
MAX_CODES = 50
#: Distinct flags, note kinds, CRC variants and dead-letter reasons kept per row and in the metrics.
MAX_KEYS = 20
MAX_CODE_CHARS = 32
#: (device, code) series of ``fumewatch_hj212_unknown_codes``; beyond, ``device="other",code="other"``.
MAX_UNKNOWN_SERIES = 1000
#: Distinct reading times remembered per device for the observed interval.
RECENT_TIMES = 33
#: Buckets waiting for the state database (a long outage): beyond, the oldest hours are dropped, counted.
MAX_PENDING = 200_000
OTHER = "other"
BAD_CRC = "hj212_bad_crc"
MAPS = ("flags", "unknown_codes", "notes", "crc_variants", "dead_letters")
_CAPS = {"unknown_codes": MAX_CODES}


def bump(counts: dict[str, int], key: str, n: int = 1, cap: int = MAX_KEYS) -> None:
    """Add ``n`` to ``counts[key]``; a new key beyond ``cap`` distinct ones goes to :data:`OTHER`."""
    if key in counts:
        counts[key] += n
    elif len(counts) - (OTHER in counts) < cap:
        counts[key] = n
    else:
        counts[OTHER] = counts.get(OTHER, 0) + n


def merge_counts(into: dict[str, int], more: dict[str, int], cap: int = MAX_KEYS) -> dict[str, int]:
    for key, n in more.items():
        bump(into, key, n, cap)
    return into


def crc_failures(d: DeadLetter) -> int:
    """Frames of ``d`` refused for their CRC: one for an ``hj212_bad_crc`` letter, or the count in a
    letter that stands for a message's broken fragments (``detail.by_reason``, ingest.pipeline_hj212)."""
    by = d.detail.get("by_reason") if "refused" in d.detail else None
    if isinstance(by, dict):
        n = by.get(BAD_CRC, 0)
        return n if isinstance(n, int) and n > 0 else 0
    return 1 if d.reason == BAD_CRC else 0


@dataclass(slots=True)
class Bucket:
    """The counts of one device in one UTC hour of receipt (a ``device_stats`` row, or what to add)."""

    first_received_ms: int
    last_received_ms: int
    readings: int = 0
    last_reading_ms: int | None = None
    interval_s: int | None = None
    flags: dict[str, int] = field(default_factory=dict)
    unknown_codes: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    crc_variants: dict[str, int] = field(default_factory=dict)
    crc_failures: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)

    def merge(self, newer: Bucket) -> Bucket:
        """Add ``newer`` (counted later) to this one; its observed interval, when it has one, wins."""
        self.first_received_ms = min(self.first_received_ms, newer.first_received_ms)
        self.last_received_ms = max(self.last_received_ms, newer.last_received_ms)
        self.readings += newer.readings
        if newer.last_reading_ms is not None and (
            self.last_reading_ms is None or newer.last_reading_ms > self.last_reading_ms
        ):
            self.last_reading_ms = newer.last_reading_ms
        if newer.interval_s is not None:
            self.interval_s = newer.interval_s
        for name in MAPS:
            merge_counts(getattr(self, name), getattr(newer, name), _CAPS.get(name, MAX_KEYS))
        self.crc_failures += newer.crc_failures
        return self


def median_gap_s(times: list[int]) -> int | None:
    """Median gap in whole seconds (at least 1) between sorted distinct ``times``; None with fewer than 2."""
    if len(times) < 2:
        return None
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    mid = len(gaps) // 2
    ms = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
    return max(1, round(ms / 1000))


def _remember(recent: list[int], t: int) -> None:
    """Keep ``t`` among the newest :data:`RECENT_TIMES` distinct times (sorted) of a device."""
    if not recent or t > recent[-1]:
        recent.append(t)
    else:
        i = bisect.bisect_left(recent, t)
        if recent[i] == t or (i == 0 and len(recent) >= RECENT_TIMES):
            return  # already known, or older than every time kept
        recent.insert(i, t)
    if len(recent) > RECENT_TIMES:
        del recent[0]


class DeviceStats:
    """The per-device counters of one ingest service. Thread-safe: the network thread observes, the
    writer thread counts dead letters, the state database's thread takes."""

    def __init__(self, known: Callable[[str], bool]) -> None:
        self._known = known  # is this device id in the registry?
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], Bucket] = {}
        self._recent: dict[str, list[int]] = {}  # device -> newest distinct sample times
        self._hourly: set[str] = set()  # devices that sent hourly averages (CN 2061)
        # totals since start, for /metrics
        self.unknown_codes: dict[tuple[str, str], int] = {}
        self.flags: dict[str, int] = {}
        self.crc_variants: dict[str, int] = {}
        self.notes: dict[str, int] = {}
        self.dropped_buckets = 0  # buckets given up after a long state-database outage

    def _bucket(self, pending: dict, device: str, received_ms: int) -> Bucket | None:
        key = (device, received_ms - received_ms % HOUR_MS)
        b = pending.get(key)
        if b is None:
            if not self._known(device):
                return None
            b = pending[key] = Bucket(received_ms, received_ms)
        elif received_ms > b.last_received_ms:
            b.last_received_ms = received_ms
        elif received_ms < b.first_received_ms:
            b.first_received_ms = received_ms
        return b

    def observe(self, readings: list[Reading], notes: list[tuple[str, str, str]], received_ms: int) -> None:
        """Count one message's readings and notes, received at ``received_ms``."""
        if not readings and not notes:
            return
        with self._lock:
            rest = readings
            while rest:  # one pass: a message's readings are of its topic's device
                rest = self._observe_device(rest, received_ms)
            for device, kind, key in notes:
                b = self._bucket(self._pending, device[:MAX_ID_CHARS], received_ms)
                if b is None:
                    continue
                if kind == "unknown_code":  # the pipeline notes each unknown code once per reading
                    code = key[:MAX_CODE_CHARS]
                    bump(b.unknown_codes, code, cap=MAX_CODES)
                    self._count_unknown(device, code)
                    continue
                kind = kind[:MAX_CODE_CHARS]
                bump(b.notes, kind)
                bump(self.notes, kind)
                if kind == "crc_variant":
                    bump(b.crc_variants, key[:MAX_CODE_CHARS])
                    bump(self.crc_variants, key[:MAX_CODE_CHARS])

    def _observe_device(self, readings: list[Reading], received_ms: int) -> list[Reading]:
        """Count the leading readings of ``readings[0]``'s device; return the others (usually none). The
        hot path of the counters: plain local variables, the rare work after the loop."""
        device = readings[0].device_id
        b = self._bucket(self._pending, device[:MAX_ID_CHARS], received_ms)
        if b is None:
            return [r for r in readings if r.device_id != device]
        recent = self._recent.setdefault(device, [])
        tail = recent[-1] if recent else -1
        last = -1 if b.last_reading_ms is None else b.last_reading_ms
        count, hourly, rest = 0, False, []
        flagged = []
        for r in readings:
            if r.device_id != device:
                rest = readings[count:]
                break
            count += 1
            t = r.time_ms
            if t > last:
                last = t
            if r.interval_s:
                hourly = True
            elif t > tail:
                recent.append(t)
                tail = t
            elif t != tail:
                _remember(recent, t)  # out of order (a resent buffer)
            if r.flags:
                flagged.append(r.flags)
        if len(recent) > RECENT_TIMES:
            del recent[: len(recent) - RECENT_TIMES]
        b.readings += count
        if last >= 0:
            b.last_reading_ms = last
        if hourly:
            self._hourly.add(device)
        for flags in flagged:
            for key, flag in flags.items():
                # data flags as sent (N, T, D...); equipment running states (fan_rs) as RS0..RS5
                flag = f"RS{flag}"[:8] if key.endswith("_rs") else str(flag)[:8]
                bump(b.flags, flag)
                bump(self.flags, flag)
        return rest

    def _count_unknown(self, device: str, code: str) -> None:
        series = self.unknown_codes
        key = (device[:MAX_ID_CHARS], code)
        if key not in series and len(series) >= MAX_UNKNOWN_SERIES:
            key = (OTHER, OTHER)
        series[key] = series.get(key, 0) + 1

    def count_dead(self, items: Iterable[DeadLetter]) -> dict[tuple[str, int], Bucket]:
        """The counts of ``items`` (dead letters of registry devices), as buckets to write with them; not
        added to the pending ones: the state database writes both in one transaction, or neither."""
        out: dict[tuple[str, int], Bucket] = {}
        for d in items:
            if not d.device_id:
                continue
            b = self._bucket(out, d.device_id[:MAX_ID_CHARS], d.received_ms)
            if b is None:
                continue
            bump(b.dead_letters, d.reason[:64])
            b.crc_failures += crc_failures(d)
        return out

    def take(self) -> dict[tuple[str, int], Bucket]:
        """The pending buckets (then forgotten here), each with its device's observed interval."""
        with self._lock:
            taken, self._pending = self._pending, {}
            for (device, _), b in taken.items():
                b.interval_s = self.interval_s(device)
        return taken

    def restore(self, buckets: dict[tuple[str, int], Bucket]) -> None:
        """Put back buckets the state database could not take (they are added to what came since)."""
        with self._lock:
            for key, b in buckets.items():
                newer = self._pending.get(key)
                self._pending[key] = b.merge(newer) if newer is not None else b
            excess = len(self._pending) - MAX_PENDING
            if excess > 0:
                for key in sorted(self._pending, key=lambda k: k[1])[:excess]:
                    del self._pending[key]
                self.dropped_buckets += excess
                log.warning(
                    "event=device_stats_dropped buckets=%d (state database unavailable for long)", excess
                )

    def interval_s(self, device: str) -> int | None:
        """The device's observed reporting interval: the median gap between its recent distinct sample
        times; 3600 for a device that sent only hourly averages; None before two samples."""
        gap = median_gap_s(self._recent.get(device, ()))
        if gap is None and device in self._hourly:
            return 3600
        return gap

    def totals(self) -> dict:
        """Copies of the totals since start (for /metrics, read from another thread)."""
        with self._lock:
            return {
                "unknown_codes": dict(self.unknown_codes),
                "flags": dict(self.flags),
                "crc_variants": dict(self.crc_variants),
                "notes": dict(self.notes),
                "dropped_buckets": self.dropped_buckets,
            }

    @property
    def pending(self) -> int:
        return len(self._pending)
