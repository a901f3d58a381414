"""First stored value wins with InfluxDB too (issue 11 item 4), against a real InfluxDB 1.6 and, at the
end, the real `fumewatch ingest` process over a real Mosquitto.

InfluxDB itself keeps the last point written for a series and time; ingest/store/first_wins.py keeps
what was admitted, refuses a later different value and checks readings older than it remembers against
InfluxDB.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from servers import free_port, publish_mqtt, run_fumewatch, wait_for
from test_store_faults import http_get, start_ingest, stop

from ingest.config import InfluxSettings
from ingest.model import Reading
from ingest.store.first_wins import FirstWinsIndex
from ingest.store.influx import InfluxStore
from ingest.timeutil import now_ms

pytestmark = pytest.mark.integration

MINUTE = 60_000


def reading(
    t: int, oil: float, *, device: str = "D1", interval_s: int = 0, fan: bool | None = True, **more
) -> Reading:
    v = {"pm": 0.5, "flow": 4000.0, **more}
    r = Reading(t, device, "R1", "朝阳区", oil, oil, False, v["pm"], None, v["flow"], fan, None, "json")
    r.interval_s = interval_s
    return r


def open_influx(influx_db, tmp_path: Path, *, buffer: bool, horizon_h: float = 48.0) -> InfluxStore:
    s = InfluxSettings(
        bucket=influx_db.name, batch_size=100, flush_interval_ms=50, first_wins_hours=horizon_h
    )
    return InfluxStore(
        influx_db.relay_url,
        s,
        buffer_path=str(tmp_path / "buffer.db") if buffer else None,
        first_wins_path=str(tmp_path / "first-wins.db"),
    )


def stored(influx_db, measurement: str = "fume_reading") -> list[tuple[str, int, float]]:
    rows = influx_db.points(f'SELECT device_id, oil_fume_mg_m3 FROM "{measurement}"', epoch="ms")
    return sorted((r["device_id"], r["time"], r["oil_fume_mg_m3"]) for r in rows)


def settle(store: InfluxStore, influx_db, n: int) -> None:
    if store._buffer is not None:
        assert store._buffer.wait_empty(20)
    store.flush(20)
    wait_for(lambda: len(stored(influx_db)) >= n, 20, f"{n} points in InfluxDB")


@pytest.mark.parametrize("buffer", [True, False], ids=["disk-buffer", "direct"])
def test_a_later_different_value_is_refused_and_influx_keeps_the_first(influx_db, tmp_path, buffer):
    store = open_influx(influx_db, tmp_path, buffer=buffer)
    refused: list = []
    durable: list = []
    store.on_conflict = refused.extend
    store.set_on_durable(durable.extend)
    t = (now_ms() // MINUTE - 10) * MINUTE
    try:
        store.write([(1, [reading(t, 1.0), reading(t + MINUTE, 2.0)])])
        settle(store, influx_db, 2)
        # an identical repeat passes (written again, harmlessly); a different value is refused, in a
        # later batch or within one; all of a message refused still acknowledges it
        store.write([(2, [reading(t, 1.0), reading(t, 9.0), reading(t + 2 * MINUTE, 3.0)])])
        store.write([(3, [reading(t + 2 * MINUTE, 4.0)]), (4, [reading(t + MINUTE, 2.0, fan=False)])])
        # hourly means are their own series: the same time is no conflict with the minute sample
        store.write([(5, [reading(t, 5.0, interval_s=3600)]), (6, [reading(t, 6.0, interval_s=3600)])])
        settle(store, influx_db, 3)
        wait_for(lambda: len(durable) == 6, 20, "every message durable")
    finally:
        store.close()
    assert [(r.time_ms - t, r.oil_fume_mg_m3, r.fan_on, first["oil_fume_mg_m3"]) for r, first in refused] == [
        (0, 9.0, True, 1.0),
        (2 * MINUTE, 4.0, True, 3.0),
        (MINUTE, 2.0, False, 2.0),  # only fan_on differs: still another measurement
        (0, 6.0, True, 5.0),
    ]
    assert refused[2][1]["fan_on"] is True
    assert sorted(durable) == [1, 2, 3, 4, 5, 6]
    assert stored(influx_db) == [("D1", t, 1.0), ("D1", t + MINUTE, 2.0), ("D1", t + 2 * MINUTE, 3.0)]
    assert stored(influx_db, "fume_reading_hourly") == [("D1", t, 5.0)]


def test_readings_older_than_the_index_are_checked_against_influx(influx_db, tmp_path):
    """Data written before the index existed (an upgrade), and readings older than its horizon (a monitor
    resending last week's buffer): InfluxDB's own point is the first value."""
    t = (now_ms() // MINUTE - 3 * 24 * 60) * MINUTE  # three days ago
    before = [
        f"fume_reading,device_id=D1,district=x,restaurant_id=R1 oil_fume_mg_m3=1.5,fan_on=1i {t}",
        f"fume_reading,device_id=D2,district=x,restaurant_id=R2 oil_fume_mg_m3=0.5 {t + MINUTE}",
    ]
    req = urllib.request.Request(
        f"{influx_db.server.url}/write?db={influx_db.name}&precision=ms", data="\n".join(before).encode()
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
    store = open_influx(influx_db, tmp_path, buffer=True, horizon_h=1.0)
    refused: list = []
    store.on_conflict = refused.extend
    try:
        index = store._first
        assert index is not None and index.created_ms > t
        store.write(
            [
                (1, [reading(t, 7.0), reading(t + 2 * MINUTE, 2.5)]),  # D1: a conflict and a new old one
                (
                    2,
                    [reading(t + MINUTE, 0.5, device="D2", fan=None, pm=None, flow=None)],
                ),  # D2: identical to InfluxDB's
                (3, [reading(now_ms() - MINUTE, 0.1, device="D3")]),
            ]
        )
        # a new index asks InfluxDB about everything stamped before its creation plus the clock skew
        assert index.looked_up == 4
        store.write([(4, [reading(t + 2 * MINUTE, 2.6)])])  # the index now knows t+2min
        settle(store, influx_db, 4)
    finally:
        store.close()
    assert [(r.device_id, r.time_ms - t, r.oil_fume_mg_m3, f) for r, f in refused] == [
        (
            "D1",
            0,
            7.0,
            {
                "oil_fume_mg_m3": 1.5,
                "pm_mg_m3": None,
                "nmhc_mg_m3": None,
                "flow_m3_h": None,
                "fan_on": True,
                "purifier_on": None,
            },
        ),
        ("D1", 2 * MINUTE, 2.6, refused[1][1]),
    ]
    assert refused[1][1]["oil_fume_mg_m3"] == 2.5
    old = [x for x in stored(influx_db) if x[1] < t + 3 * MINUTE]
    # D2's repeat was rewritten in its first series (restaurant R2), not stored again as a second one
    assert old == [("D1", t, 1.5), ("D1", t + 2 * MINUTE, 2.5), ("D2", t + MINUTE, 0.5)]
    rows = influx_db.points(
        "SELECT oil_fume_mg_m3, restaurant_id FROM \"fume_reading\" WHERE device_id = 'D2'"
    )
    assert [r["restaurant_id"] for r in rows] == ["R2"]


@pytest.mark.parametrize("buffer", [True, False], ids=["disk-buffer", "direct"])
def test_a_lookup_during_an_outage(influx_db, tmp_path, buffer):
    """With the disk buffer an old reading is buffered while InfluxDB is down (judged by the index alone,
    counted); without it the write fails like the write itself would, and is retried by the caller."""
    from ingest.store.influx_query import InfluxQLError

    store = open_influx(influx_db, tmp_path, buffer=buffer)
    t = (now_ms() // MINUTE - 3 * 24 * 60) * MINUTE
    try:
        influx_db.relay.pause()
        if buffer:
            store.write([(1, [reading(t, 1.0)])])
            store.write([(2, [reading(t + MINUTE, 1.0)])])  # no second wait for a dead InfluxDB
            assert (store._first.unchecked, store._first.looked_up, store.backlog) == (2, 0, 2)
        else:
            with pytest.raises(InfluxQLError):
                store.write([(1, [reading(t, 1.0)])])
            assert store._first.rows() == 0  # nothing admitted: the retry starts clean
        influx_db.relay.resume()
        if buffer:
            settle(store, influx_db, 2)
    finally:
        influx_db.relay.resume()
        store.close()


def test_the_index_forgets_what_is_older_than_its_horizon(tmp_path):
    looked: list = []

    def lookup(readings, hourly):
        looked.extend(r.time_ms for r in readings)
        return {}

    path = str(tmp_path / "fw.db")
    index = FirstWinsIndex(path, horizon_h=1.0, skew_s=300, lookup=lookup)
    now = now_ms()
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:  # as if created two hours ago
            conn.execute("UPDATE meta SET value = ? WHERE key = 'created_ms'", (now - 2 * 3600_000,))
            conn.commit()
        index.created_ms = now - 2 * 3600_000
        assert index.admit([reading(now - 10 * MINUTE, 1.0), reading(now - 30 * MINUTE, 1.0)]).conflicts == []
        assert looked == []  # within the horizon: the index alone decides
        assert index.admit([reading(now - 90 * MINUTE, 1.0)]).conflicts == []
        assert looked == [now - 90 * MINUTE]  # older than horizon + skew: asked InfluxDB first
        with contextlib.closing(sqlite3.connect(path)) as conn:  # the first two were admitted long ago
            conn.execute(
                "UPDATE admitted SET seen_ms = ? WHERE time_ms > ?", (now - 3 * 3600_000, now - 3600_000)
            )
            conn.commit()
        assert index.prune(now) == 2 and index.rows() == 1
    finally:
        index.close()
    reopened = FirstWinsIndex(path, horizon_h=1.0, skew_s=300, lookup=lookup)
    try:
        assert reopened.created_ms == now - 2 * 3600_000  # kept across restarts
        assert [
            f["oil_fume_mg_m3"] for _, f in reopened.admit([reading(now - 90 * MINUTE, 2.0)]).conflicts
        ] == [1.0]
    finally:
        reopened.close()


def test_ingest_process_with_influx_keeps_the_first_value(mosquitto, influx_db, tmp_path):
    """The real `fumewatch ingest` on InfluxDB: a conflicting duplicate is a dead letter, InfluxDB keeps
    the first value, an identical repeat is silent; the same holds after a restart (the index is a file)."""
    port = free_port()
    env = {"FUMEWATCH_INFLUX_BUCKET": influx_db.name, "FUMEWATCH_INFLUX_FLUSH_INTERVAL_MS": "100"}
    state = tmp_path / "state.db"
    t = (now_ms() // MINUTE - 20) * MINUTE

    def msg(ts: int, oil: float) -> tuple[str, bytes]:
        return ("fume/v1/D1/reading", orjson.dumps({"ts": ts, "oil_fume": oil, "flow": 4000.0}))

    def dead() -> list[dict]:
        out = run_fumewatch(tmp_path, "dead-letters", "--state", str(state), "--format", "json")
        assert out.returncode == 0, out.stderr
        return orjson.loads(out.stdout)

    proc = start_ingest(tmp_path, mosquitto.url, influx_db.relay_url, state, port, **env)
    try:
        publish_mqtt(mosquitto.url, [msg(t, 1.0), msg(t, 15.9), msg(t, 1.0), msg(t + MINUTE, 2.0)])
        wait_for(lambda: len(stored(influx_db)) == 2, 30, "2 readings in InfluxDB")
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/healthz")[1].get("store_backlog") == 0, 30, "drained"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        # a new index asks InfluxDB about readings stamped before it existed (an upgrade's data)
        assert "fumewatch_first_wins_lookups_total 4.0" in metrics, metrics
        assert "fumewatch_first_wins_unchecked_total 0.0" in metrics
        assert 'fumewatch_dead_letters_total{reason="conflicting_duplicate"} 1.0' in metrics
    finally:
        log = stop(proc)
    assert (tmp_path / "influx-first-wins.db").exists(), log[-2000:]
    proc = start_ingest(tmp_path, mosquitto.url, influx_db.relay_url, state, port, **env)
    try:
        publish_mqtt(mosquitto.url, [msg(t + MINUTE, 3.0), msg(t + 2 * MINUTE, 4.0)])
        wait_for(lambda: len(stored(influx_db)) == 3, 30, "3 readings in InfluxDB")
        wait_for(lambda: len(dead()) == 2, 30, "2 dead letters")
        time.sleep(0.5)
    finally:
        log = stop(proc)
    assert stored(influx_db) == [("D1", t, 1.0), ("D1", t + MINUTE, 2.0), ("D1", t + 2 * MINUTE, 4.0)], log[
        -2000:
    ]
    got = sorted((d["reason"], d["device_id"], d["payload_excerpt"]) for d in dead())
    assert [g[:2] for g in got] == [("conflicting_duplicate", "D1")] * 2
    assert any("15.9" in g[2] for g in got) and any("3.0" in g[2] for g in got)
