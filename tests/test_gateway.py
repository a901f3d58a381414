"""The HJ 212 TCP gateway (ingest/gateway, docs/gateway.md) over real sockets against the real
``fumewatch hj212-gateway`` process and a real Mosquitto (and, for the store, the real
``fumewatch ingest``): frames split at every byte boundary and packed several per segment, the 9014
answer (same QN, valid CRC, only after the broker has the frame, none for a bad CRC), the time
calibration, a wrong PW, an MN switch, the idle timeout, oversize and never-terminated frames, 1,000
connections at once, and the readings in the store with the right times."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from servers import free_port, wait_for, wait_port

from ingest.hj212 import build_data_frame, encode_frame, parse_frame

REPO = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 1, 11, 0, tzinfo=TZ)
PW = "654321"
DEVICES = ["GW-1", "GW-2"] + [f"GW-M{i:04d}" for i in range(1000)]


def frame(
    mn: str = "GW-1", minute: int = 0, value: float = 1.234, pw: str = PW, flag_ack: bool = True
) -> bytes:
    t = T0 + timedelta(minutes=minute)
    text = build_data_frame(mn=mn, data_time_local=t, values={"a34041": value, "a00000": 4000}, pw=pw)
    if not flag_ack:  # Flag=4: no answer asked
        seg = text[6:-6].replace("Flag=5", "Flag=4")
        text = encode_frame(seg)
    return text.encode("ascii")


def registry(tmp_path: Path) -> Path:
    reg = tmp_path / "registry.csv"
    reg.write_text(
        "restaurant_id,name,district,device_id,stove_heads,hj212_pw\n"
        + "".join(f"R-{d},店{d},朝阳区,{d},2,{PW}\n" for d in DEVICES),
        encoding="utf-8",
    )
    return reg


class GatewayProc:
    def __init__(self, tmp_path: Path, broker_url: str, **env: str) -> None:
        self.port = free_port()
        self.log = tmp_path / f"gateway-{self.port}.log"
        self.err = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fumewatch",
                "hj212-gateway",
                *("--broker", broker_url, "--registry", str(registry(tmp_path))),
                *("--listen", f"127.0.0.1:{self.port}"),
                *(
                    "--state",
                    str(tmp_path / f"gateway-{self.port}.db"),
                ),  # its connections (fumewatch devices)
            ],
            cwd=REPO,
            env={
                **os.environ,
                "FUMEWATCH_GATEWAY_CLIENT_ID": f"gw-{self.port}",
                "FUMEWATCH_GATEWAY_MAX_CONNECTIONS_PER_PEER": "2000",
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=self.err,
        )
        assert wait_port("127.0.0.1", self.port, 20), self.text()
        wait_for(lambda: "event=broker_connected" in self.text(), 20, "the gateway's broker session")

    def text(self) -> str:
        return self.log.read_text()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.err.close()


@pytest.fixture
def gateway(tmp_path: Path, mosquitto) -> Iterator[GatewayProc]:
    gw = GatewayProc(tmp_path, mosquitto.url)
    yield gw
    gw.stop()
    assert "Traceback" not in gw.text(), gw.text()[-3000:]


class Subscriber:
    """What reaches the broker on fume/v1/+/hj212."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.got: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{time.time_ns()}")
        ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe("fume/v1/+/hj212", qos=1), ready.set())
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert ready.wait(10)
        time.sleep(0.2)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def subscriber(mosquitto) -> Iterator[Subscriber]:
    s = Subscriber(mosquitto.url)
    yield s
    s.stop()


def read_frames(s: socket.socket, n: int, timeout: float = 10.0) -> list[bytes]:
    """``n`` CRLF-terminated frames from ``s``."""
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\r\n") < n:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
    return [f + b"\r\n" for f in buf.split(b"\r\n") if f]


def nothing_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(65536) == b""
    except TimeoutError:
        return True


def qn(raw: bytes) -> str:
    return parse_frame(raw.decode("ascii")).qn


