"""Notices delivered to real receivers: an SMTP server (aiosmtpd) and an HTTP webhook (ThreadingHTTPServer).

No mocks: apprise really connects, the ledger is a real SQLite file, the crash test kills a real process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd not installed (test extra)")
pytest.importorskip("apprise", reason="apprise not installed")

from alerts.casework import Casework  # noqa: E402
from alerts.enforcement.notify import (  # noqa: E402
    TEMPLATE_NAMES,
    Notifier,
    NotifySettings,
    format_duration,
)
from alerts.enforcement.notify.render import _CONTEXT_KEYS  # noqa: E402
from alerts.ledger import Ledger  # noqa: E402
from alerts.model import EXCEEDANCE, LATE_DATA, OFFLINE, PURIFIER_OFF, Event, Transition, WindowResult  # noqa: E402
from ingest.registry import Device  # noqa: E402

# apprise's email plugin imports the deprecated imghdr module (Python 3.11/3.12).
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
T0 = 1795667400000  # 2026-11-26T04:30:00Z = 2026-11-26 12:30 in Asia/Shanghai
MIN = 60_000
DAY = 86_400_000


from receivers import SmtpSink, Webhook, free_port  # noqa: E402,F401  (fixtures smtp, webhook: conftest)


@pytest.fixture
def dead_url() -> str:
    """A json:// target on a port where nothing listens (connection refused)."""
    return f"json://127.0.0.1:{free_port()}/dead"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class MqttSink:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, json.loads(payload.decode("utf-8"))))


# =========================================================================================================
# Helpers
# =========================================================================================================


def device(owner_notify: str = "", **kw: Any) -> Device:
    base = dict(
        restaurant_id="R1",
        name="老王面馆",
        district="朝阳区",
        device_id="D1",
        stove_heads=2,
        address="朝阳路 1 号",
        owner_name="王先生",
        owner_notify=owner_notify,
        profile="gb18483",
    )
    base.update(kw)
    return Device(**base)


def exceedance(n: int, start_ms: int = T0, restaurant_id: str = "R1", **kw: Any) -> Event:
    base = dict(
        event_id=f"exceedance:D1:oil_fume:{start_ms}",  # the detector's id format (colons included)
        kind=EXCEEDANCE,
        restaurant_id=restaurant_id,
        device_id="D1",
        district="朝阳区",
        start_ms=start_ms,
        pollutant="oil_fume",
        peak_mg_m3=3.456,
        mean_mg_m3=2.714,
        limit_mg_m3=2.0,
        profile="gb18483",
        rule="gb18483",
    )
    base.update(kw)
    return Event(**base)


def opened(event: Event, after_ms: int = 30 * MIN) -> Transition:
    return Transition(event, "opened", event.start_ms + after_ms)


def settings(**kw: Any) -> NotifySettings:
    base: dict[str, Any] = dict(retry_backoff_s=0.01, timeout_s=3, contact_phone="010-6512 3456")
    base.update(kw)
    return NotifySettings(**base)


def plain_body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    assert part is not None
    return part.get_content()


@pytest.fixture
def ledger(state_url: str) -> Iterator[Ledger]:
    """The notice ledger on SQLite and on a private PostgreSQL database (tests/conftest.py section 5)."""
    led = Ledger(state_url)
    try:
        yield led
    finally:
        led.close()


# =========================================================================================================
# Tests
# =========================================================================================================


