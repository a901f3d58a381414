"""The console's server-side sessions: a random id in an HttpOnly cookie, everything else in memory.

A session holds who signed in (the :class:`~alerts.api.auth.Principal` of the token, never the token),
its CSRF token (a hidden field in every form, compared in constant time on every POST) and a one-shot
message for the next page. Sessions live ``[api] session_hours`` from sign-in (no sliding renewal), are
dropped at sign-out, and are forgotten when the process restarts (everyone signs in again). Memory is
bounded: past ``max_sessions`` the oldest session goes first.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Cookie names. ``__Host-`` (Secure, Path=/, no Domain) cannot be set or overwritten by a sibling
#: subdomain or over plain HTTP; browsers accept it only with Secure, so plain-HTTP use keeps the other.
COOKIE_SECURE, COOKIE_PLAIN = "__Host-fumewatch_console", "fumewatch_console"
#: The sign-in form's own CSRF nonce (double submit: cookie and hidden field), before any session exists.
LOGIN_COOKIE_SECURE, LOGIN_COOKIE_PLAIN = "__Host-fumewatch_login", "fumewatch_login"
LOGIN_NONCE_S = 3600


@dataclass
class Session:
    sid: str
    principal: Any  # alerts.api.auth.Principal: role, name, may_act
    csrf: str
    expires: float  # monotonic clock
    created_wall_ms: int
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind: ok | error, text)

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        return out


class SessionStore:
    def __init__(
        self, lifetime_s: float, max_sessions: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lifetime_s, self.max_sessions, self._clock = lifetime_s, max_sessions, clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, principal: Any) -> Session:
        """A new session (a fresh id at every sign-in: no session fixation)."""
        now = self._clock()
        s = Session(
            sid=secrets.token_urlsafe(32),
            principal=principal,
            csrf=secrets.token_urlsafe(32),
            expires=now + self.lifetime_s,
            created_wall_ms=int(time.time() * 1000),
        )
        with self._lock:
            self._sweep(now)
            self._sessions[s.sid] = s
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if s.expires <= self._clock():
                del self._sessions[sid]
                return None
            return s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _sweep(self, now: float) -> None:
        for sid in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[sid]


def same_secret(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two secrets; False when either is missing."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))
