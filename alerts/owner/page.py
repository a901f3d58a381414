"""The owner's page, served by ``fumewatch api`` next to the console::

    GET  /o/{token}              the restaurant's page (zh-CN, mobile first)
    POST /o/{token}/evidence     rectification evidence: photos, an invoice (PDF), a note
    POST /o/{token}/statement    a statement (陈述、申辩), with an optional file
    GET  /o/static/owner.css

The token is the capability (:mod:`alerts.owner.links`): no account, no cookie, no session. Each request
checks it against the ledger, so an expired or revoked link stops working at once, and the page shows
only the restaurant the verified link names. Failed tokens count per client in the API's
``FailureLimiter`` (429 past the limit). Forms are refused when the browser marks them cross-site
(``Sec-Fetch-Site``) and above the size limits before the body is parsed. Pages carry the console's
strict CSP and ``Referrer-Policy: no-referrer`` (the token is in the URL: no other site may see it), and
the access log shows ``/o/<link id>``, never a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from alerts.casework.lifecycle import BadFields, IllegalAction
from alerts.console import labels as L
from alerts.owner import submissions as subs
from alerts.owner.chart import owner_chart
from alerts.owner.links import EXPIRED, PREFIX, REVOKED, OwnerLinks, Verdict
from alerts.owner.settings import OwnerSettings
from alerts.owner.uploads import UploadRefused, accept
from ingest.timeutil import now_ms

log = logging.getLogger("fumewatch.owner")
HERE = Path(__file__).resolve().parent
DAY_MS = 86_400_000

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), geolocation=(), microphone=()",
}
LEVEL = {"education": "第一步：教育劝导", "warning": "第二步：告诫", "enforcement": "第三步：移交执法"}
REFUSED = {
    EXPIRED: (
        410,
        "链接已过期",
        "此链接已超过有效期（至 {expires}）。请致电 {phone}（{office}）索取新的链接。",
    ),
    REVOKED: (410, "链接已停用", "此链接已被停用。请致电 {phone}（{office}）了解情况或索取新的链接。"),
}
INVALID = (404, "链接无效", "此链接无效或不完整。请使用通知中的完整链接，或致电 {phone}（{office}）。")


@dataclass
class OwnerPage:
    """What the page's routes need (built by :func:`add_owner_page`)."""

    links: OwnerLinks
    ledger: Any
    casework: Any
    registry: Any
    settings: OwnerSettings
    tz: str
    limiter: Any  # the API's FailureLimiter
    contact_of: Callable[[str], tuple[str, str]]  # district -> (office, phone)
    limits_of: Callable[[Any], dict[str, float]]  # device -> pollutant -> limit
    send_receipt: Callable[[dict[str, Any], tuple[str, int]], None] | None = None
    env: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")),
            autoescape=select_autoescape(("html",), default_for_string=True, default=True),
            undefined=ChainableUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        tz = self.tz
        self.env.filters.update(
            t=lambda v: L.local_text(v, tz),
            date=lambda v: L.local_date(int(v), tz) if v is not None else "",
            num=L.number,
            span=lambda a, b=None: L.span(a, b, tz),
        )
        self.env.globals.update(tz_offset=L.offset_text(tz), prefix=PREFIX)

    def render(self, template: str, status: int = 200, **ctx: Any) -> Response:
        body = self.env.get_template(template).render(**ctx)
        return HTMLResponse(body, status_code=status, headers=HEADERS)

    def devices(self, restaurant_id: str) -> list[Any]:
        return list(self.registry.restaurants().get(restaurant_id, []))


