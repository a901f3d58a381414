"""``fumewatch simulate --gateway HOST:PORT --format hj212``: the simulated monitors as HJ 212 data loggers
over TCP (ingest/simulate/gateway_client.py), one connection each, against the real processes: a real
Mosquitto, the real ``fumewatch ingest`` and the real ``fumewatch hj212-gateway`` as users start them.
Every frame is answered with a 9014 and the store holds exactly the generated readings, at their times.
A stand-in gateway on a real socket checks the logger's resends; ``--gateway`` with JSON is one line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from servers import free_port, wait_for

from ingest import simulate
from ingest.hj212 import HJ212Error, encode_frame, parse_frame
from ingest.registry import Registry

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "fumewatch"]
HOUR_MS = 3_600_000
#: Yesterday 11:00 in the kitchens' zone: lunch, in the past, inside every age limit.
START_MS = simulate.default_start_ms(simulate.KITCHEN_TZ) + 11 * HOUR_MS
SUMMARY = re.compile(
    r"sent (\d+) frames \((\d+) readings, (\d+) faults injected\) from (\d+) devices .* in [\d.]+ s: "
    r"(\d+) answered \(9014\), (\d+) resent, (\d+) unanswered; (\d+) connections \(at most (\d+) open"
)


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


class Stack:
    """``fumewatch ingest`` and ``fumewatch hj212-gateway`` on one broker, a registry of 5 kitchens."""

    def __init__(self, tmp: Path, broker_url: str) -> None:
        self.tmp = tmp
        self.broker = broker_url
        self.registry = tmp / "registry.csv"
        self.store = tmp / "fume.db"
        self.state = tmp / "state.db"
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.logs: dict[str, Path] = {}

    def start(self) -> Stack:
        out = subprocess.run(
            [*CLI, "simulate", "--write-registry", str(self.registry), "--restaurants", "5", "--broker", ""],
            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "wrote 5 devices" in out.stdout
        tag = self.tmp.name[-24:]
        common = ["--broker", self.broker, "--registry", str(self.registry)]
        self._spawn(
            "ingest",
            [*CLI, "ingest", *common, "--store", str(self.store), "--state", str(self.state)],
            FUMEWATCH_MQTT_CLIENT_ID=f"simgw-ingest-{tag}",
            FUMEWATCH_INGEST_FLUSH_INTERVAL_S="0.05",
        )
        wait_for(lambda: "topics=" in self.log("ingest"), 30, "fumewatch ingest subscribed")
        self._spawn(
            "gateway",
            [*CLI, "hj212-gateway", *common, "--listen", f"127.0.0.1:{self.port}"],
            FUMEWATCH_GATEWAY_CLIENT_ID=f"simgw-gateway-{tag}",
        )
        wait_for(
            lambda: (
                "event=gateway_start" in self.log("gateway") and "broker_connected" in self.log("gateway")
            ),
            30,
            "fumewatch hj212-gateway listening and connected to the broker",
        )
        return self

    def _spawn(self, name: str, argv: list[str], **env: str) -> None:
        self.logs[name] = self.tmp / f"{name}.log"
        with self.logs[name].open("wb") as log:
            self.procs.append(
                subprocess.Popen(
                    argv, cwd=REPO, env=_env(**env), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def simulate(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CLI, "simulate", "--gateway", f"127.0.0.1:{self.port}", "--registry", str(self.registry), *args],
            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def readings(self, since_ms: int, until_ms: int) -> list[dict]:
        out = subprocess.run(
            [*CLI, "readings", "--store", str(self.store), "--format", "json",
             "--since", str(since_ms), "--until", str(until_ms)],
            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)

    def dead_letters(self) -> list[dict]:
        out = subprocess.run(
            [*CLI, "dead-letters", "--state", str(self.state), "--format", "json"],
            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)


@pytest.fixture(scope="module")
def stack(mosquitto, tmp_path_factory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("simgw"), mosquitto.url)
    try:
        yield s.start()
    finally:
        s.stop()
    for name in s.logs:
        assert "Traceback" not in s.log(name), s.log(name)[-3000:]


def summary(stdout: str) -> dict[str, int]:
    m = SUMMARY.search(stdout)
    assert m, stdout
    keys = (
        "frames",
        "readings",
        "faults",
        "devices",
        "answered",
        "resent",
        "unanswered",
        "connections",
        "peak",
    )
    return dict(zip(keys, map(int, m.groups()), strict=True))


def expected(stack: Stack, start_ms: int, hours: float, model=simulate.DEFAULT_MODEL) -> list:
    return list(simulate.generate(Registry.load(stack.registry), start_ms, hours, seed=1, model=model))


@pytest.mark.integration
def test_every_frame_answered_and_stored_at_its_time(stack: Stack) -> None:
    sim = stack.simulate("--format", "hj212", "--hours", "2", "--start", str(START_MS))
    assert sim.returncode == 0, sim.stderr
    want = expected(stack, START_MS, 2)
    n = len(want)
    assert n > 500  # 5 kitchens, 120 minutes (an offline one may miss some)
    assert summary(sim.stdout) == {
        "frames": n, "readings": n, "faults": 0, "devices": 5, "answered": n, "resent": 0, "unanswered": 0,
        "connections": 5, "peak": 5,
    }  # fmt: skip
    until = START_MS + 2 * HOUR_MS
    wait_for(lambda: len(stack.readings(START_MS, until)) >= n, 30, "every reading stored")
    rows = stack.readings(START_MS, until)
    got = {(r["device_id"], r["time_ms"]): r for r in rows}
    assert len(rows) == len(got) == n
    assert sorted(got) == sorted((r.device_id, r.time_ms) for r in want)
    for r in want:
        row = got[(r.device_id, r.time_ms)]
        assert row["source"] == "hj212"
        assert row["oil_fume_mg_m3"] == pytest.approx(r.oil_fume, abs=0.0011)
        assert row["fan_on"] is r.fan and row["purifier_on"] is r.purifier
    assert "gateway_connection_refused" not in stack.log("gateway")
    assert stack.log("gateway").count("event=gateway_disconnected") >= 5


@pytest.mark.integration
def test_faults_and_integrity_faults_over_tcp(stack: Stack) -> None:
    """--inject-faults: the broken frames are written on the connections too (the unknown device's on its
    own) and end as dead letters; --inject zero changes the kitchen's values; every reading is answered."""
    # The day before yesterday, 15:00-18:00: the zero stretch of dinner, times of this test's own. Three
    # hours flat out stay within the gateway's default burst (200 frames a connection).
    start = START_MS - 20 * HOUR_MS
    args = ["--format", "hj212", "--hours", "3", "--start", str(start), "--batch", "5"]
    sim = stack.simulate(*args, "--inject-faults", "--inject", "zero")
    assert sim.returncode == 0, sim.stderr
    want = expected(stack, start, 3, model=replace(simulate.DEFAULT_MODEL, inject=("zero",)))
    got = summary(sim.stdout)
    n = len(want)
    assert (got["readings"], got["answered"], got["resent"], got["unanswered"]) == (n, n, 0, 0)
    assert got["faults"] >= len(simulate.FAULT_KINDS_HJ212) and got["frames"] == n + got["faults"]
    assert got["connections"] == 6 and got["peak"] == 6  # five kitchens and the unknown device
    faulty = sim.stdout.strip().splitlines()[-1]
    assert faulty.startswith("data-integrity fault zero: ")
    dev = faulty.split(": ")[1]
    until = start + 3 * HOUR_MS
    wait_for(lambda: len(stack.readings(start, until)) >= n, 30, "every reading stored")
    rows = {(r["device_id"], r["time_ms"]): r for r in stack.readings(start, until)}
    assert sorted(rows) == sorted((r.device_id, r.time_ms) for r in want)
    zeros = [r for r in want if r.device_id == dev and r.fan and r.oil_fume == 0.0]
    assert len(zeros) >= 30 and all(rows[(r.device_id, r.time_ms)]["oil_fume_mg_m3"] == 0.0 for r in zeros)
    # The frames among the faults (garbage and truncated frames are bytes the gateway's framer drops and
    # forwards at most once a connection every 10 s, so they may or may not be dead letters of their own).
    reasons = Counter(d["reason"] for d in stack.dead_letters())
    for reason in ("hj212_bad_crc", "not_finite", "negative", "unknown_device", "future_ts"):
        assert reasons[reason] >= 1, reasons


