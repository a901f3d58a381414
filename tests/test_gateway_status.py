"""The HJ 212 gateway's connections as ``fumewatch devices`` shows them, its /metrics and /healthz, and the
gateway inside ``fumewatch run`` (issue 17).

Real processes over real sockets: ``fumewatch hj212-gateway`` with a real Mosquitto and a state database
on SQLite and on PostgreSQL, a TCP client writing HJ 212 frames (``ingest.hj212.build_data_frame``, Flag=5:
a 9014 comes back), then the real ``fumewatch devices`` reading ``gateway_connections``; ``fumewatch run``
with ``FUMEWATCH_GATEWAY_LISTEN`` storing a frame sent over TCP. In-process, a GatewayRunner on a real
broker: the row follows a logger's newest connection, a connection that lives less than a status interval
is still written, the counters of /metrics; and the rule by which several gateways share one table.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port, run_fumewatch, wait_for

from fumewatch.db import upgrade
from ingest.config import load_settings
from ingest.gateway.metrics import GatewayCollector
from ingest.gateway.runner import GatewayRunner
from ingest.gateway.status import StatusWriter, is_stale, read_connections
from ingest.hj212 import build_data_frame, parse_frame
from ingest.registry import Registry
from ingest.timeutil import now_ms, parse_time

REPO = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=TZ)
PW = "654321"
REGISTRY_CSV = (
    "restaurant_id,name,district,device_id,stove_heads,hj212_pw\n"
    f"R1,老王牛肉面,朝阳区,GW-1,2,{PW}\n"
    f"R2,川味小厨,海淀区,GW-2,4,{PW}\n"
)


def frame(mn: str = "GW-1", minute: int = 0, pw: str = PW) -> bytes:
    t = T0 + timedelta(minutes=minute)
    return build_data_frame(mn=mn, data_time_local=t, values={"a34041": 1.25, "a00000": 4000}, pw=pw).encode()


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One frame the gateway writes back (up to its CRLF)."""
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    return data


