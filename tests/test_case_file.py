"""The case file (执法案卷, issue 12) of a real case on SQLite and PostgreSQL: the real Notifier opens it
(education, warning, enforcement, notices to a real webhook), the deciding windows' readings are in a real
SQLite readings store, inspectors act on it and attach a real JPEG. The zip is checked with the real
``sha256sum -c``, the PDF rendered with ``pdftoppm`` and read with ``pdftotext``, and the route is called
on the real ``fumewatch api`` process."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from alerts.casework import Casework
from alerts.casework.case_zip import build_case_zip
from alerts.ledger import Ledger
from alerts.model import EXCEEDANCE, Event, Transition, WindowResult
from ingest.model import Reading
from ingest.registry import Device
from ingest.store import open_store
from ingest.store.base import Store
from ingest.timeutil import parse_time

pytest.importorskip("apprise", reason="apprise not installed (the Notifier sends the notices)")

TZ = "Asia/Shanghai"
M, W, DAY = 60_000, 600_000, 86_400_000
T0 = parse_time("2026-10-20T12:30:00+08:00")  # education; warning 8 days later, enforcement 16 days later
T3 = T0 + 16 * DAY  # 2026-11-05 12:30 local: the enforcement event and its three deciding windows
MEANS = (2.5, 3.0, 2.8)  # window means of the reference concentration, mg/m3
OFFSETS = (-0.2, -0.1, 0.0, 0.1, 0.2, -0.2, -0.1, 0.0, 0.1, 0.2)  # one reading a minute, mean 0
NAME = "老王牛肉面"
FINDING = "净化器滤网堵塞，净化器未开启"
DECISION = "朝城管罚字〔2026〕第018号"


@dataclass
class World:
    ledger: Ledger
    store: Store
    store_path: Path
    case_id: str
    state: str


def device(owner: str) -> Device:
    return Device(
        "R1", NAME, "朝阳区", "D1", 2, address="朝阳路 1 号", owner_name="王先生", owner_notify=owner
    )


def readings() -> list[Reading]:
    """30 readings of D1 over the three windows: C_ref = window mean + offset, Q 4500 m3/h, n 2."""
    out = []
    for k, mean in enumerate(MEANS):
        for i, off in enumerate(OFFSETS):
            ref = round(mean + off, 3)
            out.append(
                Reading(
                    T3 + k * W + i * M,
                    "D1",
                    "R1",
                    "朝阳区",
                    round(ref * 4000 / 4500, 4),
                    ref,
                    True,
                    flow_m3_h=4500.0,
                    fan_on=True,
                    purifier_on=False if i < 8 else None,
                )
            )
    return out


@pytest.fixture
def world(state_url: str, tmp_path: Path, webhook) -> Iterator[World]:
    from alerts.enforcement.notify import Notifier, NotifySettings

    store_path = tmp_path / "readings.db"
    store = open_store(str(store_path))
    store.write([("batch-1", readings())])
    led = Ledger(state_url)
    settings = NotifySettings(
        retry_backoff_s=0.01, timeout_s=3, inspector_targets=[webhook.url("/inspector")]
    )

    def readings_of(dev: str, since: int, until: int) -> list[dict]:
        return store.query(device_id=dev, since_ms=since, until_ms=until)

    n = Notifier(settings, led, readings_of=readings_of)
    dev = device(webhook.url("/owner"))

    def exceedance(start: int) -> Event:
        return Event(
            event_id=f"exceedance:D1:oil_fume:{start}",
            kind=EXCEEDANCE,
            restaurant_id="R1",
            device_id="D1",
            district="朝阳区",
            start_ms=start,
            pollutant="oil_fume",
            peak_mg_m3=3.0,
            mean_mg_m3=2.767,
            limit_mg_m3=2.0,
            profile="gb18483",
            rule="gb18483",
        )

    for k in (0, 8):
        e = exceedance(T0 + k * DAY)
        n.notify(Transition(e, "opened", e.start_ms + 30 * M), dev)
    led.add_windows(
        [
            WindowResult("D1", T3 + k * W, T3 + (k + 1) * W, 10, 10, True, "", m, round(m + 0.2, 3), True)
            for k, m in enumerate(MEANS)
        ]
    )
    e3 = exceedance(T3)
    n.notify(Transition(e3, "opened", e3.start_ms + 30 * M), dev)
    [case] = led.list_cases(restaurant_id="R1")
    try:
        yield World(led, store, store_path, case["case_id"], state_url)
    finally:
        store.close()
        led.close()


def jpeg() -> bytes:
    """A real small JPEG photo (PIL, which matplotlib depends on)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (480, 320), "#d9d2c5")
    draw = ImageDraw.Draw(img)
    draw.rectangle((60, 40, 420, 200), fill="#6c757d", outline="#343a40", width=6)  # the hood
    draw.ellipse((200, 90, 280, 170), fill="#343a40")  # the fan
    draw.rectangle((0, 260, 480, 320), fill="#8d6e63")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def png() -> bytes:
    """A real small PNG with transparency (a screenshot of the monitor, say)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (200, 120), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((10, 10, 190, 110), fill=(31, 78, 120, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


#: Starts like a JPEG (the upload check passes) but is not one: the PDF must say it cannot show it.
DAMAGED_JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200


def work_the_case(led: Ledger, case_id: str) -> dict:
    """Assign, attach photos (one damaged) and a PDF document, inspect, record the owner's statement,
    close penalized."""
    cw = Casework(led, TZ)
    cw.act(case_id, "assign", {"assignee": "张伟"}, actor="李娜", note="请尽快到现场")
    photo = cw.attach(case_id, "后厨排烟罩.jpg", "image/jpeg", jpeg(), actor="张伟", note="后厨排烟罩")
    doc = cw.attach(case_id, "检测报告.pdf", "application/pdf", b"%PDF-1.4\n% a document\n", actor="张伟")
    cw.attach(case_id, "监测仪截图.png", "image/png", png(), actor="张伟")
    cw.attach(case_id, "损坏.jpg", "image/jpeg", DAMAGED_JPEG, actor="张伟")
    cw.act(
        case_id,
        "inspect",
        {
            "inspected_at": "2026-12-01T10:30:00",
            "findings": f"{FINDING}；排烟风机正常运行，排烟口有明显油渍。",
            "purifier": "not_working",
            "fan": "working",
            "attachments": [photo["attachment_id"]],
        },
        actor="张伟",
        note="店主在场",
    )
    cw.act(
        case_id,
        "record_statement",
        {"statement": "滤网已订购，三日内更换。", "form": "oral", "given_at": "2026-12-01T11:00:00+08:00"},
        actor="张伟",
    )
    cw.act(
        case_id,
        "close",
        {"outcome": "penalized", "decision_number": DECISION, "amount_yuan": 5000},
        actor="张伟",
        note="大气污染防治法第一百一十八条",
    )
    return {"photo": photo, "doc": doc}


def unzip(data: bytes, into: Path) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        zf.extractall(into)
    return names


def sha256sum_check(folder: Path) -> str:
    exe = shutil.which("sha256sum")
    if exe is None:
        pytest.skip("sha256sum (GNU coreutils) is not installed")
    proc = subprocess.run(
        [exe, "-c", "manifest.sha256"], cwd=folder, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def pdf_pages(pdf: Path, out: Path) -> list[Path]:
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    subprocess.run([exe, "-r", "100", "-png", str(pdf), str(out / "page")], check=True, timeout=120)
    return sorted(out.glob("page-*.png"))


def pdf_text(pdf: Path) -> str | None:
    exe = shutil.which("pdftotext")
    if exe is None:
        return None
    return subprocess.run(
        [exe, "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True, timeout=60
    ).stdout.decode("utf-8")


def test_the_case_file_holds_the_evidence_and_verifies(world: World, tmp_path: Path) -> None:
    work_the_case(world.ledger, world.case_id)
    view = Casework(world.ledger, TZ).view(world.case_id)
    name, data = build_case_zip(view, world.ledger, store=world.store, tz=TZ, names={"R1": NAME})
    assert re.fullmatch(r"案卷-case-exceedance_D1_oil_fume_1793853000000-\d{4}-\d\d-\d\d\.zip", name), name
    out = tmp_path / "unzipped"
    names = unzip(data, out)
    atts = {a["attachment_id"]: a for a in view["attachments"]}
    att_paths = sorted(f"attachments/{a['attachment_id']}-{a['filename']}" for a in atts.values())
    assert names == sorted(
        [*att_paths, "case.json", "case.pdf", "manifest.json", "manifest.sha256", "readings.csv"]
    )

    # the real sha256sum verifies every file; the attachments' hashes are the ones stored at upload
    checked = sha256sum_check(out)
    assert checked.count(": OK") == len(names) - 2 and "case.pdf: OK" in checked
    lines = (out / "manifest.sha256").read_text(encoding="utf-8").splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    assert sorted(listed) == sorted(n for n in names if not n.startswith("manifest."))
    for aid, a in atts.items():
        path = f"attachments/{aid}-{a['filename']}"
        assert listed[path] == a["sha256"] == hashlib.sha256((out / path).read_bytes()).hexdigest()
        assert (out / path).read_bytes() == world.ledger.case_attachment_data(world.case_id, aid)[1]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["case_id"] == world.case_id and manifest["case_version"] == view["case"]["version"] == 5
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?\+08:00", manifest["generated"])
    assert manifest["generator"].startswith("fumewatch ")
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == listed
    assert all(f["size_bytes"] == (out / f["path"]).stat().st_size for f in manifest["files"])
    assert all(a["matches_upload"] for a in manifest["attachments"]) and len(manifest["attachments"]) == 4
    assert manifest["readings"] == {"source": "store", "count": 30}

    # readings.csv: the raw readings of the deciding windows, UTF-8 with BOM, local time with offset + UTC ms
    raw = (out / "readings.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    stored = world.store.query(device_id="D1", since_ms=T3, until_ms=T3 + 3 * W)
    assert len(rows) == len(stored) == 30
    first, last = rows[0], rows[-1]
    assert (first["time"], first["time_ms"]) == ("2026-11-05T12:30:00+08:00", str(T3))
    assert (last["time"], last["window_start"]) == ("2026-11-05T12:59:00+08:00", "2026-11-05T12:50:00+08:00")
    assert [float(r["oil_fume_ref_mg_m3"]) for r in rows] == [r["oil_fume_ref_mg_m3"] for r in stored]
    assert [float(r["oil_fume_mg_m3"]) for r in rows] == [r["oil_fume_mg_m3"] for r in stored]
    assert {r["flow_m3_h"] for r in rows} == {"4500.0"} and {r["fan_on"] for r in rows} == {"true"}
    assert [r["purifier_on"] for r in rows[:10]] == ["false"] * 8 + ["", ""]
    assert {r["device_id"] for r in rows} == {"D1"}

    # case.json: the view, times as ms and local
    doc = json.loads((out / "case.json").read_text(encoding="utf-8"))
    assert doc["case"]["case_id"] == world.case_id and doc["summary"]["name"] == NAME
    assert doc["case"]["start_ms"] == T3 and doc["case"]["start_local"] == "2026-11-05T12:30:00+08:00"
    assert doc["lifecycle"]["inspection"]["inspected_at_ms"] == parse_time("2026-12-01T10:30:00+08:00")
    assert doc["lifecycle"]["inspection"]["inspected_at_local"] == "2026-12-01T10:30:00+08:00"
    assert [a["action"] for a in doc["trail"]] == [
        "open",
        "assign",
        "attach",
        "attach",
        "attach",
        "attach",
        "inspect",
        "record_statement",
        "close",
    ]

    # case.pdf: more than one page, and it says what the ledger holds
    pages = pdf_pages(out / "case.pdf", tmp_path)
    assert len(pages) > 1
    kept = tmp_path / "case-file-page-1.png"
    shutil.copy(pages[0], kept)
    print(f"rendered page: {kept}")
    text = pdf_text(out / "case.pdf")
    if text is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: the PDF's text is not checked")
    for s in (
        world.case_id,
        NAME,
        FINDING,
        DECISION,
        "5,000.00 元",
        "2026-12-01T10:30:00+08:00",  # the inspection, local with its offset
        "2026-11-05T12:30:00+08:00",  # the first deciding window
        "GB 18483-2001 第 6 章",  # the rule's source
        "滤网已订购",  # the owner's statement
        "后厨排烟罩.jpg",
        "监测仪截图.png",
        "照片无法显示",  # the damaged one, listed with its hash but not drawn
        *(a["sha256"] for a in atts.values()),
        "原始读数：读数存储中判定窗口时段内共 30 条",
        "已发送 sent",  # the receipts
        "行政处罚 penalized",
        "第 1 页 / 共",
    ):
        assert s in text, s
    assert "+08:00" in text and "UTC" not in text.replace("UTC+08:00", "")


def test_two_exports_of_an_unchanged_case_differ_only_in_the_generation_time(world: World) -> None:
    import time

    work_the_case(world.ledger, world.case_id)
    cw = Casework(world.ledger, TZ)
    a = build_case_zip(cw.view(world.case_id), world.ledger, store=world.store, tz=TZ, names={"R1": NAME})[1]
    time.sleep(1.1)
    b = build_case_zip(cw.view(world.case_id), world.ledger, store=world.store, tz=TZ, names={"R1": NAME})[1]
    za, zb = zipfile.ZipFile(io.BytesIO(a)), zipfile.ZipFile(io.BytesIO(b))
    assert za.namelist() == zb.namelist() == sorted(za.namelist())
    assert [i.date_time for i in za.infolist()] == [i.date_time for i in zb.infolist()]
    differ = [n for n in za.namelist() if za.read(n) != zb.read(n)]
    assert differ == ["manifest.json"]
    ma, mb = json.loads(za.read("manifest.json")), json.loads(zb.read("manifest.json"))
    assert ma.pop("generated") != mb.pop("generated") and ma == mb


def test_without_a_store_and_without_casework_nothing_is_made_up(world: World, tmp_path: Path) -> None:
    """No readings store: the CSV holds the windows under a comment line, the chart the windows' means;
    a case nobody worked on says there is no inspection and no closure (here in UTC, the display zone)."""
    view = Casework(world.ledger, "UTC").view(world.case_id)
    _, data = build_case_zip(view, world.ledger, store=None, tz="UTC", names={})
    out = tmp_path / "unzipped"
    names = unzip(data, out)
    assert names == ["case.json", "case.pdf", "manifest.json", "manifest.sha256", "readings.csv"]
    sha256sum_check(out)
    text = (out / "readings.csv").read_bytes().decode("utf-8")
    assert text.startswith("\ufeff# ") and "raw readings are not available" in text.splitlines()[0]
    rows = list(csv.DictReader(io.StringIO(text.split("\r\n", 1)[1])))
    assert [float(r["mean_mg_m3"]) for r in rows] == list(MEANS)
    assert rows[0]["window_start"] == "2026-11-05T04:30:00+00:00" and rows[0]["window_start_ms"] == str(T3)
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["readings"]["source"] == "none"
    pdf = pdf_text(out / "case.pdf")
    if pdf is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: the PDF's text is not checked")
    for s in (
        "未提供读数存储",
        "无现场检查记录",
        "尚未结案",
        "未指派",
        "本案无照片或附件",
        "登记簿中无该单位名称",
        "2026-11-05T04:30:00+00:00",
    ):
        assert s in pdf, s
    assert "+08:00" not in pdf


# ---------------------------------------------------------------------------------------------------------
# the route, on the real `fumewatch api` process
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_case_file_route(world: World, tmp_path: Path) -> None:
    import httpx
    from test_api import TOKEN, start_api, stop_api

    work_the_case(world.ledger, world.case_id)
    world.store.flush()
    reg = tmp_path / "registry.csv"
    reg.write_text(
        f"restaurant_id,name,district,device_id,stove_heads\nR1,{NAME},朝阳区,D1,2\n", encoding="utf-8"
    )
    srv = start_api(tmp_path, world.state, reg, FUMEWATCH_INGEST_STORE=str(world.store_path))
    try:

        def get(path: str, token: str | None = TOKEN) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.get(srv.url + path, headers=headers, timeout=120)

        r = get(f"/api/v1/cases/{world.case_id}/file")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
        disposition = r.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="') and "filename*=UTF-8''" in disposition
        assert quote("案卷-case-exceedance_D1_oil_fume_1793853000000-") in disposition
        out = tmp_path / "from-api"
        unzip(r.content, out)
        sha256sum_check(out)
        rows = list(csv.DictReader(io.StringIO((out / "readings.csv").read_text(encoding="utf-8-sig"))))
        assert len(rows) == 30  # the API's readings store ([ingest] store)
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["restaurant_name"] == NAME and manifest["case_version"] == 5
        assert get("/api/v1/cases/case-nope/file").status_code == 404
        assert get(f"/api/v1/cases/{world.case_id}/file", token=None).status_code == 401
    finally:
        stop_api(srv)