def test_education_notice_by_smtp_is_guidance_with_chinese_intact(
    smtp: SmtpSink, webhook: Webhook, ledger: Ledger
) -> None:
    mqtt = MqttSink()
    n = Notifier(settings(inspector_targets=[webhook.url("/inspector")]), ledger, mqtt)
    ev = exceedance(1)
    results = n.notify(opened(ev), device(smtp.url()))

    assert [(r.channel, r.status, r.attempts) for r in results] == [("owner", "sent", 1), ("mqtt", "sent", 1)]
    smtp.wait(1)
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert smtp.envelopes[0] == ("fumewatch@example.com", ["owner@example.com"])
    subject = str(msg["Subject"])
    assert "老王面馆" in subject and "教育劝导" in subject and "2026年12月03日" in subject
    assert msg["X-Fumewatch-Notice-Key"] == f"{ev.event_id}:opened:owner"
    body = plain_body(msg)
    # guidance under 首违不罚: a first minor offence corrected in time *may* go unpunished (§33)
    assert "本通知为教育劝导，不是行政处罚决定" in body
    assert "第三十三条第一款" in body and "可以不予行政处罚" in body and "首违不罚" in body
    assert "不作处罚" not in body and "五千元" not in body
    # restaurant, local times with the offset, the judged value, limit, standard, rule, what to do, contact,
    # the correction deadline as a date, and how and by when to object
    for text in (
        "老王面馆",
        "朝阳路 1 号",
        "王先生",
        "2026-11-26 12:30起，至 2026-11-26 13:00 仍在持续（北京时间 UTC+08:00）",
        "判定浓度：2.71 mg/m³（峰值窗口均值 3.46 mg/m³）",
        "2.00 mg/m³",
        "GB 18483-2001",
        "判定规则：GB 18483-2001 数据处理",
        "清洗油烟净化器",
        "排烟风机运行期间同时开启油烟净化器",
        "010-6512 3456",
        "2026年12月03日（含当日）前完成整改",
        "提出陈述、申辩",
        "原始监测数据：no readings store configured",
    ):
        assert text in body, text
    # the inspector is not told about a first offence
    assert webhook.received == []
    # the ledger: one sent owner notice, target masked, level stored on the event
    [rec] = [r for r in ledger.list_notices(event_id=ev.event_id) if r.channel == "owner"]
    assert (rec.status, rec.attempts, rec.target) == ("sent", 1, f"mailto://127.0.0.1:{smtp.port}")
    assert rec.payload["title"] == subject
    assert ledger.get_event(ev.event_id).level == "education"
    # and the MQTT copy
    [(topic, doc)] = mqtt.published
    assert topic == "fume/v1/alerts/R1"
    assert doc["notice_key"] == f"{ev.event_id}:opened" and doc["level"] == "education"
    assert doc["start"] == "2026-11-26T04:30:00Z" and "首违不罚" in doc["body"]


def test_warning_goes_to_owner_and_inspector_with_copy_note(
    smtp: SmtpSink, webhook: Webhook, ledger: Ledger
) -> None:
    n = Notifier(settings(inspector_targets=[webhook.url("/inspector")]), ledger)
    dev = device(smtp.url())
    n.notify(opened(exceedance(1)), dev)
    ev2 = exceedance(2, T0 + 8 * DAY)  # after the education's 7-day correction period
    results = n.notify(opened(ev2), dev)

    assert [(r.channel, r.status) for r in results] == [("owner", "sent"), ("inspector", "sent")]
    smtp.wait(2)
    assert len(smtp.messages) == 2
    owner_body = plain_body(smtp.messages[1])
    assert "现予以告诫" in owner_body and "本告诫已抄送辖区执法人员" in owner_body
    assert "365 天内第 2 步处理（前一步的整改期限已届满）" in owner_body
    # §118 quoted: the facility condition, 责令改正, the fine range
    for text in (
        "不正常使用油烟净化设施",
        "超过排放标准排放油烟的",
        "责令改正",
        "五千元以上五万元以下的罚款",
    ):
        assert text in owner_body, text
    # the earlier step is cited with its recorded delivery, never as "has received"
    assert "2026年11月26日 教育劝导：已于" in owner_body and "送达" in owner_body
    assert "已收到" not in owner_body
    [(path, headers, doc)] = webhook.received
    assert path == "/inspector"
    assert headers["Idempotency-Key"] == f"{ev2.event_id}:opened:inspector"
    assert doc["notice_key"] == f"{ev2.event_id}:opened:inspector"
    assert "告诫" in doc["title"] and "抄送" in doc["message"]
    assert ledger.get_event(ev2.event_id).level == "warning"


