"""First stored value wins in InfluxDB too: an index of what was admitted, in front of the writes.

InfluxDB keeps the *last* point written for a series and time, so on its own a later different value
would silently replace the first (and contradict the detector, which keeps the first). The SQLite store
enforces the rule in its own table (ingest.duplicates); for InfluxDB this module keeps a small SQLite
file of the measured values admitted per (device, time) — minute samples and hourly means apart — and
:meth:`FirstWinsIndex.admit` returns the readings that contradict it, which the InfluxDB store refuses
(``conflicting_duplicate`` dead letters) instead of writing.

- An **identical** repeat passes and is written again, under the restaurant and district tags it was
  first admitted with (so a registry change never makes it a second series: InfluxDB's series key
  includes the tags). Rewriting a point with the same values and tags is harmless, and it is what makes
  a crash between admitting a reading and storing it safe (the MQTT message was not acknowledged; its
  redelivery is identical and gets written).
- The index remembers admissions for ``horizon_h`` hours (rows admitted earlier are pruned). A reading
  whose (device, time) may have been admitted before that — its time is older than the horizon, or than
  the index file itself, plus the accepted clock skew — is checked against InfluxDB first (``lookup``,
  one InfluxQL query per batch, see ``InfluxStore._stored``) and what InfluxDB holds is seeded into the
  index. So the rule also holds for a monitor resending last week's buffer and for data written before
  this index existed.
- An error in the index (disk full) is transient: it propagates, the writer retries, nothing is
  acknowledged meanwhile. So is a failed lookup without the disk buffer (the write would fail too). With
  the disk buffer (``lookup_required=False``), whose point is to take readings while InfluxDB is down, a
  failed lookup does not block: the readings are judged by the index alone, counted in ``unchecked`` and
  logged (``event=first_wins_unchecked``). The one thing that can slip through then is a reading stamped
  before the index remembers, different from a point InfluxDB already held, arriving during an outage.

Sizing: one row of about 70 bytes per reading admitted within the horizon (a city of 5,000 monitors at
one reading a minute and the default 48 h: about 1 GB).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.duplicates import MEASURED, differs, measured, stored_rows
from ingest.model import Reading
from ingest.state import connect
from ingest.store.base import rollback

log = logging.getLogger("fumewatch.store.first_wins")

TABLES = ("admitted", "admitted_hourly")  # minute samples, HJ 212 hourly means (interval_s >= 3600)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (
    device_id TEXT NOT NULL, time_ms INTEGER NOT NULL,
    {cols},
    restaurant_id TEXT NOT NULL, district TEXT NOT NULL,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, time_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {t}_seen ON {t} (seen_ms);
"""
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
_PRUNE_EVERY_S = 600.0
_PRUNE_ROWS = 20_000
_LOOKUP_PAUSE_S = 30.0

TAGS = ("restaurant_id", "district")

#: (readings the index may not remember, hourly?) -> {(device_id, time_ms): measured values and TAGS}
Lookup = Callable[[list[Reading], bool], dict[tuple[str, int], dict]]


@dataclass
class Admission:
    #: (refused reading, first admitted values) for each reading that contradicts them
    conflicts: list[tuple[Reading, dict]] = field(default_factory=list)
    #: id(reading) -> (restaurant_id, district) it was first admitted with, where those differ
    tags: dict[int, tuple[str, str]] = field(default_factory=dict)


def _table(r: Reading) -> str:
    return TABLES[1] if r.interval_s >= 3600 else TABLES[0]


