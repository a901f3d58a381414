"""The owner's page (issue 15) on the real `fumewatch api` process, SQLite and PostgreSQL: the capability
link (valid, another restaurant's, expired, revoked, tampered), both uploads with good and hostile files,
the receipts (page and a real HTTP receiver on the owner's channel), the case trail of a submission, and
that the owner's submission alone never closes a case."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from casedata import exceedance
from receivers import webhook_receiver
from test_api import start_api, stop_api

from alerts.casework import Casework
from alerts.casework.lifecycle import IllegalAction
from alerts.enforcement.episodes import LadderPolicy, decide
from alerts.ledger import Ledger
from alerts.owner.links import OwnerLinks
from alerts.owner.settings import OwnerSettings
from ingest.timeutil import now_ms

pytestmark = pytest.mark.integration

H = 3_600_000
SECRET = "owner-link-secret-for-the-tests-0123456789abcdef"
INSPECTOR = "insp-owner-page-token-0123456789"


def jpeg(extra: bytes = b"") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue() + extra


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def owner_api(tmp_path: Path, state_url: str) -> Iterator[tuple[object, Ledger, OwnerLinks, object]]:
    with webhook_receiver() as hook:
        reg = tmp_path / "registry.csv"
        reg.write_text(
            "restaurant_id,name,district,device_id,stove_heads,owner_notify\n"
            f"R1,老王牛肉面,朝阳区,D1,2,{hook.url('/owner1')}\n"
            "R2,川味小馆,海淀区,D2,3,\n",
            encoding="utf-8",
        )
        led = Ledger(state_url)
        for rid, dev in (("R1", "D1"), ("R2", "D2")):
            e = exceedance(start=now_ms() - 5 * H, restaurant=rid, device=dev)
            e.level = ""
            decide(led, e, LadderPolicy())  # a first episode: education, no case yet
        srv = start_api(
            tmp_path,
            state_url,
            reg,
            FUMEWATCH_OWNER_PUBLIC_URL="http://127.0.0.1",
            FUMEWATCH_OWNER_LINK_SECRET=SECRET,
            FUMEWATCH_OWNER_MAX_UPLOAD_BYTES=str(256 * 1024),
            FUMEWATCH_INSPECTOR_TOKENS=f"张伟:{INSPECTOR}",
            FUMEWATCH_API_AUTH_FAIL_LIMIT="1000",
        )
        links = OwnerLinks(led, OwnerSettings(public_url="http://127.0.0.1"), SECRET)
        try:
            yield srv, led, links, hook
        finally:
            stop_api(srv)
            led.close()


def path_of(url: str) -> str:
    return url.removeprefix("http://127.0.0.1")


def test_the_link_opens_one_restaurant_and_nothing_else(owner_api) -> None:
    srv, led, links, _ = owner_api
    url, _exp = links.for_notice("R1", "exceedance:D1:oil_fume:1:opened")
    r = httpx.get(srv.url + path_of(url), timeout=30)
    assert r.status_code == 200, r.text
    assert "老王牛肉面" in r.text and "川味小馆" not in r.text and "R2" not in r.text
    assert "第一步：教育劝导" in r.text and "整改期限" in r.text and "+08:00" in r.text
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src" not in r.headers["Content-Security-Policy"]  # the page has no script at all
    # R2's own link shows R2 only
    url2, _ = links.for_notice("R2", "exceedance:D2:oil_fume:1:opened")
    r2 = httpx.get(srv.url + path_of(url2), timeout=30)
    assert "川味小馆" in r2.text and "老王牛肉面" not in r2.text
    # tampered: any changed byte of the token, a token for R2 with R1's name in it, garbage
    token = path_of(url).removeprefix("/o/")
    body, sig = token.split(".")
    for bad in (body + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB"), "garbage", body + ".x"):
        r = httpx.get(f"{srv.url}/o/{bad}", timeout=30)
        assert r.status_code == 404 and "链接无效" in r.text and "老王牛肉面" not in r.text
    # expired
    row = led.issue_owner_link(
        link_id="lexpired", restaurant_id="R1", notice_key="", issued_ms=1, expires_ms=now_ms() - 1000
    )
    r = httpx.get(srv.url + path_of(links.url(row)), timeout=30)
    assert r.status_code == 410 and "已过期" in r.text and "老王牛肉面" not in r.text
    # revoked: at once, in the serving process
    assert led.revoke_owner_links(at_ms=now_ms(), by="ops", reason="owner changed", restaurant_id="R1") >= 1
    r = httpx.get(srv.url + path_of(url), timeout=30)
    assert r.status_code == 410 and "已停用" in r.text
    # the access log names the link, never the token
    log = srv.log.read_text(encoding="utf-8")
    assert token not in log and "/o/link:" in log


def test_evidence_and_statement_land_on_the_steps_case_with_receipts(owner_api) -> None:
    srv, led, links, hook = owner_api
    url, _ = links.for_notice("R1", "exceedance:D1:oil_fume:2:opened")
    p = path_of(url)
    polyglot = jpeg(b"<script>alert(1)</script><?php system($_GET['c']); ?>")
    files = [
        ("files", ("净化器清洗后.jpg", polyglot, "image/jpeg")),
        ("files", ("发票.pdf", PDF, "application/pdf")),
    ]
    r = httpx.post(srv.url + p + "/evidence", data={"text": "已清洗电场"}, files=files, timeout=30)
    assert r.status_code == 303, r.text
    page = httpx.get(srv.url + r.headers["location"], timeout=30).text
    assert "已收到" in page and "附件 2 个" in page
    subs = led.list_owner_submissions(restaurant_id="R1")
    assert len(subs) == 1 and subs[0]["kind"] == "evidence"
    case_id = subs[0]["case_id"]
    assert case_id.startswith("case-rectification:episode:R1:")
    case = led.get_case(case_id)
    assert case["case_type"] == "rectification" and case["status"] == "open"
    trail = led.case_actions(case_id)
    ev = [a for a in trail if a["action"] == "owner_evidence"]
    assert len(ev) == 1 and ev[0]["actor"] == "owner" and ev[0]["fields"]["source"] == "owner_page"
    # the photo was re-encoded: the script and the PHP did not survive; the PDF is kept as sent
    atts = {a["content_type"]: a for a in led.case_attachments(case_id)}
    photo = led.case_attachment_data(case_id, atts["image/jpeg"]["attachment_id"])[1]
    assert b"<script>" not in photo and b"<?php" not in photo and photo != polyglot
    assert led.case_attachment_data(case_id, atts["application/pdf"]["attachment_id"])[1] == PDF
    # the receipt reached the owner's channel, once
    deadline = time.monotonic() + 20
    while not hook.bodies("/owner1") and time.monotonic() < deadline:
        time.sleep(0.2)
    bodies = hook.bodies("/owner1")
    assert (
        len(bodies) == 1
        and "已收到" in bodies[0]["title"]
        and subs[0]["submission_id"] in bodies[0]["message"]
    )
    # a statement lands on the same case
    r = httpx.post(srv.url + p + "/statement", data={"text": "当日设备校准，数据异常"}, timeout=30)
    assert r.status_code == 303
    assert [a["action"] for a in led.case_actions(case_id)].count("owner_statement") == 1
    # the owner's submission alone never closes the case; an inspector's review does
    cw = Casework(led)
    with pytest.raises(IllegalAction):
        cw.act(case_id, "close", {"outcome": "rectified"}, actor="张伟")
    with pytest.raises(IllegalAction):  # an inspector cannot pose as the owner
        cw.act(case_id, "owner_statement", {}, actor="张伟")
    cw.act(
        case_id,
        "review_submission",
        {"submission_id": subs[0]["submission_id"], "rectified": True, "findings": "照片显示已清洗"},
        actor="张伟",
    )
    cw.act(case_id, "close", {"outcome": "rectified"}, actor="张伟")
    ep = led.get_episode(case["step"]["episode_id"])
    assert (
        ep.record["rectification"]["in_time"] is True and ep.record["rectification"]["confirmed_by"] == "张伟"
    )
    page = httpx.get(srv.url + p, timeout=30).text
    assert "核实结果：整改到位" in page and "已结案" in page
    # the case file's on-site record (section 四) prints the owner's evidence and the review
    import shutil
    import subprocess
    import zipfile

    from alerts.casework.case_zip import build_case_zip

    _, data = build_case_zip(
        Casework(led, "Asia/Shanghai").view(case_id),
        led,
        store=None,
        tz="Asia/Shanghai",
        names={"R1": "老王牛肉面"},
    )
    pdf = zipfile.ZipFile(io.BytesIO(data)).read("case.pdf")
    exe = shutil.which("pdftotext")
    if exe is not None:  # poppler-utils: .ci/run installs it
        text = subprocess.run(
            [exe, "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
        ).stdout
        text = text.decode("utf-8")
        assert "当事人网上提交的整改材料" in text and subs[0]["submission_id"] in text
        assert "照片显示已清洗" in text and "已清洗电场" in text and "SHA-256" in text


@pytest.mark.parametrize(
    ("name", "data", "ctype", "why"),
    [
        ("big.jpg", jpeg(b"\0" * (300 * 1024)), "image/jpeg", "超过"),
        ("page.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg", "不是 JPEG"),
        ("x.gif", b"GIF89a" + b"\0" * 64, "image/gif", "不是 JPEG"),
        ("fake.png", jpeg(), "image/png", "不符"),
        ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x01" * 500, "image/jpeg", "无法识别"),
        ("cut.pdf", b"%PDF-1.4\n1 0 obj", "application/pdf", "不是完整的 PDF"),
    ],
)
def test_hostile_uploads_are_refused_with_a_reason(owner_api, name, data, ctype, why) -> None:
    srv, led, links, _ = owner_api
    url, _ = links.for_notice("R1", f"hostile:{name}:opened")
    r = httpx.post(srv.url + path_of(url) + "/evidence", files=[("files", (name, data, ctype))], timeout=30)
    assert r.status_code == 400 and why in r.text, r.text[-500:]
    assert led.list_owner_submissions(restaurant_id="R1") == []


def test_cross_site_posts_are_refused(owner_api) -> None:
    srv, led, links, _ = owner_api
    url, _ = links.for_notice("R1", "xsite:opened")
    r = httpx.post(
        srv.url + path_of(url) + "/statement",
        data={"text": "x"},
        headers={"Sec-Fetch-Site": "cross-site"},
        timeout=30,
    )
    assert r.status_code == 403 and led.list_owner_submissions(restaurant_id="R1") == []


def test_a_maintenance_reminder_is_shown_as_service_not_a_step(owner_api) -> None:
    from casedata import reminder

    srv, led, links, _ = owner_api
    judged = {"basis": "level", "services": 3, "mean_mg_m3": 1.7, "share_of_limit": 0.8}
    led.upsert_event(reminder(now_ms() - 2 * H, judged, mean_mg_m3=1.7))
    url, _ = links.for_notice("R1", "maintenance:D1:1:opened")
    r = httpx.get(srv.url + path_of(url), timeout=30)
    assert r.status_code == 200, r.text
    assert "清洗提醒" in r.text and "近 3 个有效营业时段的平均值为 1.70 mg/m³，超过限值的 80 %" in r.text
    assert "不是处罚" in r.text and "第一步：教育劝导" in r.text  # R1's step is still its own, unchanged
