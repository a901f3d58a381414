"""ingest.mqtt_client's read and ack paths (issue 14) against a real Mosquitto over a real TCP socket:
the buffered socket, the shared-table MQTT 5 PUBLISH properties and the batched PUBACKs."""

from __future__ import annotations

import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.config import load_settings
from ingest.mqtt_client import BufferedSocket, Client, PublishProperties, make_client


def test_buffered_socket_serves_what_paho_asks_for_in_order() -> None:
    a, b = socket.socketpair()
    try:
        b.sendall(bytes(range(200)) * 3)
        s = BufferedSocket(a)
        assert s.recv(1) == b"\x00"  # one real recv took everything
        assert s.pending() == 599
        got = s.recv(10) + s.recv(589)
        assert got == (bytes(range(200)) * 3)[1:]
        assert s.pending() == 0
        a.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing buffered, nothing in the kernel: as a socket
            s.recv(1)
        b.close()
        assert s.recv(5) == b""  # closed by the peer: as a socket
        assert s.fileno() == a.fileno()
    finally:
        a.close()


def test_publish_properties_equal_paho_s() -> None:
    plain = PublishProperties(PacketTypes.PUBLISH)
    assert plain.unpack(b"\x00rest") == (plain, 1)
    assert plain.json() == Properties(PacketTypes.PUBLISH).json() == {}
    full = Properties(PacketTypes.PUBLISH)
    full.UserProperty = ("k", "v")
    full.ContentType = "application/json"
    full.MessageExpiryInterval = 60
    packed = full.pack()
    mine, theirs = PublishProperties(PacketTypes.PUBLISH), Properties(PacketTypes.PUBLISH)
    assert mine.unpack(packed)[1] == theirs.unpack(packed)[1] == len(packed)
    assert mine.json() == theirs.json()
    assert _packet.Properties is PublishProperties  # what paho's decoder builds once ingest.mqtt_client is in


def _settings(port: int, protocol: str = "5"):
    return load_settings(None, {"mqtt": {"broker": f"mqtt://127.0.0.1:{port}", "protocol": protocol}})


def _publish(port: int, n: int, topic: str, properties: Properties | None = None) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        infos = [pub.publish(topic, f"m{i}".encode(), qos=1, properties=properties) for i in range(n)]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()


def _drain(client: Client, port: int, n: int, protocol: str, ack_below: int = 0) -> list[mqtt.MQTTMessage]:
    """Connect the persistent session and collect ``n`` messages; with manual ack, the first
    ``ack_below`` are acknowledged 500 at a time with ``ack_many`` (the broker sends at most 1000
    unacknowledged ones), as the ingest service does after each commit."""
    got: list[mqtt.MQTTMessage] = []
    pending: list[int] = []
    done = threading.Event()

    def on_message(c, userdata, msg) -> None:
        if len(got) < ack_below:
            pending.append(msg.mid)
        got.append(msg)
        if len(pending) >= 500 or (pending and len(got) == ack_below):
            c.ack_many(pending)
            pending.clear()
        if len(got) >= n:
            done.set()

    client.on_message = on_message
    if protocol == "5":
        from ingest.mqtt_client import connect_properties

        client.connect("127.0.0.1", port, clean_start=False, properties=connect_properties(_settings(port)))
    else:
        client.connect("127.0.0.1", port)
    client.loop_start()
    if n:
        done.wait(15)
    return got


@pytest.mark.integration
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_queued_messages_arrive_whole_and_in_order_and_ack_many_acknowledges_them(
    make_mosquitto, protocol: str
) -> None:
    broker = make_mosquitto(extra_conf="max_inflight_messages 1000\nmax_queued_messages 0\n")
    s = _settings(broker.port, protocol)
    n = 3000  # many packets per 64 KiB read, and packets cut across reads

    def session() -> Client:
        return make_client(s, "sub", manual_ack=True)  # type: ignore[return-value]

    first = session()
    subscribed = threading.Event()
    first.on_subscribe = lambda *a: subscribed.set()
    first.on_connect = lambda c, *a: c.subscribe("t/#", qos=1)
    _drain(first, broker.port, 0, protocol)
    assert subscribed.wait(10)
    first.disconnect()
    first.loop_stop()
    assert isinstance(first._sock, BufferedSocket | type(None))

    _publish(broker.port, n, "t/a")  # queued for the offline session
    c = session()
    got = _drain(c, broker.port, n, protocol, ack_below=n - 10)  # the last 10 stay unacknowledged
    try:
        assert [m.payload for m in got] == [f"m{i}".encode() for i in range(n)]
        assert all(m.topic == "t/a" and m.qos == 1 for m in got)
        time.sleep(0.5)
    finally:
        c.disconnect()
        c.loop_stop()
    again = _drain(session(), broker.port, 10, protocol)
    assert sorted(m.payload for m in again) == sorted(f"m{i}".encode() for i in range(n - 10, n))


@pytest.mark.integration
def test_mqtt5_publish_properties_reach_the_callback(make_mosquitto) -> None:
    broker = make_mosquitto()
    s = _settings(broker.port)
    c = make_client(s, "props")
    got: list[mqtt.MQTTMessage] = []
    subscribed, done = threading.Event(), threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, *a: cl.subscribe("p/#", qos=1)
    c.on_message = lambda cl, u, msg: (got.append(msg), len(got) == 2 and done.set())
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        assert subscribed.wait(10)
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("vendor", "acme")
        props.ContentType = "application/json"
        _publish(broker.port, 1, "p/with", props)
        _publish(broker.port, 1, "p/without")
        assert done.wait(10)
    finally:
        c.disconnect()
        c.loop_stop()
    by_topic = {m.topic: m for m in got}
    assert by_topic["p/with"].properties.UserProperty == [("vendor", "acme")]
    assert by_topic["p/with"].properties.ContentType == "application/json"
    assert not hasattr(by_topic["p/without"].properties, "UserProperty")