# -- framing -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_frames_split_at_every_byte_boundary_are_each_answered(gateway, subscriber):
    s = gateway.connect()
    sent = []
    size = len(frame())
    for cut in range(1, size):
        f = frame(minute=cut)
        sent.append(f)
        s.sendall(f[:cut])
        time.sleep(0.003)  # TCP_NODELAY and a pause: the two parts leave as two segments
        s.sendall(f[cut:])
    answers = read_frames(s, len(sent), timeout=30)
    s.close()
    assert len(answers) == len(sent)
    for f, a in zip(sent, answers, strict=True):
        resp = parse_frame(a.decode("ascii"))  # its CRC checks out
        assert (resp.cn, resp.st, resp.qn, resp.mn, resp.pw, resp.flag) == (
            "9014",
            "91",
            qn(f),
            "GW-1",
            PW,
            "4",
        )
    wait_for(lambda: len(subscriber.got) >= len(sent), 10, "every frame at the broker")
    assert [p for _, p in subscriber.got] == sent
    assert {t for t, _ in subscriber.got} == {"fume/v1/GW-1/hj212"}


@pytest.mark.integration
def test_frames_packed_several_per_segment_with_garbage_between(gateway, subscriber):
    s = gateway.connect()
    frames = [frame(minute=i) for i in range(6)]
    s.sendall(frames[0] + frames[1] + b"\xff\x00noise" + frames[2] + frames[3][:40])
    time.sleep(0.05)
    s.sendall(frames[3][40:] + frames[4] + frames[5])
    answers = read_frames(s, 6)
    assert [qn(a) for a in answers] == [qn(f) for f in frames]
    # a frame that asks for no answer (Flag=4) is forwarded, not answered
    quiet = frame(minute=10, flag_ack=False)
    s.sendall(quiet)
    assert nothing_within(s, 1.0)
    wait_for(lambda: quiet in [p for _, p in subscriber.got], 10, "the Flag=4 frame at the broker")
    # the garbage went on as an excerpt (ingest dead-letters it), the frames intact
    assert [p for _, p in subscriber.got if p in frames] == frames
    assert any(p.startswith(b"\xff\x00noise") for _, p in subscriber.got)
    s.close()


# -- what is answered, and when ------------------------------------------------------------------------


@pytest.mark.integration
def test_no_answer_for_a_bad_crc_or_a_wrong_pw_but_both_reach_ingest(gateway, subscriber):
    s = gateway.connect()
    good = frame(minute=1)
    bad_crc = good[:-6] + (b"0000" if good[-6:-2] != b"0000" else b"FFFF") + b"\r\n"
    s.sendall(bad_crc)
    assert nothing_within(s, 1.0)
    s.sendall(frame(minute=2, pw="000000"))
    assert nothing_within(s, 1.0)
    s.sendall(good)
    assert [qn(a) for a in read_frames(s, 1)] == [qn(good)]
    s.close()
    wait_for(lambda: len(subscriber.got) >= 3, 10, "all three at the broker")
    assert [p for _, p in subscriber.got][:2] == [bad_crc, frame(minute=2, pw="000000")]


@pytest.mark.integration
def test_the_answer_comes_only_once_the_broker_has_the_frame(tmp_path, make_mosquitto):
    broker = make_mosquitto(persistence=True)
    gw = GatewayProc(tmp_path, broker.url, FUMEWATCH_GATEWAY_PUBLISH_TIMEOUT_S="2")
    try:
        s = gw.connect()
        s.sendall(frame(minute=1))
        assert [qn(a) for a in read_frames(s, 1)] == [qn(frame(minute=1))]
        broker.stop()
        wait_for(lambda: "event=broker_disconnected" in gw.text(), 20, "the gateway notices")
        s.sendall(frame(minute=2))
        assert nothing_within(s, 3.0)  # no broker, no 9014 (the logger sends it again)
        broker.start()
        wait_for(lambda: gw.text().count("event=broker_connected") >= 2, 30, "the gateway reconnects")
        s.sendall(frame(minute=2))  # the logger's resend
        assert [qn(a) for a in read_frames(s, 1, timeout=15)] == [qn(frame(minute=2))]
        s.close()
        assert "reason=broker_timeout" in gw.text()
    finally:
        gw.stop()


@pytest.mark.integration
def test_time_calibration_request_gets_a_set_time_command_in_the_loggers_zone(gateway):
    s = gateway.connect()
    req = encode_frame(f"QN=20261201110000000;ST=39;CN=1013;PW={PW};MN=GW-1;Flag=5;CP=&&&&").encode()
    s.sendall(req)
    (answer,) = read_frames(s, 1)
    cmd = parse_frame(answer.decode("ascii"))
    assert (cmd.cn, cmd.st, cmd.mn, cmd.pw, cmd.flag) == ("1012", "39", "GW-1", PW, "5")
    told = datetime.strptime(cmd.cp["SystemTime"], "%Y%m%d%H%M%S").replace(tzinfo=TZ)
    assert abs((told - datetime.now(TZ)).total_seconds()) < 5
    assert cmd.qn.startswith(told.strftime("%Y%m%d%H%M")[:10])
    s.close()


