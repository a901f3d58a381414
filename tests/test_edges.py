"""Edges of the deployment (issue 11, items 7 and 8), each against the real thing.

- The shipped ``deploy/mosquitto/mosquitto.conf`` on a real Mosquitto: a device cannot retain (a retained
  PUBLISH disconnects it and nothing is stored or re-delivered), an oversize payload is dropped, an
  oversize packet disconnects, and the queue/persistence limits are the documented ones.
- Secrets in URLs never reach ``fumewatch config`` output or a log line (see tests/test_api.py for the
  API's failed-authentication limit and the proxy setting).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from test_acl import DEPLOY_CONF, ENV, PREFIX, REGISTRY_CSV, DeployedMosquitto, Peer, read_csv

from ingest import acl, logs
from ingest.masking import mask_url

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


SECRETS = ("mqtt-Sx1", "pg-Sx2", "influx-Sx3", "mail-Sx4", "wecom-Sx5", "tg-Sx6", "env-Sx7")


def run_fumewatch(
    tmp: Path, *argv: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, "-c", "from fumewatch.cli import main; raise SystemExit(main())", *argv]
    return subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=60)


def test_config_masks_secrets_inside_urls_from_toml_and_env(tmp_path: Path) -> None:
    conf = tmp_path / "fumewatch.toml"
    conf.write_text(
        """
[mqtt]
broker = "mqtts://ingest:mqtt-Sx1@broker.example.com:8883"
[ingest]
store = "postgresql://fumewatch:pg-Sx2@db.example.com:5432/fumewatch?sslmode=require"
[influx]
url = "http://influxdb:8086/?token=influx-Sx3&org=fw"
[notify]
inspector_targets = ["mailtos://inspector:mail-Sx4@smtp.example.com?to=a@b.cn", "wecombot://wecom-Sx5"]
""",
        encoding="utf-8",
    )
    env = {
        "FUMEWATCH_NOTIFY_INSPECTOR_TARGETS": '["tgram://123456:tg-Sx6/987", "wecombot://wecom-Sx5"]',
        "FUMEWATCH_INFLUX_URL": "https://reader:env-Sx7@influx.example.com:8086",
    }
    proc = run_fumewatch(tmp_path, "config", "--config", str(conf))
    assert proc.returncode == 0, proc.stderr
    doc = orjson.loads(proc.stdout)
    assert doc["mqtt"]["broker"] == "mqtts://ingest:***@broker.example.com:8883"
    assert (
        doc["ingest"]["store"] == "postgresql://fumewatch:***@db.example.com:5432/fumewatch?sslmode=require"
    )
    assert doc["influx"]["url"] == "http://influxdb:8086/?token=***&org=fw"
    assert doc["notify"]["inspector_targets"] == ["mailtos://***@smtp.example.com", "wecombot://***"]
    proc2 = run_fumewatch(tmp_path, "config", "--config", str(conf), env_extra=env)
    assert proc2.returncode == 0, proc2.stderr
    doc2 = orjson.loads(proc2.stdout)
    assert doc2["influx"]["url"] == "https://reader:***@influx.example.com:8086"
    assert doc2["notify"]["inspector_targets"] == ["tgram://***", "wecombot://***"]
    for out in (proc.stdout + proc.stderr, proc2.stdout + proc2.stderr):
        for secret in SECRETS:
            assert secret not in out


def test_a_refused_setting_does_not_echo_the_password(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('[mqtt]\nbroker = "mqtt://ingest:mqtt-Sx1@broker.example.com:99999"\n', encoding="utf-8")
    proc = run_fumewatch(tmp_path, "config", "--config", str(conf))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "mqtt://ingest:***@broker.example.com:99999" in proc.stderr
    assert "mqtt-Sx1" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_every_log_line_masks_urls_and_tokens(fmt: str) -> None:
    buf = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup("INFO", fmt, stream=buf)
        log = logging.getLogger("fumewatch.test")
        log.info("event=connect broker=mqtt://ingest:mqtt-Sx1@broker.example.com:1883 state=%s", "ok")
        log.warning("event=store url=%s", "postgresql://fw:pg-Sx2@db/fumewatch")
        log.info("event=notify target=mailtos://inspector:mail-Sx4@smtp.example.com?to=a@b.cn")
        log.info("event=notify target=wecombot://wecom-Sx5 next=tgram://123:tg-Sx6/9")
        log.info("event=influx url=http://influxdb:8086/write?org=fw&token=influx-Sx3 password=env-Sx7")
        try:
            raise ConnectionError("cannot reach mqtt://u:mqtt-Sx1@h:1883 (Authorization: Bearer env-Sx7)")
        except ConnectionError:
            log.exception("event=error")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = buf.getvalue()
    for secret in SECRETS:
        assert secret not in text, (secret, text)
    assert "mqtt://ingest:***@broker.example.com:1883" in text and "state=ok" in text
    assert "postgresql://fw:***@db/fumewatch" in text
    assert "mailtos://***@smtp.example.com" in text and "wecombot://***" in text
    assert "http://influxdb:8086/write?org=fw&token=***" in text


@pytest.mark.parametrize(
    "url, masked",
    [
        ("mqtt://mosquitto:1883", "mqtt://mosquitto:1883"),  # nothing secret: unchanged
        ("mqtt://u:p/w@host:1883", "mqtt://u:***@host:1883"),  # an unencoded "/" in the password
        ("https://h.example.com/api?sig=abc&x=1", "https://h.example.com/api?sig=***&x=1"),
        ("json://127.0.0.1:8080/hook?token=abc", "json://127.0.0.1:8080/***"),
        ("discord://1122334455667788/TOKEN", "discord://***/***"),
        ("dingtalk://TOKEN@13800000000", "dingtalk://***@***"),
        ("not a url", "not a url"),
        ("htp://x", "htp://x"),  # a mistyped broker URL stays readable in the error message
        ("mqtt://[user:pass@]host[:port]", "mqtt://[user:pass@]host[:port]"),  # a usage text
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_url(masked) == masked  # idempotent
