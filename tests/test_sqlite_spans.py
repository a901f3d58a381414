"""The SQLite store's per-device time spans (``readings_devices``): a time range over every device reads
each device by its key, with the same rows in the same order as the ``(time_ms)`` index gave; a file
written before them is migrated when opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest.model import Reading
from ingest.store.sqlite import SQLiteStore

T0 = 1_795_651_200_000
MIN = 60_000


def reading(dev: str, t: int, v: float = 0.5) -> Reading:
    return Reading(t, dev, f"R-{dev}", "朝阳区", v, v, True, flow_m3_h=4000.0, fan_on=True, purifier_on=True)


def rows(store: SQLiteStore, **kw) -> list[tuple[int, str]]:
    return [(r["time_ms"], r["device_id"]) for r in store.query(**kw)]


def test_time_ranges_over_every_device(tmp_path: Path) -> None:
    st = SQLiteStore(str(tmp_path / "fume.db"))
    st.write([(1, [reading("B", T0 + k * MIN) for k in range(10)])])
    st.write([(2, [reading("A", T0 + k * MIN) for k in range(5, 15)]), (3, [reading("C", T0 + 100 * MIN)])])
    st.write([(4, [reading("A", T0 - 3 * MIN)])])  # older than what A had: its span grows backwards
    everything = sorted((T0 + k * MIN, "B") for k in range(10))
    everything += [(T0 + k * MIN, "A") for k in range(5, 15)] + [(T0 + 100 * MIN, "C"), (T0 - 3 * MIN, "A")]
    everything.sort()
    assert rows(st) == everything
    assert rows(st, since_ms=T0 + 8 * MIN) == [r for r in everything if r[0] >= T0 + 8 * MIN]
    assert rows(st, until_ms=T0 + 6 * MIN) == [r for r in everything if r[0] < T0 + 6 * MIN]
    window = rows(st, since_ms=T0 + 4 * MIN, until_ms=T0 + 12 * MIN)
    assert window == [r for r in everything if T0 + 4 * MIN <= r[0] < T0 + 12 * MIN]
    assert rows(st, since_ms=T0 + 50 * MIN, until_ms=T0 + 60 * MIN) == []  # between the spans
    spans = st._conn.execute("SELECT * FROM readings_devices ORDER BY device_id").fetchall()
    assert spans == [
        ("A", T0 - 3 * MIN, T0 + 14 * MIN),
        ("B", T0, T0 + 9 * MIN),
        ("C", T0 + 100 * MIN, T0 + 100 * MIN),
    ]
    indexes = {r[0] for r in st._conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "readings_time" not in indexes and "readings_restaurant_time" in indexes
    st.close()


def test_a_file_from_before_gets_its_spans_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    st = SQLiteStore(str(path))
    st.write([(1, [reading(d, T0 + k * MIN) for d in ("A", "B") for k in range(4)])])
    st.close()
    with sqlite3.connect(path) as conn:  # what a file written by the release before looks like
        conn.execute("DROP TABLE readings_devices")
        conn.execute("CREATE INDEX readings_time ON readings (time_ms)")
    st = SQLiteStore(str(path))
    assert rows(st, since_ms=T0 + 2 * MIN) == [(T0 + k * MIN, d) for k in (2, 3) for d in ("A", "B")]
    indexes = {r[0] for r in st._conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "readings_time" not in indexes
    assert st._conn.execute("SELECT COUNT(*) FROM readings_devices").fetchone()[0] == 2
    st.close()
    SQLiteStore(str(path)).close()  # opened again: nothing to migrate
