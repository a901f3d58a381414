"""One rule for a (device, time) reported twice: the first stored value wins.

An identical repeat (an MQTT redelivery, a monitor resending its buffer) is silently a duplicate. A later
*different* value for the same device and time is refused as a ``conflicting_duplicate`` dead letter that
names both, so the store, the reports and the detector (which keeps the first value per (device, time)
in a window) never disagree about what was measured. The SQLite store inserts with ``ON CONFLICT DO
NOTHING`` and, when a batch inserted fewer rows than it holds, asks :func:`first_wins_conflicts` which
readings differ from what is stored; the InfluxDB store, which would keep the last value, asks its
:class:`~ingest.store.first_wins.FirstWinsIndex` before writing. The ingest service dead-letters the
refused readings with :func:`conflict_dead_letter` before it acknowledges their messages.
"""

from __future__ import annotations

import sqlite3
import time

import orjson

from ingest.model import DeadLetter, Reading

REASON = "conflicting_duplicate"

#: What was measured: two readings of a (device, time) are the same reading when these are equal (the
#: restaurant, district and reference concentration come from the registry, which may have changed).
MEASURED = ("oil_fume_mg_m3", "pm_mg_m3", "nmhc_mg_m3", "flow_m3_h", "fan_on", "purifier_on")

_KEYS_PER_QUERY = 256


def measured(r: Reading) -> tuple:
    return (r.oil_fume_mg_m3, r.pm_mg_m3, r.nmhc_mg_m3, r.flow_m3_h, r.fan_on, r.purifier_on)


def stored_rows(
    conn: sqlite3.Connection, table: str, readings: list[Reading], extra: tuple[str, ...] = ()
) -> dict[tuple[str, int], dict]:
    """{(device_id, time_ms): {measured and ``extra`` columns}} of the rows of ``table`` that hold the
    (device, time) of ``readings``."""
    stored: dict[tuple[str, int], dict] = {}
    names = (*MEASURED, *extra)
    cols = ",".join(names)
    for i in range(0, len(readings), _KEYS_PER_QUERY):
        part = readings[i : i + _KEYS_PER_QUERY]
        keys = ",".join(["(?,?)"] * len(part))
        args = [v for r in part for v in (r.device_id, r.time_ms)]
        q = f"SELECT device_id, time_ms, {cols} FROM {table} WHERE (device_id, time_ms) IN (VALUES {keys})"
        for row in conn.execute(q, args):
            stored[(row[0], row[1])] = {
                k: bool(v) if k in ("fan_on", "purifier_on") and v is not None else v
                for k, v in zip(names, row[2:], strict=True)
            }
    return stored


def first_wins_conflicts(
    conn: sqlite3.Connection, table: str, readings: list[Reading]
) -> list[tuple[Reading, dict]]:
    """(reading, stored row) for each of ``readings`` whose (device_id, time_ms) is stored in ``table``
    with other measured values. Run after the insert, in its transaction: a reading the insert stored
    matches itself, one it skipped is compared with the row that was there first (or came first in the
    batch)."""
    stored = stored_rows(conn, table, readings)
    return [
        (r, first) for r in readings if (first := stored.get((r.device_id, r.time_ms))) and differs(r, first)
    ]


def differs(r: Reading, first: dict) -> bool:
    """Whether ``r`` measured something else than the ``first`` stored values."""
    return tuple(first[k] for k in MEASURED) != measured(r)


def conflict_dead_letter(reading: Reading, stored: dict, topic_prefix: str, received_ms: int) -> DeadLetter:
    """The dead letter of a reading refused because its (device, time) holds other values."""
    refused = dict(zip(MEASURED, measured(reading), strict=True))
    kind = "hj212" if reading.source == "hj212" else "reading"
    prefix = topic_prefix.strip("/")
    topic = f"{prefix}/{reading.device_id}/{kind}" if prefix else f"{reading.device_id}/{kind}"
    changed = sorted(k for k in MEASURED if refused[k] != stored.get(k))
    return DeadLetter(
        received_ms=received_ms,
        topic=topic[:256],
        reason=REASON,
        payload_excerpt=orjson.dumps({"time_ms": reading.time_ms, **refused}).decode()[:256],
        device_id=reading.device_id[:128],
        detail={
            "message": f"{reading.device_id[:64]} at {reading.time_ms} is already stored with other "
            f"{', '.join(changed)}; the first stored value wins",
            "time_ms": reading.time_ms,
            "interval_s": reading.interval_s,
            "stored": stored,
            "refused": refused,
        },
    )


class ConflictSink:
    """The ingest service's ``store.on_conflict``: dead-letters the refused readings (committed before
    the store reports the batch durable, so before its messages are acknowledged), counts them in the
    service's stats and, through :meth:`drop`, keeps them from the readings passed on to the detector."""

    def __init__(self, state, stats, lock, topic_prefix: str) -> None:  # StateDB, IngestStats, RLock
        self.state, self.stats, self.lock, self.prefix = state, stats, lock, topic_prefix
        self._refused: set[int] = set()  # id() of refused readings until drop() has seen them

    def __call__(self, pairs: list[tuple[Reading, dict]]) -> None:
        received = time.time_ns() // 1_000_000
        dead = [conflict_dead_letter(r, stored, self.prefix, received) for r, stored in pairs]
        self.state.add_dead_letters(dead)
        with self.lock:
            st = self.stats
            st.dead_letters += len(dead)
            st.dead_by_reason[REASON] = st.dead_by_reason.get(REASON, 0) + len(dead)
            st.readings_stored -= len(dead)  # counted with their messages when the batch is durable
            self._refused.update(id(r) for r, _ in pairs)

    def drop(self, readings: list[Reading]) -> list[Reading]:
        """``readings`` without the refused ones (called with the lock held, when their messages are
        durable: right after the write for SQLite and the InfluxDB disk buffer, later without it)."""
        if not self._refused:
            return readings
        keep = []
        for r in readings:
            if id(r) in self._refused:
                self._refused.discard(id(r))  # the service still holds r until now: its id was not reused
            else:
                keep.append(r)
        return keep
