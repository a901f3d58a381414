"""The ASGI application (FastAPI): the auth guard and access log middleware, error handlers and the routes.

FastAPI is imported inside :func:`create_app`, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from alerts.api.auth import FailureLimiter, TokenChecker
from alerts.api.common import BadRequest, _content_disposition, _safe_query, _show  # noqa: F401 (re-exported)
from alerts.api.settings import ApiSettings
from alerts.owner.links import log_path
from alerts.reports.config import ReportSettings

# Module-level imports stay light (no alerts.config, no FastAPI): alerts.config may import ApiSettings
# from alerts.api, and the `fumewatch` command imports the package at start-up to register `api`.
if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from alerts.detection.window import DetectorConfig
    from alerts.enforcement.notify import NotifySettings
    from alerts.owner.settings import OwnerSettings
    from alerts.profiles import Profiles
    from ingest.registry import Registry
    from ingest.store.base import Store

log = logging.getLogger("fumewatch.api")

API_FORMATS = ("json", "csv", "xlsx", "html", "pdf")


def create_app(
    *,
    state_path: str,
    registry: Registry,
    tokens: list[str],
    inspectors: dict[str, str] | None = None,
    api: ApiSettings | None = None,
    report: ReportSettings | None = None,
    display_tz: str = "Asia/Shanghai",
    detector: DetectorConfig | None = None,
    profiles: Profiles | None = None,
    store: Store | None = None,
    owner: OwnerSettings | None = None,
    notify: NotifySettings | None = None,
    contact_of: Callable[[str], tuple[str, str]] | None = None,
) -> FastAPI:
    """The ASGI application. ``tokens``: the read tokens (see :func:`parse_tokens`); ``inspectors``:
    token -> inspector name (:func:`~alerts.api.settings.parse_inspectors`), who may also act on cases.
    ``owner`` with a ``public_url``: also serve the owners' page (``/o/<token>``, :mod:`alerts.owner`),
    sending receipts with ``notify`` (the ``[notify]`` section) and ``contact_of`` (district -> office,
    phone)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from alerts.detection.window import DetectorConfig
    from alerts.ledger import Ledger
    from alerts.model import EVENT_KINDS
    from alerts.profiles import load_profiles
    from alerts.reports.build import ReportError, build_report, check_filters
    from alerts.reports.formats import MEDIA_TYPES, filename, iso_local, render, report_dict
    from alerts.reports.formats import TABLES as REPORT_TABLES
    from ingest.timeutil import parse_time

    if not tokens and not inspectors:
        raise ValueError("create_app needs at least one token")
    api = api or ApiSettings()
    report_settings = report or ReportSettings()
    detector = detector or DetectorConfig()
    profiles = profiles if profiles is not None else load_profiles()
    checker = TokenChecker(tokens, inspectors)
    limiter = FailureLimiter(api.auth_fail_limit, api.auth_fail_window_s)
    reports_gate = threading.BoundedSemaphore(api.max_concurrent_reports)
    ledger = Ledger(state_path)
    names = {d.restaurant_id: d.name for d in registry}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        try:
            yield
        finally:
            ledger.close()

    app = FastAPI(title="fumewatch", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ledger = ledger

    def error(status: int, err: str, detail: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": err, "detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(BadRequest)
    async def _bad(_: Request, exc: BadRequest) -> JSONResponse:
        return error(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return error(400, "bad_request", f"invalid parameter(s): {where}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return error(exc.status_code, err, str(exc.detail), getattr(exc, "headers", None))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        t0 = time.perf_counter()
        client = request.client.host if request.client else "-"
        path = request.url.path
        shown_path = log_path(path)  # an owner's link: its id, never the token
        reason = ""
        if path.startswith("/api/"):
            # The token is checked first: a right token always passes, even from a client (or a reverse
            # proxy that all clients share) that is throttled for failures. Only failures are limited.
            verdict, principal = checker.identify(request.headers.get("authorization"))
            request.state.principal = principal
            wait = None if verdict == "ok" else limiter.retry_after(client)
            if wait is not None:
                reason = "rate_limited"
                resp = error(
                    429,
                    "too_many_requests",
                    f"too many failed authentications from this client; retry after {wait} s",
                    {"Retry-After": str(wait)},
                )
            elif verdict != "ok":
                limiter.failed(client)
                reason = f"auth_{verdict}"
                challenge = 'Bearer realm="fumewatch"' + (
                    ', error="invalid_token"' if verdict == "invalid" else ""
                )
                resp = error(
                    401,
                    "unauthorized",
                    "missing or invalid bearer token",
                    {"WWW-Authenticate": challenge},
                )
        if not reason:
            try:
                resp = await call_next(request)
            except Exception:
                log.exception("event=api_error method=%s path=%s", request.method, shown_path)
                resp = error(500, "internal_error", "internal error; see the server log")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        if api.access_log:
            level = logging.DEBUG if path == "/healthz" and resp.status_code == 200 else logging.INFO
            if reason.startswith(("auth_", "rate_")):
                level = logging.WARNING
            log.log(
                level,
                "event=http method=%s path=%s query=%s status=%d client=%s duration_ms=%.1f%s",
                request.method,
                shown_path,
                _safe_query(request.url.query) or "-",
                resp.status_code,
                client,
                (time.perf_counter() - t0) * 1000,
                f" reason={reason}" if reason else "",
            )
        return resp

    def time_param(name: str, value: str | None) -> int:
        if value is None or not value.strip():
            raise BadRequest(f"{name} is required (RFC 3339, a date or epoch ms)")
        text = value.strip()
        # an unencoded "+" in "+08:00" arrives as a space: take it back
        text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text)
        try:
            return parse_time(text, display_tz)
        except (ValueError, OverflowError):
            raise BadRequest(
                f"cannot read {name}={_show(value)}: use RFC 3339 (2026-11-26T12:00:00%2B08:00), a date "
                "(2026-11-26, display time zone) or epoch milliseconds"
            ) from None

    def period(since: str | None, until: str | None) -> tuple[int, int]:
        s, u = time_param("since", since), time_param("until", until)
        if s >= u:
            raise BadRequest("since must be before until")
        if u - s > api.max_period_days * 86_400_000:
            raise BadRequest(f"period longer than {api.max_period_days:g} days")
        return s, u

    def filters(district: str | None, restaurant: str | None) -> tuple[str | None, str | None]:
        district = district.strip() if district and district.strip() else None
        restaurant = restaurant.strip() if restaurant and restaurant.strip() else None
        try:
            check_filters(ledger, registry, district, restaurant)
        except ReportError as exc:
            raise BadRequest(str(exc)) from None
        return district, restaurant

    @app.get("/healthz")
    def healthz() -> Response:
        ok = ledger.ping()  # through the ledger's engine: SQLite file or PostgreSQL alike
        if ok:
            return JSONResponse({"status": "ok", "state_db": "ok"})
        return JSONResponse({"status": "unavailable", "state_db": "unreachable"}, status_code=503)

    @app.get("/api/v1/reports/exceedances")
    def exceedances(
        since: str | None = None,
        until: str | None = None,
        district: str | None = None,
        restaurant: str | None = None,
        format: str = "json",  # noqa: A002 - the public parameter name
        table: str = "events",
    ) -> Response:
        fmt = format.strip().lower()
        if fmt not in API_FORMATS:
            raise BadRequest(f"unknown format {_show(format)}; use one of {', '.join(API_FORMATS)}")
        if table not in REPORT_TABLES:
            raise BadRequest(f"unknown table {_show(table)}; use one of {', '.join(REPORT_TABLES)}")
        s, u = period(since, until)
        district, restaurant = filters(district, restaurant)
        if not reports_gate.acquire(timeout=30):
            raise BadRequest(
                "too many reports are being built; retry shortly", 503, "busy", {"Retry-After": "5"}
            )
        try:
            charts = fmt in ("html", "pdf")
            rep = build_report(
                ledger,
                registry,
                s,
                u,
                district=district,
                restaurant_id=restaurant,
                store=store if charts else None,
                profiles=profiles,
                display_tz=display_tz,
                max_charts=report_settings.max_charts if charts else 0,
                chart_margin_min=report_settings.chart_margin_min,
                detector=detector,
            )
            if fmt == "json":
                import orjson

                return Response(orjson.dumps(report_dict(rep)), media_type=MEDIA_TYPES["json"])
            body = render(rep, fmt, table=table, settings=report_settings)
        except ReportError as exc:
            raise BadRequest(str(exc)) from None
        finally:
            reports_gate.release()
        return Response(
            body,
            media_type=MEDIA_TYPES[fmt],
            headers={"Content-Disposition": _content_disposition(filename(rep, fmt, table))},
        )

    @app.get("/api/v1/events")
    def events(
        since: str | None = None,
        until: str | None = None,
        restaurant: str | None = None,
        district: str | None = None,
        kind: str | None = None,
        limit: str = "10000",
    ) -> Response:
        import orjson

        s, u = period(since, until)
        district, restaurant = filters(district, restaurant)
        if kind is not None and kind not in EVENT_KINDS:
            raise BadRequest(f"unknown kind {_show(kind)}; use one of {', '.join(EVENT_KINDS)}")
        if not limit.isdigit() or not 1 <= int(limit) <= 100_000:
            raise BadRequest("limit must be a whole number from 1 to 100000")
        items = ledger.list_events(
            since_ms=s, until_ms=u, restaurant_id=restaurant, district=district, kind=kind
        )
        n = int(limit)
        out: list[dict[str, Any]] = []
        for e in items[:n]:
            out.append(
                {
                    "event_id": e.event_id,
                    "kind": e.kind,
                    "restaurant_id": e.restaurant_id,
                    "name": names.get(e.restaurant_id, ""),
                    "device_id": e.device_id,
                    "district": e.district,
                    "pollutant": e.pollutant,
                    "start": iso_local(e.start_ms, display_tz),
                    "end": iso_local(e.end_ms, display_tz) if e.end_ms is not None else None,
                    "start_ms": e.start_ms,
                    "end_ms": e.end_ms,
                    "peak_mg_m3": e.peak_mg_m3,
                    "mean_mg_m3": e.mean_mg_m3,
                    "limit_mg_m3": e.limit_mg_m3,
                    "profile": e.profile,
                    "level": e.level,
                    "state": e.state,
                }
            )
        headers = {"X-Total-Count": str(len(items))}
        return Response(orjson.dumps(out), media_type="application/json", headers=headers)

    from alerts.api.cases import add_case_routes

    casework = add_case_routes(app, ledger, registry, api=api, display_tz=display_tz, store=store)

    # The inspectors' web console (/console): session cookie instead of bearer tokens, so the guard above
    # (which checks /api/ only) leaves it alone; failed sign-ins count in the same limiter.
    from alerts.console import add_console

    add_console(
        app,
        casework=casework,
        ledger=ledger,
        registry=registry,
        identify=checker.identify_token,
        limiter=limiter,
        session_hours=api.session_hours,
        secure_cookies=api.secure_cookies,
        max_attachment_bytes=api.max_attachment_bytes,
        display_tz=display_tz,
        inspector_names=list((inspectors or {}).values()),
    )
    if owner is not None and owner.public_url:
        _add_owner_page(
            app,
            ledger,
            casework,
            registry,
            limiter,
            owner,
            notify,
            contact_of,
            profiles,
            detector,
            display_tz,
        )
    return app


def _add_owner_page(
    app: Any,
    ledger: Any,
    casework: Any,
    registry: Registry,
    limiter: FailureLimiter,
    owner: OwnerSettings,
    notify: NotifySettings | None,
    contact_of: Callable[[str], tuple[str, str]] | None,
    profiles: Profiles,
    detector: DetectorConfig,
    display_tz: str,
) -> None:
    """Mount the owners' page (:mod:`alerts.owner.page`), with receipts through the owner's channels."""
    from alerts.enforcement.notify import Notifier, NotifySettings
    from alerts.enforcement.notify.receipt import receipt_key, send_receipt
    from alerts.owner.links import OwnerLinks
    from alerts.owner.page import OwnerPage, add_owner_page

    links = OwnerLinks.from_settings(ledger, owner)
    assert links is not None
    settings = (notify or NotifySettings()).model_copy(update={"display_tz": display_tz})
    contact = contact_of or (lambda _d: (settings.office, settings.contact_phone))
    notifier = Notifier(settings, ledger, contact_of=contact)

    def receipt(row: dict[str, Any], link: tuple[str, int]) -> None:
        devices = registry.restaurants().get(row["restaurant_id"]) or [None]
        ledger.set_submission_receipt(row["submission_id"], receipt_key(row["submission_id"]))
        try:
            for r in send_receipt(notifier, row, devices[0], link):
                log.info(
                    "event=owner_receipt id=%s channel=%s status=%s",
                    row["submission_id"],
                    r.channel,
                    r.status,
                )
        except Exception:  # the submission is stored; the receipt row stays pending for the alerts service
            log.exception("event=owner_receipt_failed id=%s", row["submission_id"])

    add_owner_page(
        app,
        OwnerPage(
            links=links,
            ledger=ledger,
            casework=casework,
            registry=registry,
            settings=owner,
            tz=display_tz,
            limiter=limiter,
            contact_of=contact,
            limits_of=lambda d: profiles.for_device(d, detector.default_profile).limits_for(d.stove_heads),
            send_receipt=receipt,
        ),
    )
    log.info("event=owner_page_ready path=/o/ public_url=%s link_days=%g", owner.public_url, owner.link_days)