@pytest.mark.integration
def test_a_second_mn_on_one_connection_is_refused(gateway, subscriber):
    s = gateway.connect()
    s.sendall(frame("GW-1", 1))
    assert len(read_frames(s, 1)) == 1
    other = frame("GW-2", 1)  # valid for GW-2, but this connection is GW-1's
    s.sendall(other)
    assert nothing_within(s, 1.0)
    s.close()
    wait_for(lambda: other in [p for _, p in subscriber.got], 10, "the refused frame at the broker")
    # on GW-1's topic, where ingest dead-letters it (mn_mismatch) under the bound device
    assert ("fume/v1/GW-1/hj212", other) in subscriber.got
    wait_for(lambda: "mn=GW-1" in gateway.text() and "event=gateway_disconnected" in gateway.text(), 5, "log")
    # GW-2 on its own connection is fine
    s2 = gateway.connect()
    s2.sendall(other)
    assert len(read_frames(s2, 1)) == 1
    s2.close()


# -- limits --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_an_idle_connection_is_closed(tmp_path, mosquitto):
    gw = GatewayProc(tmp_path, mosquitto.url, FUMEWATCH_GATEWAY_IDLE_TIMEOUT_S="1")
    try:
        s = gw.connect()
        s.sendall(frame(minute=1))
        assert len(read_frames(s, 1)) == 1
        t = time.monotonic()
        s.settimeout(5)
        assert s.recv(100) == b""  # the gateway closed it
        assert 0.5 < time.monotonic() - t < 4
        wait_for(lambda: "why=idle_timeout" in gw.text(), 5, "the idle timeout logged")
        s.close()
    finally:
        gw.stop()


@pytest.mark.integration
def test_oversize_and_never_terminated_frames_do_not_stop_the_connection(tmp_path, mosquitto):
    gw = GatewayProc(tmp_path, mosquitto.url, FUMEWATCH_GATEWAY_MAX_FRAME_BYTES="500")
    try:
        s = gw.connect()
        s.sendall(b"##9000" + b"A" * 3000)  # says 9,000 bytes: over the limit, skipped
        s.sendall(b"\r\n" + frame(minute=1))
        assert [qn(a) for a in read_frames(s, 1)] == [qn(frame(minute=1))]
        s.sendall(b"##0100QN=1;ST=22" + b"x" * 2000)  # never terminated: dropped at the limit
        s.sendall(frame(minute=2))
        assert [qn(a) for a in read_frames(s, 1)] == [qn(frame(minute=2))]
        s.sendall(b"\x00" * 100_000)  # garbage never grows a buffer: the connection still works
        s.sendall(frame(minute=3))
        assert [qn(a) for a in read_frames(s, 1)] == [qn(frame(minute=3))]
        s.close()
    finally:
        gw.stop()


@pytest.mark.integration
def test_a_thousand_connections_at_once(gateway, subscriber):
    async def one(mn: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(frame(mn, 5))
        await writer.drain()
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 60)
        writer.close()
        await writer.wait_closed()
        return line

    async def all_at_once() -> list[bytes]:
        return await asyncio.gather(*(one(mn) for mn in DEVICES[2:]))

    answers = asyncio.run(all_at_once())
    assert len(answers) == 1000
    assert sorted(parse_frame(a.decode()).mn for a in answers) == DEVICES[2:]
    assert all(parse_frame(a.decode()).cn == "9014" for a in answers)
    wait_for(lambda: len(subscriber.got) >= 1000, 30, "1,000 frames at the broker")


# -- into the store ------------------------------------------------------------------------------------


