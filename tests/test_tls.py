"""TLS to the broker: a self-signed CA, a real Mosquitto with only a TLS listener, the real IngestService.

Every certificate is made here (``cryptography``) in the test's tmp dir: a CA, a server certificate for
127.0.0.1, client certificates for ingest and a device, and a rogue CA with its own certificates. The broker
also requires a client certificate signed by the CA, on top of the generated password file and ACL.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from ingest import acl
from ingest.config import load_settings
from ingest.mqtt_client import make_client
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store import open_store
from ingest.timeutil import now_ms

x509 = pytest.importorskip("cryptography.x509", reason="cryptography not installed (test extra)")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

pytestmark = pytest.mark.integration

REGISTRY_CSV = "restaurant_id,name,district,device_id,stove_heads\nR1,老王牛肉面,朝阳区,DEV-1,2\n"
ENV = {"FUMEWATCH_ACL_INGEST_PASSWORD": "tls-test-ingest-pw"}  # a test broker's throwaway password


# ---------------------------------------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Issued:
    cert: Path
    key: Path


class CA:
    """A self-signed CA (EC P-256) that issues server and client certificates as PEM files in ``folder``."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = folder / f"{name}.crt"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, *, server: bool, ips: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        sans = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + [x509.DNSName(d) for d in dns]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = self.folder / cn.replace(" ", "_")
        out = Issued(stem.with_suffix(".crt"), stem.with_suffix(".key"))
        out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        out.key.chmod(0o600)
        return out


@dataclass
class PKI:
    ca: CA
    server: Issued
    ingest: Issued
    device: Issued
    rogue_ca: CA
    rogue_device: Issued
    wrong_name_server: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d / "ca", "fumewatch-test-ca")
    rogue = CA(d / "rogue", "rogue-ca")
    return PKI(
        ca=ca,
        server=ca.issue("mosquitto", server=True, ips=("127.0.0.1",), dns=("localhost",)),
        ingest=ca.issue("ingest", server=False),
        device=ca.issue("DEV-1", server=False),
        rogue_ca=rogue,
        rogue_device=rogue.issue("DEV-1 rogue", server=False),
        wrong_name_server=ca.issue("broker.example", server=True, dns=("broker.example",)),
    )


# ---------------------------------------------------------------------------------------------------------
# broker and clients
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def auth(tmp_path: Path) -> dict[str, str | Path]:
    reg = tmp_path / "registry.csv"
    reg.write_text(REGISTRY_CSV, encoding="utf-8")
    out = tmp_path / "auth"
    acl.generate(reg, out, service_accounts="ingest", environ=ENV)
    with open(out / "credentials.csv", encoding="utf-8") as fh:
        dev_pw = fh.read().splitlines()[1].split(",")[2]
    return {"registry": reg, "dir": out, "DEV-1": dev_pw, "ingest": ENV["FUMEWATCH_ACL_INGEST_PASSWORD"]}


def tls_conf(ca: Path, server: Issued) -> str:
    # No 'listener' line: these apply to the fixture's only listener, so the broker speaks TLS only.
    return "\n".join(
        [
            f"cafile {ca}",
            f"certfile {server.cert}",
            f"keyfile {server.key}",
            "tls_version tlsv1.2",
            "require_certificate true",
            "use_username_as_clientid true",
        ]
    )


@pytest.fixture
def tls_broker(make_mosquitto, pki: PKI, auth):
    return make_mosquitto(
        password_file=auth["dir"] / "passwd",
        acl_file=auth["dir"] / "acl",
        allow_anonymous=False,
        extra_conf=tls_conf(pki.ca.pem, pki.server),
    )


def settings_for(broker, *, ca: Path, client: Issued | None, username: str, password: str, tmp_path: Path,
                 registry: Path, client_id: str = "fumewatch-ingest"):  # fmt: skip
    s = load_settings(
        None,
        {
            "mqtt": {
                "broker": f"mqtts://{broker.host}:{broker.port}",
                "client_id": client_id,
                "username": username,
                "ca_file": str(ca),
                "cert_file": str(client.cert) if client else "",
                "key_file": str(client.key) if client else "",
            },
            "ingest": {
                "store": str(tmp_path / "fume.db"),
                "state": str(tmp_path / "state.db"),
                "registry": str(registry),
                "flush_interval_s": 0.1,
            },
        },
    )
    s.mqtt.password = type(s.mqtt.password)(password)
    return s


def try_connect(client: mqtt.Client, host: str, port: int, timeout: float = 5.0):
    """connect() (TCP + TLS handshake happen here) and wait for the CONNACK; its reason code, or None."""
    got: list = []
    ev = threading.Event()

    def on_connect(c, u, f, rc, p):
        got.append(rc)
        ev.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda c, u, f, rc, p: ev.set()  # closed by the broker before any CONNACK
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        ev.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


# ---------------------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------------------


