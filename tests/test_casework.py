"""The case lifecycle (issue 12) on a real state database (SQLite and PostgreSQL): each transition and
refusal, the version check, the append-only audit trail, attachments, dismissal and the ladder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from casedata import exceedance, open_case

from alerts.casework import BadFields, Casework, IllegalAction
from alerts.casework.attachments import check
from alerts.enforcement.episodes import LadderPolicy, decide
from alerts.enforcement.ladder import build_case
from alerts.ledger import Ledger
from alerts.ledger.casework import CaseNotFound, StaleCase
from alerts.model import Event
from ingest.timeutil import now_ms

ROOT = Path(__file__).resolve().parent.parent
H = 3_600_000
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def event(eid: str = "E1", start: int | None = None, restaurant: str = "R1") -> Event:
    return exceedance(eid, start, restaurant=restaurant)


@pytest.fixture
def ledger(state_url: str):
    led = Ledger(state_url)
    yield led
    led.close()


def new_case(ledger: Ledger, e: Event | None = None) -> dict:
    return open_case(ledger, e)


INSPECT = {
    "inspected_at": "2026-12-01T10:30:00",
    "findings": "净化器滤网堵塞，风机正常",
    "purifier": "not_working",
    "fan": "working",
}


def test_the_whole_life_of_a_case(ledger: Ledger) -> None:
    cw = Casework(ledger)
    c = new_case(ledger)
    cid = c["case_id"]
    assert (c["status"], c["version"], c["case_type"]) == ("open", 1, "enforcement")
    assert [a["action"] for a in ledger.case_actions(cid)] == ["open"]
    c = cw.act(cid, "assign", {"assignee": "张伟"}, actor="李娜", version=1)
    assert (c["status"], c["assignee"], c["version"]) == ("assigned", "张伟", 2)
    photo = cw.attach(cid, "../../现场.jpg", "image/jpeg", JPEG, actor="张伟")
    assert photo["filename"] == "现场.jpg" and photo["size_bytes"] == len(JPEG)
    c = cw.act(cid, "inspect", {**INSPECT, "attachments": [photo["attachment_id"]]}, actor="张伟", version=2)
    assert c["status"] == "inspected"
    c = cw.act(cid, "record_statement", {"statement": "滤网已订购", "form": "oral"}, actor="张伟", version=3)
    assert c["status"] == "inspected"  # a statement does not move the case
    c = cw.act(
        cid,
        "order_rectification",
        {"deadline": "2099-01-10", "requirements": "更换滤网"},
        actor="张伟",
        version=4,
    )
    assert c["status"] == "rectification_ordered" and c["deadline_ms"] > now_ms()
    c = cw.act(
        cid,
        "recheck",
        {"rechecked_at": "2026-12-01T16:00:00+08:00", "rectified": True, "findings": "已更换"},
        actor="张伟",
        version=5,
    )
    c = cw.act(cid, "close", {"outcome": "rectified"}, actor="张伟", note="整改到位", version=6)
    assert (c["status"], c["outcome"], c["version"]) == ("closed", "rectified", 7) and c["closed_ms"]
    trail = ledger.case_actions(cid)
    assert [a["action"] for a in trail] == [
        "open",
        "assign",
        "attach",
        "inspect",
        "record_statement",
        "order_rectification",
        "recheck",
        "close",
    ]
    assert [a["seq"] for a in trail] == list(range(1, 9))
    assert trail[3]["fields"]["inspected_at_ms"] == 1796092200000  # 10:30 in Shanghai, given without offset
    assert trail[3]["actor"] == "张伟" and trail[7]["note"] == "整改到位"
    view = cw.view(cid)
    assert view["lifecycle"]["inspection"]["inspected_at"] == "2026-12-01T10:30:00+08:00"
    assert view["lifecycle"]["closure"]["outcome"] == "rectified"
    assert view["allowed_actions"] == [] and view["summary"]["overdue"] is False
    assert [a["action"] for a in view["trail"]][-1] == "close"
    # closed is final
    with pytest.raises(IllegalAction, match="is closed"):
        cw.act(cid, "close", {"outcome": "rectified"}, actor="张伟")
    with pytest.raises(IllegalAction, match="closed"):
        cw.attach(cid, "x.png", "image/png", PNG, actor="张伟")


def test_refusals(ledger: Ledger) -> None:
    cw = Casework(ledger)
    cid = new_case(ledger)["case_id"]
    with pytest.raises(IllegalAction, match="inspect is not allowed on a case that is open"):
        cw.act(cid, "inspect", INSPECT, actor="a")
    with pytest.raises(IllegalAction, match="penalized needs an on-site inspection"):
        cw.act(
            cid,
            "close",
            {"outcome": "penalized", "decision_number": "朝城罚〔2026〕1号", "amount_yuan": 5000},
            actor="a",
        )
    with pytest.raises(BadFields, match="unknown action"):
        cw.act(cid, "approve", {}, actor="a")
    with pytest.raises(BadFields, match="assignee"):
        cw.act(cid, "assign", {"assignee": ""}, actor="a")
    with pytest.raises(BadFields, match="assign: status: Extra inputs are not permitted"):
        cw.act(cid, "assign", {"assignee": "b", "status": "closed"}, actor="a")
    with pytest.raises(CaseNotFound):
        cw.act("case-nope", "assign", {"assignee": "b"}, actor="a")
    cw.act(cid, "assign", {"assignee": "b"}, actor="a")
    with pytest.raises(BadFields, match="in the future"):
        cw.act(cid, "inspect", {**INSPECT, "inspected_at": "2099-01-01T10:00:00+08:00"}, actor="b")
    with pytest.raises(BadFields, match="attachments att-x are not on case"):
        cw.act(cid, "inspect", {**INSPECT, "attachments": ["att-x"]}, actor="b")
    cw.act(cid, "inspect", INSPECT, actor="b")
    with pytest.raises(BadFields, match="deadline 2020-01-01 is before today"):
        cw.act(cid, "order_rectification", {"deadline": "2020-01-01", "requirements": "x"}, actor="b")
    with pytest.raises(IllegalAction, match="rectified needs a recheck"):
        cw.act(cid, "close", {"outcome": "rectified"}, actor="b")
    with pytest.raises(BadFields, match="decision_number and amount_yuan are required"):
        cw.act(cid, "close", {"outcome": "penalized"}, actor="b")
    with pytest.raises(BadFields, match="two decimals"):
        cw.act(
            cid, "close", {"outcome": "penalized", "decision_number": "n", "amount_yuan": 1.234}, actor="b"
        )
    with pytest.raises(BadFields, match="exemption_item"):
        cw.act(cid, "close", {"outcome": "not_punished"}, actor="b")
    with pytest.raises(BadFields, match="do not apply"):
        cw.act(
            cid,
            "close",
            {"outcome": "not_punished", "exemption_item": "第3项", "amount_yuan": 100},
            actor="b",
        )
    with pytest.raises(IllegalAction, match="served closes owner_unreachable cases only"):
        cw.act(cid, "close", {"outcome": "served"}, actor="b")
    c = cw.act(
        cid,
        "close",
        {"outcome": "penalized", "decision_number": "朝城罚〔2026〕1号", "amount_yuan": 5000.5},
        actor="b",
    )
    assert (c["status"], c["outcome"]) == ("closed", "penalized")
    assert ledger.case_actions(cid)[-1]["fields"] == {
        "outcome": "penalized",
        "decision_number": "朝城罚〔2026〕1号",
        "amount_yuan": 5000.5,
    }
    # refused actions leave no trace
    assert [a["action"] for a in ledger.case_actions(cid)] == ["open", "assign", "inspect", "close"]


def test_stale_version_refused_and_the_trail_is_append_only(ledger: Ledger, state_url: str) -> None:
    cw = Casework(ledger)
    cid = new_case(ledger)["case_id"]
    cw.act(cid, "assign", {"assignee": "甲"}, actor="甲", version=1)
    with pytest.raises(StaleCase, match=r"at version 2, not 1: it was changed \(last by 甲 \(assign\)\)"):
        cw.act(cid, "assign", {"assignee": "乙"}, actor="乙", version=1)
    assert ledger.get_case(cid)["assignee"] == "甲"
    engine = ledger.engine
    for stmt in ("UPDATE case_actions SET actor = 'x'", "DELETE FROM case_actions"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(stmt))
    cw.attach(cid, "p.png", "image/png", PNG, actor="甲")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM case_attachments"))
    assert len(ledger.case_actions(cid)) == 3


_ACTOR = r"""
import sys, time
from alerts.casework import Casework
from alerts.ledger import Ledger
from alerts.ledger.casework import StaleCase
url, cid, name, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
led = Ledger(url)
while time.time() < start:
    time.sleep(0.001)
