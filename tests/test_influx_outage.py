"""InfluxDB down: ingest keeps accepting into the bounded disk buffer, then drains in order; nothing lost.

The outage is the relay in front of the real InfluxDB refusing connections (``pause``) or answering 503
(``fail_with``); the test keeps it to seconds (the drain's back-off is the same for minutes).
"""

from __future__ import annotations

import time

import orjson
import paho.mqtt.client as mqtt
import pytest
from servers import wait_for

from ingest.config import load_settings
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store import open_store
from ingest.timeutil import now_ms

pytestmark = pytest.mark.integration

REGISTRY = "restaurant_id,name,district,device_id,stove_heads\nR1,老王牛肉面,朝阳区,D1,2\n"


def publish(url: str, n: int, t0: int) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
    )
    c.connect(host, int(port))
    c.loop_start()
    infos = [
        c.publish(
            "fume/v1/D1/reading",
            orjson.dumps({"ts": t0 + i * 1000, "oil_fume": i / 1000, "flow": 4000.0}),
            qos=1,
        )
        for i in range(n)
    ]
    for i in infos:
        i.wait_for_publish(10)
    c.loop_stop()
    c.disconnect()


@pytest.mark.parametrize("outage", ["refused", "http_503"])
def test_outage_buffers_on_disk_then_drains_in_order(mosquitto, influx_db, tmp_path, outage):
    (tmp_path / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    s = load_settings(
        None,
        {
            "mqtt": {"broker": mosquitto.url, "client_id": f"ingest-outage-{outage}"},
            "ingest": {
                "store": influx_db.relay_url,
                "state": str(tmp_path / "state.db"),
                "registry": str(tmp_path / "registry.csv"),
                "flush_interval_s": 0.05,
            },
            "influx": {"bucket": influx_db.name, "batch_size": 100},
        },
    )
    store = open_store(s.ingest.store, s)
    state = StateDB(s.ingest.state)
    svc = IngestService(s, Registry.load(tmp_path / "registry.csv"), store, state)
    svc.start()
    t0 = (now_ms() // 60_000 - 60) * 60_000
    try:
        if outage == "refused":
            influx_db.relay.pause()
        else:
            influx_db.relay.fail_with(503)
        publish(mosquitto.url, 500, t0)
        # accepted and acknowledged while InfluxDB is down: durable in the disk buffer
        wait_for(lambda: svc.stats.readings_stored == 500 and svc.stats.acked == 500, 20, "buffered")
        assert store.backlog == 500
        assert (tmp_path / "influx-buffer.db").exists()
        time.sleep(2.0)
        assert store.backlog == 500  # still down: nothing drained, nothing dropped
        if outage == "refused":
            influx_db.relay.resume()
        else:
            influx_db.relay.fail_with(None)
        wait_for(lambda: store.backlog == 0, 40, "buffer drained")
    finally:
        svc.stop()
        store.close()
        state.close()
    rows = influx_db.points('SELECT "oil_fume_mg_m3" FROM "fume_reading"')
    assert len(rows) == 500
    assert [r["oil_fume_mg_m3"] for r in rows] == pytest.approx([i / 1000 for i in range(500)])


def test_buffer_survives_a_restart(influx_db, tmp_path):
    """Points left in the buffer when the service stops during an outage are sent by the next start."""
    from ingest.model import Reading

    s = load_settings(
        None, {"ingest": {"state": str(tmp_path / "state.db")}, "influx": {"bucket": influx_db.name}}
    )
    influx_db.relay.pause()
    store = open_store(influx_db.relay_url, s)
    t0 = (now_ms() // 60_000 - 60) * 60_000
    rs = [
        Reading(
            time_ms=t0 + i * 60_000,
            device_id="D1",
            restaurant_id="R1",
            district="朝阳区",
            oil_fume_mg_m3=1.0,
            oil_fume_ref_mg_m3=1.0,
            ref_converted=False,
        )
        for i in range(50)
    ]
    acked: list = []
    store.set_on_durable(acked.extend)
    store.write([(1, rs)])
    assert acked == [1]
    store.close()  # InfluxDB still down: the 50 points stay on disk
    influx_db.relay.resume()
    store = open_store(influx_db.relay_url, s)
    wait_for(lambda: store.backlog == 0, 30, "drained after restart")
    store.close()
    assert len(influx_db.points('SELECT * FROM "fume_reading"')) == 50


def test_buffer_full_stops_acknowledging_then_recovers(mosquitto, influx_db, tmp_path):
    """At buffer_max_points ingest stops acknowledging (the broker holds the rest); nothing is lost."""
    (tmp_path / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    s = load_settings(
        None,
        {
            "mqtt": {"broker": mosquitto.url, "client_id": "ingest-buffer-full"},
            "ingest": {
                "store": influx_db.relay_url,
                "state": str(tmp_path / "state.db"),
                "registry": str(tmp_path / "registry.csv"),
                "flush_interval_s": 0.05,
                "batch_size": 100,
            },
            "influx": {"bucket": influx_db.name, "buffer_max_points": 1000},
        },
    )
    store = open_store(s.ingest.store, s)
    state = StateDB(s.ingest.state)
    svc = IngestService(s, Registry.load(tmp_path / "registry.csv"), store, state)
    svc.start()
    t0 = (now_ms() // 60_000 - 60) * 60_000
    try:
        influx_db.relay.pause()
        publish(mosquitto.url, 1500, t0)
        wait_for(lambda: store.backlog >= 900, 20, "buffer filling")
        time.sleep(2.0)
        assert store.backlog <= 1000
        assert svc.stats.acked < 1500  # the rest is held by the broker, unacknowledged
        influx_db.relay.resume()
        wait_for(lambda: svc.stats.acked == 1500 and store.backlog == 0, 60, "recovered and drained")
    finally:
        svc.stop()
        store.close()
        state.close()
    assert len(influx_db.points('SELECT "oil_fume_mg_m3" FROM "fume_reading"')) == 1500
