"""Edges of the deployment (issue 11, items 7 and 8), each against the real thing.

- The shipped ``deploy/mosquitto/mosquitto.conf`` on a real Mosquitto: a device cannot retain (a retained
  PUBLISH disconnects it and nothing is stored or re-delivered), an oversize payload is dropped, an
  oversize packet disconnects, and the queue/persistence limits are the documented ones.
- Secrets in URLs never reach ``fumewatch config`` output or a log line (see tests/test_api.py for the
  API's failed-authentication limit and the proxy setting).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from test_acl import DEPLOY_CONF, ENV, PREFIX, REGISTRY_CSV, DeployedMosquitto, Peer, read_csv

from ingest import acl

REPO = Path(__file__).resolve().parent.parent
PROTOCOLS = pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])


# ---------------------------------------------------------------------------------------------------------
# the shipped broker config
# ---------------------------------------------------------------------------------------------------------


def _active_conf() -> dict[str, str]:
    out = {}
    for line in DEPLOY_CONF.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, value.strip())
    return out


def test_deploy_conf_limits_are_the_documented_ones() -> None:
    conf = _active_conf()
    assert conf["retain_available"] == "false"
    assert "message_size_limit" not in conf  # mosquitto 2.0.11: "replace it with max_packet_size"
    assert int(conf["max_packet_size"]) == 262144 + 8192  # [ingest] max_payload_bytes + topic, properties
    assert int(conf["max_queued_messages"]) > 0 and int(conf["max_queued_bytes"]) > 0
    assert conf["persistence"] == "true" and conf["autosave_on_changes"] == "false"
    assert conf["autosave_interval"] == "60"
    readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
    assert "autosave_interval" in readme and "retain_available false" in readme


@pytest.fixture
def accounts(tmp_path: Path) -> dict[str, str]:
    reg = tmp_path / "registry.csv"
    reg.write_text(REGISTRY_CSV, encoding="utf-8")
    out = tmp_path / "auth"
    acl.generate(reg, out, service_accounts="ingest,ingest-2:ingest,alerts", environ=ENV)
    creds = {u: r["password"] for u, r in read_csv(out / "credentials.csv", "username").items()}
    creds.update({u: r["password"] for u, r in read_csv(out / "service-credentials.csv", "username").items()})
    creds["ingest"] = ENV["FUMEWATCH_ACL_INGEST_PASSWORD"]
    return creds


@pytest.fixture
def peers(tmp_path: Path, mosquitto_binary: str, accounts: dict[str, str]) -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []
    with DeployedMosquitto(tmp_path / "broker", tmp_path / "auth", binary=mosquitto_binary) as broker:

        def make(username: str, **kwargs) -> Peer:
            p = Peer(broker, username, accounts[username], **kwargs)
            made.append(p)
            return p

        yield make
        for p in made:
            p.close()


def _publish_no_wait(peer: Peer, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> int:
    return peer.client.publish(topic, payload, qos=qos, retain=retain).mid


@pytest.mark.integration
@PROTOCOLS
def test_device_cannot_retain_in_its_own_subtree(peers, protocol) -> None:
    ingest = peers("ingest", protocol=protocol)
    assert not ingest.connect().is_failure
    ingest.subscribe(f"{PREFIX}/#")
    dev = peers("DEV-1", protocol=protocol)
    assert not dev.connect().is_failure
    big = b"r" * 200_000  # under the size limits: only the retain flag is wrong
    mid = _publish_no_wait(dev, f"{PREFIX}/DEV-1/reading", big, retain=True)
    assert dev._wait(lambda: dev.disconnected, 10), "a retained PUBLISH must disconnect the device"
    assert mid not in dev.pubacks or dev.pubacks[mid].is_failure
    assert not ingest.wait_for_payload(big, timeout=1.0)  # not forwarded either
    # nothing was stored: a new subscriber gets no retained message
    late = peers("ingest-2", protocol=protocol)
    assert not late.connect().is_failure
    late.subscribe(f"{PREFIX}/#")
    time.sleep(1.0)
    assert late.payloads() == []
    # the same device without the retain flag is fine
    again = peers("DEV-1", protocol=protocol)
    assert not again.connect().is_failure
    assert not again.publish(f"{PREFIX}/DEV-1/reading", b'{"oil_fume": 0.4}').is_failure
    assert ingest.wait_for_payload(b'{"oil_fume": 0.4}')
    assert late.wait_for_payload(b'{"oil_fume": 0.4}')


@pytest.mark.integration
def test_mqtt5_connack_says_retain_is_not_available(peers) -> None:
    dev = peers("DEV-1", protocol=mqtt.MQTTv5)
    props: dict = {}
    dev.client.on_connect = lambda c, u, f, rc, p: (
        props.update(vars(p)),
        Peer._on_connect(dev, c, u, f, rc, p),
    )
    assert not dev.connect().is_failure
    assert props.get("RetainAvailable") == 0
    assert props.get("MaximumPacketSize") == int(_active_conf()["max_packet_size"])


@pytest.mark.integration
@PROTOCOLS
def test_oversize_packet_disconnects_and_is_not_delivered(peers, protocol) -> None:
    ingest = peers("ingest", protocol=protocol)
    ingest.connect()
    ingest.subscribe(f"{PREFIX}/+/reading")
    dev = peers("DEV-1", protocol=protocol)
    dev.connect()
    limit = 262144  # [ingest] max_payload_bytes: still reaches ingest (which decides about it)
    assert not dev.publish(f"{PREFIX}/DEV-1/reading", b"z" * limit).is_failure
    assert ingest.wait_for_payload(b"z" * limit)
    huge = b"y" * int(_active_conf()["max_packet_size"])  # payload alone = the limit: packet over it
    _publish_no_wait(dev, f"{PREFIX}/DEV-1/reading", huge)
    assert dev._wait(lambda: dev.disconnected, 10), "a packet over max_packet_size must disconnect"
    assert not ingest.wait_for_payload(huge, timeout=1.0)
    assert not ingest.disconnected


# ---------------------------------------------------------------------------------------------------------
# secrets in URLs: `fumewatch config` and log lines
# ---------------------------------------------------------------------------------------------------------
