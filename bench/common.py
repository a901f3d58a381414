"""Shared pieces of the benchmarks: private broker, registry, messages, queued persistent sessions.

Method (BENCHMARKS.md explains why): the N messages of a measurement are *queued* at a private
Mosquitto for a persistent-session subscriber that is offline (MQTT 5, session expiry), published by
``mosquitto_pub -l`` beforehand. The subscriber then connects and is timed from its first received
message to its last (or, for the ingest service, to its last committed row), so no publisher competes
for the machine's cores during the measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))  # tests/servers.py: MosquittoServer, InfluxDB1Server, relay

import servers  # noqa: E402

from ingest.registry import Device, Registry  # noqa: E402

TOPIC_PREFIX = "fume/v1"
DAY_MS = 86_400_000
#: The receive maximum of the ingest service's default settings ([mqtt] receive_maximum).
RECEIVE_MAXIMUM = 1000

#: The private broker's config on top of tests/servers.py's: the EmbeddedBroker's in-flight window, and
#: queues big enough to hold a whole measurement for an offline session.
BROKER_CONF = """\
max_inflight_messages 1000
max_queued_messages 0
max_queued_bytes 0
message_size_limit 0
"""


def child_env() -> dict[str, str]:
    """Environment of benchmark child processes: this interpreter's PYTHONPATH (so ``PYTHONPATH=old/tree``
    measures an old tree of the packages everywhere), then the repository for ``bench`` itself."""
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)]))
    return {**os.environ, "PYTHONPATH": path}


def machine() -> dict:
    """The machine description recorded with every result."""
    import platform

    import paho.mqtt

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mosq = ""
    exe = servers.find_mosquitto()
    if exe:
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, check=False).stdout
        mosq = out.splitlines()[0].replace("mosquitto version ", "") if out else ""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = -1.0
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "paho_mqtt": paho.mqtt.__version__,
        "mosquitto": mosq,
        "loadavg_1m_at_start": round(load, 2),
    }


# ------------------------------------------------------------------------------------------ broker


def start_broker(workdir: Path) -> servers.MosquittoServer:
    """A private Mosquitto (never the system one on :1883) with :data:`BROKER_CONF`."""
    return servers.MosquittoServer(workdir, extra_conf=BROKER_CONF).start()


# ------------------------------------------------------------------------------------------ data


def device_ids(n: int) -> list[str]:
    return [f"BENCH-{i:06d}" for i in range(n)]


def make_registry(n: int, owner_notify: str = "") -> Registry:
    """``n`` devices, one restaurant each, 1-7 stove heads (all GB 18483 size classes)."""
    return Registry(
        Device(
            restaurant_id=f"R{i:06d}",
            name=f"bench kitchen {i}",
            district=f"D{i % 16:02d}",
            device_id=dev,
            stove_heads=1 + i % 7,
            owner_notify=owner_notify,
        )
        for i, dev in enumerate(device_ids(n))
    )


def write_registry(registry: Registry, path: Path) -> Path:
    registry.write_csv(path)
    return path


def reading_doc(ts: int, i: int) -> dict:
    """One realistic reading (every field of the wire contract)."""
    return {
        "ts": ts,
        "oil_fume": round(0.3 + (i % 97) * 0.02, 3),
        "pm": round(0.8 + (i % 13) * 0.05, 3),
        "nmhc": round(2.0 + (i % 7) * 0.3, 3),
        "flow": 4000.0 + (i % 11) * 100,
        "fan": True,
        "purifier": True,
    }


def message_lines(
    devices: Sequence[str], n_messages: int, per_message: int, t0_ms: int
) -> dict[str, list[bytes]]:
    """Per device, the JSON payloads of its messages (one line each, for ``mosquitto_pub -l``).

    ``per_message`` = 1: one JSON object per message; > 1: a JSON array of that many readings.
    Timestamps are distinct per device (one minute apart), so rows stored = readings sent.
    """
    out: dict[str, list[bytes]] = {d: [] for d in devices}
    nd = len(devices)
    for m in range(n_messages):
        dev = devices[m % nd]
        k = m // nd  # message index within the device
        base = t0_ms + k * per_message * 60_000
        if per_message == 1:
            out[dev].append(orjson.dumps(reading_doc(base, m)))
        else:
            out[dev].append(orjson.dumps([reading_doc(base + j * 60_000, m + j) for j in range(per_message)]))
    return out


def recent_t0(n_messages: int, n_devices: int, per_message: int) -> int:
    """A start time such that every timestamp is in the past and well inside the 400-day age limit."""
    span = (n_messages // max(1, n_devices) + 1) * per_message * 60_000
    now = int(time.time() * 1000)
    t0 = now - span - DAY_MS
    return t0 - t0 % 60_000


# ------------------------------------------------------------------------------------------ MQTT


def connect_props(expiry_s: int = 3600, receive_maximum: int = RECEIVE_MAXIMUM) -> Properties:
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = expiry_s
    p.ReceiveMaximum = receive_maximum
    return p


def _client(client_id: str, protocol: str) -> mqtt.Client:
    if protocol == "5":
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False
    )


def register_session(
    port: int, client_id: str, topics: Iterable[str], qos: int = 1, protocol: str = "5"
) -> None:
    """Create a persistent session (MQTT 5: session expiry 1 h; 3.1.1: clean session off) with ``topics``
    subscribed, then go offline (it stays)."""
    subscribed = threading.Event()
    c = _client(client_id, protocol)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, *a: cl.subscribe([(t, qos) for t in topics])
    if protocol == "5":
        c.connect("127.0.0.1", port, clean_start=True, properties=connect_props())
    else:
        c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError(f"session {client_id}: no SUBACK within 10 s")
    finally:
        c.disconnect()
        c.loop_stop()


def drop_session(port: int, client_id: str) -> None:
    """End a persistent session (clean start, expiry 0): Mosquitto otherwise keeps handing an offline
    member of a shared subscription its share of the messages (queued for it until the session expires)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port, clean_start=True, properties=connect_props(expiry_s=0))
    c.loop_start()
    try:
        c.disconnect()
    finally:
        c.loop_stop()


