"""What the console's routes share: the Jinja2 templates (autoescaped), the security headers of every page,
the session cookie, and :class:`Console` (the dependencies the routes use)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, Undefined, select_autoescape

from alerts.console import labels as L
from alerts.console.sessions import (
    COOKIE_PLAIN,
    COOKIE_SECURE,
    LOGIN_COOKIE_PLAIN,
    LOGIN_COOKIE_SECURE,
    Session,
    SessionStore,
)
from alerts.rules import rule

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from alerts.casework import Casework
    from alerts.ledger import Ledger
    from ingest.registry import Registry

log = logging.getLogger("fumewatch.console")
HERE = Path(__file__).resolve().parent
PREFIX = "/console"

#: Self only: no inline script or style, no framing, forms post only here, nothing from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), geolocation=(), microphone=()",
}


@dataclass
class Console:
    """The dependencies of the console's routes (built by :func:`alerts.console.add_console`)."""

    casework: Casework
    ledger: Ledger
    registry: Registry
    identify: Any  # TokenChecker.identify_token: token -> (verdict, Principal | None)
    limiter: Any  # the API's FailureLimiter: failed sign-ins count with failed bearer tokens
    sessions: SessionStore
    tz: str
    secure_cookies: bool
    session_s: float
    max_attachment_bytes: int
    inspector_names: list[str] = field(default_factory=list)
    env: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = make_env(self.tz)
        self.env.globals["session_hours"] = self.session_s / 3600
        self.names = {d.restaurant_id: d.name for d in self.registry}

    # -- cookies --------------------------------------------------------------------------------------

    @property
    def cookie(self) -> str:
        return COOKIE_SECURE if self.secure_cookies else COOKIE_PLAIN

    @property
    def login_cookie(self) -> str:
        return LOGIN_COOKIE_SECURE if self.secure_cookies else LOGIN_COOKIE_PLAIN

    def set_cookie(self, resp: Response, name: str, value: str, max_age: int) -> None:
        resp.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure_cookies,
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, resp: Response, name: str) -> None:
        resp.delete_cookie(name, path="/", secure=self.secure_cookies, httponly=True, samesite="strict")

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(self.cookie))

    # -- pages ----------------------------------------------------------------------------------------

    def page(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **ctx: Any,
    ) -> Response:
        from starlette.responses import HTMLResponse

        body = self.env.get_template(template).render(
            session=session,
            who=session.principal if session else None,
            csrf=session.csrf if session else "",
            flash=session.take_flash() if session else [],
            path=request.url.path,
            **ctx,
        )
        return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})

    def message(
        self,
        request: Request,
        session: Session | None,
        status: int,
        title: str,
        text: str,
        *,
        back: str = "",
        back_text: str = "返回",
        **ctx: Any,
    ) -> Response:
        return self.page(
            request,
            "message.html",
            session,
            status,
            title=title,
            text=text,
            back=back,
            back_text=back_text,
            **ctx,
        )

    def restaurant_name(self, restaurant_id: str) -> str:
        return self.names.get(restaurant_id, "")


def make_env(tz: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(("html",), default_for_string=True, default=True),
        undefined=ChainableUndefined,  # old or task case records lack keys: show nothing, not a 500
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters = dict(
        t=lambda v: L.local_text(v, tz),
        iso=lambda v: L.iso(v, tz),
        num=L.number,
        status=lambda v: L.label(L.STATUS, v),
        outcome=lambda v: L.label(L.OUTCOME, v),
        action=lambda v: L.label(L.ACTION, v),
        condition=lambda v: L.label(L.CONDITION, v),
        case_type=lambda v: L.label(L.CASE_TYPE, v),
        level=lambda v: L.label(L.LEVEL, v),
        kind=lambda v: L.label(L.EVENT_KIND, v),
        event_state=lambda v: L.label(L.EVENT_STATE, v),
        pollutant=lambda v: L.label(L.POLLUTANT, v),
        notice_status=lambda v: L.label(L.NOTICE_STATUS, v),
        channel=lambda v: L.label(L.CHANNEL, v),
        field_name=lambda v: L.FIELD.get(v, v),
        field_value=lambda v, name="": L.field_value(name, v),
        size=_size,
        trail_fields=L.trail_fields,
        invalid_reason=lambda v: L.label(L.INVALID_REASON, v),
        template=lambda v: L.label(L.TEMPLATE, v),
        actor=lambda v: L.label(L.ACTOR, v),
        system_note=lambda v: L.label(L.SYSTEM_NOTE, v),
        span=lambda v, end=None: L.span(v, end, tz),
        rule_title=lambda v: rule(v).title("zh-CN") if v else "—",
    )
    env.filters.update({name: _defined(f) for name, f in filters.items()})
    env.globals.update(
        prefix=PREFIX,
        tz=tz,
        tz_offset=L.offset_text(tz),
        CONDITION=L.CONDITION,
        STATUS=L.STATUS,
        OUTCOME=L.OUTCOME,
        DISMISS_REASON=L.DISMISS_REASON,
        STATEMENT_FORM=L.STATEMENT_FORM,
    )
    return env


def _defined(f: Any) -> Any:
    """``f`` with an undefined value (a key the record lacks) passed on as None."""

    def wrapped(v: Any, *args: Any) -> Any:
        return f(None if isinstance(v, Undefined) else v, *args)

    return wrapped


def content_disposition(name: str, inline: bool = False) -> str:
    """``attachment`` (or ``inline``) with an ASCII fallback name and the UTF-8 one (RFC 6266)."""
    ascii_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in name)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def _size(n: Any) -> str:
    n = int(n or 0)
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} B"
