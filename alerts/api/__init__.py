"""``fumewatch api``: the HTTP API that serves the inspector reports, events and cases (:mod:`alerts.api.cases`;
inspector tokens may act on cases) and mounts the console (:mod:`alerts.console`).

Endpoints (times: RFC 3339, a date in the display time zone, or epoch ms; URL-encode ``+`` as ``%2B``)::

    GET /healthz                                   no auth; 200 {"status": "ok"} when the state DB answers
    GET /api/v1/reports/exceedances?since&until[&district][&restaurant][&format=json|csv|xlsx|html|pdf]
                                                   [&table=events|summary|reminders|integrity|cases...]   (csv only)
        json: {"events": [...], "summary": [...], "integrity": [...], "totals": {...}, "since", ...}
    GET /api/v1/events?since&until[&restaurant][&district][&kind][&limit=10000]    JSON list of events

Security (issue 6):

- Every ``/api/`` request needs ``Authorization: Bearer <token>``. Tokens come only from the environment
  variable ``FUMEWATCH_API_TOKENS`` (comma-separated; an ``.env`` file works too), never from the TOML file
  (``fumewatch api`` refuses a config file with ``[api] tokens``). Each must be at least 16 characters.
- The presented token is compared with every configured token using :func:`hmac.compare_digest` on
  SHA-256 digests: constant time, and no length leak.
- A missing or wrong token gets 401 with ``WWW-Authenticate: Bearer realm="fumewatch"`` (RFC 6750); the
  body and the logs never contain the presented token or the Authorization header.
- Failed authentications are counted per client IP in a sliding window (``auth_fail_limit`` per
  ``auth_fail_window_s``, default 10 per minute); past the limit every ``/api/`` request from that IP
  gets 429 with ``Retry-After`` until the window has moved on, a right token included.
  Behind a reverse proxy set ``forwarded_allow_ips`` to the proxy address so the client IP is the real one.
- Bad parameters are 400 with ``{"error": "bad_request", "detail": "..."}``; unknown paths 404; errors
  never include a stack trace. Access log lines are ``key=value``: method, path, query (secrets masked),
  status, client, duration — no headers.

Why FastAPI + uvicorn: both are actively maintained, widely deployed, typed; uvicorn is an ASGI server
with bounded keep-alive and sane defaults, FastAPI/Starlette give routing, middleware and exception
handling without hand-written HTTP parsing (the stdlib ``http.server`` is documented as not for
production). Heavy work (building a report) runs in Starlette's thread pool, bounded by
``max_concurrent_reports``.

The package: ``settings`` (:class:`ApiSettings`, :func:`parse_tokens`), ``auth`` (:class:`TokenChecker`,
:class:`FailureLimiter`) and ``app`` (:func:`create_app`: middleware, error handlers, routes).
"""

from __future__ import annotations

from alerts.api.app import API_FORMATS, BadRequest, create_app
from alerts.api.auth import FailureLimiter, TokenChecker
from alerts.api.settings import MIN_TOKEN_CHARS, ApiSettings, parse_tokens

__all__ = [
    "API_FORMATS",
    "MIN_TOKEN_CHARS",
    "ApiSettings",
    "BadRequest",
    "FailureLimiter",
    "TokenChecker",
    "create_app",
    "parse_tokens",
]