@pytest.mark.integration
def test_readings_sent_over_tcp_arrive_in_the_store_with_their_times(gateway, mosquitto, tmp_path):
    store = tmp_path / "fume.db"
    log = (tmp_path / "ingest.log").open("w")
    ingest = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "ingest",
            *("--broker", mosquitto.url, "--store", str(store), "--registry", str(registry(tmp_path))),
            *("--state", str(tmp_path / "state.db")),
        ],
        cwd=REPO,
        env={
            **os.environ,
            "FUMEWATCH_MQTT_CLIENT_ID": f"ingest-gw-{tmp_path.name}"[:60],
            "FUMEWATCH_INGEST_FLUSH_INTERVAL_S": "0.05",
        },
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for(lambda: "topics=" in (tmp_path / "ingest.log").read_text(), 30, "ingest subscribed")
        time.sleep(0.5)
        s = gateway.connect()
        s.sendall(b"".join(frame(minute=i, value=1.0 + i / 100) for i in range(10)))
        assert len(read_frames(s, 10)) == 10
        s.close()

        def rows() -> list[dict]:
            out = subprocess.run(
                [sys.executable, "-m", "fumewatch", "readings", "--store", str(store), "--format", "json"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []

        wait_for(lambda: len(rows()) >= 10, 30, "ten readings stored")
        got = sorted(rows(), key=lambda r: r["time"])
        assert [r["time"] for r in got] == [(T0 + timedelta(minutes=i)).isoformat() for i in range(10)]
        assert [r["oil_fume_mg_m3"] for r in got] == [round(1.0 + i / 100, 3) for i in range(10)]
    finally:
        ingest.terminate()
        ingest.wait(20)
        log.close()


@pytest.mark.integration
def test_frame_rate_and_connection_limits(tmp_path, mosquitto):
    gw = GatewayProc(
        tmp_path,
        mosquitto.url,
        FUMEWATCH_GATEWAY_MAX_FRAMES_PER_S="0.1",
        FUMEWATCH_GATEWAY_MAX_FRAME_BURST="3",
        FUMEWATCH_GATEWAY_MAX_CONNECTIONS="2",
    )
    try:
        s = gw.connect()
        frames = [frame(minute=i) for i in range(10)]
        s.sendall(b"".join(frames))
        answers = read_frames(s, 10, timeout=3)
        assert [qn(a) for a in answers] == [qn(f) for f in frames[:3]]  # the burst; the rest unanswered
        wait_for(lambda: "reason=rate_limited" in gw.text(), 5, "the refusal logged")
        s2 = gw.connect()
        s3 = gw.connect()  # the third at once: closed by the gateway
        s3.settimeout(5)
        assert s3.recv(10) == b""
        wait_for(lambda: "limit=max_connections" in gw.text(), 5, "the refused connection logged")
        for c in (s, s2, s3):
            c.close()
    finally:
        gw.stop()


@pytest.mark.integration
def test_tls_when_configured(tmp_path, mosquitto):
    import shutil
    import ssl

    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("openssl is not installed (to make a test certificate)")
    cert, key = tmp_path / "gw.crt", tmp_path / "gw.key"
    subprocess.run(
        [exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    gw = GatewayProc(
        tmp_path,
        mosquitto.url,
        FUMEWATCH_GATEWAY_TLS_CERT_FILE=str(cert),
        FUMEWATCH_GATEWAY_TLS_KEY_FILE=str(key),
    )
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(frame(minute=1))
                assert [qn(a) for a in read_frames(s, 1)] == [qn(frame(minute=1))]
        assert "tls=True" in gw.text()
    finally:
        gw.stop()


@pytest.mark.integration
def test_garbage_does_not_keep_a_connection_open_and_a_wrong_pw_still_binds(tmp_path, mosquitto, subscriber):
    gw = GatewayProc(tmp_path, mosquitto.url, FUMEWATCH_GATEWAY_IDLE_TIMEOUT_S="1.5")
    try:
        s = gw.connect()
        s.sendall(frame("GW-1", 1, pw="000000"))  # refused (bad PW), but the connection is now GW-1's
        t = time.monotonic()
        closed = False
        while time.monotonic() - t < 6:
            try:
                s.sendall(b"junk")  # garbage every 0.3 s: not a frame, so still idle
            except OSError:
                closed = True
                break
            time.sleep(0.3)
        s.settimeout(3)
        closed = closed or s.recv(100) == b""
        assert closed and time.monotonic() - t < 5
        wait_for(lambda: "why=idle_timeout" in gw.text(), 5, "the idle timeout logged")
        s2 = gw.connect()
        s2.sendall(frame("GW-1", 2, pw="000000"))
        s2.sendall(frame("GW-2", 2))  # another MN after the refused GW-1 frame: an MN switch
        assert nothing_within(s2, 1.0)
        s2.close()
        wait_for(lambda: "reason=mn_switch" in gw.text(), 5, "the MN switch logged")
    finally:
        gw.stop()
