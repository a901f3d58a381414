"""What the API's route modules share: the error they raise and small formatting helpers."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode

_SECRET_PARAM = re.compile(r"(?i)token|auth|key|secret|pass")


class BadRequest(Exception):
    def __init__(
        self, detail: str, status: int = 400, error: str = "bad_request", headers: dict | None = None
    ):
        super().__init__(detail)
        self.detail, self.status, self.error, self.headers = detail, status, error, headers or {}


def _show(value: str, limit: int = 64) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _safe_query(query: str) -> str:
    """The query string for the access log, with anything that looks like a secret masked."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if _SECRET_PARAM.search(k) else v[:80]) for k, v in pairs], safe=",:+")


def _content_disposition(name: str) -> str:
    ascii_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
