"""Nothing lost, nothing duplicated: real processes killed and restarted, a real broker restarted.

Ingest acknowledges an MQTT message only after the store committed its readings (paho manual ack), keeps
a persistent session (fixed client id, clean start off), and the store is idempotent on
(device_id, time). So: a broker restart with persistence, or a SIGKILL of ingest mid-batch, costs nothing.
Also checks the service's /healthz and Prometheus /metrics while it runs.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from servers import free_port, wait_for

from ingest.timeutil import now_ms

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
REGISTRY = (
    "restaurant_id,name,district,device_id,stove_heads\nR1,老王牛肉面,朝阳区,D1,2\nR2,川味小厨,海淀区,D2,3\n"
)


def start_ingest(tmp_path: Path, broker_url: str, *, metrics_port: int = 0, **env: str) -> subprocess.Popen:
    (tmp_path / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    full_env = {
        **os.environ,
        "FUMEWATCH_METRICS_PORT": str(metrics_port),
        "FUMEWATCH_MQTT_RECONNECT_MAX_S": "1",
        **env,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "ingest",
            "--broker",
            broker_url,
            "--store",
            str(tmp_path / "fume.db"),
            "--registry",
            str(tmp_path / "registry.csv"),
            "--state",
            str(tmp_path / "state.db"),
            "--client-id",
            "ingest-reliability",
        ],
        cwd=REPO,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


def stored(tmp_path: Path) -> tuple[int, int]:
    """(rows, distinct (device, time) keys) in the SQLite store."""
    db = tmp_path / "fume.db"
    if not db.exists():
        return (0, 0)
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            rows = conn.execute("SELECT COUNT(*), COUNT(DISTINCT device_id || ':' || time_ms) FROM readings")
            return tuple(rows.fetchone())  # type: ignore[return-value]
        except sqlite3.OperationalError:
            return (0, 0)


class Publisher:
    """A device-like publisher: QoS 1, persistent session, auto-reconnect, paho queues while offline."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="device-publisher", protocol=mqtt.MQTTv5
        )
        self.c.reconnect_delay_set(1, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.c.connect(host, int(port), clean_start=False, properties=props)
        self.c.loop_start()
        self.infos: list = []

    def send(self, items: list[tuple[str, bytes]], pause_s: float = 0.0) -> None:
        for topic, payload in items:
            while not self.c.is_connected():  # like a monitor: hold new readings while the link is down
                time.sleep(0.05)
            self.infos.append(self.c.publish(topic, payload, qos=1))
            if pause_s:
                time.sleep(pause_s)

    def wait_all(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for info in self.infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        assert all(i.is_published() for i in self.infos)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def readings(n: int, t0: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        dev = "D1" if i % 2 == 0 else "D2"
        doc = {
            "ts": t0 + (i // 2) * 60_000,
            "oil_fume": 0.4 + (i % 7) * 0.1,
            "flow": 4000.0,
            "fan": True,
            "purifier": True,
        }
        out.append((f"fume/v1/{dev}/reading", orjson.dumps(doc)))
    return out


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:  # not listening yet
        return 0, b""


def test_broker_restart_mid_stream_loses_and_duplicates_nothing(make_mosquitto, tmp_path):
    broker = make_mosquitto(persistence=True)
    port = free_port()
    ingest = start_ingest(tmp_path, broker.url, metrics_port=port)
    pub = None
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 20, "ingest healthy")
        pub = Publisher(broker.url)
        msgs = readings(600, (now_ms() // 60_000 - 400) * 60_000)
        sender = threading.Thread(target=pub.send, args=(msgs, 0.004))
        sender.start()
        wait_for(lambda: stored(tmp_path)[0] >= 100, 30, "first readings stored")
        broker.restart()  # mid-stream; persistence keeps sessions and queued messages
        sender.join(60)
        pub.wait_all(60)
        wait_for(lambda: stored(tmp_path)[0] >= 600, 60, "all readings stored")
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        text = body.decode()
        assert "fumewatch_readings_stored_total" in text and "fumewatch_mqtt_connected 1.0" in text
        assert "fumewatch_dead_letters_purged_total 0.0" in text  # retention ran nothing yet
        health = orjson.loads(http_get(f"http://127.0.0.1:{port}/healthz")[1])
        assert health["status"] == "ok" and health["mqtt_connected"] is True
        assert health["problems"] == [] and health["reason"] == ""
        assert all(health["workers"].values()) and "ingest-writer" in health["workers"]
        assert 'fumewatch_worker_alive{thread="ingest-writer"} 1.0' in text
    finally:
        if pub is not None:
            pub.close()
        err = stop(ingest)
    assert stored(tmp_path) == (600, 600), err[-2000:]
    assert "broker_disconnected" in err and err.count("broker_connected") >= 2  # it really went through


def test_ingest_sigkill_mid_batch_then_restart(make_mosquitto, tmp_path):
    broker = make_mosquitto(persistence=True)
    # A big batch and a long flush interval: the readings sit received but unacknowledged in memory.
    slow = {"FUMEWATCH_INGEST_BATCH_SIZE": "100000", "FUMEWATCH_INGEST_FLUSH_INTERVAL_S": "60"}
    ingest = start_ingest(tmp_path, broker.url, **slow)
    pub = Publisher(broker.url)
    try:
        wait_for(lambda: (tmp_path / "state.db").exists(), 20, "ingest started")
        time.sleep(1.0)
        pub.send(readings(400, (now_ms() // 60_000 - 400) * 60_000))
        pub.wait_all()
        time.sleep(1.0)
        assert stored(tmp_path)[0] == 0  # nothing committed yet
        ingest.send_signal(signal.SIGKILL)
        ingest.wait(10)
        ingest = start_ingest(tmp_path, broker.url)  # same client id: the broker redelivers
        wait_for(lambda: stored(tmp_path)[0] >= 400, 60, "redelivered readings stored")
        time.sleep(0.5)
    finally:
        pub.close()
        stop(ingest)
    assert stored(tmp_path) == (400, 400)