def test_enforcement_only_to_inspector_and_case_stored(
    smtp: SmtpSink, webhook: Webhook, ledger: Ledger, state_url: str
) -> None:
    n = Notifier(settings(inspector_targets=[webhook.url("/inspector")]), ledger)
    dev = device(smtp.url())
    n.notify(opened(exceedance(1)), dev)
    n.notify(opened(exceedance(2, T0 + 8 * DAY)), dev)
    smtp.wait(2)
    webhook_before = len(webhook.received)
    ev3 = exceedance(3, T0 + 16 * DAY)
    windows = [
        WindowResult(
            "D1",
            ev3.start_ms + i * 10 * MIN,
            ev3.start_ms + (i + 1) * 10 * MIN,
            10,
            10,
            True,
            "",
            m,
            m + 1,
            True,
        )
        for i, m in enumerate((2.5, 3.0, 2.8))
    ]
    ledger.add_windows(windows)
    # two messages of the monitor refused by ingest while the event ran: the case's data flags
    from ingest.model import DeadLetter
    from ingest.state import StateDB

    state = StateDB(ledger.path if "://" not in ledger.path else state_url)
    state.add_dead_letters(
        [DeadLetter(ev3.start_ms + k * MIN, "fume/v1/D1/reading", "bad_crc", "##...", "D1") for k in (3, 7)]
    )
    state.close()
    results = n.notify(opened(ev3), dev)

    # the owner is told the matter went to inspectors (with the right to state and defend); inspectors
    # get the case
    assert [(r.channel, r.status) for r in results] == [("owner", "sent"), ("inspector", "sent")]
    smtp.wait(3)
    owner_body = plain_body(smtp.messages[2])
    assert "移交执法告知" in str(smtp.messages[2]["Subject"]) and "陈述、申辩的权利" in owner_body
    assert "本告知不是行政处罚决定" in owner_body
    assert len(webhook.received) == webhook_before + 1
    _, _, doc = webhook.received[-1]
    assert "执法案件" in doc["title"] and f"case-{ev3.event_id}" in doc["message"]
    assert "监测窗口 3 个，其中超标 3 个；样本 30/30" in doc["message"]
    assert "2026年12月04日 告诫：已于" in doc["message"]  # the history with its receipts
    assert "本次告知负责人：已于" in doc["message"]  # the owner's notice of this step, sent just before
    [case] = ledger.list_cases(restaurant_id="R1")
    assert case["case_id"] == f"case-{ev3.event_id}" and case["occurrence"] == 3 and case["status"] == "open"
    # stored after the sends: the owner's notice of this step is in the case with its receipt
    assert case["step"]["level"] == "enforcement" and case["step"]["owner_delivery"]["delivered"] is True
    step_receipts = [r for r in case["receipts"] if r["key"] == f"{ev3.event_id}:opened"]
    assert {(r["channel"], r["status"]) for r in step_receipts} == {("owner", "sent"), ("inspector", "sent")}
    assert [h["level"] for h in case["history"]] == ["education", "warning"]
    assert all(h["delivered"] for h in case["history"])
    assert case["episodes"][0]["events"][0]["rule"] == "gb18483"
    assert case["episodes"][0]["events"][0]["dead_letters"] == {"bad_crc": 2}
    assert "数据标记：期间该设备有 2 条报文被拒收（bad_crc 2）" in doc["message"]
    assert case["episodes"][0]["events"][0]["rule_source"].startswith("GB 18483-2001 第 6 章")
    assert len(case["evidence"]["windows"]) == 3
    assert case["evidence"]["readings"]["max_mg_m3"] == pytest.approx(4.0)
    assert case["evidence"]["readings"]["mean_mg_m3"] == pytest.approx(2.7667, abs=1e-3)

    # closing: the owner gets a short note, the case gets the end time, the case status is kept
    Casework(ledger).act(case["case_id"], "assign", {"assignee": "张伟"}, actor="李娜")
    ev3.end_ms, ev3.state = ev3.start_ms + 90 * MIN, "closed"
    closed = n.notify(Transition(ev3, "closed", ev3.end_ms), dev)
    # the event's own closed transition records where the owner is told: the episode's one closed notice
    assert [(r.channel, r.status, r.key) for r in closed] == [
        ("owner", "skipped", f"{ev3.event_id}:closed"),
        ("owner", "sent", f"{ev3.event_id}:episode_closed"),
    ]
    smtp.wait(4)
    assert "已结束" in str(smtp.messages[3]["Subject"]) and "14:00" in plain_body(smtp.messages[3])
    [case] = ledger.list_cases(restaurant_id="R1")
    assert case["end_ms"] == ev3.end_ms and (case["status"], case["assignee"]) == ("assigned", "张伟")
    receipts = {(r["channel"], r["action"], r["status"]) for r in case["receipts"]}
    assert {("owner", "opened", "sent"), ("inspector", "opened", "sent")} <= receipts


