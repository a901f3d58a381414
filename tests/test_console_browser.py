"""The web console in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium; never
`playwright install`) against the real `fumewatch api` process on SQLite and PostgreSQL.

An inspector signs in, finds the case with the filter, assigns it, inspects with a photo upload, orders
rectification, records the owner's statement, rechecks (another photo) and closes it; the audit trail is
checked on the page and in the ledger. A second inspector's form, opened before, gets the "someone else
changed this case; reload" page (409). A read token sees no forms. On a phone viewport (390x844) no page
scrolls sideways. Full-page screenshots (desktop and phone) go to a directory the test prints and are
copied to /tmp/fumewatch-console-screens/<backend>/.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_api import TOKEN
from test_console import INSPECTOR, INSPECTOR2, serving, tiny_png

from alerts.ledger import Ledger
from ingest.timeutil import zone

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
COPY_TO = Path("/tmp/fumewatch-console-screens")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def browser():
    reason = ""
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = reason or "playwright (Python) is not installed: pip install -e '.[test]'"
    if reason:
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: CI must provide it)", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Shots:
    def __init__(self, tmp_path: Path, backend: str) -> None:
        self.dir = tmp_path / "screens"
        self.dir.mkdir()
        self.copy = COPY_TO / backend
        shutil.rmtree(self.copy, ignore_errors=True)
        self.copy.mkdir(parents=True)
        print(f"\nconsole screenshots: {self.dir} (copied to {self.copy})")

    def take(self, page, name: str) -> None:
        path = self.dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shutil.copy(path, self.copy / path.name)


def _context(browser, viewport: dict, **kw):
    ctx = browser.new_context(viewport=viewport, locale="zh-CN", **kw)
    ctx.set_default_timeout(20_000)
    return ctx


def _sign_in(page, url: str, token: str) -> None:
    page.goto(url + "/console/cases")
    assert "/console/login" in page.url  # no session: the sign-in page, coming back afterwards
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/cases")
    assert token not in page.url and token not in page.content()


def _no_sideways_scroll(page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[2] and widths[1] <= widths[2], f"{page.url}: {widths}"


def _open(page, details_id: str) -> None:
    page.locator(details_id).evaluate("d => { d.open = true; }")


def _submit(page, form_id: str, button: str | None = None) -> None:
    with page.expect_navigation():
        page.locator(f"{form_id} button[type=submit]" if button is None else button).click()


@pytest.fixture
def served(tmp_path: Path, state_url: str):
    with serving(tmp_path, state_url) as s:
        yield s


def test_an_inspector_works_a_case_in_the_browser(browser, served, tmp_path: Path) -> None:
    srv, ids, state_url = served
    backend = "postgresql" if state_url.startswith("postgresql") else "sqlite"
    shots = Shots(tmp_path, backend)
    cid = ids["case_id"]
    errors: list[str] = []

    ctx = _context(browser, DESKTOP)
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())  # the close button asks for confirmation
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(srv.url + "/console/login")
    shots.take(page, "01-login-desktop")
    _sign_in(page, srv.url, INSPECTOR)
    assert page.locator("table.cases tbody tr").count() == 3
    assert page.locator("table.cases tbody tr.row-overdue .badge-overdue").count() == 1
    shots.take(page, "02-cases-desktop")

    # find the case: filter by district, then open it
    page.select_option("#f-district", "朝阳区")
    with page.expect_navigation():
        page.click(".filters button[type=submit]")
    assert "district=" in page.url
    rows = page.locator("table.cases tbody tr")
    assert rows.count() == 1 and "老王牛肉面" in rows.inner_text()
    with page.expect_navigation():
        rows.locator("a").first.click()
    assert page.locator("h1").inner_text().startswith("老王牛肉面")
    assert page.locator("#evidence svg rect").count() >= 5
    shots.take(page, "03-case-open-desktop")

    # assign (the first form is open)
    assert page.input_value("#assign-assignee") == "张伟"
    _submit(page, "#form-assign")
    assert "已保存：指派" in page.locator(".flash-ok").inner_text()

    # 李娜 opens the same case now (version 2) in her own browser ...
    ctx2 = _context(browser, DESKTOP)
    other = ctx2.new_page()
    _sign_in(other, srv.url, INSPECTOR2)
    other.goto(f"{srv.url}/console/cases/{cid}")

    # ... while 张伟 inspects, with a photo from the phone
    photo = tmp_path / "现场照片.png"
    photo.write_bytes(tiny_png(200, 150))
    page.fill("#inspect-findings", "排烟风机运行，油烟净化器电源关闭，滤网积油严重。")
    page.select_option("#inspect-purifier", "not_working")
    page.select_option("#inspect-fan", "working")
    page.set_input_files("#inspect-photo", str(photo))
    _submit(page, "#form-inspect")
    assert "已保存：现场检查" in page.content()
    assert page.locator("#attachments img").count() == 1
    shots.take(page, "04-case-inspected-desktop")

    # 李娜's form was rendered at version 2: refused, nothing overwritten, her text kept
    _open(other, "#form-assign")
    other.fill("#assign-assignee", "李娜")
    with other.expect_navigation():
        other.locator("#form-assign button[type=submit]").click()
    body = other.content()
    assert "案件已被他人修改" in body and "重新载入案件" in body and "张伟" in body and "李娜" in body
    shots.take(other, "05-stale-form-desktop")
    with other.expect_navigation():
        other.click("a.button.primary")  # reload the case
    assert other.locator("#summary").inner_text().count("张伟") >= 1
    ctx2.close()

    # order rectification: a deadline a week ahead (local date)
    deadline = (datetime.now(zone("Asia/Shanghai")) + timedelta(days=7)).strftime("%Y-%m-%d")
    page.fill("#order-deadline", deadline)
    page.fill("#order-requirements", "清洗油烟净化器和排烟管道；风机运行时同时开启净化器。")
    _submit(page, "#form-order_rectification")
    assert "责令整改中" in page.locator("h1").inner_text()

    # the owner's statement
    _open(page, "#form-record_statement")
    page.fill("#statement-statement", "当天净化器故障，已联系厂家维修，请求从轻处理。")
    page.select_option("#statement-form", "oral")
    _submit(page, "#form-record_statement")

    # recheck with another photo
    photo2 = tmp_path / "复查照片.png"
    photo2.write_bytes(tiny_png(120, 90))
    page.check("#form-recheck input[name=rectified][value=yes]")
    page.fill("#recheck-findings", "净化器已维修并开启，滤网已更换。")
    page.set_input_files("#recheck-photo", str(photo2))
    _submit(page, "#form-recheck")
    assert page.locator("#attachments img").count() == 2

    # close as rectified
    assert page.locator("#form-close").get_attribute("open") is not None  # the next step, unfolded
    page.fill("#close-rectified-note", "复查整改到位，结案。")
    _submit(page, "#form-close", "#form-close form:has(input[value=rectified]) button[type=submit]")
    assert "已结案" in page.locator("h1").inner_text()
    assert page.locator("form[action$='/act']").count() == 0
    shots.take(page, "06-case-closed-desktop")

    # the audit trail, on the page and in the ledger
    steps = page.locator("#trail .trail-head b").all_inner_texts()
    assert steps == [
        "立案",
        "指派",
        "上传附件",
        "现场检查",
        "责令整改",
        "记录陈述申辩",
        "上传附件",
        "复查",
        "结案",
    ]
    assert "+08:00" in page.locator("#trail").inner_text()
    with Ledger(state_url) as led:
        trail = led.case_actions(cid)
        case = led.get_case(cid)
    assert [a["action"] for a in trail] == [
        "open",
        "assign",
        "attach",
        "inspect",
        "order_rectification",
        "record_statement",
        "attach",
        "recheck",
        "close",
    ]
    assert [a["actor"] for a in trail] == ["system"] + ["张伟"] * 8
    assert trail[3]["fields"]["purifier"] == "not_working" and trail[3]["fields"]["attachments"]
    assert trail[5]["fields"]["form"] == "oral" and trail[7]["fields"]["rectified"] is True
    assert (case["status"], case["outcome"], case["assignee"]) == ("closed", "rectified", "张伟")
    with page.expect_navigation():
        page.click("#summary a[href*='/console/restaurants/']")
    assert "第 3 次" in page.content()
    shots.take(page, "07-restaurant-desktop")
    ctx.close()

    # a read token: the case pages, no forms
    ctx3 = _context(browser, DESKTOP)
    reader = ctx3.new_page()
    _sign_in(reader, srv.url, TOKEN)
    reader.goto(f"{srv.url}/console/cases/{ids['other_case_id']}")
    assert reader.locator("form[action$='/act']").count() == 0
    assert "只读令牌" in reader.locator("#work").inner_text()
    shots.take(reader, "08-read-only-desktop")
    ctx3.close()

    # a phone: every page fits 390 px
    phone = _context(browser, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    mobile = phone.new_page()
    mobile.goto(srv.url + "/console/login")
    _no_sideways_scroll(mobile)
    shots.take(mobile, "11-login-phone")
    _sign_in(mobile, srv.url, INSPECTOR)
    pages = [
        ("12-cases-phone", "/console/cases"),
        ("13-case-closed-phone", f"/console/cases/{cid}"),
        ("14-case-open-phone", f"/console/cases/{ids['other_case_id']}"),
        ("15-restaurant-phone", "/console/restaurants/R1"),
    ]
    for name, path in pages:
        mobile.goto(srv.url + path)
        _no_sideways_scroll(mobile)
        shots.take(mobile, name)
    mobile.goto(f"{srv.url}/console/cases/{ids['other_case_id']}")
    for details in ("#form-assign", "#form-record_statement", "#form-close"):  # open forms fit too
        _open(mobile, details)
    _no_sideways_scroll(mobile)
    phone.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    assert sorted(p.name for p in shots.dir.iterdir()) == sorted(p.name for p in shots.copy.iterdir())


def test_a_case_on_doubted_data_shows_its_badge_in_the_browser(browser, served, tmp_path: Path) -> None:
    """A data_integrity finding over the case's event (docs/integrity.md): the case page shows the
    证据待核实 badge and the findings with local times, the restaurant page its 数据可信性存疑 badge, in
    Chromium, desktop and phone (screenshots under /tmp/fumewatch-console-screens/<backend>/)."""
    from alerts.model import Event

    srv, ids, state_url = served
    backend = "postgresql" if state_url.startswith("postgresql") else "sqlite"
    shots = Shots(tmp_path, backend + "-integrity")
    with Ledger(state_url) as led:
        lead = led.get_event(ids["lead_event"])
        assert lead is not None
        led.upsert_event(
            Event(
                event_id=f"integrity:suspect_clone:D1:{lead.start_ms}",
                kind="data_integrity",
                restaurant_id="R1",
                device_id="D1",
                district="朝阳区",
                start_ms=lead.start_ms,
                end_ms=lead.start_ms + 70 * 60_000,
                pollutant="oil_fume",
                state="closed",
                rule="suspect_clone",
                judgement={"check": "suspect_clone", "minutes": 70.0, "other_device_id": "D9"},
            )
        )
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        ctx = _context(browser, viewport)
        page = ctx.new_page()
        _sign_in(page, srv.url, INSPECTOR)
        page.goto(f"{srv.url}/console/cases/{ids['case_id']}")
        badge = page.locator("#evidence-under-review")
        assert badge.is_visible() and "证据待核实" in badge.inner_text()
        section = page.locator("#integrity")
        assert section.is_visible() and "+08:00" in section.inner_text()
        _no_sideways_scroll(page)
        shots.take(page, f"integrity-case-{name}")
        page.goto(f"{srv.url}/console/restaurants/R1")
        mark = page.locator("#data-integrity")
        assert mark.is_visible() and "数据可信性存疑 1" in mark.inner_text()
        _no_sideways_scroll(page)
        shots.take(page, f"integrity-restaurant-{name}")
        ctx.close()
