"""Queued messages drained by bare paho and by an in-process IngestService, and scale_out.

Since issue 14 the figures of bench/run.py (paho_ceiling, ingest_single, ingest_batched) come from the
real ``fumewatch ingest`` process (bench/ingest_process.py). :func:`ceiling_and_ingest` stays to explain
a figure (the service without process start-up, logging set-up and the application's heap); it is not one.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    TOPIC_PREFIX,
    CpuMeter,
    Timing,
    child_env,
    device_ids,
    drain_bare,
    drop_session,
    make_registry,
    message_lines,
    process_cpu_s,
    publish_lines,
    recent_t0,
    register_session,
    start_broker,
    write_registry,
)
from ingest.config import Settings, load_settings
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store import open_store


def ingest_settings(
    port: int, client_id: str, workdir: Path, registry_path: Path, shared_group: str = ""
) -> Settings:
    """What a user runs: defaults (MQTT 5, QoS 1, receive maximum 1000, manual ack, batch 500, flush
    0.2 s) with the broker, client id and paths of this run."""
    return load_settings(
        None,
        {
            "mqtt": {
                "broker": f"mqtt://127.0.0.1:{port}",
                "client_id": client_id,
                "shared_group": shared_group,
            },
            "ingest": {
                "store": str(workdir / "fume.db"),
                "state": str(workdir / "state.db"),
                "registry": str(registry_path),
            },
        },
    )


def ingest_topics(shared_group: str = "") -> list[str]:
    base = [f"{TOPIC_PREFIX}/+/reading", f"{TOPIC_PREFIX}/+/hj212"]
    return [f"$share/{shared_group}/{t}" for t in base] if shared_group else base


@dataclass
class IngestRun:
    """An IngestService as the CLI builds it, instrumented (without touching its hot path) to time
    first receive -> last row committed."""

    settings: Settings
    expect_readings: int
    timing: Timing = field(default_factory=Timing)
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        s = self.settings
        self.store = open_store(s.ingest.store, s)
        self.state = StateDB(s.ingest.state)
        self.service = svc = IngestService(s, Registry.load(s.ingest.registry), self.store, self.state)
        handler = svc.client.on_message

        def first_message(client, userdata, msg) -> None:
            self.timing.first, self.timing.cpu_first = time.perf_counter(), process_cpu_s()
            client.on_message = handler  # from now on paho calls the service directly
            handler(client, userdata, msg)

        svc.client.on_message = first_message
        on_durable = svc._on_durable  # the service's own callback, called first

        def timed_durable(tokens: list) -> None:
            on_durable(tokens)
            if not self.done.is_set() and svc.stats.readings_stored >= self.expect_readings:
                self.timing.last, self.timing.cpu_last = time.perf_counter(), process_cpu_s()
                self.done.set()

        self.store.set_on_durable(timed_durable)

    def run(self, timeout_s: float = 300.0) -> dict:
        svc = self.service
        svc.start()
        try:
            if not self.done.wait(timeout_s):
                raise RuntimeError(
                    f"ingest stored {svc.stats.readings_stored} of {self.expect_readings} readings in {timeout_s} s"
                )
        finally:
            svc.stop()
        rows = self.store.count()
        stats = svc.stats.as_dict()
        self.store.close()
        self.state.close()
        return {"rows": rows, "stats": stats}


def drain_ingest(
    port: int, client_id: str, workdir: Path, registry_path: Path, n_readings: int, shared_group: str = ""
) -> tuple[Timing, dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    run = IngestRun(ingest_settings(port, client_id, workdir, registry_path, shared_group), n_readings)
    out = run.run()
    return run.timing, out


def _quiet_logs(workdir: Path) -> None:
    """INFO-level structured logs as the CLI sets them up, into a file (so their cost is included)."""
    from ingest import logs

    workdir.mkdir(parents=True, exist_ok=True)
    logs.setup("INFO", "kv", stream=open(workdir / "bench.log", "a"))  # noqa: SIM115 - lives for the run


def ceiling_and_ingest(
    workdir: Path,
    *,
    n_messages: int,
    per_message: int = 1,
    n_devices: int = 100,
    rounds: int = 3,
    bare: bool = True,
    ingest: bool = True,
) -> dict:
    """Rounds of: queue ``n_messages`` for a bare-paho session and an ingest session, then drain both
    (order alternating per round). Returns per-round rates and the ingest/bare ratio of each round."""
    _quiet_logs(workdir)
    broker = start_broker(workdir / "broker")
    registry_path = write_registry(make_registry(n_devices), workdir / "registry.csv")
    n_readings = n_messages * per_message
    per_round = []
    try:
        for r in range(rounds):
            rd = workdir / f"round{r}"
            bare_id, ingest_id = f"bare-{r}-{per_message}", f"ingest-{r}-{per_message}"
            if bare:
                register_session(broker.port, bare_id, [f"{TOPIC_PREFIX}/+/reading"])
            if ingest:
                register_session(broker.port, ingest_id, ingest_topics())
            lines = message_lines(
                device_ids(n_devices), n_messages, per_message, recent_t0(n_messages, n_devices, per_message)
            )
            pub_s = publish_lines(broker.port, lines, rd / "pub")
            del lines
            res: dict = {"publish_s": round(pub_s, 2)}
            order = ["bare", "ingest"] if r % 2 == 0 else ["ingest", "bare"]
            for which in order:
                if which == "bare" and bare:
                    meter = CpuMeter(broker.pid)
                    tm = drain_bare(broker.port, bare_id, n_messages)
                    cpu = meter.stop()
                    res["bare_msg_s"] = tm.rate(n_messages)
                    res["bare_s"] = tm.seconds
                    res["bare_cpu_us_per_msg"] = round(tm.cpu_s / n_messages * 1e6, 1)
                    res["bare_cpu"] = cpu
                elif which == "ingest" and ingest:
                    meter = CpuMeter(broker.pid)
                    tm, out = drain_ingest(broker.port, ingest_id, rd / "ingest", registry_path, n_readings)
                    cpu = meter.stop()
                    res["ingest_cpu_us_per_reading"] = round(tm.cpu_s / n_readings * 1e6, 2)
                    res["ingest_cpu"] = cpu
                    if out["rows"] != n_readings:
                        raise RuntimeError(f"ingest stored {out['rows']} rows, expected {n_readings}")
                    res["ingest_msg_s"] = tm.rate(n_messages)
                    res["ingest_readings_s"] = res["ingest_msg_s"] * per_message
                    res["ingest_s"] = tm.seconds
                    res["rows"] = out["rows"]
                    res["dead_letters"] = out["stats"]["dead_letters"]
            if bare and ingest:
                res["ratio"] = res["ingest_msg_s"] / res["bare_msg_s"]
            per_round.append(res)
            logging.getLogger("bench").info("round=%d %s", r, res)
    finally:
        broker.stop()
    return {"rounds": per_round, "n_messages": n_messages, "per_message": per_message, "n_devices": n_devices}


def summarize(values: list[float]) -> dict:
    """Median and spread (min, max) of repeated measurements."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


