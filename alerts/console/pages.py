"""The console's pages: the case list, a case, acting on it, its attachments, a restaurant.

Every page needs a session (else 303 to the sign-in page, coming back afterwards). Acting goes through
:func:`alerts.console.signin.check_post` (session, CSRF), then needs an inspector's session (a read
token's gets 403), then :meth:`Casework.act` with the case version the form was rendered with: a stale
form gets 409 "someone else changed this case; reload" and changes nothing. A photo in the same form is
attached first (:meth:`Casework.attach`, which does not move the version) and cited by the action.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from alerts.casework import STATUSES, BadFields, IllegalAction
from alerts.casework.lifecycle import allowed_actions, parse_fields
from alerts.console import forms
from alerts.console import labels as L
from alerts.console.chart import evidence_chart
from alerts.console.signin import check_post, client_of, redirect, to_login
from alerts.console.web import PREFIX, SECURITY_HEADERS, Console, content_disposition
from alerts.ledger.casework import CaseNotFound, StaleCase
from ingest.timeutil import now_ms

log = logging.getLogger("fumewatch.console")
MAX_EVENTS_SHOWN = 200


def add_case_pages(app: Any, console: Console) -> None:
    cw, ledger, registry, tz = console.casework, console.ledger, console.registry, console.tz

    def not_found(request: Request, s: Any, text: str) -> Response:
        return console.message(
            request, s, 404, "未找到", text, back=f"{PREFIX}/cases", back_text="返回案件列表"
        )

    def case_page(request: Request, s: Any, case_id: str, status: int = 200, **extra: Any) -> Response:
        v = cw.view(case_id)
        if v is None:
            return not_found(request, s, f"没有编号为 {case_id} 的案件。")
        case, summary = v["case"], v["summary"]
        summary["name"] = console.restaurant_name(summary["restaurant_id"])
        evidence = (case.get("evidence") or {}).get("windows") or []
        now = now_ms()
        return console.page(
            request,
            "case.html",
            s,
            status,
            v=v,
            case=case,
            summary=summary,
            windows=evidence,
            readings=(case.get("evidence") or {}).get("readings") or {},
            chart=evidence_chart(evidence, case.get("limit_mg_m3"), tz),
            outcomes=forms.OUTCOMES_BY_TYPE.get(summary["case_type"], ()),
            suggested=forms.SUGGESTED.get(summary["status"], ""),
            with_photo=forms.WITH_PHOTO,
            inspectors=console.inspector_names,
            now_input=L.local_input(now, tz),
            today=L.local_date(now, tz),
            error=extra.pop("error", None),
            values=extra.pop("values", {}),
            max_attachment_bytes=console.max_attachment_bytes,
            attachments_by_id={a["attachment_id"]: a for a in v["attachments"]},
            **extra,
        )

    @app.get(PREFIX + "/cases")
    def list_cases(request: Request) -> Response:
        s = console.session(request)
        if s is None:
            return to_login(request)
        q = request.query_params
        status = q.get("status", "").strip()
        district = q.get("district", "").strip()
        restaurant = q.get("restaurant", "").strip()
        mine = q.get("mine") == "1"
        rows = cw.list(
            status=status if status in STATUSES else None,
            district=district or None,
            restaurant_id=restaurant or None,
            assignee=s.principal.name if mine else None,
        )
        for r in rows:
            r["name"] = console.restaurant_name(r["restaurant_id"])
        # open work first, overdue deadlines first of all, then the newest
        rows.sort(key=lambda r: (r["status"] == "closed", not r["overdue"], -r["start_ms"]))
        restaurants = sorted(registry.restaurants().items())
        return console.page(
            request,
            "cases.html",
            s,
            rows=rows,
            statuses=STATUSES,
            districts=sorted({d.district for d in registry if d.district} | {r["district"] for r in rows}),
            restaurants=[(rid, devs[0].name) for rid, devs in restaurants],
            f={"status": status, "district": district, "restaurant": restaurant, "mine": mine},
            overdue=sum(1 for r in rows if r["overdue"]),
        )

    @app.get(PREFIX + "/cases/{case_id}")
    def show_case(request: Request, case_id: str) -> Response:
        s = console.session(request)
        if s is None:
            return to_login(request)
        return case_page(request, s, case_id)

    @app.post(PREFIX + "/cases/{case_id}/act")
    async def act(request: Request, case_id: str) -> Response:
        if console.session(request) is None:  # refused before a byte of the body is read
            return (await check_post(console, request, {}))[1] or to_login(request)
        limit = console.max_attachment_bytes
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit + 256 * 1024:
            s = console.session(request)
            return console.message(
                request, s, 413, "文件过大", f"上传的文件超过 {limit // 1024} KB 的上限，本次提交未保存。"
            )
        try:
            form = await request.form(max_files=1, max_fields=40)
        except Exception:  # noqa: BLE001 - malformed multipart
            return console.message(
                request, console.session(request), 400, "提交失败", "表单无法读取，请重试。"
            )
        s, refused = await check_post(console, request, form)
        if refused is not None:
            return refused
        assert s is not None
        who = s.principal
        if not who.may_act:
            log.warning("event=console_forbidden who=%s path=%s", who.name, request.url.path)
            return console.message(
                request,
                s,
                403,
                "无权办理",
                "您使用的是只读令牌：可以查看案件，但不能办理。办理案件请使用执法人员令牌"
                "（FUMEWATCH_INSPECTOR_TOKENS）登录。",
                back=f"{PREFIX}/cases/{case_id}",
                back_text="返回案件",
            )
        action = form.get("action")
        try:
            action = action if isinstance(action, str) else ""
            fields = forms.action_fields(action, form)
            version = forms.version_of(form)
        except forms.FormError as exc:
            return console.message(request, s, 400, "提交失败", str(exc), back=f"{PREFIX}/cases/{case_id}")
        note = form.get("note")
        note = note if isinstance(note, str) else ""
        kept = forms.kept_values(form)
        current = ledger.get_case(case_id)
        if current is None:
            return not_found(request, s, f"没有编号为 {case_id} 的案件。")
        if int(current["version"]) != version:
            return stale(request, s, case_id, version, int(current["version"]), kept)

        def refuse(status: int, text: str) -> Response:
            return case_page(request, s, case_id, status, error={"action": action, "text": text}, values=kept)

        if action not in allowed_actions(current):
            return refuse(
                409, f"当前状态（{L.label(L.STATUS, current['status'])}）下不能{L.ACTION[action]}。"
            )
        try:
            parse_fields(action, fields, tz)  # refuse bad fields before a photo is stored
        except BadFields as exc:
            return refuse(400, f"填写有误：{exc}")
        upload = form.get("photo") if action in forms.WITH_PHOTO else None
        if upload is not None and not isinstance(upload, str):
            data = await upload.read(limit + 1)
            await upload.close()
            if len(data) > limit:
                return refuse(413, f"照片/文件超过 {limit // 1024} KB 的上限。")
            if data:
                try:
                    a = cw.attach(
                        case_id,
                        upload.filename or "",
                        upload.content_type or "",
                        data,
                        actor=who.name,
                        note=f"随{L.ACTION[action]}上传",
                    )
                except (BadFields, IllegalAction) as exc:
                    return refuse(400, f"附件未能保存：{exc}")
                fields["attachments"] = [a["attachment_id"]]
        try:
            cw.act(case_id, action, fields, actor=who.name, note=note, version=version)
        except CaseNotFound:
            return not_found(request, s, f"没有编号为 {case_id} 的案件。")
        except StaleCase:
            latest = ledger.get_case(case_id) or current
            return stale(request, s, case_id, version, int(latest["version"]), kept)
        except IllegalAction as exc:
            return refuse(409, f"不能办理：{exc}")
        except BadFields as exc:
            return refuse(400, f"填写有误：{exc}")
        log.info(
            "event=console_act who=%s case=%s action=%s client=%s",
            who.name,
            case_id,
            action,
            client_of(request),
        )
        s.flash.append(("ok", f"已保存：{L.ACTION[action]}。"))
        return redirect(f"{PREFIX}/cases/{case_id}")

    def stale(request: Request, s: Any, case_id: str, yours: int, now: int, kept: dict) -> Response:
        last = (ledger.case_actions(case_id) or [{}])[-1]
        by = f"{last.get('actor', '?')}（{L.label(L.ACTION, last.get('action'))}，{L.local_text(last.get('at_ms'), tz)}）"
        return console.message(
            request,
            s,
            409,
            "案件已被他人修改，请重新载入",
            f"您打开此页面后，案件已被修改（最近一次：{by}）。您的表单基于第 {yours} 版，案件现为第 {now} 版。"
            "为避免覆盖他人的办理结果，本次提交未保存。请重新载入案件，核对最新情况后再办理。",
            back=f"{PREFIX}/cases/{case_id}",
            back_text="重新载入案件",
            kept={k: v for k, v in kept.items() if v.strip()},
        )

    @app.get(PREFIX + "/cases/{case_id}/attachments/{attachment_id}")
    def attachment(request: Request, case_id: str, attachment_id: str) -> Response:
        s = console.session(request)
        if s is None:
            return to_login(request)
        got = ledger.case_attachment_data(case_id, attachment_id)
        if got is None:
            return not_found(request, s, f"案件 {case_id} 没有附件 {attachment_id}。")
        meta, data = got
        inline = meta["content_type"].startswith("image/") and request.query_params.get("download") != "1"
        disposition = content_disposition(meta["filename"], inline)
        headers = {
            **SECURITY_HEADERS,
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": disposition,
            "X-SHA256": meta["sha256"],
        }
        return Response(data, media_type=meta["content_type"], headers=headers)

    @app.get(PREFIX + "/restaurants/{restaurant_id}")
    def restaurant(request: Request, restaurant_id: str) -> Response:
        s = console.session(request)
        if s is None:
            return to_login(request)
        devices = registry.restaurants().get(restaurant_id, [])
        episodes = ledger.list_episodes(restaurant_id=restaurant_id)
        events = ledger.list_events(restaurant_id=restaurant_id)
        cases = cw.list(restaurant_id=restaurant_id)
        if not devices and not episodes and not events and not cases:
            return not_found(request, s, f"登记表和台账中都没有编号为 {restaurant_id} 的餐饮单位。")
        events.sort(key=lambda e: -e.start_ms)
        return console.page(
            request,
            "restaurant.html",
            s,
            restaurant_id=restaurant_id,
            name=console.restaurant_name(restaurant_id),
            devices=devices,
            episodes=sorted(episodes, key=lambda p: -p.start_ms),
            events=events[:MAX_EVENTS_SHOWN],
            more_events=max(0, len(events) - MAX_EVENTS_SHOWN),
            cases=sorted(cases, key=lambda c: -c["start_ms"]),
        )

    @app.get(PREFIX + "/{rest:path}")
    @app.post(PREFIX + "/{rest:path}")
    def unknown(request: Request, rest: str) -> Response:
        return not_found(request, console.session(request), "没有这个页面。")
