"""The test harness itself: real mosquitto, real InfluxDB 1.6 behind the v2 write relay, docker probe."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
import servers
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

pytestmark = pytest.mark.integration

TIMEOUT_S = 10.0


# ---------------------------------------------------------------------------------------------------------
# MQTT helpers (paho-mqtt v2 callback API)
# ---------------------------------------------------------------------------------------------------------


class MqttProbe:
    """A paho client that records connects, subacks and messages for assertions."""

    def __init__(self, broker: servers.MosquittoServer, client_id: str = "", *, clean_session: bool = True):
        self.broker = broker
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present: bool | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)

    def _on_connect(self, _client, _userdata, flags, reason_code, _properties) -> None:
        if not reason_code.is_failure:
            self.session_present = bool(flags.session_present)
            self.connected.set()

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        if not any(rc.is_failure for rc in reason_codes):
            self.subscribed.set()

    def connect(self) -> MqttProbe:
        self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT_S), f"no CONNACK from {self.broker.url}"
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.client.subscribe(topic, qos=qos)
        assert self.subscribed.wait(TIMEOUT_S), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=TIMEOUT_S)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def next_message(self) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"no message within {TIMEOUT_S} s; broker log:\n{self.broker.log_text()[-3000:]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------------------------------------------------
# Mosquitto
# ---------------------------------------------------------------------------------------------------------


def test_mqtt_publish_subscribe_round_trip(mosquitto: servers.MosquittoServer) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert mosquitto.port != 1883, "must never use the system broker"
    topic = f"fume/v1/test/{uuid.uuid4().hex[:8]}/reading"
    sub = MqttProbe(mosquitto).connect()
    pub = MqttProbe(mosquitto).connect()
    try:
        sub.subscribe("fume/v1/test/+/reading")
        pub.publish(topic, b'{"oil_fume_mg_m3": 1.5}')
        msg = sub.next_message()
    finally:
        sub.close()
        pub.close()
    assert msg.topic == topic
    assert msg.payload == b'{"oil_fume_mg_m3": 1.5}'
    assert msg.qos == 1
    assert "mosquitto version 2" in mosquitto.log_text()


def test_broker_restart_keeps_queued_qos1_for_persistent_session(make_mosquitto) -> None:
    broker = make_mosquitto(persistence=True)
    port = broker.port
    client_id = f"fumewatch-sub-{uuid.uuid4().hex[:8]}"

    sub = MqttProbe(broker, client_id, clean_session=False).connect()
    sub.subscribe("fume/v1/queued", qos=1)
    sub.close()

    pub = MqttProbe(broker).connect()
    pub.publish("fume/v1/queued", b"while-offline", qos=1)
    pub.close()

    broker.restart()
    assert broker.port == port
    assert (broker.persistence_dir / "mosquitto.db").is_file()

    again = MqttProbe(broker, client_id, clean_session=False).connect()
    try:
        msg = again.next_message()
    finally:
        again.close()
    assert again.session_present is True
    assert (msg.topic, msg.payload, msg.qos) == ("fume/v1/queued", b"while-offline", 1)


def test_mosquitto_stop_is_clean_and_keeps_files(tmp_path, mosquitto_binary: str) -> None:
    broker = servers.MosquittoServer(tmp_path, binary=mosquitto_binary).start()
    pid = broker.pid
    assert broker.is_running and servers.wait_port(broker.host, broker.port, timeout=1)
    assert broker.stop() == 0  # SIGTERM -> clean exit
    assert not broker.is_running and not _pid_alive(pid)
    assert not servers.wait_port(broker.host, broker.port, timeout=0.2)
    assert broker.conf_path.is_file() and broker.log_path.is_file()
    assert f"listener {broker.port} 127.0.0.1" in broker.conf_path.read_text()
    assert broker.stop() is None  # idempotent


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_mosquitto_refuses_a_port_in_use(tmp_path, mosquitto: servers.MosquittoServer) -> None:
    clash = servers.MosquittoServer(tmp_path, port=mosquitto.port, binary=mosquitto.binary)
    with pytest.raises(servers.ServerStartError, match="already in use"):
        clash.start()
    assert not clash.is_running
    assert mosquitto.is_running


def test_mosquitto_start_failure_reports_log_tail(tmp_path, mosquitto_binary: str) -> None:
    bad = servers.MosquittoServer(tmp_path, binary=mosquitto_binary, extra_conf="no_such_option 1")
    with pytest.raises(servers.ServerStartError, match=r"(?s)exited with status \d+.*no_such_option"):
        bad.start()
    assert not bad.is_running


# ---------------------------------------------------------------------------------------------------------
# InfluxDB 1.6 behind the /api/v2/write relay, written by the real influxdb-client
# ---------------------------------------------------------------------------------------------------------


def test_influx_write_via_relay_and_read_back_with_influxql(influx_db) -> None:
    ts = datetime(2024, 5, 1, 4, 0, 0, tzinfo=UTC)
    point = (
        Point("fume")
        .tag("device", "d1")
        .field("oil_fume_mg_m3", 1.25)
        .field("flow_m3_h", 4000.0)
        .time(ts, WritePrecision.S)
    )
    with InfluxDBClient(url=influx_db.relay_url, token="x", org="fumewatch") as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=influx_db.name, record=point)

    rows = influx_db.points("SELECT oil_fume_mg_m3, flow_m3_h, device FROM fume", epoch="s")
    assert rows == [
        {"time": int(ts.timestamp()), "oil_fume_mg_m3": 1.25, "flow_m3_h": 4000.0, "device": "d1"}
    ]
    assert (influx_db.relay.writes, influx_db.relay.points) == (1, 1)
    assert influx_db.relay.last_body is not None and influx_db.relay.last_body.startswith(b"fume,device=d1 ")


def test_relay_handles_gzip_ms_precision_and_retention_policy(influx_db) -> None:
    base_ms = 1_714_536_000_000
    lines = [f"fume,device=d{i} oil_fume_mg_m3={i}.5 {base_ms + i}" for i in range(3)]
    with InfluxDBClient(url=influx_db.relay_url, token="x", org="fumewatch", enable_gzip=True) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=f"{influx_db.name}/autogen", record=lines, write_precision=WritePrecision.MS
        )
    rows = influx_db.points('SELECT oil_fume_mg_m3 FROM "autogen"."fume" GROUP BY device', epoch="ms")
    got = sorted((r["device"], r["time"], r["oil_fume_mg_m3"]) for r in rows)
    assert got == [(f"d{i}", base_ms + i, i + 0.5) for i in range(3)]
    assert (influx_db.relay.writes, influx_db.relay.points) == (1, 3)


def test_relay_fail_with_makes_client_write_raise(influx_db) -> None:
    relay = influx_db.relay
    with InfluxDBClient(url=influx_db.relay_url, token="x", org="fumewatch") as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        relay.fail_with(503)
        try:
            with pytest.raises(ApiException) as excinfo:
                write_api.write(bucket=influx_db.name, record="fume oil_fume_mg_m3=9 1")
        finally:
            relay.fail_with(None)
        assert excinfo.value.status == 503
        assert relay.rejected == 1 and relay.writes == 0
        assert "series" not in influx_db.query("SELECT * FROM fume")["results"][0]

        write_api.write(bucket=influx_db.name, record="fume oil_fume_mg_m3=2 1")
    assert relay.writes == 1
    assert influx_db.points("SELECT oil_fume_mg_m3 FROM fume") != []


def test_relay_upstream_errors_pass_through(influx_db) -> None:
    with InfluxDBClient(url=influx_db.relay_url, token="x", org="fumewatch") as client:
        with pytest.raises(ApiException) as excinfo:
            client.write_api(write_options=SYNCHRONOUS).write(
                bucket=f"missing_{uuid.uuid4().hex[:6]}", record="fume v=1 1"
            )
    assert excinfo.value.status == 404  # InfluxDB 1.6: database not found
    assert influx_db.relay.errors == 1


def test_relay_pause_refuses_connections_and_resume_restores(influx_db) -> None:
    relay = influx_db.relay
    with InfluxDBClient(url=influx_db.relay_url, token="x", org="fumewatch") as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        write_api.write(bucket=influx_db.name, record="fume v=1 1")
        relay.pause()
        try:
            assert not servers.wait_port(relay.host, relay.port, timeout=0.2)
            with pytest.raises(Exception) as excinfo:  # urllib3 connection error, whatever the version
                write_api.write(bucket=influx_db.name, record="fume v=2 2")
            assert not isinstance(excinfo.value, ApiException)
        finally:
            relay.resume()
        write_api.write(bucket=influx_db.name, record="fume v=3 3")
    assert sorted(r["v"] for r in influx_db.points("SELECT v FROM fume")) == [1, 3]


def test_influxdb_server_own_ports_and_clean_stop(tmp_path, influxd_binary: str) -> None:
    server = servers.InfluxDB1Server(tmp_path, binary=influxd_binary).start()
    pid = server.pid
    try:
        assert server.ping()
        assert server.rpc_port != server.port
        server.create_database("probe")
        names = [v[0] for v in server.query(None, "SHOW DATABASES")["results"][0]["series"][0]["values"]]
        assert "probe" in names
    finally:
        status = server.stop()
    assert status == 0 and not _pid_alive(pid) and not server.ping()
    assert (tmp_path / "meta").is_dir() and (tmp_path / "influxdb.conf").is_file()  # nothing removed


def test_relay_proxies_other_paths_unchanged(influx_db) -> None:
    with urllib.request.urlopen(f"{influx_db.relay_url}/ping", timeout=5) as resp:
        assert resp.status == 204
        assert resp.headers.get("X-Influxdb-Version", "").startswith("1.")
    q = urllib.parse.urlencode({"db": influx_db.name, "q": "SHOW MEASUREMENTS"})
    with urllib.request.urlopen(f"{influx_db.relay_url}/query?{q}", timeout=5) as resp:
        assert resp.status == 200
        assert b'"statement_id":0' in resp.read()
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(f"{influx_db.relay_url}/health", timeout=5)
    assert excinfo.value.code == 404  # 1.6 has no /health; the relay does not invent one


# ---------------------------------------------------------------------------------------------------------
# Docker / testcontainers
# ---------------------------------------------------------------------------------------------------------


def test_docker_check_returns_bool_and_reason(docker_available: bool) -> None:
    assert isinstance(docker_available, bool)
    reason = servers.docker_unavailable_reason()
    assert (reason is None) == docker_available
    if not docker_available:
        assert reason.startswith("no Docker engine here")
        if shutil.which("docker"):
            assert reason == "no Docker engine here (docker CLI is only a client)"


@pytest.mark.docker
def test_influxdb2_container_takes_v2_write_and_influxql_query() -> None:
    """The same client write path against a real InfluxDB 2 (skips, saying why, without a Docker engine)."""
    from testcontainers.community.influxdb import InfluxDb2Container

    token, org, bucket = "fumewatch-test-token", "fumewatch", "fume"
    with InfluxDb2Container(
        image="influxdb:2.7",
        init_mode="setup",
        admin_token=token,
        username="fumewatch",
        password="fumewatch-password",
        org_name=org,
        bucket=bucket,
    ) as container:
        url = container.get_url()
        with InfluxDBClient(url=url, token=token, org=org) as client:
            client.write_api(write_options=SYNCHRONOUS).write(bucket=bucket, record="fume,device=d1 v=1.5 1")
        req = urllib.request.Request(
            f"{url}/query?" + urllib.parse.urlencode({"db": bucket, "q": "SELECT v FROM fume"}),
            headers={"Authorization": f"Token {token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert b"1.5" in resp.read()