def test_ingest_over_tls_stores_a_reading(tls_broker, pki: PKI, auth, tmp_path: Path) -> None:
    s = settings_for(tls_broker, ca=pki.ca.pem, client=pki.ingest, username="ingest", password=auth["ingest"],
                     tmp_path=tmp_path, registry=auth["registry"])  # fmt: skip
    assert s.mqtt.endpoint()[2] is True  # mqtts:// -> TLS
    store = open_store(s.ingest.store, s)
    state = StateDB(s.ingest.state)
    svc = IngestService(s, Registry.load(auth["registry"]), store, state)
    svc.start(wait_connected_s=10)
    try:
        assert svc.connected, "ingest did not connect over TLS"
        dev_settings = settings_for(tls_broker, ca=pki.ca.pem, client=pki.device, username="DEV-1",
                                    password=auth["DEV-1"], tmp_path=tmp_path, registry=auth["registry"],
                                    client_id="DEV-1")  # fmt: skip
        pub = make_client(dev_settings, "DEV-1")
        connected = threading.Event()
        pub.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
        pub.connect(tls_broker.host, tls_broker.port)
        pub.loop_start()
        try:
            assert connected.wait(10), "device did not connect over TLS"
            assert isinstance(pub.socket(), ssl.SSLSocket)
            t = (now_ms() // 60_000 - 3) * 60_000
            doc = {"ts": t, "oil_fume": 1.2, "flow": 6000.0, "fan": 1, "purifier": 1}
            info = pub.publish("fume/v1/DEV-1/reading", orjson.dumps(doc), qos=1)
            info.wait_for_publish(10)
            assert info.is_published()
            deadline = time.monotonic() + 15
            while svc.stats.readings_stored < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            pub.disconnect()
            pub.loop_stop()
    finally:
        svc.stop()
    rows = store.query(device_id="DEV-1")
    store.close()
    state.close()
    assert len(rows) == 1
    assert rows[0]["time_ms"] == t and rows[0]["restaurant_id"] == "R1"
    assert rows[0]["oil_fume_mg_m3"] == pytest.approx(1.2)
    assert "New client connected" in tls_broker.log_text()


def _raw_client(ca: Path, client: Issued | None, username: str = "DEV-1", password: str = "") -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5, reconnect_on_failure=False)  # fmt: skip
    c.tls_set(ca_certs=str(ca), certfile=str(client.cert) if client else None,
              keyfile=str(client.key) if client else None)  # fmt: skip
    c.username_pw_set(username, password)
    return c


def test_client_trusting_another_ca_refuses_the_broker(tls_broker, pki: PKI, auth) -> None:
    c = _raw_client(pki.rogue_ca.pem, pki.device, password=auth["DEV-1"])
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        c.connect(tls_broker.host, tls_broker.port)


def test_make_client_with_untrusted_ca_fails(tls_broker, pki: PKI, auth, tmp_path: Path) -> None:
    s = settings_for(tls_broker, ca=pki.rogue_ca.pem, client=pki.ingest, username="ingest",
                     password=auth["ingest"], tmp_path=tmp_path, registry=auth["registry"])  # fmt: skip
    client = make_client(s, "fumewatch-ingest")
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(tls_broker.host, tls_broker.port)


@pytest.mark.parametrize(
    ("cert", "broker_says"),
    [("rogue", "certificate verify failed"), ("none", "did not return a certificate")],
)
def test_broker_refuses_client_without_a_cert_from_its_ca(
    tls_broker, pki: PKI, auth, cert, broker_says
) -> None:
    client_cert = pki.rogue_device if cert == "rogue" else None
    c = _raw_client(pki.ca.pem, client_cert, password=auth["DEV-1"])
    # The broker aborts the handshake (TLS 1.3: after it, at the first read): either connect() raises or
    # the connection closes without a CONNACK.
    try:
        rc = try_connect(c, tls_broker.host, tls_broker.port)
    except (ssl.SSLError, ConnectionError, OSError):
        rc = None
    assert rc is None or rc.is_failure
    assert broker_says in tls_broker.log_text()  # mosquitto logs OpenSSL's reason


def test_device_with_valid_cert_and_password_connects(tls_broker, pki: PKI, auth) -> None:
    """The positive control for the refusals above: same broker, the CA's client certificate."""
    c = _raw_client(pki.ca.pem, pki.device, password=auth["DEV-1"])
    rc = try_connect(c, tls_broker.host, tls_broker.port)
    assert rc is not None and not rc.is_failure, rc
    wrong_pw = _raw_client(pki.ca.pem, pki.device, password="not-the-password")
    rc = try_connect(wrong_pw, tls_broker.host, tls_broker.port)
    assert rc is not None and rc.is_failure  # a valid certificate does not replace the password


def test_plain_mqtt_to_the_tls_listener_gets_no_connack(tls_broker, auth) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv5,
                    reconnect_on_failure=False)  # fmt: skip
    c.username_pw_set("DEV-1", auth["DEV-1"])
    assert try_connect(c, tls_broker.host, tls_broker.port, timeout=3) is None


def test_server_name_is_verified(make_mosquitto, pki: PKI, auth) -> None:
    """A certificate from the right CA but for another host name is refused (paho checks the host name)."""
    broker = make_mosquitto(
        password_file=auth["dir"] / "passwd",
        acl_file=auth["dir"] / "acl",
        allow_anonymous=False,
        extra_conf=tls_conf(pki.ca.pem, pki.wrong_name_server),
    )
    c = _raw_client(pki.ca.pem, pki.device, password=auth["DEV-1"])
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch|hostname"):
        c.connect(broker.host, broker.port)


def test_ingest_service_with_untrusted_ca_never_connects(tls_broker, pki: PKI, auth, tmp_path: Path, caplog):
    s = settings_for(tls_broker, ca=pki.rogue_ca.pem, client=pki.ingest, username="ingest",
                     password=auth["ingest"], tmp_path=tmp_path, registry=auth["registry"])  # fmt: skip
    store = open_store(s.ingest.store, s)
    state = StateDB(s.ingest.state)
    svc = IngestService(s, Registry.load(auth["registry"]), store, state)
    with caplog.at_level(logging.WARNING, logger="fumewatch.ingest"):
        svc.start(wait_connected_s=3)
        try:
            assert not svc.connected
        finally:
            svc.stop(timeout_s=5)
    store.close()
    state.close()
    assert "broker_not_connected_yet" in caplog.text