def send_and_ack(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    reply = parse_frame(answer(sock).decode("ascii"))
    assert (reply.cn, reply.qn) == ("9014", parse_frame(data.decode("ascii")).qn)


def no_answer(sock: socket.socket, wait_s: float = 1.0) -> None:
    sock.settimeout(wait_s)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def metrics(port: int) -> dict[tuple[str, tuple], float]:
    """/metrics, asked again for a few seconds while the server does not answer yet (a loaded machine)."""
    deadline = time.monotonic() + 15
    while True:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            return _samples(text)
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def healthz(port: int) -> tuple[int, dict]:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Proc:
    """A fumewatch service process with its log; SIGTERM at the end."""

    def __init__(self, tmp: Path, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.log = tmp / f"{name}.log"
        self._err = self.log.open("w")
        base = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fumewatch", *argv],
            cwd=tmp,
            env={**base, "PYTHONPATH": str(REPO), **env},
            stdout=subprocess.DEVNULL,
            stderr=self._err,
        )

    def text(self) -> str:
        return self.log.read_text()

    def wait_log(self, needle: str, timeout: float = 30) -> None:
        def seen() -> bool:
            assert self.proc.poll() is None, self.text()[-3000:]
            return needle in self.text()

        wait_for(seen, timeout, f"{needle!r} in the log")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self._err.close()


def devices(tmp: Path, state: str, *more: str) -> subprocess.CompletedProcess:
    return run_fumewatch(tmp, "devices", "--state", state, "--registry", "registry.csv", *more)


def device_json(tmp: Path, state: str, *more: str) -> dict[str, dict]:
    r = devices(tmp, state, "--format", "json", *more)
    assert r.returncode == 0, r.stderr
    return {d["device_id"]: d for d in json.loads(r.stdout)}


def wait_device(tmp: Path, state: str, device: str, pred, what: str, timeout: float = 30) -> dict:
    got: dict = {}

    def check() -> bool:
        got.update(device_json(tmp, state)[device])
        return bool(pred(got))

    wait_for(check, timeout, what, interval_s=0.2)
    return got


# ---------------------------------------------------------------- the real fumewatch hj212-gateway
@pytest.fixture
def gateway_dir(tmp_path: Path) -> Path:
    (tmp_path / "registry.csv").write_text(REGISTRY_CSV, encoding="utf-8")
    return tmp_path


@pytest.mark.integration
def test_gateway_process_writes_its_connections_for_fumewatch_devices(
    gateway_dir: Path, state_url: str, mosquitto
) -> None:
    tmp, port, mport = gateway_dir, free_port(), free_port()
    gw = Proc(
        tmp,
        "gateway",
        ["hj212-gateway", "--listen", f"127.0.0.1:{port}", "--broker", mosquitto.url]
        + ["--registry", "registry.csv", "--state", state_url],
        {
            "FUMEWATCH_GATEWAY_CLIENT_ID": f"gw-status-{port}",
            "FUMEWATCH_GATEWAY_STATUS_INTERVAL_S": "0.5",
            "FUMEWATCH_METRICS_PORT": str(mport),
        },
    )
    try:
        gw.wait_log("event=broker_connected")
        gw.wait_log("event=metrics_listening")  # it starts after the broker session (a fresh clone raced it)
        assert f"event=gateway_start listen=127.0.0.1:{port} devices=2" in gw.text()
        code, health = healthz(mport)
        assert code == 200 and health["listening"] and health["broker_connected"], health
        assert health["status"]["state"] == state_url

        before = now_ms()
        sock = connect(port)
        peer = f"127.0.0.1:{sock.getsockname()[1]}"
        send_and_ack(sock, frame("GW-1"))
        one = wait_device(tmp, state_url, "GW-1", lambda d: d["gateway_acks"] == 1, "GW-1 connected, 1 ack")
        assert (one["gateway_peer"], one["gateway_connected"], one["gateway_frames"]) == (peer, True, 1)
        assert before <= one["gateway_since_ms"] <= now_ms()
        assert one["gateway_since"].endswith("+08:00") and parse_time(one["gateway_since"]) // 1000 == (
            one["gateway_since_ms"] // 1000
        )
        assert one["gateway_disconnected"] == "" and one["gateway_last_error"] == ""
        assert one["gateway"] == f"{peer} since {one['gateway_since']}, 1 frame, 1 ack"
        two = device_json(tmp, state_url)["GW-2"]  # never connected
        assert (two["gateway"], two["gateway_peer"], two["gateway_connected"], two["gateway_frames"]) == (
            "",
            "",
            False,
            None,
        )

        # a frame with a wrong PW on the same connection: refused, unanswered, its reason shown
        sock.sendall(frame("GW-1", minute=1, pw="000000"))
        no_answer(sock)
        one = wait_device(
            tmp, state_url, "GW-1", lambda d: d["gateway_last_error"] == "bad_pw", "GW-1's last error"
        )
        assert (one["gateway_frames"], one["gateway_acks"], one["gateway_refused"]) == (1, 1, {"bad_pw": 1})
        assert one["gateway_connected"] is True

        table = devices(tmp, state_url).stdout.splitlines()
        assert table[1].split()[-1] == "gateway" and "gateway = the logger's connection" in table[0]
        [row] = [line for line in table if line.startswith("GW-1")]
        assert row.endswith(f"{peer} since {one['gateway_since']}, 1 frame, 1 ack, last error bad_pw"), row
        rows = {
            r["device_id"]: r
            for r in csv.DictReader(io.StringIO(devices(tmp, state_url, "--format", "csv").stdout))
        }
        assert {k: v for k, v in rows["GW-1"].items() if k.startswith("gateway_")} == {
            "gateway_peer": peer,
            "gateway_connected": "true",
            "gateway_since": one["gateway_since"],
            "gateway_disconnected": "",
            "gateway_frames": "1",
            "gateway_acks": "1",
            "gateway_refused": "bad_pw 1",
            "gateway_last_error": "bad_pw",
            "gateway_last_frame": one["gateway_last_frame"],
        }
        assert rows["GW-2"]["gateway_connected"] == "false" and rows["GW-2"]["gateway_frames"] == ""

        m = metrics(mport)
        assert m[("fumewatch_gateway_connections_open", ())] == 1
        assert m[("fumewatch_gateway_connections_accepted_total", ())] == 1
        assert m[("fumewatch_gateway_frames_total", ())] == 1
        assert m[("fumewatch_gateway_acks_total", ())] == 1
        assert m[("fumewatch_gateway_refused_total", (("reason", "bad_pw"),))] == 1
        assert m[("fumewatch_gateway_refused_total", (("reason", "hj212_bad_crc"),))] == 0  # from the start
        assert m[("fumewatch_gateway_broker_connected", ())] == 1

        # the logger goes away: the row says when; the counters stay
        sock.close()
        gone = wait_device(
            tmp, state_url, "GW-1", lambda d: d["gateway_disconnected_ms"] is not None, "GW-1 disconnected"
        )
        assert gone["gateway_connected"] is False and gone["gateway_since_ms"] == one["gateway_since_ms"]
        assert gone["gateway_disconnected_ms"] >= gone["gateway_since_ms"]
        assert gone["gateway"].startswith(
            f"{peer} since {one['gateway_since']}, 1 frame, 1 ack, disconnected "
        )
        assert gone["gateway_disconnected"].endswith("+08:00")
        utc = device_json(tmp, state_url, "--utc")["GW-1"]
        assert utc["gateway_since"].endswith("+00:00") and utc["gateway_disconnected"].endswith("+00:00")
        m = metrics(mport)
        assert m[("fumewatch_gateway_connections_open", ())] == 0
        assert m[("fumewatch_gateway_connections_accepted_total", ())] == 1
        assert m[("fumewatch_gateway_status_rows_written_total", ())] >= 2
        assert m[("fumewatch_gateway_status_write_failures_total", ())] == 0
    finally:
        code = gw.stop()
    assert code == 0, gw.text()[-3000:]
    assert "Traceback" not in gw.text() and "event=gateway_stopped" in gw.text(), gw.text()[-3000:]