def publish_lines(
    port: int, lines_by_device: dict[str, list[bytes]], workdir: Path, parallel: int = 100
) -> float:
    """Publish every device's lines with ``mosquitto_pub -l -q 1`` (one process per device, up to
    ``parallel`` at once); returns the seconds it took. QoS 1, so the broker queues them for offline
    sessions. With every device's publisher running at once, the queue is roughly in time order across
    devices, as when monitors report live (each ``mosquitto_pub`` also takes a fixed 0.2 s to exit)."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = []
    for dev, lines in lines_by_device.items():
        f = workdir / f"{dev}.lines"
        f.write_bytes(b"\n".join(lines) + b"\n")
        files.append((dev, f))
    start = time.monotonic()
    running: list[tuple[subprocess.Popen, str]] = []

    def reap(proc: subprocess.Popen, dev: str) -> None:
        try:
            _, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for p, _ in running:
                p.kill()
            proc.kill()
            raise RuntimeError(f"mosquitto_pub for {dev} did not finish in 300 s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"mosquitto_pub for {dev} failed ({proc.returncode}): {err.decode()[-300:]}")

    while files or running:
        while files and len(running) < parallel:
            dev, f = files.pop()
            with open(f, "rb") as stdin:
                proc = subprocess.Popen(
                    ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-M", "1000", "-l",
                     "-V", "mqttv5", "-i", f"pub-{dev}", "-t", f"{TOPIC_PREFIX}/{dev}/reading"],
                    stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
            running.append((proc, dev))
        proc, dev = running.pop(0)
        reap(proc, dev)
    for f in workdir.glob("*.lines"):
        f.unlink()
    return time.monotonic() - start


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used during a measurement: by this process (all threads), by the broker, and by
    everything else on the machine (other people's work on a shared machine), from /proc."""

    def __init__(self, broker_pid: int | None = None) -> None:
        self.broker_pid = broker_pid
        self._start = self._sample()

    @staticmethod
    def _proc_cpu(pid: int | None) -> float:
        return 0.0 if pid is None else proc_cpu_s(pid)

    def _sample(self) -> tuple[float, float, float, float]:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        busy = (sum(int(x) for x in cpu) - int(cpu[3]) - int(cpu[4])) / os.sysconf(
            "SC_CLK_TCK"
        )  # - idle, iowait
        return time.monotonic(), ru.ru_utime + ru.ru_stime, self._proc_cpu(self.broker_pid), busy

    def stop(self) -> dict:
        end = self._sample()
        wall, me, broker, busy = (b - a for a, b in zip(self._start, end, strict=True))
        return {
            "wall_s": round(wall, 3),
            "self_cpu_s": round(me, 3),
            "broker_cpu_s": round(broker, 3),
            "others_cpu_cores": round(max(0.0, busy - me - broker) / wall, 2) if wall > 0 else None,
        }