# ----------------------------------------------------------------------------------------- scale out


def run_workers(port: int, ids: list[str], workdir: Path, registry_path: Path, group: str) -> list[dict]:
    """Start one ingest process per client id, let them all go at once, collect their reports."""
    import json
    import subprocess
    import sys

    workdir.mkdir(parents=True, exist_ok=True)
    procs = []
    for cid in ids:
        p = subprocess.Popen(
            [sys.executable, "-m", "bench.children", "ingest-worker", str(port), cid, str(workdir / cid),
             str(registry_path), group],
            cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(),
        )  # fmt: skip
        procs.append(p)
    try:
        for p in procs:
            line = p.stdout.readline()  # type: ignore[union-attr]
            if line.strip() != "ready":
                raise RuntimeError(f"ingest worker did not start: {line!r} {p.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        for p in procs:
            p.stdin.write("go\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        reports = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"ingest worker failed ({p.returncode}): {err[-2000:]}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def distinct_keys(dbs: list[Path]) -> tuple[int, int]:
    """(rows, distinct (device_id, time_ms)) over the union of the workers' SQLite files."""
    import sqlite3

    conn = sqlite3.connect(":memory:")
    parts = []
    for i, db in enumerate(dbs):
        conn.execute(f"ATTACH DATABASE ? AS w{i}", (str(db),))
        parts.append(f"SELECT device_id, time_ms FROM w{i}.readings")
    union_all = " UNION ALL ".join(parts)
    rows = conn.execute(f"SELECT COUNT(*) FROM ({union_all})").fetchone()[0]
    distinct = conn.execute(
        f"SELECT COUNT(*) FROM (SELECT DISTINCT device_id, time_ms FROM ({union_all}))"
    ).fetchone()[0]
    conn.close()
    return rows, distinct


def scale_out(
    workdir: Path,
    *,
    n_messages: int,
    n_devices: int = 100,
    group: str = "ingest",
    workers: tuple[int, ...] = (1, 2),
) -> dict:
    """N queued messages on a shared subscription drained by 1 ingest process, then by 2."""
    broker = start_broker(workdir / "broker")
    registry_path = write_registry(make_registry(n_devices), workdir / "registry.csv")
    out: dict = {"n_messages": n_messages, "runs": {}}
    try:
        for w in workers:
            ids = [f"scale{w}-{i}" for i in range(w)]
            for cid in ids:
                register_session(broker.port, cid, ingest_topics(group))
            lines = message_lines(device_ids(n_devices), n_messages, 1, recent_t0(n_messages, n_devices, 1))
            publish_lines(broker.port, lines, workdir / f"pub{w}")
            del lines
            reports = run_workers(broker.port, ids, workdir / f"w{w}", registry_path, group)
            for cid in ids:
                drop_session(broker.port, cid)
            first = min(r["first"] for r in reports)
            last = max(r["last"] for r in reports)
            rows, distinct = distinct_keys([workdir / f"w{w}" / cid / "fume.db" for cid in ids])
            out["runs"][w] = {
                "msg_s": (n_messages - 1) / (last - first),
                "seconds": last - first,
                "messages_per_worker": [r["messages"] for r in reports],
                "messages_total": sum(r["messages"] for r in reports),
                "rows": rows,
                "distinct_keys": distinct,
                "lost": n_messages - distinct,
                "duplicated": rows - distinct + (sum(r["messages"] for r in reports) - n_messages),
            }
    finally:
        broker.stop()
    if 1 in out["runs"] and 2 in out["runs"]:
        out["ratio"] = out["runs"][2]["msg_s"] / out["runs"][1]["msg_s"]
    return out
