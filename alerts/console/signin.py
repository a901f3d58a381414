"""Signing in and out of the console, and the checks every POST passes.

- ``GET /console/login``: the form; a fresh nonce goes into a short-lived HttpOnly cookie and a hidden
  field (double submit), so a page elsewhere cannot sign a browser in with its own token (login CSRF).
- ``POST /console/login``: the token is checked (constant time, the same :class:`TokenChecker` as the
  API). Right: a new session (fresh random id; the cookie HttpOnly, SameSite=Strict, Secure when
  ``[api] secure_cookies``, Max-Age ``[api] session_hours``) and 303 to the page asked for. Wrong: it
  counts in the API's :class:`FailureLimiter` for this client; past the limit 429 with Retry-After. The
  token is never put in a URL, a page, a log line or the session.
- ``POST /console/logout``: drops the session and the cookie.

:func:`check_post` is what every other POST goes through: a live session, not cross-site
(``Sec-Fetch-Site``), and the session's CSRF token in the form's ``csrf`` field.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from alerts.console.sessions import LOGIN_NONCE_S, Session, same_secret
from alerts.console.web import PREFIX, SECURITY_HEADERS, Console

log = logging.getLogger("fumewatch.console")


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


def safe_next(value: Any) -> str:
    """A console path to go to after sign-in; anything else (another site, a scheme) is the case list."""
    if isinstance(value, str) and value.startswith(PREFIX + "/") and not value.startswith(PREFIX + "//"):
        if "\\" not in value and "//" not in value and "\n" not in value and "\r" not in value:
            return value
    return f"{PREFIX}/cases"


def redirect(url: str, status: int = 303) -> Response:
    return RedirectResponse(url, status_code=status, headers=SECURITY_HEADERS)


def to_login(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"{PREFIX}/login?next={quote(safe_next(here), safe='/')}")


def cross_site(request: Request) -> bool:
    return request.headers.get("sec-fetch-site", "").lower() == "cross-site"


async def check_post(console: Console, request: Request, form: Any) -> tuple[Session | None, Response | None]:
    """(the session, None) when the POST may go on, else (session or None, the refusal page)."""
    s = console.session(request)
    if s is None:
        return None, console.message(
            request,
            None,
            401,
            "登录已过期",
            "您的登录已过期或已退出，本次提交未保存。请重新登录后再操作。",
            back=f"{PREFIX}/login",
            back_text="重新登录",
        )
    if cross_site(request) or not same_secret(form.get("csrf"), s.csrf):
        log.warning("event=console_csrf_refused path=%s client=%s", request.url.path, client_of(request))
        return s, console.message(
            request,
            s,
            403,
            "安全校验未通过",
            "这份表单不是从本系统的页面提交的，或页面已过期（CSRF 校验失败），本次提交未保存。"
            "请重新打开页面后再提交。",
            back=safe_next(request.url.path),
            back_text="重新打开页面",
        )
    return s, None


def add_signin_routes(app: Any, console: Console) -> None:
    def login_page(request: Request, status: int = 200, error: str = "", **headers: str) -> Response:
        nonce = request.cookies.get(console.login_cookie) or secrets.token_urlsafe(24)
        resp = console.page(
            request,
            "login.html",
            None,
            status,
            headers=headers or None,
            login_nonce=nonce,
            next=safe_next(request.query_params.get("next")),
            error=error,
            signed_out=request.query_params.get("signed_out") == "1",
        )
        console.set_cookie(resp, console.login_cookie, nonce, LOGIN_NONCE_S)
        return resp

    @app.get(PREFIX)
    @app.get(PREFIX + "/")
    def home(request: Request) -> Response:
        return redirect(f"{PREFIX}/cases" if console.session(request) else f"{PREFIX}/login")

    @app.get(PREFIX + "/login")
    def login_form(request: Request) -> Response:
        if console.session(request) is not None:
            return redirect(safe_next(request.query_params.get("next")))
        return login_page(request)

    @app.post(PREFIX + "/login")
    async def login(request: Request) -> Response:
        client = client_of(request)
        try:
            form = await request.form(max_files=0, max_fields=8)
        except Exception:  # noqa: BLE001 - malformed body
            return login_page(request, 400, "登录表单无法读取，请重新提交。")
        if cross_site(request) or not same_secret(
            form.get("csrf"), request.cookies.get(console.login_cookie)
        ):
            log.warning("event=console_csrf_refused path=%s client=%s", request.url.path, client)
            return login_page(request, 403, "登录页面已过期或不是从本系统打开的，请重新输入令牌登录。")
        token = form.get("token")
        token = token.strip() if isinstance(token, str) else ""
        verdict, who = console.identify(token) if token else ("missing", None)
        if verdict == "ok" and who is not None:
            s = console.sessions.create(who)
            log.info("event=console_sign_in who=%s role=%s client=%s", who.name, who.role, client)
            resp = redirect(safe_next(form.get("next")))
            console.set_cookie(resp, console.cookie, s.sid, int(console.session_s))
            console.clear_cookie(resp, console.login_cookie)
            return resp
        wait = console.limiter.retry_after(client)
        if wait is not None:
            log.warning("event=console_sign_in_refused reason=rate_limited client=%s", client)
            return login_page(
                request,
                429,
                f"登录失败次数过多，已暂时锁定。请 {wait} 秒后再试。",
                **{"Retry-After": str(wait)},
            )
        console.limiter.failed(client)
        log.warning("event=console_sign_in_failed reason=auth_%s client=%s", verdict, client)
        return login_page(request, 401, "令牌不正确，请检查后重新输入。" if token else "请输入令牌。")

    @app.post(PREFIX + "/logout")
    async def logout(request: Request) -> Response:
        try:
            form = await request.form(max_files=0, max_fields=4)
        except Exception:  # noqa: BLE001 - malformed body
            form = {}
        s, refused = await check_post(console, request, form)
        if refused is not None and s is not None:
            return refused
        if s is not None:
            console.sessions.drop(s.sid)
            log.info("event=console_sign_out who=%s client=%s", s.principal.name, client_of(request))
        resp = redirect(f"{PREFIX}/login?signed_out=1")
        console.clear_cookie(resp, console.cookie)
        return resp