def add_owner_page(app: Any, page: OwnerPage) -> None:
    from starlette.staticfiles import StaticFiles

    app.mount(PREFIX + "/static", StaticFiles(directory=str(HERE / "static")), name="owner-static")

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "-"

    def refused(request: Request, verdict: Verdict) -> Response:
        page.limiter.failed(client_of(request))
        devs = page.devices(verdict.restaurant_id) if verdict.link else []
        office, phone = page.contact_of(devs[0].district if devs else "")
        status, title, text = REFUSED.get(verdict.reason, INVALID)
        expires = L.local_text(verdict.link["expires_ms"], page.tz) if verdict.link else ""
        log.warning(
            "event=owner_link_refused reason=%s link=%s client=%s",
            verdict.reason,
            verdict.link["link_id"] if verdict.link else "-",
            client_of(request),
        )
        return page.render(
            "message.html", status, title=title, text=text.format(expires=expires, phone=phone, office=office)
        )

    def check(request: Request, token: str) -> Verdict | Response:
        wait = page.limiter.retry_after(client_of(request))
        verdict = page.links.check(token)
        if not verdict.ok and wait is not None:
            return page.render(
                "message.html",
                429,
                title="请稍后再试",
                text=f"无效链接尝试次数过多，请 {wait} 秒后再试。",
            )
        if not verdict.ok:
            return refused(request, verdict)
        return verdict

    def show(request: Request, token: str, verdict: Verdict, status: int = 200, **extra: Any) -> Response:
        link = verdict.link
        assert link is not None
        rid = link["restaurant_id"]
        devs = page.devices(rid)
        first = devs[0] if devs else None
        office, phone = page.contact_of(first.district if first else "")
        office = office or "城市管理综合执法部门"
        now = now_ms()
        since = now - page.settings.chart_days * DAY_MS
        limit = None
        charts = []
        for d in devs:
            lim = page.limits_of(d).get("oil_fume")
            limit = lim if limit is None else limit
            ws = page.ledger.list_windows(device_id=d.device_id, pollutant="oil_fume", since_ms=since)
            charts.append(
                {"device_id": d.device_id, "limit": lim, "chart": owner_chart(ws, lim, since, now, page.tz)}
            )
        st = subs.current_step(page.ledger, rid)
        events = [e for e in (st.events if st else []) if not getattr(e, "dismissed_by", "")]
        reminders = [
            e
            for e in page.ledger.list_events(restaurant_id=rid, since_ms=now - 30 * DAY_MS)
            if e.kind == "maintenance_reminder"
        ]
        mine = page.ledger.list_owner_submissions(restaurant_id=rid)[:20]
        for s in mine:
            s["receipts"] = page.ledger.list_notices(key=s["receipt_key"]) if s["receipt_key"] else []
            s["review"] = _review_of(page.ledger, s)
        deadline_passed = bool(st and st.step.deadline_ms and st.step.deadline_ms < now)
        case_status = L.label(L.STATUS, st.case["status"]) if st and st.case else ""
        return page.render(
            "owner.html",
            status,
            token=token,
            name=(first.name if first else "") or rid,
            restaurant_id=rid,
            address=first.address if first else "",
            district=first.district if first else "",
            owner_name=first.owner_name if first else "",
            office=office,
            phone=phone,
            link=link,
            charts=charts,
            chart_days=page.settings.chart_days,
            step=st,
            level_text=LEVEL.get(st.step.level, st.step.level) if st else "",
            events=events,
            reminders=reminders,
            deadline_passed=deadline_passed,
            case_status=case_status,
            rules=_Rules(),
            submissions=mine,
            max_files=page.settings.max_files,
            max_size=_size_text(page.settings.max_upload_bytes),
            error=extra.get("error"),
            form=extra.get("form", ""),
            kept=extra.get("kept", ""),
            sent=extra.get("sent"),
        )

    @app.get(PREFIX + "/{token}")
    def owner_page(request: Request, token: str) -> Response:
        v = check(request, token)
        if isinstance(v, Response):
            return v
        page.ledger.touch_owner_link(v.link["link_id"], now_ms())  # type: ignore[index]
        sent_id = request.query_params.get("sent", "")
        sent = None
        if sent_id:
            sent = next(
                (
                    s
                    for s in page.ledger.list_owner_submissions(restaurant_id=v.restaurant_id)
                    if s["submission_id"] == sent_id
                ),
                None,
            )
        return show(request, token, v, sent=sent)

    async def receive(request: Request, token: str, kind: str) -> Response:
        v = check(request, token)
        if isinstance(v, Response):
            return v
        link = v.link
        assert link is not None
        if request.headers.get("sec-fetch-site", "") == "cross-site":
            return page.render("message.html", 403, title="提交被拒绝", text="请在贵店专属页面上提交。")
        s = page.settings
        limit = s.max_files * s.max_upload_bytes + 256 * 1024
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return page.render(
                "message.html",
                413,
                title="文件过大",
                text=f"一次最多提交 {s.max_files} 个文件，每个不超过 {s.max_upload_bytes // (1024 * 1024)} MB。",
            )
        if page.ledger.count_owner_submissions(link["link_id"], now_ms() - DAY_MS) >= s.submissions_per_day:
            return page.render(
                "message.html",
                429,
                title="提交次数过多",
                text=f"此链接 24 小时内最多提交 {s.submissions_per_day} 次，请稍后再试或致电辖区执法部门。",
            )
        try:
            form = await request.form(max_files=s.max_files, max_fields=10)
        except Exception:  # noqa: BLE001 - malformed multipart, too many files
            return show(
                request,
                token,
                v,
                400,
                error=f"表单无法读取（一次最多 {s.max_files} 个文件），请重试。",
                form=kind,
            )
        text = form.get("text")
        text = text if isinstance(text, str) else ""
        uploads = [f for f in form.getlist("files") if not isinstance(f, str)]
        kept = []
        try:
            for up in uploads:
                data = await up.read(s.max_upload_bytes + 1)
                await up.close()
                if not data and not up.filename:
                    continue  # the empty file input of a form sent without a file
                kept.append(
                    accept(
                        up.filename or "",
                        up.content_type or "",
                        data,
                        max_bytes=s.max_upload_bytes,
                        max_pixels=s.max_image_pixels,
                    )
                )
            text = subs.check_text(kind, text, len(kept))
            row = subs.submit(
                page.ledger, page.casework, link=link, kind=kind, text=text, files=kept, tz=page.tz
            )
        except (UploadRefused, BadFields, IllegalAction) as exc:
            log.info(
                "event=owner_submission_refused link=%s kind=%s reason=%r", link["link_id"], kind, str(exc)
            )
            return show(request, token, v, 400, error=str(exc), form=kind, kept=text)
        log.info(
            "event=owner_submission link=%s restaurant=%s kind=%s case=%s files=%d id=%s",
            link["link_id"],
            link["restaurant_id"],
            kind,
            row["case_id"],
            len(kept),
            row["submission_id"],
        )
        if page.send_receipt is not None:
            from starlette.background import BackgroundTask

            task = BackgroundTask(page.send_receipt, row, (page.links.url(link), int(link["expires_ms"])))
        else:
            task = None
        return RedirectResponse(
            f"{PREFIX}/{token}?sent={row['submission_id']}#receipt",
            status_code=303,
            headers=HEADERS,
            background=task,
        )

    @app.post(PREFIX + "/{token}/evidence")
    async def evidence(request: Request, token: str) -> Response:
        return await receive(request, token, subs.EVIDENCE)

    @app.post(PREFIX + "/{token}/statement")
    async def statement(request: Request, token: str) -> Response:
        return await receive(request, token, subs.STATEMENT)


def _size_text(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


class _Rules:
    """``rules[name]`` in templates: the rule's zh-CN title and its source (alerts.rules)."""

    def __getitem__(self, name: str) -> dict[str, str]:
        from alerts.rules import rule

        r = rule(name or "")
        return {"title": r.title("zh-CN"), "source": r.source or "—"}


def _review_of(ledger: Any, submission: dict[str, Any]) -> dict[str, Any] | None:
    """The inspectors' latest review of this submission on its case (None: not reviewed yet)."""
    if not submission.get("case_id"):
        return None
    found = None
    for a in ledger.case_actions(submission["case_id"]):
        if (
            a["action"] == "review_submission"
            and a["fields"].get("submission_id") == submission["submission_id"]
        ):
            found = a
    return found