@pytest.mark.integration
def test_gateway_refuses_an_outdated_postgresql_state_in_one_line(
    gateway_dir: Path, pg_empty_url: str
) -> None:
    r = run_fumewatch(
        gateway_dir,
        "hj212-gateway",
        *("--listen", "127.0.0.1:0", "--broker", "mqtt://127.0.0.1:1", "--registry", "registry.csv"),
        *("--state", pg_empty_url),
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("fumewatch hj212-gateway: state database") and "fumewatch db upgrade" in line


# ---------------------------------------------------------------- fumewatch run with [gateway] listen
@pytest.mark.integration
def test_run_with_gateway_listen_stores_a_frame_sent_over_tcp(gateway_dir: Path, mosquitto) -> None:
    tmp, port, mport = gateway_dir, free_port(), free_port()
    run = Proc(
        tmp,
        "run",
        ["run", "--broker", mosquitto.url, "--store", "fume.db", "--state", "state.db"]
        + ["--registry", "registry.csv"],
        {
            "FUMEWATCH_GATEWAY_LISTEN": f"127.0.0.1:{port}",
            "FUMEWATCH_GATEWAY_CLIENT_ID": f"run-gw-{port}",
            "FUMEWATCH_MQTT_CLIENT_ID": f"run-gw-ingest-{port}",
            "FUMEWATCH_ALERTS_CLIENT_ID": f"run-gw-alerts-{port}",
            "FUMEWATCH_INGEST_FLUSH_INTERVAL_S": "0.05",
            "FUMEWATCH_METRICS_PORT": str(mport),
        },
    )
    try:
        run.wait_log("topics=fume/v1/+/reading")
        run.wait_log("event=broker_connected client_id=run-gw-")
        run.wait_log("event=metrics_listening")
        assert f"event=gateway_start listen=127.0.0.1:{port} devices=2 status=state.db" in run.text()
        sock = connect(port)
        send_and_ack(sock, frame("GW-1", minute=5))

        def stored() -> list[dict]:
            r = run_fumewatch(tmp, "readings", "--store", "fume.db", "--device", "GW-1", "--format", "json")
            return json.loads(r.stdout) if r.returncode == 0 else []

        wait_for(lambda: stored(), 30, "the frame's reading in the store", interval_s=0.3)
        [reading] = stored()
        assert reading["time_ms"] == int((T0 + timedelta(minutes=5)).timestamp() * 1000)
        assert reading["time"] == "2026-12-03T12:05:00+08:00" and reading["oil_fume_mg_m3"] == 1.25
        code, health = healthz(mport)
        assert code == 200 and health["gateway"]["listening"] and health["gateway"]["frames"] == 1, health
        assert metrics(mport)[("fumewatch_gateway_acks_total", ())] == 1
        live = wait_device(tmp, "state.db", "GW-1", lambda d: d["gateway_connected"], "GW-1 connected")
        assert live["gateway_frames"] == 1
    finally:
        code = run.stop()  # SIGTERM while the logger is still connected
    assert code == 0, run.text()[-3000:]
    assert "Traceback" not in run.text() and "event=gateway_stopped" in run.text(), run.text()[-3000:]
    ended = device_json(tmp, "state.db")["GW-1"]
    assert ended["gateway_connected"] is False and ended["gateway_disconnected_ms"] is not None
    assert (ended["gateway_frames"], ended["gateway_acks"]) == (1, 1)
    assert sock.recv(10) == b""  # the gateway closed the connection when it stopped
    sock.close()


# ---------------------------------------------------------------- in-process: the rows and the counters
@pytest.fixture
def runner(tmp_path: Path, mosquitto, request: pytest.FixtureRequest) -> Iterator[GatewayRunner]:
    (tmp_path / "registry.csv").write_text(REGISTRY_CSV, encoding="utf-8")
    state = str(tmp_path / "state.db")
    upgrade(state)
    gateway = {
        "client_id": f"gw-inproc-{time.time_ns()}",
        "status_interval_s": 60.0,  # only the connections' events are written during the test
        **getattr(request, "param", {}),
    }
    s = load_settings(None, {"mqtt": {"broker": mosquitto.url}, "gateway": gateway})
    r = GatewayRunner(s, Registry.load(tmp_path / "registry.csv"), "127.0.0.1:0", state=state)
    r.start()
    wait_for(lambda: r.publisher.connected.is_set(), 10, "the gateway's broker session")
    yield r
    r.stop()


def _row(r: GatewayRunner, mn: str) -> dict | None:
    return (read_connections(r.state) or {}).get(mn)


def test_row_follows_the_newest_connection_and_a_short_one_is_written(runner: GatewayRunner) -> None:
    port = runner.address[1]
    a = connect(port)
    send_and_ack(a, frame("GW-1"))
    wait_for(lambda: (_row(runner, "GW-1") or {}).get("peer") == f"127.0.0.1:{a.getsockname()[1]}", 10, "A")
    time.sleep(0.01)
    b = connect(port)  # the logger reconnected; its old connection has not timed out
    send_and_ack(b, frame("GW-1", minute=1))
    b_peer = f"127.0.0.1:{b.getsockname()[1]}"
    wait_for(lambda: (_row(runner, "GW-1") or {}).get("peer") == b_peer, 10, "the newest connection")
    b.close()
    a_peer = f"127.0.0.1:{a.getsockname()[1]}"
    wait_for(lambda: (_row(runner, "GW-1") or {}).get("peer") == a_peer, 10, "back to the older one")
    assert _row(runner, "GW-1")["disconnected_ms"] is None  # A is still open
    # a logger that sends one frame and hangs up at once, well within a status interval
    c = connect(port)
    send_and_ack(c, frame("GW-2"))
    c.close()
    wait_for(lambda: (_row(runner, "GW-2") or {}).get("disconnected_ms") is not None, 10, "GW-2 ended")
    two = _row(runner, "GW-2")
    assert (two["frames"], two["acks"], two["refused"]) == (1, 1, {})
    assert two["instance"].endswith(f":{port}") and two["last_frame_ms"] >= two["connected_since_ms"]
    # the gateway stops with A open: A's row ends with it
    runner.stop()
    one = _row(runner, "GW-1")
    assert one["peer"] == a_peer and one["disconnected_ms"] is not None and one["frames"] == 1
    a.close()


@pytest.mark.parametrize("runner", [{"idle_timeout_s": 0.5}], indirect=True)
def test_collector_counts_connections_frames_refusals_and_dropped_bytes(runner: GatewayRunner) -> None:
    port = runner.address[1]
    reg = CollectorRegistry()
    reg.register(GatewayCollector(runner))

    def m() -> dict:
        return _samples(generate_latest(reg).decode())

    first = m()
    for reason in ("bad_pw", "garbage", "oversize", "mn_switch", "unknown_device", "rate_limited"):
        assert first[("fumewatch_gateway_refused_total", (("reason", reason),))] == 0
    assert first[("fumewatch_gateway_listening", ())] == 1
    s = connect(port)
    s.sendall(b"hello\r\n")  # garbage before a frame
    send_and_ack(s, frame("GW-1"))
    s.sendall(frame("GW-2"))  # another MN on a connection bound to GW-1
    no_answer(s, 0.2)
    s.settimeout(5)
    assert s.recv(10) == b""  # silent for 0.5 s: closed by the gateway
    s.close()
    wait_for(lambda: m()[("fumewatch_gateway_connections_open", ())] == 0, 5, "no connection open")
    got = m()
    assert got[("fumewatch_gateway_connections_accepted_total", ())] == 1
    assert got[("fumewatch_gateway_frames_total", ())] == 1 and got[("fumewatch_gateway_acks_total", ())] == 1
    assert got[("fumewatch_gateway_refused_total", (("reason", "mn_switch"),))] == 1
    assert got[("fumewatch_gateway_refused_total", (("reason", "garbage"),))] == 1
    assert got[("fumewatch_gateway_dropped_bytes_total", (("kind", "garbage"),))] == len(b"hello\r\n")
    assert got[("fumewatch_gateway_idle_timeouts_total", ())] == 1
    assert got[("fumewatch_gateway_connections_refused_total", (("limit", "max_connections"),))] == 0
    wait_for(lambda: _row(runner, "GW-1")["disconnected_ms"] is not None, 5, "GW-1's row ended")
    row = _row(runner, "GW-1")
    assert row["refused"] == {"garbage": 1, "mn_switch": 1}
    assert row["last_error"].startswith("mn_switch: MN 'GW-2' on a connection bound to 'GW-1'")


# ---------------------------------------------------------------- several gateways, one table
def _put(w: StatusWriter, since: int, ended: int | None = None, peer: str = "p") -> None:
    w.put(
        [
            {
                "mn": "GW-1",
                "instance": w.instance,
                "peer": peer,
                "connected_since_ms": since,
                "frames": 1,
                "acks": 1,
                "refused": "{}",
                "last_error": "",
                "last_frame_ms": since,
                "disconnected_ms": ended,
                "updated_ms": now_ms(),
            }
        ]
    )


def test_gateways_share_the_table_by_the_newest_connection(state_url: str) -> None:
    a, b = StatusWriter(state_url, "host-a:9212").start(), StatusWriter(state_url, "host-b:9212").start()
    try:

        def peer() -> str:
            wait_for(lambda: a.pending == 0 and b.pending == 0, 10, "written")
            time.sleep(0.2)
            return read_connections(state_url)["GW-1"]["peer"]

        _put(a, 1000, peer="a1")
        assert peer() == "a1"
        _put(b, 500, peer="b-older")  # began before a's: a's row stays
        assert peer() == "a1"
        _put(b, 2000, peer="b2")  # the logger moved to gateway b
        assert peer() == "b2"
        _put(a, 1000, ended=3000, peer="a1")  # a's old connection ends: b's open one stays
        assert peer() == "b2"
        _put(b, 2000, ended=4000, peer="b2")
        _put(a, 1000, ended=3000, peer="a1-again")  # b's ended but newer: stays
        assert peer() == "b2"
        _put(a, 1500, peer="a-open")  # an open connection over an ended one
        assert peer() == "a-open"
    finally:
        a.close()
        b.close()
    # instance a restarts: the row it left open is ended at its last update
    row = read_connections(state_url)["GW-1"]
    assert row["disconnected_ms"] is None
    a2 = StatusWriter(state_url, "host-a:9212").start()
    try:
        wait_for(lambda: read_connections(state_url)["GW-1"]["disconnected_ms"] is not None, 10, "ended")
    finally:
        a2.close()
    assert read_connections(state_url)["GW-1"]["disconnected_ms"] == row["updated_ms"]


def test_a_row_not_updated_for_three_intervals_is_stale() -> None:
    row = {"disconnected_ms": None, "updated_ms": 1_000_000}
    assert not is_stale(row, 1_000_000 + 30_000, 5.0)  # at least 30 s
    assert is_stale(row, 1_000_000 + 30_001, 5.0)
    assert not is_stale(row, 1_000_000 + 59_000, 20.0) and is_stale(row, 1_000_000 + 61_000, 20.0)
    assert not is_stale({**row, "disconnected_ms": 1}, 10**12, 5.0)  # ended: not a question of news
