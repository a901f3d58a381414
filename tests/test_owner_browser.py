"""The owner's page in real Chromium (Playwright, Debian's /usr/bin/chromium) at a 360x740 phone viewport:
it renders with its chart, does not scroll sideways, takes a photo upload through the real form, and shows
the receipt. Screenshots go to the directory the test prints and to /tmp/fumewatch-owner-screens/<backend>/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_console_browser import _no_sideways_scroll, browser  # noqa: F401 (fixture)
from test_owner_page import jpeg, owner_api, path_of  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
PHONE = {"width": 360, "height": 740}
COPY_TO = Path("/tmp/fumewatch-owner-screens")


def test_the_owner_page_on_a_phone(browser, owner_api, tmp_path: Path, request) -> None:  # noqa: F811
    srv, led, links, _ = owner_api
    backend = request.node.callspec.params.get("state_url", "x")
    shots = tmp_path / "screens"
    shots.mkdir()
    copy = COPY_TO / backend
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    print(f"\nowner page screenshots: {shots} (copied to {copy})")
    url, _ = links.for_notice("R1", "exceedance:D1:oil_fume:9:opened")
    photo = tmp_path / "净化器.jpg"
    photo.write_bytes(jpeg())
    ctx = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    page.goto(srv.url + path_of(url))
    assert "老王牛肉面" in page.content() and "第一步：教育劝导" in page.content()
    _no_sideways_scroll(page)
    page.screenshot(path=str(shots / "owner-page.png"), full_page=True)
    form = page.locator("#evidence form")
    form.locator("input[type=file]").set_input_files(str(photo))
    form.locator("textarea").fill("已请维保公司清洗电场和管道")
    form.locator("button").click()
    page.wait_for_url("**?sent=*")
    assert "已收到" in page.locator("#receipt").inner_text()
    _no_sideways_scroll(page)
    page.screenshot(path=str(shots / "owner-receipt.png"), full_page=True)
    ctx.close()
    for f in shots.iterdir():
        shutil.copy(f, copy / f.name)
    subs = led.list_owner_submissions(restaurant_id="R1")
    assert len(subs) == 1 and len(subs[0]["attachments"]) == 1
