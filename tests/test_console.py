"""The web console (/console, issue 12) without a browser: httpx against the real `fumewatch api` process
on a real state database (SQLite and PostgreSQL) holding a real case.

Covers the session cookie's flags, CSRF refusal (no token, wrong token, cross-site), the token never in a
page, a URL or the log, 403 for a read token's POST, 429 after repeated failed sign-ins (the API's own
limiter), a stale form (409, nothing changed), the security headers, and the case, list and restaurant
pages. The browser walk-through is tests/test_console_browser.py (same fixture, :func:`console_state`).
"""

from __future__ import annotations

import io
import re
import secrets
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote, unquote

import httpx
import pytest
from test_api import TOKEN, start_api, stop_api

from alerts.casework import Casework, service
from alerts.enforcement.episodes import LadderPolicy, decide
from alerts.enforcement.ladder import build_case
from alerts.ledger import Ledger
from alerts.ledger import casework as ledger_casework
from alerts.model import EXCEEDANCE, Event
from ingest.timeutil import now_ms, zone

pytestmark = pytest.mark.integration

H, DAY, W = 3_600_000, 86_400_000, 600_000
INSPECTOR = "insp-" + secrets.token_urlsafe(24)
INSPECTOR2 = "insp2-" + secrets.token_urlsafe(24)
WRONG = "wrong-" + secrets.token_urlsafe(24)
REGISTRY = (
    "restaurant_id,name,district,device_id,stove_heads\nR1,老王牛肉面,朝阳区,D1,2\nR2,川味小馆,海淀区,D2,3\n"
)


def _event(eid: str, rid: str, dev: str, district: str, start: int, windows: list[dict]) -> Event:
    return Event(
        eid,
        EXCEEDANCE,
        rid,
        dev,
        district,
        start,
        start + H,
        "oil_fume",
        max((w["max_mg_m3"] for w in windows), default=4.2),
        3.1,
        2.0,
        "gb18483",
        state="closed",
        evidence=windows,
        rule="gb18483",
    )


def _windows(start: int, n: int = 6) -> list[dict]:
    means = [1.4, 2.6, 3.3, 0.4, 3.8, 2.9, 2.2, 3.0][:n]
    return [
        {
            "start_ms": start + k * W,
            "end_ms": start + (k + 1) * W,
            "mean_mg_m3": m,
            "max_mg_m3": round(m * 1.35, 2),
            "samples": 10,
            "expected": 10,
            "valid": True,
            "dropped": m < 2.0 / 4,  # GB 18483 §6: below a quarter of the largest value
        }
        for k, m in enumerate(means)
    ]


