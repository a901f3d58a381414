"""Ingest as users run it (issue 14): the ``fumewatch ingest`` process draining queued messages.

The process is started the way a user starts it (``python -m fumewatch ingest --config FILE``), with the
default settings apart from the broker, the client id and the paths (:func:`write_config`). It is timed
from the outside, from its SQLite store: a second connection polls ``PRAGMA data_version`` (which changes
when another connection commits; the poll reads no table) and counts the rows after every commit it
sees (:class:`RowClock`). The rate is the rows stored between the first commit seen and the last one:
``(rows_last - rows_first) / (t_last - t_first)``, the same "first to last" as bare paho's
``(n - 1) / (last - first)``. Lossless: rows = distinct (device_id, time_ms) = readings sent, the
process received each message once (its ``event=ingest_stop`` line) and wrote no dead letter.

InfluxDB (:func:`drain_process_influx`): the same process with ``--store`` an InfluxDB URL (the 1.6 of
tests/servers.py behind its ``/api/v2/write`` relay); timed by polling ``COUNT`` over InfluxQL until
every point is there.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import child_env, proc_cpu_s


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    path: Path,
    *,
    port: int,
    client_id: str,
    workdir: Path,
    registry: Path,
    store: str | None = None,
    influx: dict[str, str] | None = None,
) -> Path:
    """A user's config file: broker, client id and paths; everything else at its default."""
    store = store or str(workdir / "fume.db")
    lines = [
        "[mqtt]",
        f"broker = {_toml(f'mqtt://127.0.0.1:{port}')}",
        f"client_id = {_toml(client_id)}",
        "",
        "[ingest]",
        f"store = {_toml(store)}",
        f"state = {_toml(str(workdir / 'state.db'))}",
        f"registry = {_toml(str(registry))}",
    ]
    if influx:
        lines += ["", "[influx]", *(f"{k} = {_toml(v)}" for k, v in influx.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Observed:
    """The store as seen from outside: the first and the last commit with rows, and the counts then."""

    t_first: float = 0.0
    rows_first: int = 0
    t_last: float = 0.0
    rows_last: int = 0
    commits: int = 0
    cpu_first: float = 0.0
    cpu_last: float = 0.0

    def rate(self) -> float:
        dt = self.t_last - self.t_first
        return (self.rows_last - self.rows_first) / dt if dt > 0 else float("nan")


class RowClock:
    """Watches a SQLite store another process writes: after each commit (``PRAGMA data_version``
    changed) the rows are counted; ``wait(n)`` returns once there are ``n``."""

    def __init__(self, db: Path, pid: int, poll_s: float = 0.001) -> None:
        self.db, self.pid, self.poll_s = db, pid, poll_s

    def _open(self, deadline: float) -> sqlite3.Connection:
        while time.monotonic() < deadline:
            if self.db.exists():
                conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None)
                try:
                    conn.execute("SELECT 1 FROM readings LIMIT 1").fetchall()
                    return conn
                except sqlite3.OperationalError:  # created, not yet its table
                    conn.close()
            time.sleep(0.01)
        raise RuntimeError(f"store {self.db} was not created in time")

    def wait(self, n_rows: int, timeout_s: float = 300.0, alive=lambda: True) -> Observed:
        deadline = time.monotonic() + timeout_s
        conn = self._open(deadline)
        obs = Observed()
        version = None
        try:
            while time.monotonic() < deadline:
                v = conn.execute("PRAGMA data_version").fetchone()[0]
                if v != version:
                    t = time.perf_counter()
                    version = v
                    rows = conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
                    if rows:
                        obs.commits += 1
                        if not obs.rows_first:
                            obs.t_first, obs.rows_first, obs.cpu_first = t, rows, proc_cpu_s(self.pid)
                        obs.t_last, obs.rows_last = t, rows
                        if rows >= n_rows:
                            obs.cpu_last = proc_cpu_s(self.pid)
                            return obs
                elif not alive():
                    raise RuntimeError("the ingest process ended before storing everything")
                time.sleep(self.poll_s)
        finally:
            conn.close()
        raise RuntimeError(f"ingest stored {obs.rows_last} of {n_rows} rows in {timeout_s} s")


_STOP = re.compile(r"event=ingest_stop (.*)$", re.M)


def stop_stats(log_text: str) -> dict[str, int]:
    """The counters of the process's last ``event=ingest_stop`` log line (key=value integers)."""
    found = _STOP.findall(log_text)
    if not found:
        return {}
    out = {}
    for part in found[-1].split():
        k, _, v = part.partition("=")
        if v.isdigit():
            out[k] = int(v)
    return out


@dataclass
class IngestProcess:
    """``python -m fumewatch ingest --config FILE`` as a child process, stopped with SIGTERM."""

    config: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=child_env)
    proc: subprocess.Popen | None = None

    def start(self) -> IngestProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fumewatch", "ingest", "--config", str(self.config)],
            # from its own directory, as a user runs it: with ``-m`` the working directory comes first on
            # sys.path, and the repository's would shadow a ``PYTHONPATH=old/tree`` being measured
            cwd=self.config.parent, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 60.0) -> dict[str, int]:
        """SIGTERM (a clean stop: flush, ack, disconnect), then the counters it logged."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        text = self.log_path.read_text(errors="replace")
        if self.proc.returncode != 0:
            raise RuntimeError(f"fumewatch ingest exited {self.proc.returncode}: {text[-2000:]}")
        return stop_stats(text)


def distinct_rows(db: Path) -> tuple[int, int]:
    """(rows, distinct (device_id, time_ms)) of a SQLite store."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
        distinct = conn.execute("SELECT COUNT(*) FROM (SELECT DISTINCT device_id, time_ms FROM readings)")
        return rows, distinct.fetchone()[0]
    finally:
        conn.close()


