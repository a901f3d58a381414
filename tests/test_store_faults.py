"""Store faults (issue 11 items 2 and 3), with real processes and servers.

- One reading beyond InfluxDB's retention policy: set aside as a dead letter, the other 1,499 drain.
- Disk full under the SQLite store and the state DB (a real 2 MB tmpfs, and SQLite's max_page_count where
  mount is refused): /healthz 503 while full, everything stored once freed, no restart, no duplicates.
- The writer thread survives store exceptions; a thread that does die makes /healthz 503.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from servers import free_port, publish_mqtt, run_fumewatch, wait_for

from ingest.config import load_settings
from ingest.metrics import ingest_problems
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store.faults import PERMANENT, TRANSIENT, classify, split_rejected
from ingest.store.sqlite import SQLiteStore
from ingest.timeutil import now_ms

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
REGISTRY = "restaurant_id,name,district,device_id,stove_heads\nR1,老王牛肉面,朝阳区,D1,2\n"


def items(n: int, t0: int, step_ms: int = 1000) -> list[tuple[str, bytes]]:
    return [
        ("fume/v1/D1/reading", orjson.dumps({"ts": t0 + i * step_ms, "oil_fume": i / 1000, "flow": 4000.0}))
        for i in range(n)
    ]


def http_get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:
        return 0, {}


def start_ingest(tmp_path: Path, broker: str, store: str, state: Path, port: int, **env: str):
    (tmp_path / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    full_env = {
        **base,
        "PYTHONPATH": str(REPO),
        "FUMEWATCH_METRICS_PORT": str(port),
        "FUMEWATCH_METRICS_STORE_STALL_S": "1",
        "FUMEWATCH_INGEST_STORE_RETRY_MAX_S": "1",
        **env,
    }
    log = open(tmp_path / "ingest.log", "w")  # noqa: SIM115 (closed by stop())
    argv = [sys.executable, "-m", "fumewatch", "ingest", "--broker", broker, "--store", store]
    argv += ["--registry", str(tmp_path / "registry.csv"), "--state", str(state)]
    argv += ["--client-id", f"ingest-faults-{uuid.uuid4().hex[:6]}"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "ingest healthy")
    return proc


def stop(proc) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.log.close()
    return Path(proc.log.name).read_text(errors="replace")


# ------------------------------------------------------------------------------ classification


def test_classify_and_bisect():
    class Api(Exception):
        def __init__(self, status: int, body: bytes = b"") -> None:
            self.status, self.body = status, body

    assert classify(Api(400)) == classify(Api(422)) == PERMANENT
    assert classify(Api(503)) == classify(Api(401)) == classify(Api(429)) == TRANSIENT
    assert classify(sqlite3.OperationalError("database or disk is full")) == TRANSIENT
    assert classify(sqlite3.OperationalError("database is locked")) == TRANSIENT
    assert classify(OSError(errno.ENOSPC, "No space left on device")) == TRANSIENT
    assert classify(ConnectionRefusedError()) == TRANSIENT
    posted: list[list[int]] = []

    def post(xs):
        posted.append(list(xs))
        if 7 in xs:
            raise Api(400, b'{"error":"partial write: points beyond retention policy dropped=1"}')

    rejected = split_rejected(list(range(100)), post)
    assert rejected == [(7, "partial write: points beyond retention policy dropped=1")]
    assert len(posted) < 20
    ok = {x for xs in posted if 7 not in xs for x in xs}
    assert ok == set(range(100)) - {7}


# ------------------------------------------------------------------------------ (a) InfluxDB retention


def test_reading_beyond_retention_becomes_a_dead_letter_and_the_rest_drains(mosquitto, influx_db, tmp_path):
    res = influx_db.query(
        f'CREATE RETENTION POLICY "one_hour" ON "{influx_db.name}" DURATION 1h REPLICATION 1 DEFAULT'
    )
    assert "error" not in res["results"][0], res
    port = free_port()
    env = {"FUMEWATCH_INFLUX_BUCKET": influx_db.name, "FUMEWATCH_INFLUX_BATCH_SIZE": "500"}
    proc = start_ingest(tmp_path, mosquitto.url, influx_db.relay_url, tmp_path / "state.db", port, **env)
    try:
        now = now_ms()
        msgs = items(1500, now - 30 * 60_000)
        old_ts = now - 3 * 3600_000
        msgs[700] = (
            "fume/v1/D1/reading",
            orjson.dumps({"ts": old_ts, "oil_fume": 0.7, "flow": 4000.0}),
        )
        publish_mqtt(mosquitto.url, msgs)

        def stored() -> int:
            rows = influx_db.points('SELECT COUNT("oil_fume_mg_m3") FROM "fume_reading"')
            return rows[0]["count"] if rows else 0

        wait_for(lambda: stored() == 1499, 60, "1,499 readings in InfluxDB")
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/healthz")[1].get("store_backlog") == 0, 30, "drained"
        )
        status, health = http_get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200, health
        drain = next(w for w in health["writers"] if w["writer"] == "influx-drain")
        assert drain["rejected_points"] == 1 and drain["errors"]["permanent"] >= 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'fumewatch_store_rejected_points_total{writer="influx-drain"} 1.0' in metrics
        assert "fumewatch_store_healthy 1.0" in metrics
    finally:
        log = stop(proc)
    assert stored() == 1499, log[-3000:]
    out = run_fumewatch(tmp_path, "dead-letters", "--state", str(tmp_path / "state.db"), "--format", "json")
    assert out.returncode == 0, out.stderr
    dead = orjson.loads(out.stdout)
    assert len(dead) == 1, dead
    assert dead[0]["reason"] == "store_rejected" and dead[0]["device_id"] == "D1"
    assert "retention" in dead[0]["message"], dead[0]
    assert str(old_ts) in dead[0]["payload_excerpt"]


# ------------------------------------------------------------------------------ (b) disk full


def stored_rows(db: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return tuple(conn.execute("SELECT COUNT(*), COUNT(DISTINCT time_ms) FROM readings").fetchone())


def fill(path: Path) -> None:
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]


@pytest.fixture
def tmpfs(tmp_path: Path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({res.stderr.decode().strip()}); "
            "test_sqlite_full_via_max_page_count covers the same path"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


#: Back-pressure keeps the messages at the broker: Mosquitto's default max_queued_messages (1000) would
#: drop what is queued beyond that for a client that stops acknowledging (docs/reliability.md).
UNBOUNDED_QUEUE = "max_queued_messages 0"


def test_disk_full_under_store_and_state_then_recovers_without_restart(make_mosquitto, tmp_path, tmpfs):
    mosquitto = make_mosquitto(extra_conf=UNBOUNDED_QUEUE)
    port = free_port()
    proc = start_ingest(tmp_path, mosquitto.url, str(tmpfs / "fume.db"), tmpfs / "state.db", port)
    filler = tmpfs / "filler"
    try:
        fill(filler)
        t0 = (now_ms() // 60_000 - 120) * 60_000
        bad = [("fume/v1/D1/reading", b'{"ts": "not a time"}')] * 5
        publish_mqtt(mosquitto.url, items(3000, t0) + bad)
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 503, 30, "503 while the disk is full"
        )
        _, health = http_get(f"http://127.0.0.1:{port}/healthz")
        assert any(p["check"] == "store_stalled" for p in health["problems"]), health
        assert "full" in health["reason"] or "disk" in health["reason"], health
        assert proc.poll() is None
        filler.unlink()
        wait_for(lambda: stored_rows(tmpfs / "fume.db")[0] == 3000, 60, "all readings stored after freeing")
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "healthy again")
    finally:
        log = stop(proc)
    assert stored_rows(tmpfs / "fume.db") == (3000, 3000), log[-3000:]
    st = StateDB(str(tmpfs / "state.db"))
    try:
        assert len(st.dead_letters()) == 5
    finally:
        st.close()
    assert "store_write_failed" in log and "store_accepting_again" in log


def make_service(mosquitto, tmp_path: Path, store, **ingest):
    (tmp_path / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    s = load_settings(
        None,
        {
            "mqtt": {"broker": mosquitto.url, "client_id": f"ingest-{uuid.uuid4().hex[:8]}"},
            "ingest": {
                "state": str(tmp_path / "state.db"),
                "flush_interval_s": 0.05,
                "store_retry_min_s": 0.05,
                "store_retry_max_s": 0.5,
                **ingest,
            },
            "metrics": {"store_stall_s": 1.0, "port": free_port()},
        },
    )
    state = StateDB(s.ingest.state)
    svc = IngestService(s, Registry.load(tmp_path / "registry.csv"), store, state)
    return s, svc, state


def test_sqlite_full_via_max_page_count(make_mosquitto, tmp_path):
    """SQLITE_FULL ("database or disk is full") without mount: the store file may not grow."""
    mosquitto = make_mosquitto(extra_conf=UNBOUNDED_QUEUE)
    from fumewatch.services import start_metrics

    store = SQLiteStore(str(tmp_path / "fume.db"))
    with store._lock:
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count={pages + 1}")
    s, svc, state = make_service(mosquitto, tmp_path, store)
    svc.start()
    metrics = start_metrics(s, ingest=svc)
    url = f"http://127.0.0.1:{s.metrics.port}"
    try:
        publish_mqtt(mosquitto.url, items(3000, (now_ms() // 60_000 - 120) * 60_000))
        wait_for(lambda: http_get(f"{url}/healthz")[0] == 503, 30, "503 while the store is full")
        _, health = http_get(f"{url}/healthz")
        assert "database or disk is full" in health["reason"], health
        assert svc.stats.acked < 3000 and svc.writer.health.errors[TRANSIENT] >= 1
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert "fumewatch_store_healthy 0.0" in text
        assert 'fumewatch_store_write_errors_total{kind="transient",writer="ingest-writer"}' in text
        with store._lock:
            store._conn.execute("PRAGMA max_page_count=1073741823")
        wait_for(lambda: svc.stats.acked == 3000, 60, "all acknowledged after the limit was raised")
        wait_for(lambda: http_get(f"{url}/healthz")[0] == 200, 10, "healthy again")
    finally:
        svc.stop()
        metrics.stop()
        store.close()
        state.close()
    assert stored_rows(tmp_path / "fume.db") == (3000, 3000)


# ------------------------------------------------------------------------------ (c) the writer thread


class FlakyStore(SQLiteStore):
    def __init__(self, path: str, failures: list[BaseException]) -> None:
        super().__init__(path)
        self.failures = failures

    def write(self, batch) -> None:
        if self.failures:
            raise self.failures.pop(0)
        super().write(batch)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_writer_survives_exceptions_and_a_dead_thread_is_reported(mosquitto, tmp_path):
    errors: list[BaseException] = [RuntimeError("boom"), ValueError("bug"), OSError(errno.EIO, "I/O")]
    store = FlakyStore(str(tmp_path / "fume.db"), errors)
    s, svc, state = make_service(mosquitto, tmp_path, store)
    svc.start()
    try:
        publish_mqtt(mosquitto.url, items(300, (now_ms() // 60_000 - 60) * 60_000))
        wait_for(lambda: svc.stats.acked == 300, 30, "all stored despite three exceptions")
        assert svc.writer.health.errors[TRANSIENT] == 3
        assert svc.workers()["ingest-writer"] is True and ingest_problems(svc) == []
        # now something the writer cannot survive (SystemExit is not an Exception)
        store.failures.append(SystemExit("killed"))
        publish_mqtt(mosquitto.url, items(10, now_ms() - 60_000))
        wait_for(lambda: not svc._writer.is_alive(), 10, "writer thread dead")
        problems = ingest_problems(svc)
        assert {"check": "worker_dead", "thread": "ingest-writer"} in problems
    finally:
        svc.stop(timeout_s=5)
        store.close()
        state.close()
    assert stored_rows(tmp_path / "fume.db") == (300, 300)


def test_sqlite_permanent_rejection_sets_the_reading_aside(mosquitto, tmp_path):
    class Picky(SQLiteStore):
        def write(self, batch) -> None:
            if any(r.oil_fume_mg_m3 == 0.05 for _, rs in batch for r in rs):
                raise sqlite3.IntegrityError("CHECK constraint failed: oil_fume")
            super().write(batch)

    store = Picky(str(tmp_path / "fume.db"))
    s, svc, state = make_service(mosquitto, tmp_path, store)
    svc.start()
    try:
        publish_mqtt(mosquitto.url, items(200, (now_ms() // 60_000 - 60) * 60_000))
        wait_for(lambda: svc.stats.acked == 200, 30, "all acknowledged")
    finally:
        svc.stop()
        store.close()
    dead = state.dead_letters()
    state.close()
    assert stored_rows(tmp_path / "fume.db") == (199, 199)
    assert [d.reason for d in dead] == ["store_rejected"]
    assert "CHECK constraint" in dead[0].detail["message"]
