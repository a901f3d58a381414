"""HJ 212 over TCP (issue 17): frames per second through the real ``fumewatch hj212-gateway`` into the
store, 1,000 data loggers connected at once, as a ratio to the MQTT path measured in the same run.

Every process is started the way a user starts it: a private Mosquitto (bench/common.py), ``fumewatch
ingest --config FILE`` (bench/ingest_process.py's user config: defaults apart from broker, client id and
paths), ``fumewatch hj212-gateway --config FILE`` (defaults apart from the broker, the registry and its
listening address; ``FUMEWATCH_GATEWAY_MAX_CONNECTIONS_PER_PEER`` above the number of devices, since every
logger comes from 127.0.0.1) and the simulator, ``fumewatch simulate --registry reg.csv --format hj212``
with ``--gateway HOST:PORT`` or ``--broker URL``, on a registry written by ``fumewatch simulate
--write-registry --restaurants N``.

A round measures both paths, each on a fresh ``fumewatch ingest`` with an empty store (the order rotates
from round to round): the same simulated frames (``--hours`` of every device from yesterday 00:00, one
frame a minute, flat out), over TCP through the gateway (each logger on its own connection, writing a
frame and awaiting its 9014 before the next), or published over MQTT by the simulator (QoS 1, one frame
a message, up to 1,000 in flight). The rate is the store's: rows between the first and the last commit
seen (:class:`bench.ingest_process.RowClock`), so both paths are timed the same way, at the end the
user cares about. Lossless: rows = distinct (device, time) = readings generated, no dead letter, and
over TCP every frame answered. CPU per frame of the gateway, the ingest process, the simulator and the
broker over the measurement, from /proc (the simulator's from its rusage), and the load average.
With two hours (120 frames a logger) the gateway's default frame rate limit (a burst of 200) is never
reached.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import child_env, proc_cpu_s, start_broker
from bench.ingest_bench import summarize
from bench.ingest_process import IngestProcess, RowClock, distinct_rows, write_config

#: bench/run.py's sizes: (devices, simulated hours) of the full run and of ``--quick``.
SIZES = {"full": {"n_devices": 1000, "hours": 2.0, "rounds": 1}, "quick": {"n_devices": 200, "hours": 0.5}}
PATHS = ("gateway", "mqtt")
_GW = re.compile(
    r"sent (\d+) frames \((\d+) readings.* in ([\d.]+) s: (\d+) answered \(9014\), (\d+) resent, "
    r"(\d+) unanswered; (\d+) connections \(at most (\d+) open"
)
_MQTT = re.compile(r"sent (\d+) readings in (\d+) messages .* in ([\d.]+) s")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fumewatch", *args]


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (not idle, not iowait), from /proc/stat."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return (sum(int(x) for x in cpu) - int(cpu[3]) - int(cpu[4])) / os.sysconf("SC_CLK_TCK")


def raise_open_files(need: int) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to ``need`` (at most the hard limit): the children (the
    gateway, the simulator) inherit it. Returns the limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft, hard


def _wait_log(
    path: Path, needles: tuple[str, ...], proc: subprocess.Popen, what: str, timeout_s=60.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if all(n in text for n in needles):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {text[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready in {timeout_s} s")


class Gateway:
    """``python -m fumewatch hj212-gateway --config FILE`` as a child process, stopped with SIGTERM."""

    def __init__(self, workdir: Path, broker_port: int, registry: Path, n_devices: int) -> None:
        import servers

        self.port = servers.free_port()
        self.config = workdir / "gateway.toml"
        self.config.write_text(
            f"[mqtt]\nbroker = {json.dumps(f'mqtt://127.0.0.1:{broker_port}')}\n\n"
            f"[ingest]\nregistry = {json.dumps(str(registry))}\n\n"
            f"[gateway]\nlisten = {json.dumps(f'127.0.0.1:{self.port}')}\n"
            f"client_id = {json.dumps(f'bench-gateway-{workdir.parent.name}')}\n"
        )
        self.env = {**child_env(), "FUMEWATCH_GATEWAY_MAX_CONNECTIONS_PER_PEER": str(n_devices + 100)}
        self.log_path = workdir / "gateway.log"

    def start(self) -> Gateway:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            _cli("hj212-gateway", "--config", str(self.config)), cwd=self.config.parent,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        _wait_log(self.log_path, ("event=gateway_start", "event=broker_connected"), self.proc, "the gateway")
        return self

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.log_path.read_text(errors="replace")


def _simulate(argv: list[str], workdir: Path) -> tuple[subprocess.Popen, Path]:
    out = workdir / "simulate.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=child_env()
        )
    return proc, out


def _children_cpu_s() -> float:
    """CPU seconds of this process's children that ended and were waited for."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(
    path: str,
    workdir: Path,
    broker,
    registry: Path,
    *,
    n_devices: int,
    hours: float,
    start_ms: int,
    expect: int,
) -> dict:
    """One path (``gateway`` or ``mqtt``) into a fresh ``fumewatch ingest``; see the module docstring."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir / "ingest.toml", port=broker.port, client_id=f"bench-gw-ingest-{workdir.parent.name}-{path}",
                          workdir=workdir, registry=registry)  # fmt: skip
    ingest = IngestProcess(config, workdir / "ingest.log").start()
    gateway = None
    try:
        assert ingest.proc is not None
        _wait_log(ingest.log_path, ("topics=",), ingest.proc, "fumewatch ingest")
        sim = ["simulate", "--registry", str(registry), "--format", "hj212", "--hours", f"{hours:g}"]
        sim += ["--start", str(start_ms)]
        if path == "gateway":
            gateway = Gateway(workdir, broker.port, registry, n_devices).start()
            sim += ["--gateway", f"127.0.0.1:{gateway.port}"]
        else:
            sim += ["--broker", f"mqtt://127.0.0.1:{broker.port}"]
        pids = {
            "ingest": ingest.pid,
            "broker": broker.pid,
            **({"gateway": gateway.proc.pid} if gateway else {}),
        }
        cpu0 = {k: proc_cpu_s(p) for k, p in pids.items()}
        busy0, wall0, load0 = _busy_s(), time.monotonic(), os.getloadavg()
        children0 = _children_cpu_s()  # the simulator's CPU: what this grows by once it is waited for
        proc, out_path = _simulate(_cli(*sim), workdir)
        alive = lambda: ingest.alive() and proc.poll() in (None, 0)  # noqa: E731
        try:
            obs = RowClock(workdir / "fume.db", ingest.pid).wait(expect, alive=alive)
        except RuntimeError as exc:
            tail = out_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{path}: {exc}; the simulator said: {tail}") from None
        cpu1 = {k: proc_cpu_s(p) for k, p in pids.items()}
        busy1, wall1, load1 = _busy_s(), time.monotonic(), os.getloadavg()
        proc.wait(300)
        sim_cpu = _children_cpu_s() - children0
        sim_out = out_path.read_text(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"fumewatch simulate exited {proc.returncode}: {sim_out[-2000:]}")
    finally:
        gw_log = gateway.stop() if gateway is not None else ""
        stats = ingest.stop()
    rows, distinct = distinct_rows(workdir / "fume.db")
    cpu = {k: cpu1[k] - cpu0[k] for k in pids}
    cpu["simulator"] = sim_cpu
    wall = wall1 - wall0
    out: dict = {
        "readings_s": obs.rate(),
        "seconds": obs.t_last - obs.t_first,
        "rows": rows,
        "distinct": distinct,
        "messages": stats.get("messages"),
        "dead_letters": stats.get("dead_letters"),
        "cpu_us_per_frame": {k: round(v / expect * 1e6, 1) for k, v in cpu.items()},
        "others_cpu_cores": round(max(0.0, busy1 - busy0 - sum(cpu.values())) / wall, 2),
        "loadavg_1m": [round(load0[0], 2), round(load1[0], 2)],
        "simulator": sim_out.strip().splitlines()[-1] if sim_out.strip() else "",
    }
    problems = []
    if rows != expect or distinct != expect:
        problems.append(f"rows {rows} (distinct {distinct}) for {expect} readings")
    if out["dead_letters"]:
        problems.append(f"{out['dead_letters']} dead letters")
    if path == "gateway":
        m = _GW.search(sim_out)
        if m is None:
            raise RuntimeError(f"no summary from the simulator: {sim_out[-2000:]}")
        keys = (
            "frames",
            "readings",
            "sim_seconds",
            "answered",
            "resent",
            "unanswered",
            "connections",
            "peak_open",
        )
        out.update(
            {k: float(v) if k == "sim_seconds" else int(v) for k, v in zip(keys, m.groups(), strict=True)}
        )
        if out["answered"] != expect or out["unanswered"]:
            problems.append(f"{out['answered']} of {expect} frames answered, {out['unanswered']} never")
        out["refused_connections"] = gw_log.count("event=gateway_connection_refused")
    else:
        m = _MQTT.search(sim_out)
        if m is None:
            raise RuntimeError(f"no summary from the simulator: {sim_out[-2000:]}")
        out["sim_seconds"] = float(m.group(3))
    out["lossless"] = not problems
    if problems:
        raise RuntimeError(f"{path} not lossless: " + "; ".join(problems))
    return out


def gateway_vs_mqtt(workdir: Path, *, n_devices: int = 1000, hours: float = 2.0, rounds: int = 1) -> dict:
    """Rounds of both paths (see the module docstring); the ratio per round is gateway / MQTT."""
    from ingest import simulate
    from ingest.registry import Registry

    workdir.mkdir(parents=True, exist_ok=True)
    limits = raise_open_files(2 * n_devices + 1024)
    registry = workdir / "registry.csv"
    subprocess.run(
        _cli("simulate", "--write-registry", str(registry), "--restaurants", str(n_devices), "--broker", ""),
        cwd=workdir, env=child_env(), check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    start_ms = simulate.default_start_ms(simulate.KITCHEN_TZ)  # yesterday 00:00: every kitchen reports
    expect = simulate.count_readings(Registry.load(registry), start_ms, hours)
    broker = start_broker(workdir / "broker")
    per_round = []
    try:
        for r in range(rounds):
            order = PATHS[r % 2 :] + PATHS[: r % 2]
            res = {
                p: measure(p, workdir / f"round{r}" / p, broker, registry, n_devices=n_devices, hours=hours,
                           start_ms=start_ms, expect=expect)
                for p in order
            }  # fmt: skip
            res["ratio"] = res["gateway"]["readings_s"] / res["mqtt"]["readings_s"]
            per_round.append(res)
            g, m = res["gateway"], res["mqtt"]
            print(
                f"round {r}: gateway {g['readings_s']:,.0f} frames/s ({g['peak_open']} connections), "
                f"MQTT {m['readings_s']:,.0f} readings/s, ratio {res['ratio']:.3f}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        broker.stop()
    return {
        "rounds": per_round,
        "n_devices": n_devices,
        "hours": hours,
        "frames": expect,
        "nofile_limit": list(limits),
        "gateway_frames_s": summarize([r["gateway"]["readings_s"] for r in per_round]),
        "mqtt_readings_s": summarize([r["mqtt"]["readings_s"] for r in per_round]),
        "ratio": summarize([r["ratio"] for r in per_round]),
    }


if __name__ == "__main__":  # python -m bench.gateway_bench [DEVICES [HOURS [ROUNDS]]]
    import tempfile

    a = sys.argv[1:]
    doc = gateway_vs_mqtt(
        Path(tempfile.mkdtemp(prefix="fumewatch-gwbench-")),
        n_devices=int(a[0]) if a else 1000,
        hours=float(a[1]) if len(a) > 1 else 2.0,
        rounds=int(a[2]) if len(a) > 2 else 1,
    )
    print(json.dumps(doc, indent=1))