def process_cpu_s() -> float:
    """CPU seconds of this process so far (all threads)."""
    return time.process_time()


@dataclass
class Timing:
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    cpu_first: float = 0.0  # process CPU seconds at the first message and at the end
    cpu_last: float = 0.0

    @property
    def cpu_s(self) -> float:
        return self.cpu_last - self.cpu_first

    @property
    def seconds(self) -> float:
        return self.last - self.first

    def rate(self, n: int) -> float:
        # n messages in the interval first..last: n - 1 inter-arrival gaps
        return (n - 1) / self.seconds if self.seconds > 0 else float("nan")


def drain_bare(port: int, client_id: str, n: int, timeout_s: float = 120.0, protocol: str = "5") -> Timing:
    """Connect the persistent session ``client_id`` with bare paho (v2 API, automatic ack, trivial
    callback; MQTT ``protocol`` "5" or "3.1.1") and time first to last of ``n`` received messages."""
    tm = Timing()
    done = threading.Event()

    def on_message(client, userdata, msg) -> None:
        tm.count += 1
        if tm.count == 1:
            tm.first, tm.cpu_first = time.perf_counter(), process_cpu_s()
        if tm.count >= n:
            tm.last, tm.cpu_last = time.perf_counter(), process_cpu_s()
            done.set()

    c = _client(client_id, protocol)
    c.on_message = on_message
    if protocol == "5":
        c.connect("127.0.0.1", port, clean_start=False, properties=connect_props())
    else:
        c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        if not done.wait(timeout_s):
            raise RuntimeError(f"bare paho received {tm.count} of {n} messages in {timeout_s} s")
    finally:
        c.disconnect()
        c.loop_stop()
    return tm


_BARE_CHILD = """
import json, sys
import paho.mqtt._packet, paho.mqtt.properties
from bench.common import drain_bare
port, client_id, n, protocol = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
tm = drain_bare(port, client_id, n, protocol=protocol)
unpatched = paho.mqtt._packet.Properties is paho.mqtt.properties.Properties
print(json.dumps({"first": tm.first, "last": tm.last, "cpu_s": tm.cpu_s, "count": tm.count, "paho_unpatched": unpatched}))
"""


def drain_bare_process(
    port: int, client_id: str, n: int, protocol: str = "5", timeout_s: float = 180.0
) -> dict:
    """:func:`drain_bare` in a child process of its own: bare paho as paho ships it (this process may have
    imported ``ingest.mqtt_client``, whose PUBLISH properties short cut paho's decoder would then use).
    Returns msg/s, seconds and CPU per message, timed in the child from its first to its last message."""
    out = subprocess.run(
        [sys.executable, "-c", _BARE_CHILD, str(port), client_id, str(n), protocol],
        capture_output=True, text=True, timeout=timeout_s, env=child_env(), cwd=REPO, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"bare paho child failed ({out.returncode}): {out.stderr[-2000:]}")
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    if not doc["paho_unpatched"]:
        raise RuntimeError("the bare paho child runs a patched paho")
    seconds = doc["last"] - doc["first"]
    return {
        "msg_s": (n - 1) / seconds if seconds > 0 else float("nan"),
        "seconds": seconds,
        "cpu_us_per_msg": round(doc["cpu_s"] / n * 1e6, 1),
        "received": doc["count"],
    }
