"""The inspectors' web console (issue 12): ``/console`` on the same server as the API (``fumewatch api``).

Server-rendered pages (Jinja2, autoescaped; a little vendored JavaScript, no build step, nothing from a
CDN), zh-CN first, readable on a phone::

    GET  /console/login, POST /console/login, POST /console/logout        sign in with a token, sign out
    GET  /console/cases?status&district&restaurant&mine                   the case list
    GET  /console/cases/{case_id}                                         a case: evidence, notices, trail
    POST /console/cases/{case_id}/act                                     an action (+ photo), CSRF-checked
    GET  /console/cases/{case_id}/attachments/{attachment_id}[?download=1]
    GET  /console/restaurants/{restaurant_id}                             episodes, events, cases
    GET  /console/static/...                                              CSS and JS of the package

The rules are the casework's (:class:`alerts.casework.Casework`); sessions and CSRF are in
:mod:`alerts.console.sessions` and :mod:`alerts.console.signin`; docs/console.md has the security model.
This package never imports :mod:`alerts.api` (which registers it): the token check and the failure
limiter are handed in by :func:`alerts.api.app.create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alerts.casework import Casework
    from alerts.ledger import Ledger
    from ingest.registry import Registry

__all__ = ["add_console"]


def add_console(
    app: Any,
    *,
    casework: Casework,
    ledger: Ledger,
    registry: Registry,
    identify: Any,
    limiter: Any,
    session_hours: float,
    secure_cookies: bool,
    max_attachment_bytes: int,
    display_tz: str,
    inspector_names: list[str] | None = None,
) -> Any:
    """Mount the console on ``app`` (a FastAPI app). ``identify``: token -> (verdict, principal), the
    API's :meth:`TokenChecker.identify_token`; ``limiter``: the API's :class:`FailureLimiter`."""
    from starlette.staticfiles import StaticFiles

    from alerts.console.pages import add_case_pages
    from alerts.console.sessions import SessionStore
    from alerts.console.signin import add_signin_routes
    from alerts.console.web import HERE, PREFIX, Console

    console = Console(
        casework=casework,
        ledger=ledger,
        registry=registry,
        identify=identify,
        limiter=limiter,
        sessions=SessionStore(session_hours * 3600),
        tz=display_tz,
        secure_cookies=secure_cookies,
        session_s=session_hours * 3600,
        max_attachment_bytes=max_attachment_bytes,
        inspector_names=sorted(set(inspector_names or ())),
    )
    app.mount(PREFIX + "/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
    add_signin_routes(app, console)
    add_case_pages(app, console)
    app.state.console = console
    return console