def tiny_png(width: int = 160, height: int = 120) -> bytes:
    """A real PNG (a smoky gradient), small enough for any attachment limit."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((60 + 150 * x // width, 80 + 120 * y // height, 130)) for x in range(width))
        for y in range(height)
    )

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def console_state(state_url: str) -> dict[str, Any]:
    """R1's third episode in a year (the first two notices reached the owner): a real enforcement case
    from the ladder (:func:`decide`), with evidence windows, notices and receipts; plus R2's case."""
    policy = LadderPolicy()
    now = now_ms()
    with Ledger(state_url) as led:
        eps = []
        for k, start in enumerate((now - 70 * DAY, now - 40 * DAY, now - 10 * H)):
            e = _event(f"exceedance:D1:oil_fume:{start}", "R1", "D1", "朝阳区", start, _windows(start))
            d = decide(led, e, policy)
            eps.append((e, d.episode))
            key = f"{e.event_id}:opened"
            target = f"json://gateway.example/owner/R1?n={k}"
            assert led.notice_begin(
                key, "owner", target, {"template": d.episode.level, "level": d.episode.level}
            )
            led.notice_done(key, target, ok=True)
        lead, ep = eps[-1]
        assert (ep.step, ep.level) == (3, "enforcement")
        assert led.notice_begin(
            f"{lead.event_id}:enforcement", "inspector", "json://gateway.example/insp", {}
        )
        led.notice_done(
            f"{lead.event_id}:enforcement", "json://gateway.example/insp", ok=False, error="HTTP 502"
        )
        case = build_case(
            led.get_event(lead.event_id) or lead,
            occurrence=ep.step,
            created_ms=ep.start_ms,
            step={
                **ep.as_dict(),
                "owner_delivery": {"delivered": True, "delivered_at": None, "attempted": 1},
            },
            episodes=[
                {
                    **ep.as_dict(),
                    "events": [{"event_id": lead.event_id, "kind": EXCEEDANCE, "peak_mg_m3": 5.1}],
                }
            ],
            history=[
                {"step": p.step, "level": p.level, "start_ms": p.start_ms, "delivered": True}
                for _, p in eps[:2]
            ],
        )
        led.upsert_case(case)
        start2 = now - 30 * H
        e2 = _event(f"exceedance:D2:oil_fume:{start2}", "R2", "D2", "海淀区", start2, _windows(start2, 5))
        led.upsert_event(e2)
        case2 = build_case(e2)
        led.upsert_case(case2)
        overdue = _overdue_case(led, now)
    return {
        "case_id": case["case_id"],
        "other_case_id": case2["case_id"],
        "overdue_case_id": overdue,
        "lead_event": lead.event_id,
    }


def _overdue_case(led: Ledger, now: int) -> str:
    """R2's older case, worked twelve days ago (the casework's clock set back, so its trail and its rules
    agree) up to a rectification order whose deadline has passed."""
    start = now - 13 * DAY
    e = _event(f"exceedance:D2:oil_fume:{start}", "R2", "D2", "海淀区", start, _windows(start, 5))
    led.upsert_event(e)
    case = build_case(e, created_ms=start + H)
    led.upsert_case(case)
    then = now - 12 * DAY
    deadline = datetime.fromtimestamp((then + 5 * DAY) / 1000, zone("Asia/Shanghai")).date().isoformat()
    cw = Casework(led)
    with (
        mock.patch.object(service, "now_ms", lambda: then),
        mock.patch.object(ledger_casework, "now_ms", lambda: then),
    ):
        cw.act(case["case_id"], "assign", {"assignee": "李娜"}, actor="李娜")
        cw.act(
            case["case_id"],
            "inspect",
            {
                "inspected_at": datetime.fromtimestamp(then / 1000, zone("Asia/Shanghai")).isoformat(),
                "findings": "风机运行，净化器未开启",
                "purifier": "not_working",
                "fan": "working",
            },
            actor="李娜",
        )
        cw.act(
            case["case_id"],
            "order_rectification",
            {"deadline": deadline, "requirements": "五日内清洗净化器并保持开启"},
            actor="李娜",
        )
    return case["case_id"]


@contextmanager
def serving(tmp_path: Path, state_url: str) -> Iterator[tuple[Any, dict[str, Any], str]]:
    """The real `fumewatch api` on a state database holding :func:`console_state`, two inspectors
    (张伟, 李娜) and the read tokens of tests/test_api.py; 3 failed sign-ins per client are allowed."""
    reg = tmp_path / "registry.csv"
    reg.write_text(REGISTRY, encoding="utf-8")
    ids = console_state(state_url)
    srv = start_api(
        tmp_path,
        state_url,
        reg,
        FUMEWATCH_INSPECTOR_TOKENS=f"张伟:{INSPECTOR}, 李娜:{INSPECTOR2}",
        FUMEWATCH_API_AUTH_FAIL_LIMIT="3",
        FUMEWATCH_API_AUTH_FAIL_WINDOW_S="600",
    )
    try:
        yield srv, ids, state_url
    finally:
        stop_api(srv)


@pytest.fixture
def served(tmp_path: Path, state_url: str) -> Iterator[tuple[Any, dict[str, Any], str]]:
    with serving(tmp_path, state_url) as s:
        yield s


