"""Partitioned alerts workers as users run them: real ``fumewatch alerts --partition K/N`` processes, one
PostgreSQL ledger, a real Mosquitto, a real webhook receiver (issue 14).

Two workers for partition 0/2 (one active, one standby) and one for 1/2. The active 0/2 is killed with
SIGKILL in the middle of an exceedance; the standby takes the lock, restores from the ledger, resumes
the persistent MQTT session and finishes the event. Every owner gets each notice once, and the events
equal those of one unpartitioned worker fed the same readings from the same broker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from servers import free_port, wait_for
from servers import publish_mqtt as publish

from alerts.ledger import Ledger
from alerts.partition import partition_of
from fumewatch.db import upgrade

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:'imghdr' is deprecated")]

REPO = Path(__file__).resolve().parent.parent
MIN = 60_000
T0 = 1795651200000 - 8 * 3600_000  # 2026-11-26 00:00 Asia/Shanghai
LUNCH = T0 + 11 * 3600_000

ENV = {
    "FUMEWATCH_ALERTS_CLOCK": "event",
    "FUMEWATCH_ALERTS_COMMIT_INTERVAL_S": "0.2",
    "FUMEWATCH_ALERTS_ADVANCE_INTERVAL_S": "0.5",
    "FUMEWATCH_ALERTS_WARMUP_HOURS": "0",
    "FUMEWATCH_NOTIFY_RETRIES": "0",
    "FUMEWATCH_LOGGING_FORMAT": "kv",
}


def pick_devices() -> dict[int, list[str]]:
    """Two device ids per partition of 2 (a violator and a compliant kitchen each)."""
    out: dict[int, list[str]] = {0: [], 1: []}
    for i in range(1, 100):
        d = f"D{i}"
        if len(out[partition_of(d, 2)]) < 2:
            out[partition_of(d, 2)].append(d)
    return out


def write_registry(path: Path, devices: list[str], hook_url, prefix: str) -> Path:
    rows = [
        f"R{d},厨房{d},朝阳区,{d},2,{hook_url(f'/{prefix}/owner/R{d}')}"  # one restaurant per device
        for d in devices
    ]
    path.write_text(
        "restaurant_id,name,district,device_id,stove_heads,owner_notify\n" + "\n".join(rows) + "\n"
    )
    return path


def readings(devices: list[str], start_min: int, minutes: int, oil) -> list[tuple[str, bytes]]:
    """Minute by minute, every device at each minute (time-major, as kitchens report: with the event
    clock of these tests, a device-major order would make the others' readings late)."""
    out = []
    for i in range(start_min, start_min + minutes):
        for d in devices:
            doc = {"ts": LUNCH + i * MIN, "oil_fume": oil(d), "flow": 4000.0, "fan": True, "purifier": True}
            out.append((f"fume/v1/{d}/reading", orjson.dumps(doc)))
    return out


class Worker:
    def __init__(self, tmp: Path, name: str, args: list[str], env: dict[str, str]) -> None:
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fumewatch", "alerts", *args],
            cwd=REPO,
            env={**os.environ, **ENV, **env},
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return json.loads(r.read())


def sent(url: str) -> int:
    with Ledger(url) as ledger:
        return sum(1 for n in ledger.list_notices() if n.status == "sent")


def event_facts(url: str) -> list[tuple]:
    with Ledger(url) as ledger:
        return sorted(
            (e.event_id, e.kind, e.device_id, e.start_ms, e.end_ms, e.state, e.level, e.peak_mg_m3)
            for e in ledger.list_events()
        )


def test_standby_takes_over_a_killed_partition_mid_event(mosquitto, tmp_path, webhook, pg_empty_url):
    upgrade(pg_empty_url)
    single_state = str(tmp_path / "single.db")
    parts = pick_devices()
    devices = parts[0] + parts[1]
    violators = [parts[0][0], parts[1][0]]
    reg = write_registry(tmp_path / "registry.csv", devices, webhook.url, "p")
    reg_single = write_registry(tmp_path / "registry-single.csv", devices, webhook.url, "single")
    common = ["--broker", mosquitto.url, "--store", str(tmp_path / "fume.db"), "--connect-timeout", "10"]
    pg = ["--state", pg_empty_url, "--registry", str(reg), "--client-id", "alerts-part"]
    standby_port = free_port()
    workers: list[Worker] = []
    try:
        single = Worker(
            tmp_path,
            "single",
            [*common, "--state", single_state, "--registry", str(reg_single), "--client-id", "alerts-single"],
            {},
        )
        a = Worker(tmp_path, "a", [*common, *pg, "--partition", "0/2"], {})
        workers += [single, a]
        wait_for(lambda: "event=partition_subscribed" in a.text(), 30, "0/2 active and subscribed")
        b = Worker(
            tmp_path, "b", [*common, *pg, "--partition", "0/2"], {"FUMEWATCH_METRICS_PORT": str(standby_port)}
        )
        c = Worker(tmp_path, "c", [*common, *pg, "--partition", "1/2"], {})
        workers += [b, c]
        wait_for(lambda: "event=partition_standby" in b.text(), 30, "second 0/2 waits as a standby")
        wait_for(lambda: "event=partition_subscribed" in c.text(), 30, "1/2 active and subscribed")
        wait_for(lambda: "event=broker_connected" in single.text(), 30, "single worker connected")
        assert health(standby_port) == {"status": "ok", "role": "standby", "partition": "0/2"}
        assert "event=partition_active" not in b.text()

        # 55 minutes over the limit for both violators: their exceedances open and stay open
        over = lambda d: 2.6 if d in violators else 0.5  # noqa: E731
        publish(mosquitto.url, readings(devices, 0, 55, over))
        owners = {d: f"/p/owner/R{d}" for d in violators}
        wait_for(lambda: all(len(webhook.bodies(p)) >= 1 for p in owners.values()), 40, "education notices")
        # the MQTT copy and the owner's notice of both events recorded as sent, then kill the active 0/2
        wait_for(lambda: sent(pg_empty_url) >= 4, 20, "notices recorded as sent")
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)

        # while the standby takes over: 10 more minutes over, then an hour compliant (the broker queues them)
        publish(mosquitto.url, readings(devices, 55, 10, over) + readings(devices, 65, 60, lambda d: 0.5))
        wait_for(lambda: "event=partition_active" in b.text(), 30, "standby took the lock")
        wait_for(lambda: all(len(webhook.bodies(p)) >= 2 for p in owners.values()), 60, "closing notices")
        wait_for(
            lambda: all(len(webhook.bodies(f"/single/owner/R{d}")) >= 2 for d in violators),
            60,
            "single worker",
        )
        h = health(standby_port)
        assert (h["status"], h["role"], h["partition"], h["devices"]) == ("ok", "active", "0/2", 2)
        time.sleep(1.5)  # anything doubled would arrive now
    finally:
        for w in workers:
            w.stop()
    logs = {w.log.name: w.text() for w in workers}
    for name, text in logs.items():
        assert "Traceback" not in text, (name, text[-3000:])

    v0 = parts[0][0]
    # the killed worker announced partition 0's event, the standby finished it
    assert f"key=exceedance:{v0}:oil_fume:{LUNCH}:opened channel=owner" in logs["a.log"]
    assert f"key=exceedance:{v0}:oil_fume:{LUNCH}:episode_closed channel=owner" in logs["b.log"]
    assert f"exceedance:{v0}" not in logs["c.log"] and f"exceedance:{parts[1][0]}" not in logs["b.log"]
    for d in violators:
        bodies = webhook.bodies(f"/p/owner/R{d}")
        keys = [b.get("notice_key") or b.get("title") for b in bodies]
        assert len(bodies) == 2 and len(set(keys)) == 2, (d, bodies)  # opened + closed, nothing twice
    for d in parts[0][1:] + parts[1][1:]:
        assert not webhook.bodies(f"/p/owner/R{d}")
    with Ledger(pg_empty_url) as ledger:
        rows = ledger.list_notices()
        assert len({(n.key, n.target) for n in rows}) == len(rows)
        assert all(n.status in ("sent", "skipped") for n in rows), [(n.key, n.status) for n in rows]
    got, want = event_facts(pg_empty_url), event_facts(single_state)
    assert got == want
    kinds = {(f[1], f[2], f[5]) for f in got}
    assert {("exceedance", d, "closed") for d in violators} <= kinds
