"""The case routes of the API (issue 12): list, read, act on a case, attach files, the case file.

::

    GET  /api/v1/cases?status&district&restaurant&case_type&assignee     case summaries (JSON list)
    GET  /api/v1/cases/{case_id}                case, lifecycle, audit trail, attachments, notices, actions
    POST /api/v1/cases/{case_id}/actions        {"action", "version", "note", ...fields} -> 200 the case
    POST /api/v1/cases/{case_id}/attachments    multipart: file (+ note) -> 201 the attachment
    GET  /api/v1/cases/{case_id}/attachments/{attachment_id}                  the file
    GET  /api/v1/cases/{case_id}/file           the case file (执法案卷): zip with PDF, CSV, manifest

This module is imported by :func:`alerts.api.app.create_app` only (it imports FastAPI at module level).
Reading needs any token; acting and attaching an inspector token (403 for a read token), whose name goes
into the audit trail. 409 on a stale ``version`` (someone else acted first) or an illegal transition,
400 on bad fields, 404 for an unknown case, 413 for an attachment over ``[api] max_attachment_bytes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request  # at module level: route signatures are resolved from these globals

from alerts.api.common import BadRequest, _content_disposition, _show
from alerts.casework import STATUSES, BadFields, Casework, IllegalAction
from alerts.ledger.casework import CaseNotFound, StaleCase

if TYPE_CHECKING:
    from fastapi import FastAPI

    from alerts.api.settings import ApiSettings
    from alerts.ledger import Ledger
    from ingest.registry import Registry
    from ingest.store.base import Store

CASE_TYPES = ("enforcement", "owner_unreachable")


def casework_errors(exc: Exception) -> BadRequest:
    """The HTTP answer of a casework refusal."""
    if isinstance(exc, CaseNotFound):
        return BadRequest(str(exc), 404, "not_found")
    if isinstance(exc, StaleCase):
        return BadRequest(str(exc), 409, "stale_version")
    if isinstance(exc, IllegalAction):
        return BadRequest(str(exc), 409, "illegal_transition")
    return BadRequest(str(exc), 400, "bad_request")


def add_case_routes(
    app: FastAPI,
    ledger: Ledger,
    registry: Registry,
    *,
    api: ApiSettings,
    display_tz: str,
    store: Store | None,
) -> Casework:
    import orjson
    from fastapi.responses import Response

    casework = Casework(ledger, display_tz, api.max_attachment_bytes)
    names = {d.restaurant_id: d.name for d in registry}
    app.state.casework = casework

    def actor(request: Request) -> str:
        who = getattr(request.state, "principal", None)
        if who is None or not who.may_act:
            raise BadRequest(
                "this token may read cases but not act on them: use an inspector token "
                "(FUMEWATCH_INSPECTOR_TOKENS)",
                403,
                "forbidden",
            )
        return who.name

    def one(value: str | None, allowed: tuple[str, ...] | None, name: str) -> str | None:
        v = value.strip() if value and value.strip() else None
        if v is not None and allowed is not None and v not in allowed:
            raise BadRequest(f"unknown {name} {_show(v)}; use one of {', '.join(allowed)}")
        return v

    def json(data: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(data), status_code=status, media_type="application/json")

    def view(case_id: str) -> dict[str, Any]:
        v = casework.view(case_id)
        if v is None:
            raise BadRequest(f"no case {case_id!r}", 404, "not_found")
        v["summary"]["name"] = names.get(v["summary"]["restaurant_id"], "")
        return v

    @app.get("/api/v1/cases")
    def list_cases(
        status: str | None = None,
        district: str | None = None,
        restaurant: str | None = None,
        case_type: str | None = None,
        assignee: str | None = None,
    ) -> Response:
        rows = casework.list(
            status=one(status, STATUSES, "status"),
            district=one(district, None, "district"),
            restaurant_id=one(restaurant, None, "restaurant"),
            case_type=one(case_type, CASE_TYPES, "case_type"),
            assignee=one(assignee, None, "assignee"),
        )
        for r in rows:
            r["name"] = names.get(r["restaurant_id"], "")
        return json(rows)

    @app.get("/api/v1/cases/{case_id}")
    def get_case(case_id: str) -> Response:
        return json(view(case_id))

    @app.post("/api/v1/cases/{case_id}/actions")
    async def act(case_id: str, request: Request) -> Response:
        who = actor(request)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise BadRequest("the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        action = body.pop("action", None)
        version = body.pop("version", None)
        note = body.pop("note", "") or ""
        if not isinstance(action, str):
            raise BadRequest('"action" is required')
        if not isinstance(version, int) or isinstance(version, bool):
            raise BadRequest('"version" (the case version you read) is required, a whole number')
        if not isinstance(note, str):
            raise BadRequest('"note" must be text')
        try:
            casework.act(case_id, action, body, actor=who, note=note, version=version)
        except (CaseNotFound, StaleCase, IllegalAction, BadFields) as exc:
            raise casework_errors(exc) from None
        return json(view(case_id))

    @app.post("/api/v1/cases/{case_id}/attachments")
    async def attach(case_id: str, request: Request) -> Response:
        who = actor(request)
        limit = api.max_attachment_bytes
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit + 64 * 1024:
            raise BadRequest(f"upload larger than the limit of {limit} bytes", 413, "too_large")
        try:
            form = await request.form(max_files=1, max_fields=5)
        except Exception:  # noqa: BLE001 - malformed multipart
            raise BadRequest("send multipart/form-data with a field named file") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise BadRequest("send multipart/form-data with a field named file")
        data = await upload.read(limit + 1)
        await upload.close()
        if len(data) > limit:
            raise BadRequest(f"attachment larger than the limit of {limit} bytes", 413, "too_large")
        note = form.get("note")
        try:
            a = casework.attach(
                case_id,
                upload.filename or "",
                upload.content_type or "",
                data,
                actor=who,
                note=note if isinstance(note, str) else "",
            )
        except (CaseNotFound, IllegalAction, BadFields) as exc:
            raise casework_errors(exc) from None
        return json(a, 201)

    @app.get("/api/v1/cases/{case_id}/attachments/{attachment_id}")
    def attachment(case_id: str, attachment_id: str) -> Response:
        got = ledger.case_attachment_data(case_id, attachment_id)
        if got is None:
            raise BadRequest(f"no attachment {attachment_id!r} on case {case_id!r}", 404, "not_found")
        meta, data = got
        return Response(
            data,
            media_type=meta["content_type"],
            headers={
                "Content-Disposition": _content_disposition(meta["filename"]),
                "X-SHA256": meta["sha256"],
            },
        )

    @app.get("/api/v1/cases/{case_id}/file")
    def case_file(case_id: str) -> Response:
        from alerts.casework.case_zip import build_case_zip

        filename, data = build_case_zip(view(case_id), ledger, store=store, tz=display_tz, names=names)
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": _content_disposition(filename)},
        )

    return casework
