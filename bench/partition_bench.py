"""alerts_partitions: queued readings drained by real ``fumewatch alerts`` processes, one unpartitioned
worker, then N partitioned ones (``--partition K/N``), against one PostgreSQL ledger and a private
Mosquitto.

Method (as bench/common.py's for ingest): the messages are queued beforehand for the workers' persistent
sessions (each partition's session subscribed to its own devices' topics, as the worker subscribes
them), so no publisher competes for the cores. Each worker is then started as a user starts it, with
``[metrics] port`` set; its ``/metrics`` is polled every 50 ms, and the run is timed from the first
reading counted by any worker (``fumewatch_detector_readings`` + late + duplicates) to the last. The
event clock is used (the readings are a day old: with the wall clock every one would be late).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import (
    child_env,
    device_ids,
    drop_session,
    make_registry,
    message_lines,
    proc_cpu_s,
    publish_lines,
    recent_t0,
    register_session,
    servers,
    start_broker,
    write_registry,
)

_COUNTERS = ("fumewatch_detector_readings_total", "fumewatch_late_readings_total")


def _counted(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = 0
    for name in _COUNTERS:
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        total += int(float(m.group(1))) if m else 0
    return total


def _drain(broker_port: int, state: str, registry: Path, workdir: Path, parts: list[str], n: int) -> dict:
    procs = []
    for i, part in enumerate(parts):
        port = servers.free_port()
        args = [
            sys.executable, "-m", "fumewatch", "alerts", "--broker", f"mqtt://127.0.0.1:{broker_port}",
            "--state", state, "--registry", str(registry), "--store", str(workdir / "fume.db"),
            "--client-id", "alerts-bench",
        ] + (["--partition", part] if part else [])  # fmt: skip
        env = {
            **child_env(),
            "FUMEWATCH_METRICS_PORT": str(port),
            "FUMEWATCH_ALERTS_CLOCK": "event",
            "FUMEWATCH_ALERTS_WARMUP_HOURS": "0",
            "FUMEWATCH_LOGGING_LEVEL": "warning",
        }
        log = (workdir / f"worker-{i}.log").open("w")
        procs.append((subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=log), port))
    first = last = None
    cpu0: dict[int, float] = {}
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            counts = [_counted(port) for _, port in procs]
            now = time.monotonic()
            total = sum(c or 0 for c in counts)
            if first is None and total > 0:
                first = now
                cpu0 = {p.pid: proc_cpu_s(p.pid) for p, _ in procs}
            if total >= n:
                last = now
                break
            if any(p.poll() is not None for p, _ in procs):
                raise RuntimeError(
                    f"an alerts worker ended early: {(workdir / 'worker-0.log').read_text()[-1500:]}"
                )
            time.sleep(0.05)
        if first is None or last is None:
            raise RuntimeError(f"drained {total} of {n} readings in 600 s")
        cpu = sum(proc_cpu_s(p.pid) - cpu0[p.pid] for p, _ in procs)
    finally:
        for p, _ in procs:
            p.send_signal(signal.SIGTERM)
        for p, _ in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    seconds = last - first
    return {
        "workers": len(parts),
        "seconds": seconds,
        "readings_s": n / seconds if seconds > 0 else None,
        "cpu_us_per_reading": cpu / n * 1e6,
    }


def alerts_partitions(
    workdir: Path, *, n_messages: int = 60_000, n_devices: int = 2_000, layouts: tuple[int, ...] = (1, 2)
) -> dict:
    """readings/s of 1 unpartitioned worker, then of N partitioned workers, on the same messages."""
    from alerts.partition import Partition, device_topics
    from fumewatch.db import upgrade

    workdir.mkdir(parents=True, exist_ok=True)
    broker = start_broker(workdir / "broker")
    registry = make_registry(n_devices)
    reg_path = write_registry(registry, workdir / "registry.csv")
    out: dict = {"n_messages": n_messages, "devices": n_devices, "runs": {}}
    try:
        for n in layouts:
            run_dir = workdir / f"n{n}"
            run_dir.mkdir()
            parts = [""] if n == 1 else [str(Partition(k, n)) for k in range(n)]
            sessions = []
            for part in parts:
                if not part:
                    sessions.append(("alerts-bench", ["fume/v1/+/reading", "fume/v1/+/hj212"]))
                else:
                    p = Partition.parse(part)
                    sessions.append((f"alerts-bench-{p.slug}", device_topics("fume/v1", p.select(registry))))
            for cid, topics in sessions:
                register_session(broker.port, cid, topics)
            lines = message_lines(device_ids(n_devices), n_messages, 1, recent_t0(n_messages, n_devices, 1))
            publish_lines(broker.port, lines, run_dir / "pub")
            del lines
            with servers.private_pg_database(prefix="fumewatch_bench") as url:
                upgrade(url)
                out["runs"][n] = _drain(broker.port, url, reg_path, run_dir, parts, n_messages)
            for cid, _ in sessions:
                drop_session(broker.port, cid)
    finally:
        broker.stop()
    runs = out["runs"]
    if 1 in runs and len(runs) > 1:
        top = max(runs)
        out["ratio"] = runs[top]["readings_s"] / runs[1]["readings_s"]
    return out


__all__ = ["alerts_partitions"]