def drain_process(
    port: int, client_id: str, workdir: Path, registry: Path, n_messages: int, n_readings: int
) -> dict:
    """Start ``fumewatch ingest`` on the queued session ``client_id``; time it from its store; check
    that every reading was stored once and every message received once."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "ingest.toml", port=port, client_id=client_id, workdir=workdir,
                          registry=registry)  # fmt: skip
    proc = IngestProcess(config, workdir / "ingest.log").start()
    try:
        obs = RowClock(workdir / "fume.db", proc.pid).wait(n_readings, alive=proc.alive)
    finally:
        stats = proc.stop()
    rows, distinct = distinct_rows(workdir / "fume.db")
    out = {
        "readings_s": obs.rate(),
        "msg_s": obs.rate() * n_messages / n_readings,
        "seconds": obs.t_last - obs.t_first,
        "rows_at_first_commit": obs.rows_first,
        "cpu_total_s": obs.cpu_last,  # since the process started (imports, connect included)
        "commits_seen": obs.commits,
        "cpu_s": round(obs.cpu_last - obs.cpu_first, 3),
        "cpu_us_per_reading": round((obs.cpu_last - obs.cpu_first) / max(1, obs.rows_last - obs.rows_first)
                                    * 1e6, 2),
        "rows": rows,
        "distinct": distinct,
        "messages": stats.get("messages"),
        "dead_letters": stats.get("dead_letters"),
    }  # fmt: skip
    check_lossless(out, n_messages, n_readings)
    return out


def check_lossless(out: dict, n_messages: int, n_readings: int) -> None:
    """Raise unless every reading is stored once and every message was received once."""
    problems = []
    if out["rows"] != n_readings or out["distinct"] != n_readings:
        problems.append(f"rows {out['rows']} (distinct {out['distinct']}) for {n_readings} readings")
    if out["messages"] != n_messages:
        problems.append(f"{out['messages']} messages received for {n_messages} sent")
    if out["dead_letters"]:
        problems.append(f"{out['dead_letters']} dead letters")
    out["lossless"] = not problems
    if problems:
        raise RuntimeError("ingest process not lossless: " + "; ".join(problems))


def watch_influx(server, db: str, n_points: int, pid: int, timeout_s: float = 300.0, poll_s: float = 0.05):
    """Like :meth:`RowClock.wait` for InfluxDB: COUNT over InfluxQL every ``poll_s``."""
    obs = Observed()
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        t = time.perf_counter()
        try:
            got = server.points(db, "SELECT COUNT(oil_fume_mg_m3) FROM fume_reading")
        except Exception:  # the database may not exist yet
            got = []
        n = int(got[0]["count"]) if got else 0
        if n and n != last:
            obs.commits += 1
            if not obs.rows_first:
                obs.t_first, obs.rows_first, obs.cpu_first = t, n, proc_cpu_s(pid)
            obs.t_last, obs.rows_last = t, n
            last = n
            if n >= n_points:
                obs.cpu_last = proc_cpu_s(pid)
                return obs
        time.sleep(poll_s)
    raise RuntimeError(f"InfluxDB has {last} of {n_points} points after {timeout_s} s")


def servers_module():
    """tests/servers.py (MosquittoServer, InfluxDB1Server, V2WriteRelay), on the path through bench.common."""
    import servers

    return servers


def drain_process_influx(
    port: int, client_id: str, workdir: Path, registry: Path, n_messages: int, n_readings: int, influx
) -> dict:
    """``fumewatch ingest --store http://relay`` into the test InfluxDB 1.6 (``influx`` a
    ``servers.InfluxDB1Server``; the relay is started here). Lossless: COUNT = readings sent (InfluxDB
    overwrites a point with the same series and time, so a duplicate could not be seen there; the
    process's own message count shows that each message arrived once)."""
    servers = servers_module()
    workdir.mkdir(parents=True, exist_ok=True)
    db = "bench_" + re.sub(r"\W", "_", client_id)
    influx.create_database(db)
    relay = servers.V2WriteRelay(influx.url).start()
    try:
        config = write_config(
            workdir / "ingest.toml", port=port, client_id=client_id, workdir=workdir, registry=registry,
            store=relay.url, influx={"bucket": db, "org": "bench", "database": db},
        )  # fmt: skip
        proc = IngestProcess(config, workdir / "ingest.log").start()
        try:
            obs = watch_influx(influx, db, n_readings, proc.pid)
        finally:
            stats = proc.stop()
    finally:
        relay.stop()
    out = {
        "readings_s": obs.rate(),
        "seconds": obs.t_last - obs.t_first,
        "rows_at_first_count": obs.rows_first,
        "cpu_total_s": obs.cpu_last,
        "cpu_us_per_reading": round((obs.cpu_last - obs.cpu_first) / max(1, obs.rows_last - obs.rows_first)
                                    * 1e6, 2),
        "rows": obs.rows_last,
        "distinct": obs.rows_last,
        "messages": stats.get("messages"),
        "dead_letters": stats.get("dead_letters"),
    }  # fmt: skip
    check_lossless(out, n_messages, n_readings)
    return out


def process_rounds(
    workdir: Path,
    *,
    n_messages: int,
    per_message: int = 1,
    n_devices: int = 100,
    rounds: int = 3,
    bare: bool = True,
    influx=None,
) -> dict:
    """Rounds of: queue ``n_messages`` for bare paho over MQTT 3.1.1 and 5 (when ``bare``) and for the
    ingest process, then drain each in turn (the order rotates per round). The ceiling of a round is
    the faster bare protocol; the ratio is the process's msg/s over it. ``influx``: a running
    ``servers.InfluxDB1Server``, the process's store is then InfluxDB (through the relay)."""
    from bench.common import (
        CpuMeter,
        device_ids,
        drain_bare_process,
        make_registry,
        message_lines,
        publish_lines,
        recent_t0,
        register_session,
        start_broker,
        write_registry,
    )
    from bench.ingest_bench import ingest_topics

    broker = start_broker(workdir / "broker")
    registry = write_registry(make_registry(n_devices), workdir / "registry.csv")
    n_readings = n_messages * per_message
    kinds = (["bare3", "bare5"] if bare else []) + ["process"]
    per_round = []
    try:
        for r in range(rounds):
            rd = workdir / f"round{r}"
            ids = {k: f"{k}-{r}-{per_message}" for k in kinds}
            for k in kinds:
                if k == "process":
                    register_session(broker.port, ids[k], ingest_topics())
                else:
                    register_session(
                        broker.port, ids[k], ["fume/v1/+/reading"], protocol=k[4:].replace("3", "3.1.1")
                    )
            lines = message_lines(
                device_ids(n_devices), n_messages, per_message, recent_t0(n_messages, n_devices, per_message)
            )
            res: dict = {"publish_s": round(publish_lines(broker.port, lines, rd / "pub"), 2)}
            del lines
            order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
            for k in order:
                meter = CpuMeter(broker.pid)
                if k == "process":
                    if influx is None:
                        out = drain_process(broker.port, ids[k], rd / k, registry, n_messages, n_readings)
                    else:
                        out = drain_process_influx(
                            broker.port, ids[k], rd / k, registry, n_messages, n_readings, influx
                        )
                    out["load"] = meter.stop()
                    res["process"] = out
                else:
                    proto = "5" if k == "bare5" else "3.1.1"
                    res[k] = drain_bare_process(broker.port, ids[k], n_messages, protocol=proto)
                    res[k]["load"] = meter.stop()
                    res[k]["load"]["others_cpu_cores"] = _minus_child(res[k])
            if bare:
                res["ceiling_msg_s"] = max(res["bare3"]["msg_s"], res["bare5"]["msg_s"])
                res["ceiling_protocol"] = "3.1.1" if res["bare3"]["msg_s"] >= res["bare5"]["msg_s"] else "5"
                res["ratio"] = res["process"]["msg_s"] / res["ceiling_msg_s"]
            per_round.append(res)
            print(f"round {r}: {_round_text(res)}", file=sys.stderr, flush=True)
    finally:
        broker.stop()
    return {"rounds": per_round, "n_messages": n_messages, "per_message": per_message, "n_devices": n_devices}


def _minus_child(res: dict) -> float | None:
    """/proc/stat's "others" of a measurement whose client was a child process, less that client's CPU."""
    load = res["load"]
    if load["others_cpu_cores"] is None or not load["wall_s"]:
        return load["others_cpu_cores"]
    return round(
        max(0.0, load["others_cpu_cores"] - res["cpu_us_per_msg"] * res["received"] / 1e6 / load["wall_s"]), 2
    )


def _round_text(res: dict) -> str:
    parts = [f"{k} {res[k]['msg_s']:,.0f} msg/s" for k in ("bare3", "bare5") if k in res]
    p = res["process"]
    parts.append(f"process {p['readings_s']:,.0f} readings/s ({p['cpu_us_per_reading']} us CPU/reading)")
    if "ratio" in res:
        parts.append(f"ratio {res['ratio']:.3f}")
    return ", ".join(parts)
