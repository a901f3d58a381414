"""End to end over real servers: publish on a real Mosquitto -> ingest -> SQLite / InfluxDB -> read back.

The InfluxDB here is Debian's 1.6.7 behind the test-only /api/v2/write relay (tests/servers.py), so the
real influxdb-client batching write path lands in a real InfluxDB; reads use the project's InfluxQL reader.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from servers import wait_for

from ingest import hj212
from ingest.config import load_settings
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store import open_store
from ingest.timeutil import now_ms

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent

REGISTRY_CSV = """restaurant_id,name,district,device_id,stove_heads,hj212_pw
R1,老王牛肉面,朝阳区,DEV-1,2,
R2,川味小厨,海淀区,DEV-2,4,654321
"""


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    p = tmp_path / "registry.csv"
    p.write_text(REGISTRY_CSV, encoding="utf-8")
    return p


def publisher(url: str) -> mqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
    )
    c.connect(host, int(port))
    c.loop_start()
    return c


def publish_all(c: mqtt.Client, items: list[tuple[str, bytes]]) -> None:
    infos = [c.publish(topic, payload, qos=1) for topic, payload in items]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()


def base_readings(t0: int, n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        doc = {
            "ts": t0 + i * 60_000,
            "oil_fume": 0.5 + i * 0.01,
            "pm": 1.0,
            "flow": 3000.0,
            "fan": True,
            "purifier": 1,
        }
        out.append(("fume/v1/DEV-1/reading", orjson.dumps(doc)))
    return out


def make_service(tmp_path: Path, broker_url: str, registry_file: Path, store: str, **influx):
    settings = load_settings(
        None,
        {
            "mqtt": {"broker": broker_url, "client_id": f"ingest-{tmp_path.name}"},
            "ingest": {
                "store": store,
                "state": str(tmp_path / "state.db"),
                "registry": str(registry_file),
                "flush_interval_s": 0.1,
            },
            "influx": influx or None,
        },
    )
    registry = Registry.load(registry_file)
    st = open_store(store, settings)
    state = StateDB(settings.ingest.state)
    return settings, IngestService(settings, registry, st, state), st, state


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fumewatch", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_json_and_hj212_into_sqlite_then_cli(mosquitto, tmp_path, registry_file):
    store_path = str(tmp_path / "fume.db")
    settings, svc, store, state = make_service(tmp_path, mosquitto.url, registry_file, store_path)
    svc.start()
    t0 = (now_ms() // 60_000 - 120) * 60_000
    batch = [
        {"ts": t0 + 30 * 60_000 + i * 60_000, "oil_fume": 1.0, "flow": 8000.0, "fan": 1, "purifier": 0}
        for i in range(5)
    ]
    frame = hj212.build_data_frame(
        mn="DEV-2",
        pw="654321",
        cn="2051",
        data_time_local=__import__("datetime").datetime.fromtimestamp(t0 / 1000, hj212_tz()),
        values={"a34041": 1.5, "a00000": 10000.0, "fan01": 1, "pur01": 1},
    )
    bad = [
        ("fume/v1/DEV-1/reading", b"\xff\xfe garbage"),
        ("fume/v1/DEV-9/reading", orjson.dumps({"ts": t0, "oil_fume": 1.0})),  # unknown device
        ("fume/v1/DEV-1/reading", b'{"ts": %d, "oil_fume": -3}' % t0),
        ("fume/v1/DEV-2/hj212", frame[:-6].encode() + b"0000\r\n"),  # wrong CRC
        ("fume/v1/DEV-1/reading", orjson.dumps({"ts": t0, "oil_fume": 1.0, "device_id": "DEV-2"})),  # spoof
    ]
    pub = publisher(mosquitto.url)
    try:
        publish_all(pub, base_readings(t0, 20))
        publish_all(pub, [("fume/v1/DEV-1/reading", orjson.dumps(batch))])
        publish_all(pub, [("fume/v1/DEV-2/hj212", frame.encode())])
        publish_all(pub, bad)
        wait_for(lambda: svc.stats.readings_stored >= 26 and svc.stats.dead_letters >= 5, timeout=20)
    finally:
        pub.loop_stop()
        pub.disconnect()
        svc.stop()
        store.close()
        state.close()
    assert svc.stats.readings_stored == 26
    assert svc.stats.dead_letters == 5

    out = run_cli("readings", "--store", store_path, "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 26
    assert list(rows[0].keys()) == [
        "time",
        "restaurant_id",
        "device_id",
        "oil_fume_mg_m3",
        "oil_fume_ref_mg_m3",
        "pm_mg_m3",
        "nmhc_mg_m3",
        "flow_m3_h",
        "fan_on",
        "purifier_on",
        "flags",
        "excluded",
        "extra",
    ]
    assert rows[0]["time"].endswith("+08:00")  # display time zone (Asia/Shanghai), with its offset
    r2 = [r for r in rows if r["device_id"] == "DEV-2"]
    assert len(r2) == 1 and r2[0]["restaurant_id"] == "R2"
    # GB 18483: 1.5 * 10000 / (4 * 2000)
    assert float(r2[0]["oil_fume_ref_mg_m3"]) == pytest.approx(1.875)
    only_r1 = run_cli("readings", "--store", store_path, "--restaurant", "R1", "--format", "json")
    docs = json.loads(only_r1.stdout)
    assert len(docs) == 25 and {d["restaurant_id"] for d in docs} == {"R1"}
    # 5 batched readings: 1.0 * 8000 / (2 * 2000) = 2.0, purifier off
    assert (
        sum(1 for d in docs if d["oil_fume_ref_mg_m3"] == pytest.approx(2.0) and d["purifier_on"] is False)
        == 5
    )

    dl = run_cli("dead-letters", "--state", str(tmp_path / "state.db"), "--format", "csv")
    assert dl.returncode == 0, dl.stderr
    reasons = sorted(r["reason"] for r in csv.DictReader(io.StringIO(dl.stdout)))
    assert reasons == ["device_mismatch", "hj212_bad_crc", "invalid_json", "negative", "unknown_device"]


def hj212_tz():
    from ingest.timeutil import zone

    return zone("Asia/Shanghai")


def test_redelivery_is_idempotent(mosquitto, tmp_path, registry_file):
    store_path = str(tmp_path / "fume.db")
    _, svc, store, state = make_service(tmp_path, mosquitto.url, registry_file, store_path)
    svc.start()
    t0 = (now_ms() // 60_000 - 60) * 60_000
    pub = publisher(mosquitto.url)
    try:
        msgs = base_readings(t0, 10)
        publish_all(pub, msgs + msgs)  # the same readings twice (as a redelivery would)
        wait_for(lambda: svc.stats.readings_stored >= 20, timeout=20)
    finally:
        pub.loop_stop()
        pub.disconnect()
        svc.stop()
    assert store.count() == 10
    store.close()
    state.close()


def test_influxdb_store_via_real_client(mosquitto, influx_db, tmp_path, registry_file):
    settings, svc, store, state = make_service(
        tmp_path,
        mosquitto.url,
        registry_file,
        influx_db.relay_url,
        bucket=influx_db.name,
        org="fumewatch",
        flush_interval_ms=200,
    )
    svc.start()
    t0 = (now_ms() // 60_000 - 90) * 60_000
    pub = publisher(mosquitto.url)
    try:
        publish_all(pub, base_readings(t0, 30))
        wait_for(lambda: svc.stats.readings_stored >= 30, timeout=20)
        assert svc.stats.acked == 30  # acknowledged only after InfluxDB accepted the points
    finally:
        pub.loop_stop()
        pub.disconnect()
        svc.stop()
        store.close()
        state.close()
    assert influx_db.relay.points >= 30
    # read back through the project's InfluxQL reader and through the CLI
    env = {"FUMEWATCH_INFLUX_BUCKET": influx_db.name}
    out = run_cli(
        "readings", "--store", influx_db.relay_url, "--restaurant", "R1", "--format", "csv", env=env
    )
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 30
    assert float(rows[0]["oil_fume_mg_m3"]) == pytest.approx(0.5)
    # 0.5 * 3000 / (2 * 2000)
    assert float(rows[0]["oil_fume_ref_mg_m3"]) == pytest.approx(0.375)
    assert rows[0]["fan_on"] == "true"
    reader = open_store(
        influx_db.relay_url, load_settings(None, {"influx": {"bucket": influx_db.name}}), read_only=True
    )
    assert reader.counts_by_restaurant() == {"R1": 30}
    reader.close()


def test_sigterm_flushes_everything(mosquitto, tmp_path, registry_file):
    """`python -m ingest` as a real process: SIGTERM mid-stream, then everything published is stored."""
    store_path = tmp_path / "fume.db"
    state_path = tmp_path / "state.db"
    env = {**os.environ, "FUMEWATCH_INGEST_BATCH_SIZE": "5000", "FUMEWATCH_INGEST_FLUSH_INTERVAL_S": "30"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "ingest",
            "--broker",
            mosquitto.url,
            "--store",
            str(store_path),
            "--registry",
            str(registry_file),
            "--state",
            str(state_path),
            "--client-id",
            "sigterm-test",
        ],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: "broker_connected" in mosquitto.log_text() or state_path.exists(), timeout=15)
        time.sleep(1.0)
        t0 = (now_ms() // 60_000 - 200) * 60_000
        pub = publisher(mosquitto.url)
        publish_all(pub, base_readings(t0, 150))
        pub.loop_stop()
        pub.disconnect()
        time.sleep(1.0)  # received, still buffered (batch 5000, flush every 30 s)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "event=ingest_stop" in err
    store = open_store(str(store_path))
    assert store.count() == 150
    store.close()


def test_embedded_amqtt_broker_with_mqtt311(tmp_path, registry_file):
    """The zero-install default: amqtt in-process, MQTT 3.1.1, persistent session."""
    from ingest.broker import EmbeddedBroker

    with EmbeddedBroker(prefer="amqtt") as broker:
        assert broker.kind == "amqtt"
        settings = load_settings(
            None,
            {
                "mqtt": {"broker": broker.url, "protocol": "3.1.1", "client_id": "ingest-amqtt"},
                "ingest": {
                    "store": str(tmp_path / "f.db"),
                    "state": str(tmp_path / "s.db"),
                    "registry": str(registry_file),
                    "flush_interval_s": 0.1,
                },
            },
        )
        store = open_store(settings.ingest.store, settings)
        state = StateDB(settings.ingest.state)
        svc = IngestService(settings, Registry.load(registry_file), store, state)
        svc.start()
        # amqtt may drop the first connection attempt under load (the client retries after its back-off):
        # publish only once ingest is connected and has asked for its subscription, or the broker, which
        # has no session for it yet, has nobody to queue the readings for
        wait_for(lambda: svc.connected, timeout=30, what="ingest connected to amqtt")
        time.sleep(0.5)
        host, port = broker.url.removeprefix("mqtt://").split(":")
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub311", protocol=mqtt.MQTTv311)
        pub.connect(host, int(port))
        pub.loop_start()
        try:
            publish_all(pub, base_readings((now_ms() // 60_000 - 60) * 60_000, 40))
            wait_for(lambda: svc.stats.readings_stored >= 40, timeout=20)
        finally:
            pub.loop_stop()
            pub.disconnect()
            svc.stop()
        assert store.count() == 40
        store.close()
        state.close()