def test_receiver_failing_twice_is_retried_and_recorded(webhook: Webhook, ledger: Ledger) -> None:
    webhook.script["/flaky"] = [500, 500, 200]
    sleeps = Sleeps()
    n = Notifier(settings(retry_backoff_s=0.05), ledger, sleep=sleeps)
    ev = exceedance(1)
    [res] = n.notify(opened(ev), device(webhook.url("/flaky")))

    assert (res.status, res.attempts) == ("sent", 3)
    assert webhook.hits["/flaky"] == 3 and len(webhook.bodies("/flaky")) == 1
    assert sleeps == [pytest.approx(0.05), pytest.approx(0.1)]  # exponential backoff
    [rec] = ledger.list_notices(event_id=ev.event_id)
    assert (rec.status, rec.attempts, rec.error) == ("sent", 3, "")


def test_dead_target_fails_after_retries_others_still_delivered(
    smtp: SmtpSink, dead_url: str, ledger: Ledger
) -> None:
    n = Notifier(settings(retries=2), ledger, sleep=Sleeps())
    ev = exceedance(1)
    results = n.notify(opened(ev), device(f"{dead_url} ; {smtp.url()}"))

    by_status = {r.status: r for r in results}
    assert set(by_status) == {"failed", "sent"}
    assert by_status["failed"].attempts == 3 and by_status["failed"].error
    smtp.wait(1)
    assert len(smtp.messages) == 1
    recs = {r.status: r for r in ledger.list_notices(event_id=ev.event_id)}
    assert recs["failed"].attempts == 3 and recs["failed"].target.startswith("json://127.0.0.1:")
    assert recs["sent"].target == f"mailto://127.0.0.1:{smtp.port}"


def test_failed_target_is_retried_on_next_notify_but_sent_one_is_not(
    webhook: Webhook, smtp: SmtpSink, ledger: Ledger
) -> None:
    webhook.script["/down"] = [503, 503]
    n = Notifier(settings(retries=1), ledger, sleep=Sleeps())
    ev = exceedance(1)
    dev = device(f"{webhook.url('/down')} {smtp.url()}")
    first = n.notify(opened(ev), dev)
    assert sorted(r.status for r in first) == ["failed", "sent"]
    second = n.notify(opened(ev), dev)
    assert sorted(r.status for r in second) == ["already_sent", "sent"]
    smtp.wait(1)
    assert len(smtp.messages) == 1 and len(webhook.bodies("/down")) == 1
    [rec] = [r for r in ledger.list_notices(event_id=ev.event_id) if r.target.startswith("json")]
    assert (rec.status, rec.attempts) == ("sent", 3)  # 2 failed attempts, then 1 that worked


def test_same_transition_twice_and_after_restart_sends_nothing(
    smtp: SmtpSink, webhook: Webhook, state_url: str
) -> None:
    path = state_url
    mqtt = MqttSink()
    s = settings(inspector_targets=[webhook.url("/inspector")])
    dev = device(smtp.url())
    led = Ledger(path)
    n = Notifier(s, led, mqtt)
    n.notify(opened(exceedance(1)), dev)
    tr = opened(exceedance(2, T0 + 8 * DAY))
    assert {r.status for r in n.notify(tr, dev)} == {"sent"}
    again = n.notify(tr, dev)
    assert [r.status for r in again] == ["already_sent"] * 3
    led.close()

    led2 = Ledger(path)  # a restarted service
    n2 = Notifier(s, led2, mqtt)
    after = n2.notify(tr, dev)
    assert [r.status for r in after] == ["already_sent"] * 3
    assert n2.resume_pending({"D1": dev}.get) == []
    assert n2.catch_up({"D1": dev}.get, now=tr.at_ms) == []
    smtp.wait(2)
    time.sleep(0.2)
    assert len(smtp.messages) == 2 and len(webhook.received) == 1 and len(mqtt.published) == 2
    led2.close()


