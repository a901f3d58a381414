"""The enforcement ladder as users run it: the real ``fumewatch run`` process (ingest + alerts), readings
over a real Mosquitto, notices to a real HTTP receiver, the ledger read back with the real CLI.

- oil fume, particulate and a purifier bypass overlapping in one dinner service: one episode, one level,
  one "opened" notice to the owner before one "closed" notice;
- three episodes inside one correction period do not escalate; the first after the deadline does;
- an owner no channel reaches is never escalated, and inspectors get an ``owner_unreachable`` task;
- the notice states C, Q, n, the reference concentration, local times with the offset, the correction
  deadline, the district office and phone, and how and by when to object (陈述、申辩).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from receivers import free_port
from servers import publish_mqtt as publish
from servers import run_fumewatch, wait_for

from alerts.ledger import Ledger
from ingest.timeutil import format_local

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:'imghdr' is deprecated")]

REPO = Path(__file__).resolve().parent.parent
MIN = 60_000
DAY = 86_400_000
# Local midnight 20 days ago: every reading lies in the past (ingest refuses readings from the future).
T0 = (int(time.time() * 1000) + 8 * 3600_000) // DAY * DAY - 8 * 3600_000 - 20 * DAY

CONFIG = """
display_tz = "Asia/Shanghai"
[ingest]
flush_interval_s = 0.05
[alerts]
clock = "event"
commit_interval_s = 0.2
advance_interval_s = 0.3
warmup_hours = 0
correction_days = 7
objection_days = 3
[notify]
retries = 0
office = "市城市管理综合执法局"
contact_phone = "12345"
[districts."朝阳区"]
office = "朝阳区城管执法局油烟监管科"
phone = "010-6509 0000"
"""


def write_registry(tmp_path: Path, rows: list[str]) -> Path:
    p = tmp_path / "registry.csv"
    p.write_text(
        "restaurant_id,name,district,device_id,stove_heads,owner_notify,profile\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    return p


def reading(device: str, t: int, oil: float, pm: float | None = None, purifier: bool = True) -> tuple:
    doc: dict = {"ts": t, "oil_fume": oil, "flow": 5000.0, "fan": True, "purifier": purifier}
    if pm is not None:
        doc["pm"] = pm
    return (f"fume/v1/{device}/reading", orjson.dumps(doc))


class Run:
    """``fumewatch run`` as a user starts it, stopped with SIGTERM."""

    def __init__(self, tmp_path: Path, broker: str, registry: Path, inspector: str) -> None:
        (tmp_path / "fumewatch.toml").write_text(CONFIG, encoding="utf-8")
        self.state = tmp_path / "state.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
        env["PYTHONPATH"] = str(REPO)
        env["FUMEWATCH_NOTIFY_INSPECTOR_TARGETS"] = json.dumps([inspector])
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fumewatch",
                "run",
                "--config",
                str(tmp_path / "fumewatch.toml"),
                "--broker",
                broker,
                "--store",
                str(tmp_path / "fume.db"),
                "--registry",
                str(registry),
                "--state",
                str(self.state),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: self.state.exists() or self.proc.poll() is not None, 30, "fumewatch run started")
        assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
        time.sleep(1.5)  # subscribed

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


def dinner(device: str, day: int, oil, pm=None, purifier=None, minutes: int = 170) -> list[tuple]:
    """Readings every minute from 17:00 local on ``day``; ``oil(i)``, ``pm(i)``, ``purifier(i)``."""
    start = T0 + day * DAY + 17 * 3600_000
    return [
        reading(device, start + i * MIN, oil(i), pm(i) if pm else None, purifier(i) if purifier else True)
        for i in range(minutes)
    ]


def lunch(device: str, day: int, minutes: int = 130) -> list[tuple]:
    """11:00-13:10 local: 60 minutes at 2.6 mg/m3 (C_ref = 2.6 * 5000 / (2 * 2000) = 3.25), then 0.3."""
    start = T0 + day * DAY + 11 * 3600_000
    return [reading(device, start + i * MIN, 2.6 if i < 60 else 0.3) for i in range(minutes)]


def test_overlapping_pollutants_and_bypass_are_one_episode(mosquitto, tmp_path, webhook):
    # db11-1488: oil fume 1.0, particulate 5.0 mg/m3; 2 heads, flow 5000 -> C_ref = C * 5000 / 4000
    reg = write_registry(tmp_path, [f"R1,老王面馆,朝阳区,D1,2,{webhook.url('/owner/R1')},db11-1488"])
    run = Run(tmp_path, mosquitto.url, reg, webhook.url("/inspector"))
    try:
        publish(
            mosquitto.url,
            dinner(
                "D1",
                0,
                oil=lambda i: 1.6 if 10 <= i < 90 else 0.3,
                pm=lambda i: 7.0 if 30 <= i < 100 else 1.0,
                purifier=lambda i: not (60 <= i < 80),
            ),
        )
        wait_for(lambda: len(webhook.bodies("/owner/R1")) >= 2, 60, "opened and closed notices")
        time.sleep(1.5)
    finally:
        err = run.stop()
    with Ledger(run.state) as led:
        events = [e for e in led.list_events() if e.kind in ("exceedance", "purifier_off")]
        kinds = sorted((e.kind, e.pollutant) for e in events)
        assert kinds == [("exceedance", "oil_fume"), ("exceedance", "pm"), ("purifier_off", "")], (kinds, err)
        [episode] = led.list_episodes()
        assert {e.episode_id for e in events} == {episode.episode_id}
        assert {e.level for e in events} == {"education"} and episode.step == 1
        assert all(e.state == "closed" for e in events)
        assert {e.rule for e in events} == {"gb18483", "bypass"}
    bodies = webhook.bodies("/owner/R1")
    assert len(bodies) == 2, [b["title"] for b in bodies]
    assert "教育劝导" in bodies[0]["title"] and "已结束" in bodies[1]["title"]  # opened before closed
    closed = bodies[1]["message"]
    assert "油烟超标" in closed and "颗粒物超标" in closed and "净化器未开启" in closed
    assert webhook.bodies("/inspector") == []  # a first episode: owner only


def test_correction_period_escalation_and_unreachable_owner(mosquitto, tmp_path, webhook):
    dead = f"json://127.0.0.1:{free_port()}/dead"
    reg = write_registry(
        tmp_path,
        [
            f"R2,川味小厨,朝阳区,D2,2,{webhook.url('/owner/R2')},",
            f"R3,无名小馆,海淀区,D3,2,{dead},",
        ],
    )
    run = Run(tmp_path, mosquitto.url, reg, webhook.url("/inspector"))
    try:
        for day in (0, 2, 4, 9):
            publish(
                mosquitto.url,
                [m for pair in zip(lunch("D2", day), lunch("D3", day), strict=True) for m in pair],
            )
        wait_for(lambda: len(webhook.bodies("/owner/R2")) >= 8, 90, "R2's opened and closed notices")
        wait_for(
            lambda: sum("送达任务" in b["title"] for b in webhook.bodies("/inspector")) >= 4, 30, "R3's tasks"
        )
        time.sleep(1.0)
    finally:
        err = run.stop()
    with Ledger(run.state) as led:
        r2 = led.list_episodes(restaurant_id="R2")
        assert [(p.level, p.step, p.repeat) for p in r2] == [
            ("education", 1, False),
            ("education", 1, True),  # day 2: inside the education's correction period
            ("education", 1, True),  # day 4: still inside
            ("warning", 2, False),  # day 9: after the deadline, and the education reached the owner
        ], err
        r3 = led.list_episodes(restaurant_id="R3")
        # R3's owner was never reached: no escalation; the step is given again after the deadline
        assert [(p.level, p.step, p.repeat, p.reissued) for p in r3] == [
            ("education", 1, False, False),
            ("education", 1, True, False),
            ("education", 1, True, False),
            ("education", 1, False, True),
        ]
        tasks = led.list_tasks(restaurant_id="R3")
        assert [t["kind"] for t in tasks] == ["owner_unreachable"] * 4
        assert led.list_tasks(restaurant_id="R2") == []
    r2_titles = [b["title"] for b in webhook.bodies("/owner/R2")]
    opened = [t for t in r2_titles if "已结束" not in t]
    assert len(opened) == 4 and "教育劝导" in opened[0] and "整改期内再次发生" in opened[1]
    assert "告诫" in opened[3]
    inspector = [b["title"] for b in webhook.bodies("/inspector")]
    assert sum("整改期内再次发生" in t for t in inspector) == 4, (
        inspector
    )  # R2's and R3's repeats: inspectors told
    assert sum("油烟排放告诫" in t for t in inspector) == 1

    # the warning as the owner read it
    [warning] = [b["message"] for b in webhook.bodies("/owner/R2") if "油烟排放告诫" in b["title"]]
    day9 = T0 + 9 * DAY
    for text in (
        f"{format_local(day9 + 11 * 3600_000, 'Asia/Shanghai')}起，至",  # local time of the episode
        "北京时间 UTC+08:00",
        "实测浓度 C：2.60 mg/m³",
        "实测风量 Q：5000 m³/h",
        "基准灶头数 n：2（基准风量 n×2000 = 4000 m³/h）",
        "基准风量折算浓度 C折 = C×Q/(n×2000)：3.25 mg/m³",
        "判定规则：GB 18483-2001 数据处理",
        "五千元以上五万元以下的罚款",
        f"{format_local(day9 + 7 * DAY, 'Asia/Shanghai', '%Y年%m月%d日')}（含当日）前改正",  # 7 days later
        "朝阳区城管执法局油烟监管科（电话 010-6509 0000）",
        "提出陈述、申辩",
        f"{format_local(T0, 'Asia/Shanghai', '%Y年%m月%d日')} 教育劝导：已于",  # with its recorded delivery
    ):
        assert text in warning, text
    assert "已收到" not in warning

    # the inspector's listing shows the rule, in local time
    out = run_fumewatch(
        tmp_path, "events", "--state", str(run.state), "--format", "csv", "--restaurant", "R2"
    )
    assert out.returncode == 0, out.stderr
    header, first = out.stdout.splitlines()[:2]
    assert "rule" in header.split(",") and ",gb18483," in first and "+08:00" in first

    # the inspectors' task list, as they read it
    out = run_fumewatch(tmp_path, "tasks", "--state", str(run.state), "--restaurant", "R3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "created,kind,restaurant_id,district,status,level,episode_id,task_id"
    assert len(lines) == 5 and all(",owner_unreachable,R3,海淀区,open,education," in x for x in lines[1:])
    assert all("+08:00" in x.split(",")[0] for x in lines[1:])