try:
    Casework(led).act(cid, "assign", {"assignee": name}, actor=name, version=1)
    print("won")
except StaleCase:
    print("stale")
led.close()
"""


def test_two_inspectors_at_once_cannot_both_win(ledger: Ledger, state_url: str) -> None:
    """Two processes act on version 1 at the same moment: one wins, the other is told it is stale."""
    import time

    cid = new_case(ledger)["case_id"]
    start = str(time.time() + 1.5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ACTOR, state_url, cid, name, start],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("甲", "乙")
    ]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["stale", "won"]
    trail = ledger.case_actions(cid)
    assert [a["action"] for a in trail] == ["open", "assign"] and ledger.get_case(cid)["version"] == 2


def test_dismissal_takes_the_events_off_the_ladder(ledger: Ledger) -> None:
    policy = LadderPolicy()
    t0 = now_ms() - 30 * 24 * H
    first = event("E1", t0)
    d1 = decide(ledger, first, policy)
    case = build_case(first, episodes=[{**d1.episode.as_dict(), "events": [{"event_id": "E1"}]}])
    ledger.upsert_case(case)
    cw = Casework(ledger)
    c = cw.act(
        case["case_id"],
        "close",
        {"outcome": "dismissed", "dismiss_reason": "device_fault"},
        actor="王",
        note="传感器故障，厂家报告编号 X-17",
    )
    assert c["outcome"] == "dismissed"
    assert ledger.dismissed_by("E1") == case["case_id"]
    assert ledger.list_events(restaurant_id="R1") == []  # reports and listings no longer count it
    assert [e.event_id for e in ledger.list_events(restaurant_id="R1", include_dismissed=True)] == ["E1"]
    assert ledger.list_episodes(restaurant_id="R1") == []
    # the restaurant's next offence is a first one again: education, not warning
    d2 = decide(ledger, event("E2", t0 + 10 * 24 * H), policy)
    assert (d2.episode.step, d2.episode.level) == (1, "education")
    with pytest.raises(BadFields, match="a note saying why"):
        cw.act(
            new_case(ledger, event("E3", t0 + 20 * 24 * H))["case_id"],
            "close",
            {"outcome": "dismissed", "dismiss_reason": "other"},
            actor="王",
        )


def test_owner_unreachable_tasks_are_cases(ledger: Ledger) -> None:
    e = event("E9")
    ledger.upsert_event(e)
    assert ledger.add_task(
        {
            "task_id": "owner_unreachable:ep-1",
            "kind": "owner_unreachable",
            "episode_id": "ep-1",
            "event_id": "E9",
            "start_ms": e.start_ms,
            "restaurant_id": "R1",
            "district": "朝阳区",
            "device_id": "D1",
        }
    )
    [c] = ledger.list_cases(case_type="owner_unreachable")
    assert (c["case_id"], c["status"], c["event_id"]) == ("case-owner_unreachable:ep-1", "open", "E9")
    ledger.upsert_case(build_case(e))  # the enforcement case of the same lead event: both exist
    assert len(ledger.list_cases()) == 2
    cw = Casework(ledger)
    with pytest.raises(IllegalAction, match="closes as served or dismissed"):
        cw.act(
            c["case_id"],
            "close",
            {"outcome": "penalized", "decision_number": "x", "amount_yuan": 1},
            actor="a",
        )
    done = cw.act(c["case_id"], "close", {"outcome": "served"}, actor="a", note="已现场送达，店主签收")
    assert done["outcome"] == "served"


def test_attachment_checks() -> None:
    assert check("a.jpg", "image/jpeg", JPEG) == ("a.jpg", "image/jpeg")
    assert check("", "application/octet-stream", PNG) == ("attachment.png", "image/png")
    with pytest.raises(BadFields, match="declared image/png but its content is image/jpeg"):
        check("a.png", "image/png", JPEG)
    with pytest.raises(BadFields, match="not a JPEG, PNG, WebP or PDF"):
        check("a.exe", "image/jpeg", b"MZ\x90\x00")
    with pytest.raises(BadFields, match="limit is 50"):
        check("a.jpg", "image/jpeg", JPEG, max_bytes=50)
    with pytest.raises(BadFields, match="empty"):
        check("a.jpg", "image/jpeg", b"")