# ---------------------------------------------------------------------------------------------------------
# helpers: a browser-like client (cookies kept, forms read from the pages)
# ---------------------------------------------------------------------------------------------------------


def hidden(html: str, name: str = "csrf") -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden {name} field in the page"
    return m.group(1)


def sign_in(url: str, token: str) -> tuple[httpx.Client, httpx.Response]:
    c = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    page = c.get("/console/login")
    r = c.post("/console/login", data={"csrf": hidden(page.text), "token": token, "next": "/console/cases"})
    return c, r


def test_sign_in_cookie_flags_and_headers(served) -> None:
    srv, ids, _ = served
    anon = httpx.get(srv.url + "/console/cases", follow_redirects=False)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/console/login?next=")
    c, r = sign_in(srv.url, INSPECTOR)
    assert r.status_code == 303 and r.headers["location"] == "/console/cases"
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("fumewatch_console="))
    flags = [p.strip().lower() for p in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "max-age=43200" in flags  # [api] session_hours = 12 by default
    assert "secure" not in flags  # [api] secure_cookies is off by default (plain HTTP on localhost)
    sid = cookie.split(";")[0].split("=", 1)[1]
    assert len(sid) >= 40 and INSPECTOR not in cookie
    page = c.get("/console/cases")
    assert page.status_code == 200 and "老王牛肉面" in page.text and "川味小馆" in page.text
    # the overdue rectification deadline is highlighted and listed first
    rows = re.findall(r'<tr class="([^"]*)">\s*<td[^>]*><a[^>]*href="/console/cases/([^"]+)"', page.text)
    assert (
        len(rows) == 3
        and rows[0][0] == "row-overdue"
        and "已逾期" in page.text
        and "1 件整改逾期" in page.text
    )
    assert unquote(rows[0][1]) == ids["overdue_case_id"] and [r[0] for r in rows[1:]] == ["", ""]
    h = page.headers
    assert (
        "default-src 'none'" in h["content-security-policy"]
        and "script-src 'self'" in h["content-security-policy"]
    )
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["x-frame-options"] == "DENY" and h["cache-control"] == "no-store"
    assert h["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline: the CSP holds
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    # the filter: district
    page = c.get("/console/cases", params={"district": "海淀区"})
    assert ids["other_case_id"] in page.text and ids["case_id"] not in page.text
    # sign out: the session is gone on the server, not only in the browser
    out = c.post("/console/logout", data={"csrf": hidden(page.text)})
    assert out.status_code == 303 and "fumewatch_console=" in out.headers["set-cookie"]
    replay = httpx.get(srv.url + "/console/cases", cookies={"fumewatch_console": sid}, follow_redirects=False)
    assert replay.status_code == 303
    c.close()


def test_secure_cookie_when_configured(tmp_path: Path, state_url: str) -> None:
    reg = tmp_path / "registry.csv"
    reg.write_text(REGISTRY, encoding="utf-8")
    srv = start_api(
        tmp_path,
        state_url,
        reg,
        FUMEWATCH_INSPECTOR_TOKENS=f"张伟:{INSPECTOR}",
        FUMEWATCH_API_SECURE_COOKIES="true",
        FUMEWATCH_API_SESSION_HOURS="2",
    )
    try:
        # a client does not send Secure cookies back over plain HTTP (that is the point), so the test
        # hands them over itself
        login = httpx.get(srv.url + "/console/login")
        assert any(
            v.startswith("__Host-fumewatch_login=") and "Secure" in v
            for v in login.headers.get_list("set-cookie")
        )
        nonce = hidden(login.text)
        r = httpx.post(
            srv.url + "/console/login",
            data={"csrf": nonce, "token": INSPECTOR, "next": "/console/cases"},
            cookies={"__Host-fumewatch_login": nonce},
            follow_redirects=False,
        )
        assert r.status_code == 303
        cookie = next(
            v for v in r.headers.get_list("set-cookie") if v.startswith("__Host-fumewatch_console=")
        )
        flags = [p.strip().lower() for p in cookie.split(";")]
        assert {"secure", "httponly", "samesite=strict", "path=/", "max-age=7200"} <= set(flags)
    finally:
        stop_api(srv)


def test_csrf_is_checked_on_every_post(served) -> None:
    srv, ids, state_url = served
    cid = ids["case_id"]
    # the sign-in form: without its nonce (a page elsewhere posting a token) it is refused
    r = httpx.post(srv.url + "/console/login", data={"token": INSPECTOR}, follow_redirects=False)
    assert r.status_code == 403
    assert not any(v.startswith("fumewatch_console=") for v in r.headers.get_list("set-cookie"))
    c, _ = sign_in(srv.url, INSPECTOR)
    page = c.get(f"/console/cases/{cid}")
    assert page.status_code == 200
    version = hidden(page.text, "version")
    form = {"action": "assign", "version": version, "assignee": "张伟"}
    for bad in ({}, {"csrf": "x" * 43}, {"csrf": ""}):
        r = c.post(f"/console/cases/{cid}/act", data={**form, **bad})
        assert r.status_code == 403 and "CSRF" in r.text
    r = c.post(
        f"/console/cases/{cid}/act",
        data={**form, "csrf": hidden(page.text)},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403
    r = c.post("/console/logout", data={"csrf": "nope"})
    assert r.status_code == 403
    with Ledger(state_url) as led:
        assert [a["action"] for a in led.case_actions(cid)] == ["open"]  # nothing was done
    # the right token goes through, once; the same form again is stale
    ok = c.post(f"/console/cases/{cid}/act", data={**form, "csrf": hidden(page.text)})
    assert ok.status_code == 303 and ok.headers["location"] == f"/console/cases/{cid}"
    again = c.post(f"/console/cases/{cid}/act", data={**form, "assignee": "李娜", "csrf": hidden(page.text)})
    assert again.status_code == 409 and "案件已被他人修改" in again.text and "重新载入" in again.text
    assert "李娜" in again.text  # what was typed is shown so it is not lost
    with Ledger(state_url) as led:
        assert led.get_case(cid)["assignee"] == "张伟"
    c.close()


def test_token_never_in_a_page_url_or_log(served) -> None:
    srv, ids, _ = served
    c, r = sign_in(srv.url, INSPECTOR)
    seen = [r.headers.get("location", "")]
    for path in (
        "/console/cases",
        f"/console/cases/{ids['case_id']}",
        "/console/restaurants/R1",
        "/console/login",
    ):
        p = c.get(path, follow_redirects=True)
        assert p.status_code == 200, path
        seen += [p.text, str(p.url), *p.headers.values()]
    bad, _ = sign_in(srv.url, WRONG)
    page = bad.get("/console/login")
    seen.append(page.text)
    for text in seen:
        assert INSPECTOR not in text and WRONG not in text and TOKEN not in text
    log = srv.log.read_text()
    assert INSPECTOR not in log and WRONG not in log
    assert "event=console_sign_in who=张伟 role=inspector" in log
    c.close()
    bad.close()


def test_read_token_looks_but_may_not_act(served) -> None:
    srv, ids, state_url = served
    cid = ids["case_id"]
    c, r = sign_in(srv.url, TOKEN)
    assert r.status_code == 303
    page = c.get(f"/console/cases/{cid}")
    assert page.status_code == 200 and "只读令牌" in page.text
    assert 'name="action"' not in page.text and "/act" not in page.text  # no action forms at all
    assert "监测证据" in page.text and "<svg" in page.text
    r = c.post(
        f"/console/cases/{cid}/act",
        data={"csrf": hidden(page.text), "action": "assign", "version": "1", "assignee": "x"},
    )
    assert r.status_code == 403 and "只读令牌" in r.text
    with Ledger(state_url) as led:
        assert led.get_case(cid)["version"] == 1
    c.close()


def test_repeated_failed_sign_ins_get_429(served) -> None:
    srv, _, _ = served
    c = httpx.Client(base_url=srv.url, timeout=30, follow_redirects=False)
    nonce = hidden(c.get("/console/login").text)
    codes = [c.post("/console/login", data={"csrf": nonce, "token": WRONG}).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    r = c.post("/console/login", data={"csrf": nonce, "token": WRONG})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "登录失败次数过多" in r.text and "秒后再试" in r.text
    # the same limiter as the API: bearer failures from this client are now throttled too
    assert (
        httpx.get(srv.url + "/api/v1/cases", headers={"Authorization": f"Bearer {WRONG}"}).status_code == 429
    )
    # a right token still passes (only failures are limited, as for the API)
    ok = c.post("/console/login", data={"csrf": nonce, "token": INSPECTOR})
    assert ok.status_code == 303
    c.close()


def test_case_page_restaurant_page_and_attachment(served) -> None:
    srv, ids, state_url = served
    cid = ids["case_id"]
    c, _ = sign_in(srv.url, INSPECTOR)
    page = c.get(f"/console/cases/{cid}").text
    for text in (
        "案件概况",
        "待指派",
        "监测证据",
        "限值 2.0",
        "通知与回执",
        "发送失败",
        "办理记录",
        "立案",
        "+08:00",
    ):
        assert text in page, text
    assert page.count("<tr") >= 6  # the windows table
    assert 'value="assign"' in page and 'value="close"' in page  # forms of the allowed actions only
    assert 'value="recheck"' not in page
    r = c.get("/console/restaurants/R1").text
    assert "老王牛肉面" in r and "第 3 次" in r and "执法" in r and "劝导" in r and "告诫" in r
    # a photo through the session, served only with it
    body = tiny_png()
    version = hidden(page, "version")
    r = c.post(
        f"/console/cases/{cid}/act",
        data={"csrf": hidden(page), "action": "assign", "version": version, "assignee": "张伟"},
    )
    assert r.status_code == 303
    page = c.get(f"/console/cases/{cid}").text
    r = c.post(
        f"/console/cases/{cid}/act",
        data={
            "csrf": hidden(page),
            "action": "inspect",
            "version": hidden(page, "version"),
            "inspected_at": "2026-01-05T10:30",
            "findings": "净化器未开启",
            "purifier": "not_working",
            "fan": "working",
        },
        files={"photo": ("现场.png", body, "image/png")},
    )
    assert r.status_code == 303, r.text[:2000]
    with Ledger(state_url) as led:
        [att] = led.case_attachments(cid)
        trail = led.case_actions(cid)
    assert [a["action"] for a in trail] == ["open", "assign", "attach", "inspect"]
    assert trail[-1]["fields"]["attachments"] == [att["attachment_id"]]
    url = f"/console/cases/{cid}/attachments/{att['attachment_id']}"
    got = c.get(url)
    assert got.status_code == 200 and got.content == body and got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"].startswith("inline;")
    assert "sandbox" in got.headers["content-security-policy"]
    assert c.get(url, params={"download": "1"}).headers["content-disposition"].startswith("attachment;")
    assert httpx.get(srv.url + url, follow_redirects=False).status_code == 303  # no session: sign in
    # bad fields: the page again with the casework's reason and what was typed
    page = c.get(f"/console/cases/{cid}").text
    r = c.post(
        f"/console/cases/{cid}/act",
        data={
            "csrf": hidden(page),
            "action": "order_rectification",
            "version": hidden(page, "version"),
            "deadline": "2001-01-01",
            "requirements": "清洗净化器",
        },
    )
    assert r.status_code == 400 and "before today" in r.text and "清洗净化器" in r.text
    assert c.get("/console/cases/case-nope").status_code == 404
    assert c.get("/console/nothing-here").status_code == 404
    c.close()


# ---------------------------------------------------------------------------------------------------------
# without a server: sessions, the sign-in redirect, the chart, the demo's hint
# ---------------------------------------------------------------------------------------------------------


def test_sessions_expire_are_random_and_bounded() -> None:
    from alerts.console.sessions import SessionStore, same_secret

    now = [1000.0]
    store = SessionStore(lifetime_s=60, max_sessions=3, clock=lambda: now[0])
    who = object()
    a, b = store.create(who), store.create(who)
    assert a.sid != b.sid and a.csrf != b.csrf and len(a.sid) >= 40
    assert store.get(a.sid) is a and store.get("") is None and store.get("nope") is None
    now[0] += 59
    assert store.get(a.sid) is a  # no sliding renewal: the lifetime counts from sign-in
    now[0] += 1
    assert store.get(a.sid) is None and store.get(b.sid) is None
    made = [store.create(who) for _ in range(5)]
    assert len(store) == 3 and store.get(made[0].sid) is None and store.get(made[-1].sid) is made[-1]
    store.drop(made[-1].sid)
    assert store.get(made[-1].sid) is None
    assert same_secret("abc", "abc") and not same_secret("abc", "abd") and not same_secret(None, None)


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/console/cases/case-1?status=open", "/console/cases/case-1?status=open"),
        ("https://evil.example/console/", "/console/cases"),
        ("//evil.example/console/", "/console/cases"),
        ("/console//evil.example", "/console/cases"),
        ("/console/\\evil", "/console/cases"),
        ("/api/v1/cases", "/console/cases"),
        (None, "/console/cases"),
    ],
)
def test_sign_in_goes_back_only_to_console_pages(target, expected) -> None:
    from alerts.console.signin import safe_next

    assert safe_next(target) == expected


def test_evidence_chart_geometry() -> None:
    from alerts.console.chart import evidence_chart

    start = 1_796_000_000_000
    ws = _windows(start)
    ws[3]["exceeds"] = False
    chart = evidence_chart([{**w, "exceeds": w["mean_mg_m3"] > 2.0} for w in ws], 2.0, "Asia/Shanghai")
    assert chart is not None and len(chart["bars"]) == 6
    assert [b["kind"] for b in chart["bars"]] == ["under", "over", "over", "invalid", "over", "over"]
    base, limit_y = chart["base"], chart["limit_y"]
    assert chart["top"] < limit_y < base and chart["limit_text"] == "限值 2.0"
    for b, w in zip(chart["bars"], ws, strict=True):
        assert b["max_y"] <= b["y"] <= base  # the max marker sits above its mean bar
        assert (b["y"] < limit_y) == (w["mean_mg_m3"] > 2.0)
    assert chart["first"].endswith("+08:00") and evidence_chart([], 2.0, "Asia/Shanghai") is None


def test_demo_hint_names_the_console_its_token_and_cases(tmp_path: Path) -> None:
    from rich.console import Console

    from fumewatch.db import upgrade
    from fumewatch.demo.console_hint import print_hint

    state = tmp_path / "state.db"
    upgrade(str(state))
    ids = console_state(str(state))
    out = Console(width=200, record=True, file=io.StringIO())
    print_hint(out, state, tmp_path / "registry.csv")
    text = out.export_text()
    assert "FUMEWATCH_INSPECTOR_TOKENS=" in text and f"fumewatch api --state {state}" in text
    assert "http://127.0.0.1:8080/console/" in text
    assert f"/console/cases/{quote(ids['case_id'], safe='')}" in text


def test_templates_and_static_files_ship_with_the_package() -> None:
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["alerts"]
    files = [
        p.relative_to(root / "alerts").as_posix()
        for d in ("templates", "static")
        for p in (root / "alerts" / "console" / d).iterdir()
    ]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), (files, patterns)