_CRASH_SCRIPT = r"""
import json, sys
from alerts.ledger import Ledger
from alerts.model import Event, Transition
from alerts.enforcement.notify import Notifier, NotifySettings
from ingest.registry import Device
db, url, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
dev = Device("R1", "老王面馆", "朝阳区", "D1", 2, owner_notify=url)
ev = Event("crash-1", "exceedance", "R1", "D1", "朝阳区", start, pollutant="oil_fume", peak_mg_m3=3.0,
           mean_mg_m3=2.5, limit_mg_m3=2.0, profile="gb18483")
Notifier(NotifySettings(timeout_s=30), Ledger(db)).notify(Transition(ev, "opened", start + 1800000), dev)
print("finished")
"""


def test_crash_mid_send_resolved_on_restart(webhook: Webhook, state_url: str) -> None:
    """SIGKILL while the receiver holds the request: the row stays pending, resume resends it once."""
    db = state_url
    url = webhook.url("/slow")
    gate = threading.Event()
    webhook.hold["/slow"] = gate
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASH_SCRIPT, str(db), url, str(T0)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert webhook.arrived.wait(20), (
            proc.stderr.read().decode() if proc.poll() is not None else "no request"
        )
        os.kill(proc.pid, signal.SIGKILL)  # the receiver has the notice; the sender dies before recording it
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    gate.set()  # the receiver accepts the request it was holding (the at-least-once window)

    led = Ledger(db)
    [pending] = led.pending_notices()
    assert (pending.key, pending.status, pending.channel) == ("crash-1:opened", "pending", "owner")
    dev = device(url)
    n = Notifier(settings(), led)
    [res] = n.resume_pending({"D1": dev}.get)
    assert (res.status, res.attempts) == ("sent", 1)
    assert led.pending_notices() == []
    assert n.resume_pending({"D1": dev}.get) == []
    assert n.notify(opened(led.get_event("crash-1")), dev)[0].status == "already_sent"
    deadline = time.monotonic() + 5
    while len(webhook.bodies("/slow")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    bodies = webhook.bodies("/slow")
    # the duplicate a crash in the window can cause carries the same key, so the receiver can drop it
    assert len(bodies) == 2 and bodies[0]["notice_key"] == bodies[1]["notice_key"] == "crash-1:opened:owner"
    assert bodies[0]["message"] == bodies[1]["message"]
    led.close()


def test_pending_target_no_longer_configured_is_marked_failed(webhook: Webhook, ledger: Ledger) -> None:
    n = Notifier(settings(), ledger)
    payload = {"title": "t", "body": "b", "level": "education", "kind": EXCEEDANCE, "device_id": "D1"}
    ledger.upsert_event(exceedance(1, event_id="gone-1"))
    assert ledger.notice_begin("gone-1:opened", "owner", "json://old.example.com/hook", payload)
    [res] = n.resume_pending({"D1": device(webhook.url("/new"))}.get)
    assert res.status == "failed" and "no longer configured" in res.error
    assert webhook.received == [] and ledger.pending_notices() == []


def test_a_partitioned_notifier_resumes_only_its_own_devices(webhook: Webhook, ledger: Ledger) -> None:
    """``owns`` (a partitioned alerts worker, alerts/partition.py): pending notices and outbox rows of
    other partitions' devices are left to their worker, not resent and not marked failed."""
    url = webhook.url("/owner")
    for dev in ("D1", "D2"):
        ev = exceedance(1, event_id=f"mine-{dev}", device_id=dev)
        ledger.upsert_event(ev)
        payload = {"title": "t", "body": "b", "level": "education", "kind": EXCEEDANCE, "device_id": dev}
        assert ledger.notice_begin(f"mine-{dev}:opened", "owner", url, payload)
        ledger.add_outbox([opened(ev)])
    n = Notifier(settings(), ledger, owns=lambda device_id: device_id == "D1")
    lookup = {"D1": device(url), "D2": device(url, device_id="D2")}.get
    assert [(r.key, r.status) for r in n.resume_pending(lookup)] == [("mine-D1:opened", "sent")]
    [left] = ledger.pending_notices()
    assert (left.key, left.status, left.device_id) == ("mine-D2:opened", "pending", "D2")
    n.drain_outbox(lookup)
    assert [tr.event.device_id for tr in ledger.pending_outbox()] == ["D2"]


def test_missing_owner_notify_is_skipped_not_an_error(ledger: Ledger) -> None:
    mqtt = MqttSink()
    n = Notifier(settings(), ledger, mqtt)
    ev = Event("off-1", PURIFIER_OFF, "R1", "D1", "朝阳区", T0)
    results = n.notify(opened(ev, 20 * MIN), device(""))
    # the owner cannot be told: recorded skipped, and inspectors get an owner_unreachable task (here
    # without inspector targets, recorded skipped too)
    assert [(r.channel, r.status) for r in results] == [
        ("owner", "skipped"),
        ("mqtt", "sent"),
        ("inspector", "skipped"),
    ]
    assert "owner_notify" in results[0].error
    [rec] = [r for r in ledger.list_notices(event_id="off-1") if r.channel == "owner"]
    assert (rec.status, rec.target) == ("skipped", "owner:none") and "owner_notify" in rec.error
    assert "排烟风机运行时油烟净化器未开启" in mqtt.published[0][1]["body"]
    [task] = ledger.list_tasks(restaurant_id="R1")
    assert task["kind"] == "owner_unreachable" and task["status"] == "open"


def test_enforcement_without_inspectors_is_recorded_skipped(ledger: Ledger, webhook: Webhook) -> None:
    n = Notifier(settings(), ledger)
    dev = device(webhook.url("/owner"))
    for i in range(2):
        n.notify(opened(exceedance(i, T0 + i * 8 * DAY)), dev)
    owner, res = n.notify(opened(exceedance(9, T0 + 20 * DAY)), dev)
    assert owner.status == "sent"
    assert (res.channel, res.status, res.target) == ("inspector", "skipped", "inspector:none")
    assert len(ledger.list_cases()) == 1


def test_purifier_off_offline_closed_go_to_owner_only(webhook: Webhook, ledger: Ledger) -> None:
    n = Notifier(settings(inspector_targets=[webhook.url("/inspector")]), ledger)
    dev = device(webhook.url("/owner"))
    off = Event("off-1", PURIFIER_OFF, "R1", "D1", "朝阳区", T0)
    down = Event("down-1", OFFLINE, "R1", "D1", "朝阳区", T0)
    n.notify(opened(off, 15 * MIN), dev)
    n.notify(opened(down, 60 * MIN), dev)
    down.end_ms, down.state = T0 + 150 * MIN, "closed"
    n.notify(Transition(down, "closed", down.end_ms), dev)
    assert n.notify(opened(Event("late-1", LATE_DATA, "R1", "D1", "朝阳区", T0)), dev) == []
    owner = webhook.bodies("/owner")
    assert webhook.bodies("/inspector") == [] and len(owner) == 3
    assert "净化器未开启" in owner[0]["title"] and "教育劝导" in owner[0]["title"]
    assert "监测设备离线" in owner[1]["title"] and "D1" in owner[1]["message"]
    assert "已恢复" in owner[2]["title"] and "2026-11-26 15:00" in owner[2]["message"]
    assert "2 小时 30 分钟" in owner[2]["message"]
    # purifier_off is an offence on the ladder (大气污染防治法 §118); offline is not
    assert ledger.get_event("off-1").level == "education" and ledger.get_event("down-1").level == ""


def test_english_locale_renders(smtp: SmtpSink, ledger: Ledger) -> None:
    n = Notifier(settings(locale="en"), ledger)
    n.notify(opened(exceedance(1)), device(smtp.url()))
    smtp.wait(1)
    msg = smtp.messages[0]
    body = plain_body(msg)
    assert str(msg["Subject"]).startswith("[Cooking fume: guidance] 老王面馆")
    assert "This is guidance (教育劝导), not a penalty decision." in body
    assert "may go unpunished" in body
    assert "2026-11-26 12:30 onwards, still ongoing at 2026-11-26 13:00 (Beijing time UTC+08:00)" in body
    assert "highest window mean 3.46 mg/m³" in body and "Emission limit: 2.00 mg/m³" in body
    assert "on whenever the exhaust fan runs" in body and "010-6512 3456" in body


def test_standard_comes_from_the_profile_lookup(webhook: Webhook, ledger: Ledger) -> None:
    standards = {"db11-1488": "DB11/1488-2018 北京市餐饮业大气污染物排放标准"}
    n = Notifier(settings(), ledger, standard_of=standards.__getitem__)
    n.notify(opened(exceedance(1, profile="db11-1488", limit_mg_m3=1.0)), device(webhook.url("/owner")))
    n.notify(opened(exceedance(2, T0 + 9 * DAY, profile="nosuch")), device(webhook.url("/owner")))
    first, second = (d["message"] for d in webhook.bodies("/owner"))
    assert "执行标准：DB11/1488-2018 北京市餐饮业大气污染物排放标准）" in first
    assert "1.00 mg/m³" in first
    assert "执行标准：nosuch" in second  # unknown profile: its name, and the notice still goes out


def test_display_time_zone_is_a_setting(webhook: Webhook, ledger: Ledger) -> None:
    n = Notifier(settings(display_tz="UTC"), ledger)
    n.notify(opened(exceedance(1)), device(webhook.url("/owner")))
    [doc] = webhook.bodies("/owner")
    assert "2026-11-26 04:30起，至 2026-11-26 05:00 仍在持续（UTC UTC+00:00）" in doc["message"]


def test_catch_up_notifies_stored_transitions_that_were_never_notified(
    webhook: Webhook, ledger: Ledger
) -> None:
    ev = exceedance(1)
    ledger.upsert_event(ev)  # stored by the detector, then the service died before notify
    n = Notifier(settings(), ledger)
    lookup = {"D1": device(webhook.url("/owner"))}.get
    res = n.catch_up(lookup, now=T0 + 40 * MIN)
    assert [(r.key, r.status) for r in res] == [(f"{ev.event_id}:opened", "sent")]
    assert n.catch_up(lookup, now=T0 + 41 * MIN) == []
    old = exceedance(2, T0 - 30 * DAY, end_ms=T0 - 30 * DAY + DAY, state="closed")
    ledger.upsert_event(old)
    assert n.catch_up(lookup, now=T0 + 42 * MIN) == []  # too old to notify now
    assert len(webhook.bodies("/owner")) == 1


def test_invalid_url_fails_without_retries_and_secrets_stay_out(webhook: Webhook, ledger: Ledger) -> None:
    sleeps = Sleeps()
    n = Notifier(settings(), ledger, sleep=sleeps)
    secret_url = webhook.url("/auth", userinfo="shopuser:S3cretPw@")
    res = n.notify(opened(exceedance(1)), device(f"nosuchscheme://abc {secret_url}"))
    assert [(r.status, r.attempts) for r in res] == [("failed", 1), ("sent", 1)]
    assert sleeps == []
    _, headers, _ = webhook.received[0]
    assert headers["Authorization"].startswith("Basic ")  # the credentials were used ...
    targets = [r.target for r in ledger.list_notices()]
    assert f"json://***@127.0.0.1:{webhook.port}" in targets  # ... but not stored
    ledger.close()
    raw = b"".join(p.read_bytes() for p in Path(ledger.path).parent.glob("state.db*"))
    assert b"S3cretPw" not in raw and b"shopuser" not in raw


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_template_renders_every_placeholder(ledger: Ledger, locale: str) -> None:
    n = Notifier(settings(locale=locale), ledger)
    ctx = {k: f"<{k}>" for k in _CONTEXT_KEYS}
    for name in TEMPLATE_NAMES:
        title, body = n.render(name, ctx)
        assert title and body and "$" not in title + body, name
        assert "<restaurant_name>" in title + body, name
        # a receipt: when it arrived; a maintenance reminder: the services it looked at, with their times
        times = ("<start>", "<period>", "<end>", "<submission_received>", "<reminder_services>")
        assert any(t in body for t in times), name
        if name not in ("case", "owner_unreachable", "data_integrity"):  # owners are told whom to call
            assert "<contact_phone>" in body, name


def test_context_has_exactly_the_documented_keys(ledger: Ledger) -> None:
    n = Notifier(settings(), ledger)
    ctx = n._renderer.context(opened(exceedance(1)), device(), {}, None)
    assert set(ctx) == set(_CONTEXT_KEYS)
    readme = (ROOT / "alerts" / "enforcement" / "templates" / "README.md").read_text(encoding="utf-8")
    assert all(k in readme for k in _CONTEXT_KEYS)


def test_format_duration() -> None:
    assert format_duration(30 * MIN) == "30 分钟"
    assert format_duration(90 * MIN) == "1 小时 30 分钟"
    assert format_duration(DAY + 60 * MIN, "en") == "1 d 1 h"
    assert format_duration(-5, "en") == "0 min"
