"""Notices exactly once through a crash: the real ``fumewatch alerts`` process SIGKILLed at each point of a
warning's delivery (before its first target, with its owner notice in flight, after all its targets), then
restarted. Every target (the owner, the inspectors, the MQTT alert) receives the warning, each once after
de-duplication by ``notice_key``; nothing is recorded failed that was delivered.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from servers import publish_mqtt, run_fumewatch, wait_for

from alerts.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:'imghdr' is deprecated")]

REPO = Path(__file__).resolve().parent.parent
MIN = 60_000
DAY = 86_400_000
# Local midnight 10 days ago: every reading lies in the past.
T0 = (int(time.time() * 1000) + 8 * 3600_000) // DAY * DAY - 8 * 3600_000 - 10 * DAY


def lunch(device: str, day: int) -> list[tuple[str, bytes]]:
    start = T0 + day * DAY + 11 * 3600_000
    return [
        (
            f"fume/v1/{device}/reading",
            orjson.dumps({"ts": start + i * MIN, "oil_fume": 2.6 if i < 60 else 0.3, "flow": 4000.0}),
        )
        for i in range(130)
    ]


class AlertSink:
    """The MQTT alert topic as a subscriber sees it."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.messages: list[dict] = []
        ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sink-{time.monotonic_ns()}")
        self.c.on_message = lambda c, u, m: self.messages.append(json.loads(m.payload))
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.connect(host, int(port))
        self.c.subscribe("fume/v1/alerts/#", qos=1)
        self.c.loop_start()
        assert ready.wait(5)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def start_alerts(tmp_path: Path, broker: str, registry: Path, inspector: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    env.update(
        PYTHONPATH=str(REPO),
        FUMEWATCH_ALERTS_CLOCK="event",
        FUMEWATCH_ALERTS_COMMIT_INTERVAL_S="0.2",
        FUMEWATCH_ALERTS_ADVANCE_INTERVAL_S="0.3",
        FUMEWATCH_ALERTS_WARMUP_HOURS="0",
        FUMEWATCH_ALERTS_CORRECTION_DAYS="0.001",  # the next day's episode is past the deadline
        FUMEWATCH_NOTIFY_RETRIES="0",
        FUMEWATCH_NOTIFY_TIMEOUT_S="30",
        FUMEWATCH_NOTIFY_INSPECTOR_TARGETS=json.dumps([inspector]),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "alerts",
            "--broker",
            broker,
            "--store",
            str(tmp_path / "fume.db"),
            "--registry",
            str(registry),
            "--state",
            str(tmp_path / "state.db"),
            "--client-id",
            "alerts-outbox",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (tmp_path / "state.db").exists() or proc.poll() is not None, 30, "alerts started")
    time.sleep(1.5)  # subscribed
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def warning_key(led: Ledger) -> str | None:
    eps = [p for p in led.list_episodes(restaurant_id="R1") if p.level == "warning"]
    return f"{eps[0].lead_event_id}:opened" if eps else None


def outbox_has_warning(state: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(state, timeout=5) as c:
            rows = c.execute(
                "SELECT COUNT(*) FROM outbox WHERE key LIKE '%' AND at_ms > ?", (T0 + DAY,)
            ).fetchone()
            return rows[0] > 0
    except sqlite3.OperationalError:
        return False


@pytest.mark.parametrize("point", ["before_first_target", "owner_in_flight", "after_all_targets"])
def test_warning_reaches_every_target_once_through_a_kill(mosquitto, tmp_path, webhook, point):
    reg = tmp_path / "registry.csv"
    reg.write_text(
        "restaurant_id,name,district,device_id,stove_heads,owner_notify\n"
        f"R1,老王面馆,朝阳区,D1,2,{webhook.url('/owner/R1')}\n"
        f"R2,川味小厨,朝阳区,D2,2,{webhook.url('/owner/R2')}\n",
        encoding="utf-8",
    )
    sink = AlertSink(mosquitto.url)
    state = tmp_path / "state.db"
    proc = start_alerts(tmp_path, mosquitto.url, reg, webhook.url("/inspector"))
    try:
        publish_mqtt(mosquitto.url, lunch("D1", 0))  # the education
        wait_for(lambda: len(webhook.bodies("/owner/R1")) >= 2, 40, "education opened and closed")
        gate = threading.Event()
        if point == "before_first_target":
            # R2's education is held in flight at the receiver; R1's warning, decided just after, waits
            # behind it in the outbox when the process dies
            webhook.hold["/owner/R2"] = gate
            publish_mqtt(
                mosquitto.url, [m for pair in zip(lunch("D2", 1), lunch("D1", 1), strict=True) for m in pair]
            )
            wait_for(lambda: webhook.hits.get("/owner/R2", 0) >= 1, 40, "R2's notice in flight")
            wait_for(lambda: outbox_has_warning(state), 20, "R1's warning in the outbox")
            time.sleep(1.0)
            with Ledger(state) as led:
                key = warning_key(led)
                assert key is None or not led.list_notices(key=key)  # no target of the warning yet
        elif point == "owner_in_flight":
            webhook.hold["/owner/R1"] = gate
            publish_mqtt(mosquitto.url, lunch("D1", 1))
            wait_for(
                lambda: webhook.hits.get("/owner/R1", 0) >= 3, 40, "the warning's owner notice in flight"
            )
            time.sleep(0.3)
        else:
            publish_mqtt(mosquitto.url, lunch("D1", 1))
            wait_for(lambda: len(webhook.bodies("/inspector")) >= 1, 40, "the warning's inspector copy")
            wait_for(lambda: any(m.get("level") == "warning" for m in sink.messages), 20, "the MQTT alert")
            time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with Ledger(state) as led:  # what the restart resumes from: the detector state per device (0007)
            header = led.load_state("detector")
            assert header["version"] == 4 and "devices" not in header
            assert "D1" in dict(led.load_devices("detector"))
        gate.set()  # the receiver answers the request it was holding (accepted: the at-least-once window)
        proc = start_alerts(tmp_path, mosquitto.url, reg, webhook.url("/inspector"))
        wait_for(lambda: len(webhook.bodies("/inspector")) >= 1, 40, "the warning's inspector copy")
        wait_for(lambda: any(m.get("level") == "warning" for m in sink.messages), 40, "the MQTT alert")
        time.sleep(2.0)
    finally:
        stop(proc)
        sink.close()

    def keys(bodies: list[dict]) -> list[str]:
        return [b["notice_key"] for b in bodies]

    owner = [b for b in webhook.bodies("/owner/R1") if "告诫" in b["title"] and "已结束" not in b["title"]]
    inspector = [b for b in webhook.bodies("/inspector") if "告诫" in b["title"]]
    alerts = [m for m in sink.messages if m.get("level") == "warning" and m.get("action") == "opened"]
    # every target got the warning; after de-duplication by notice_key, exactly once each
    assert (
        len(set(keys(owner))) == 1
        and len(set(keys(inspector))) == 1
        and len({m["notice_key"] for m in alerts}) == 1
    )
    # a duplicate only where the crash hit a notice in flight (the receiver had accepted it)
    assert len(owner) == (2 if point == "owner_in_flight" else 1)
    assert len(inspector) == 1 and len(alerts) == 1
    with Ledger(state) as led:
        key = warning_key(led)
        rows = {(n.channel, n.status) for n in led.list_notices(key=key)}
        assert rows == {("owner", "sent"), ("inspector", "sent"), ("mqtt", "sent")}, rows
        assert led.pending_outbox() == []
        assert not [n for n in led.list_notices() if n.status in ("pending", "failed")]
    out = run_fumewatch(tmp_path, "notices", "--state", str(state), "--status", "failed")
    assert out.returncode == 0 and out.stdout.strip().count("\n") == 0, out.stdout  # the header only


def test_outbox_transition_with_no_notice_is_notified_once(tmp_path, webhook):
    """A transition recorded with its event whose notifier never ran (crash in between) is notified by the
    drain, once, and marked done; a second drain sends nothing."""
    from alerts.enforcement.notify import Notifier, NotifySettings
    from alerts.model import Transition
    from ingest.registry import Device

    led = Ledger(tmp_path / "state.db")
    ev = _exceedance("exceedance:D1:oil_fume:1")
    tr = Transition(ev, "opened", T0 + 50 * MIN)
    with led.transaction():
        led.upsert_event(ev)
        led.add_outbox([tr])
    n = Notifier(NotifySettings(retries=0), led)
    dev = {"D1": Device("R1", "老王面馆", "朝阳区", "D1", 2, owner_notify=webhook.url("/owner"))}
    assert [(r.channel, r.status) for r in n.drain(dev.get)] == [("owner", "sent")]
    assert led.outbox_status(tr.key) == "done" and led.pending_outbox() == []
    assert n.drain(dev.get) == [] and n.catch_up(dev.get, now=T0 + 60 * MIN) == []
    assert len(webhook.bodies("/owner")) == 1
    led.close()


def test_notices_retry_puts_failed_ones_back(tmp_path, webhook):
    """`fumewatch notices retry` as a user runs it: failed rows become pending; the next drain sends them."""
    from alerts.enforcement.notify import Notifier, NotifySettings
    from alerts.model import Transition
    from ingest.registry import Device

    webhook.script["/owner"] = [503]
    led = Ledger(tmp_path / "state.db")
    ev = _exceedance("exceedance:D1:oil_fume:2")
    dev = {"D1": Device("R1", "老王面馆", "朝阳区", "D1", 2, owner_notify=webhook.url("/owner"))}
    n = Notifier(NotifySettings(retries=0), led)
    results = n.notify(Transition(ev, "opened", T0 + 50 * MIN), dev["D1"])
    assert [r.status for r in results if r.channel == "owner"] == ["failed"]
    out = run_fumewatch(tmp_path, "notices", "--state", str(tmp_path / "state.db"), "--status", "failed")
    assert out.returncode == 0 and out.stdout.count("\n") == 2, out.stdout  # header + the failed row
    out = run_fumewatch(tmp_path, "notices", "retry", "--state", str(tmp_path / "state.db"))
    assert out.returncode == 0 and out.stdout.startswith("1 failed notice(s) put back to pending"), out
    assert [(r.channel, r.status) for r in n.drain(dev.get)] == [("owner", "sent")]
    assert len(webhook.bodies("/owner")) == 1
    led.close()


def _exceedance(event_id: str):
    from alerts.model import Event

    return Event(
        event_id,
        "exceedance",
        "R1",
        "D1",
        "朝阳区",
        T0,
        pollutant="oil_fume",
        peak_mg_m3=3.0,
        mean_mg_m3=2.5,
        limit_mg_m3=2.0,
        profile="gb18483",
        rule="gb18483",
    )