class FirstWinsIndex:
    """The admitted (device, time) → measured values of an InfluxDB store (see the module docstring)."""

    def __init__(
        self, path: str, *, horizon_h: float, skew_s: float, lookup: Lookup, lookup_required: bool = True
    ) -> None:
        self.path = path
        self.horizon_ms = int(horizon_h * 3_600_000)
        self.skew_ms = int(skew_s * 1000)
        self._lookup = lookup
        self.lookup_required = lookup_required
        self._lock = threading.Lock()
        self._conn = connect(path)
        cols = ", ".join(f"{c} {'INTEGER' if c in ('fan_on', 'purifier_on') else 'REAL'}" for c in MEASURED)
        for t in TABLES:
            self._conn.executescript(_SCHEMA.format(t=t, cols=cols))
        self._conn.execute(_META)
        now = int(time.time() * 1000)
        self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_ms', ?)", (now,))
        self.created_ms = self._conn.execute("SELECT value FROM meta WHERE key='created_ms'").fetchone()[0]
        self._next_prune = 0.0
        self.looked_up = 0  # readings checked against InfluxDB
        self.unchecked = 0  # readings that should have been, while InfluxDB could not answer
        self._unchecked_logged = False
        self._lookup_after = 0.0  # monotonic; no lookups before (a hung InfluxDB would stall every batch)
        self.pruned = 0

    def _may_predate(self, now_ms: int) -> int:
        """Readings stamped before this may have been admitted before the index remembers."""
        return max(self.created_ms, now_ms - self.horizon_ms) + self.skew_ms

    def admit(self, readings: list[Reading]) -> Admission:
        """Admit ``readings``: which contradict what was admitted first (an earlier one of the same call
        included), and which repeat it under other tags."""
        out = Admission()
        if not readings:
            return out
        now = int(time.time() * 1000)
        old = [r for r in readings if r.time_ms < self._may_predate(now)]
        seeds: dict[str, dict[tuple[str, int], dict]] = {}
        if old:  # before the transaction: a lookup talks to InfluxDB
            for hourly in (False, True):
                part = [r for r in old if (r.interval_s >= 3600) == hourly]
                if part:
                    if not self.lookup_required and time.monotonic() < self._lookup_after:
                        self.unchecked += len(part)  # InfluxDB failed a moment ago: do not wait for it
                        continue
                    try:
                        seeds[TABLES[hourly]] = self._lookup(part, hourly)
                    except Exception as exc:
                        if self.lookup_required:
                            raise
                        self._note_unchecked(len(part), exc)
                        continue
                    self.looked_up += len(part)
                    self._unchecked_logged = False
        self._lookup_after = 0.0  # monotonic; no lookups before (a hung InfluxDB would stall every batch)
        by_table: dict[str, list[Reading]] = {}
        for r in readings:
            by_table.setdefault(_table(r), []).append(r)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                for t, found in seeds.items():
                    if found:
                        conn.executemany(
                            _insert(t),
                            [
                                (d, ms, *(v.get(c) for c in MEASURED), *(v.get(c) or "" for c in TAGS), now)
                                for (d, ms), v in found.items()
                            ],
                        )
                for t, rs in by_table.items():
                    before = conn.total_changes
                    conn.executemany(
                        _insert(t),
                        [
                            (r.device_id, r.time_ms, *measured(r), r.restaurant_id, r.district, now)
                            for r in rs
                        ],
                    )
                    if conn.total_changes - before < len(rs):  # some (device, time) were admitted before
                        self._compare(stored_rows(conn, t, rs, TAGS), rs, out)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        if time.monotonic() >= self._next_prune:
            self.prune(now)
        return out

    def _note_unchecked(self, n: int, exc: Exception) -> None:
        self.unchecked += n
        self._lookup_after = time.monotonic() + _LOOKUP_PAUSE_S
        if not self._unchecked_logged:  # once per outage
            self._unchecked_logged = True
            log.warning(
                "event=first_wins_unchecked readings=%d error=%s (judged by the index alone until InfluxDB "
                "answers)",
                n,
                str(exc)[:200],
            )

    @staticmethod
    def _compare(first: dict[tuple[str, int], dict], readings: list[Reading], out: Admission) -> None:
        for r in readings:
            f = first[(r.device_id, r.time_ms)]
            if differs(r, f):
                out.conflicts.append((r, {k: f[k] for k in MEASURED}))
            elif (f["restaurant_id"], f["district"]) != (r.restaurant_id, r.district):
                out.tags[id(r)] = (f["restaurant_id"], f["district"])

    def prune(self, now_ms: int | None = None) -> int:
        """Forget admissions older than the horizon (in slices, so writes are never held up long)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff = now - self.horizon_ms
        n = 0
        for t in TABLES:
            while True:
                with self._lock:
                    cur = self._conn.execute(
                        f"DELETE FROM {t} WHERE (device_id, time_ms) IN "
                        f"(SELECT device_id, time_ms FROM {t} WHERE seen_ms < ? LIMIT {_PRUNE_ROWS})",
                        (cutoff,),
                    )
                n += cur.rowcount
                if cur.rowcount < _PRUNE_ROWS:
                    break
        self.pruned += n
        self._next_prune = time.monotonic() + _PRUNE_EVERY_S
        return n

    def rows(self) -> int:
        with self._lock:
            return sum(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _insert(table: str) -> str:
    cols = ",".join(("device_id", "time_ms", *MEASURED, *TAGS, "seen_ms"))
    marks = ",".join("?" * (len(MEASURED) + len(TAGS) + 3))
    return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT (device_id, time_ms) DO NOTHING"
