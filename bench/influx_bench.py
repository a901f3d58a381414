"""influx_write: the project's InfluxStore.write (influxdb-client batching WriteApi) into a private
InfluxDB 1.6 through the test relay (/api/v2/write -> /write), in points/s until every point is durable."""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import device_ids, make_registry, servers
from ingest.config import load_settings
from ingest.model import Reading
from ingest.store.influx import InfluxStore

BATCH = 5000  # [influx] batch_size default: the WriteApi posts every 5000 points


def _readings(n_points: int, n_devices: int, t0: int) -> list[Reading]:
    reg = make_registry(n_devices)
    devs = [reg.get(d) for d in device_ids(n_devices)]
    out = []
    for i in range(n_points):
        d = devs[i % n_devices]
        assert d is not None
        oil = 0.3 + (i % 97) * 0.02
        flow = 4000.0 + (i % 11) * 100
        out.append(
            Reading(
                t0 + (i // n_devices) * 60_000, d.device_id, d.restaurant_id, d.district, oil,
                oil * flow / (d.stove_heads * 2000.0), True, 0.8, 2.1, flow, True, True,
            )
        )  # fmt: skip
    return out


def influx_write(
    workdir: Path,
    *,
    n_points: int,
    n_devices: int = 1000,
    per_write: int = 500,
    disk_buffer: bool = False,
    first_wins: bool = False,
    age_days: float = 30.0,
) -> dict:
    """``n_points`` (a multiple of the 5000-point WriteApi batch, so no batch waits for the 1 s flush
    interval) written ``per_write`` readings per ``InfluxStore.write`` call, as the ingest service's
    flushes do; timed from the first write to the moment the last point is acknowledged by InfluxDB.

    ``disk_buffer``: through the store's disk buffer (``[influx] buffer``, what ``open_store`` sets up by
    default), timed until the buffer has drained into InfluxDB (``backlog`` 0). ``first_wins``: with the
    first-wins index of ingest (``open_store`` sets it up for ingest); readings ``age_days`` old are older
    than a new index, so each batch is also checked against InfluxDB (a backfill, the costly case);
    ``age_days=0``: recent readings, judged by the index alone (once the index is older than they are)."""
    n_points = max(BATCH, n_points - n_points % BATCH)
    t0 = int(time.time() * 1000) - int(age_days * 86_400_000) - n_points // n_devices * 60_000
    t0 -= t0 % 60_000
    readings = _readings(n_points, n_devices, t0)
    server = servers.InfluxDB1Server(workdir / "influxdb").start()
    relay = servers.V2WriteRelay(server.url).start()
    try:
        server.create_database("bench")
        settings = load_settings(None, {"influx": {"bucket": "bench", "org": "bench", "database": "bench"}})
        buffer_path = str(workdir / "influx-buffer.db") if disk_buffer else None
        fw_path = str(workdir / "influx-first-wins.db") if first_wins else None
        store = InfluxStore(relay.url, settings.influx, buffer_path=buffer_path, first_wins_path=fw_path)
        if first_wins and age_days == 0:
            store._first.created_ms = 0  # an index in service for longer than the readings are old
        durable: list = []
        store.set_on_durable(durable.extend)
        start = time.perf_counter()
        for k, i in enumerate(range(0, n_points, per_write)):
            store.write([(k, readings[i : i + per_write])])
        store.flush(timeout_s=300)
        deadline = time.monotonic() + 300
        while store.backlog and time.monotonic() < deadline:  # the disk buffer drains on its own thread
            time.sleep(0.002)
        seconds = time.perf_counter() - start
        failed = store.failed_points
        store.close()
        stored = server.points("bench", "SELECT COUNT(oil_fume_mg_m3) FROM fume_reading")
        count = int(stored[0]["count"]) if stored else 0
    finally:
        relay.stop()
        server.stop()
    return {
        "points": n_points,
        "points_s": n_points / seconds,
        "seconds": seconds,
        "acknowledged_writes": len(durable),
        "stored": count,
        "failed": failed,
        "disk_buffer": disk_buffer,
        "first_wins": first_wins,
        "age_days": age_days,
        "relay": "tests/servers.py V2WriteRelay (Python HTTP server) -> influxd 1.6 /write",
    }