def test_gateway_with_json_is_refused_in_one_line(tmp_path) -> None:
    out = subprocess.run(
        [*CLI, "simulate", "--gateway", "127.0.0.1:9", "--format", "json", "--hours", "1"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "fumewatch simulate: --gateway speaks HJ 212 over TCP: add --format hj212 (JSON goes over MQTT)"
    )
    assert out.stdout == ""


# --------------------------------------------------------------------------- the logger's resends


class StandInGateway:
    """An asyncio server on a real socket that answers each frame's QN with a 9014, except the first
    ``drop`` times it sees that device's QN (``drop`` < 0: never answers)."""

    def __init__(self, drop: int) -> None:
        self.drop = drop
        self.seen: Counter = Counter()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StandInGateway:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                line = (await reader.readuntil(b"\r\n")).decode("ascii")
                try:
                    frame = parse_frame(line)
                except HJ212Error:
                    continue
                self.seen[(frame.mn, frame.qn)] += 1
                if self.drop < 0 or self.seen[(frame.mn, frame.qn)] <= self.drop:
                    continue
                seg = f"QN={frame.qn};ST=91;CN=9014;PW={frame.pw};MN={frame.mn};Flag=4;CP=&&&&"
                writer.write(encode_frame(seg).encode("ascii"))
        writer.close()


def test_a_frame_not_answered_is_resent_then_counted() -> None:
    reg = simulate.make_registry(2, seed=1)
    n = simulate.count_readings(reg, START_MS, 0.25)
    with StandInGateway(drop=1) as gw:  # every frame's first copy goes unanswered
        stats = simulate.run_gateway_simulation(
            ("127.0.0.1", gw.port), reg, start_ms=START_MS, hours=0.25, speed=0, batch=3,
            answer_timeout_s=0.2, resends=2,
        )  # fmt: skip
        assert set(gw.seen.values()) == {2}
    assert (stats.readings, stats.answered, stats.resent, stats.unanswered) == (n, n, n, 0)
    assert (stats.connections, stats.peak_open, stats.bad_answers) == (2, 2, 0)
    with StandInGateway(drop=-1) as gw:  # never answers: each frame sent 1 + 2 times, then counted
        stats = simulate.run_gateway_simulation(
            ("127.0.0.1", gw.port),
            reg,
            start_ms=START_MS,
            hours=0.1,
            speed=0,
            answer_timeout_s=0.1,
            resends=2,
        )
        n = simulate.count_readings(reg, START_MS, 0.1)
        assert sum(gw.seen.values()) == 3 * n
    assert (stats.answered, stats.resent, stats.unanswered) == (0, 2 * n, n)


def test_an_unreachable_gateway_is_one_connection_error() -> None:
    port = free_port()
    with pytest.raises(
        ConnectionError, match=rf"cannot connect to the HJ 212 gateway 127.0.0.1:{port} within 0.5 s"
    ):
        simulate.run_gateway_simulation(
            ("127.0.0.1", port), simulate.make_registry(2), start_ms=START_MS, hours=0.1, speed=0,
            connect_timeout_s=0.5,
        )  # fmt: skip


@pytest.mark.integration
def test_gateway_bench_counts_add_up(mosquitto_binary, tmp_path) -> None:
    """bench/gateway_bench.py on a few loggers: both paths lossless, every frame answered (no timing)."""
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    from bench import gateway_bench

    out = gateway_bench.gateway_vs_mqtt(tmp_path, n_devices=20, hours=1)  # > 500 rows: 2+ commits
    (r,) = out["rounds"]
    g, m = r["gateway"], r["mqtt"]
    assert out["frames"] == g["rows"] == g["distinct"] == g["answered"] == m["rows"] == m["distinct"] > 0
    assert (g["peak_open"], g["unanswered"], g["refused_connections"]) == (20, 0, 0)
    assert g["lossless"] and m["lossless"] and g["dead_letters"] == m["dead_letters"] == 0
    assert r["ratio"] == pytest.approx(g["readings_s"] / m["readings_s"]) and r["ratio"] > 0
