"""The case routes of the real `fumewatch api` process (issue 12), on SQLite and PostgreSQL: list, read,
act (403 for a read token, 409 stale or illegal, 400 bad fields), attachments (type and size checked)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from casedata import exceedance, open_case
from test_api import TOKEN, start_api, stop_api

from alerts.ledger import Ledger
from ingest.timeutil import now_ms

pytestmark = pytest.mark.integration

H = 3_600_000
INSPECTOR = "insp-" + secrets.token_urlsafe(24)
INSPECTOR2 = "insp2-" + secrets.token_urlsafe(24)
REGISTRY = (
    "restaurant_id,name,district,device_id,stove_heads\nR1,老王牛肉面,朝阳区,D1,2\nR2,川味小馆,海淀区,D2,3\n"
)
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 2000


@pytest.fixture
def served(tmp_path: Path, state_url: str) -> Iterator[tuple[object, list[str]]]:
    reg = tmp_path / "registry.csv"
    reg.write_text(REGISTRY, encoding="utf-8")
    ids = []
    with Ledger(state_url) as led:
        for i, (rid, district) in enumerate((("R1", "朝阳区"), ("R2", "海淀区"))):
            e = exceedance(
                start=now_ms() - (10 - i) * H, restaurant=rid, device=f"D{i + 1}", district=district
            )
            ids.append(open_case(led, e)["case_id"])
    srv = start_api(
        tmp_path,
        state_url,
        reg,
        FUMEWATCH_INSPECTOR_TOKENS=f"张伟:{INSPECTOR}, 李娜:{INSPECTOR2}",
        FUMEWATCH_API_MAX_ATTACHMENT_BYTES="4096",
        FUMEWATCH_API_AUTH_FAIL_LIMIT="1000",
    )
    try:
        yield srv, ids
    finally:
        stop_api(srv)


def call(srv, method: str, path: str, token: str = INSPECTOR, **kw) -> httpx.Response:
    return httpx.request(
        method, srv.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw
    )


def test_inspectors_work_a_case_over_http(served) -> None:
    srv, (cid, other) = served
    r = call(srv, "GET", "/api/v1/cases", token=TOKEN)
    assert r.status_code == 200
    rows = r.json()
    assert [(c["case_id"], c["status"], c["name"]) for c in rows] == [
        (cid, "open", "老王牛肉面"),
        (other, "open", "川味小馆"),
    ]
    assert [
        c["case_id"] for c in call(srv, "GET", "/api/v1/cases", params={"district": "海淀区"}).json()
    ] == [other]
    assert call(srv, "GET", "/api/v1/cases", params={"status": "nonsense"}).status_code == 400
    # a read token reads but may not act
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/actions",
        token=TOKEN,
        json={"action": "assign", "version": 1, "assignee": "x"},
    )
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/actions",
        json={"action": "assign", "version": 1, "assignee": "张伟", "note": "请尽快"},
    )
    assert r.status_code == 200, r.text
    case = r.json()
    assert (case["summary"]["status"], case["summary"]["assignee"], case["summary"]["version"]) == (
        "assigned",
        "张伟",
        2,
    )
    assert case["trail"][-1]["actor"] == "张伟" and case["trail"][-1]["at"].endswith("+08:00")
    # another inspector acting on what they read before: 409, nothing changes
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/actions",
        token=INSPECTOR2,
        json={"action": "assign", "version": 1, "assignee": "李娜"},
    )
    assert r.status_code == 409 and r.json()["error"] == "stale_version" and "张伟" in r.json()["detail"]
    # illegal transition and bad fields
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/actions",
        json={"action": "recheck", "version": 2, "rectified": True},
    )
    assert r.status_code == 409 and r.json()["error"] == "illegal_transition"
    r = call(
        srv, "POST", f"/api/v1/cases/{cid}/actions", json={"action": "inspect", "version": 2, "findings": "x"}
    )
    assert r.status_code == 400 and "inspect: inspected_at" in r.json()["detail"]
    assert call(srv, "POST", f"/api/v1/cases/{cid}/actions", content=b"not json").status_code == 400
    assert (
        call(
            srv, "POST", f"/api/v1/cases/{cid}/actions", json={"action": "assign", "assignee": "x"}
        ).status_code
        == 400
    )
    assert (
        call(
            srv,
            "POST",
            "/api/v1/cases/case-nope/actions",
            json={"action": "assign", "version": 1, "assignee": "x"},
        ).status_code
        == 404
    )
    # attachments: a photo, a fake one, a too large one
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/attachments",
        files={"file": ("现场照片.jpg", JPEG, "image/jpeg")},
        data={"note": "后厨"},
    )
    assert r.status_code == 201, r.text
    photo = r.json()
    assert photo["filename"] == "现场照片.jpg" and len(photo["sha256"]) == 64
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/attachments",
        files={"file": ("x.jpg", b"MZ\x90\x00" * 10, "image/jpeg")},
    )
    assert r.status_code == 400 and "not a JPEG" in r.json()["detail"]
    r = call(
        srv, "POST", f"/api/v1/cases/{cid}/attachments", files={"file": ("big.jpg", JPEG * 3, "image/jpeg")}
    )
    assert r.status_code == 413
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/attachments",
        token=TOKEN,
        files={"file": ("x.jpg", JPEG, "image/jpeg")},
    )
    assert r.status_code == 403
    got = call(srv, "GET", f"/api/v1/cases/{cid}/attachments/{photo['attachment_id']}", token=TOKEN)
    assert got.status_code == 200 and got.content == JPEG and got.headers["content-type"] == "image/jpeg"
    assert got.headers["x-sha256"] == photo["sha256"]
    inspect = {
        "action": "inspect",
        "version": 2,
        "inspected_at": "2026-12-01T10:30:00+08:00",
        "findings": "净化器未开启",
        "purifier": "not_working",
        "fan": "working",
        "attachments": [photo["attachment_id"]],
    }
    r = call(srv, "POST", f"/api/v1/cases/{cid}/actions", json=inspect)
    assert r.status_code == 200, r.text
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/actions",
        json={
            "action": "close",
            "version": 3,
            "outcome": "penalized",
            "decision_number": "朝城管罚字〔2026〕第018号",
            "amount_yuan": 5000,
        },
    )
    assert r.status_code == 200, r.text
    full = call(srv, "GET", f"/api/v1/cases/{cid}", token=TOKEN).json()
    assert full["summary"]["status"] == "closed" and full["summary"]["outcome"] == "penalized"
    assert [a["action"] for a in full["trail"]] == ["open", "assign", "attach", "inspect", "close"]
    assert [a["actor"] for a in full["trail"]] == ["system", "张伟", "张伟", "张伟", "张伟"]
    assert full["lifecycle"]["inspection"]["inspected_at"] == "2026-12-01T10:30:00+08:00"
    assert (
        full["attachments"][0]["attachment_id"] == photo["attachment_id"]
        and "data" not in full["attachments"][0]
    )
    assert full["allowed_actions"] == []
    r = call(
        srv,
        "POST",
        f"/api/v1/cases/{cid}/actions",
        json={"action": "close", "version": 4, "outcome": "rectified"},
    )
    assert r.status_code == 409 and "is closed" in r.json()["detail"]
    assert "Bearer" not in srv.log.read_text() and INSPECTOR not in srv.log.read_text()
