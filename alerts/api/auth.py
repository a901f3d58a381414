"""Authentication: the constant-time bearer-token check and the per-client limit on failed attempts.

The guard (alerts/api/app.py) checks the token first: a right token always passes; only a missing or wrong
one counts in :class:`FailureLimiter` and, past the limit, gets 429 with Retry-After. So failures from one
IP (or from every client behind a proxy without ``[api] forwarded_allow_ips``) never lock out a right token.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

READER, INSPECTOR = "reader", "inspector"


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: a reader (may read) or a named inspector (may also act on cases)."""

    role: str
    name: str

    @property
    def may_act(self) -> bool:
        return self.role == INSPECTOR


class TokenChecker:
    """Constant-time bearer-token check against every configured token.

    ``tokens``: read tokens (``FUMEWATCH_API_TOKENS``); ``inspectors``: token -> inspector name
    (``FUMEWATCH_INSPECTOR_TOKENS``)."""

    def __init__(self, tokens: list[str], inspectors: dict[str, str] | None = None) -> None:
        self._entries: list[tuple[bytes, Principal]] = [
            (hashlib.sha256(t.encode("utf-8")).digest(), Principal(READER, f"reader#{i + 1}"))
            for i, t in enumerate(tokens)
        ]
        self._entries += [
            (hashlib.sha256(t.encode("utf-8")).digest(), Principal(INSPECTOR, name))
            for t, name in (inspectors or {}).items()
        ]

    def identify(self, authorization: str | None) -> tuple[str, Principal | None]:
        """(``ok`` | ``missing`` | ``invalid``, the token's principal when ok) for an Authorization header."""
        if not authorization:
            return "missing", None
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            return "missing", None
        return self.identify_token(value)

    def identify_token(self, value: str) -> tuple[str, Principal | None]:
        presented = hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for d, who in self._entries:  # no early exit: the time does not say which token matched
            if hmac.compare_digest(presented, d) and (found is None or who.role == INSPECTOR):
                found = who  # a token configured as both is an inspector's
        return ("ok", found) if found is not None else ("invalid", None)

    def check(self, authorization: str | None) -> str:
        """``ok``, ``missing`` (no usable Bearer credentials) or ``invalid``."""
        return self.identify(authorization)[0]


class FailureLimiter:
    """Failed authentications per client in a sliding window; bounded memory (``max_clients``)."""

    def __init__(self, limit: int, window_s: float, max_clients: int = 10_000, clock=time.monotonic) -> None:
        self.limit, self.window_s, self.max_clients, self._clock = limit, window_s, max_clients, clock
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _live(self, client: str, now: float) -> deque[float] | None:
        q = self._fails.get(client)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[client]
            return None
        return q

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it is not blocked."""
        with self._lock:
            now = self._clock()
            q = self._live(client, now)
            if q is None or len(q) < self.limit:
                return None
            return max(1, math.ceil(q[-self.limit] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            q = self._live(client, now)
            if q is None:
                q = self._fails[client] = deque(maxlen=self.limit)
            q.append(now)
            self._fails.move_to_end(client)
            while len(self._fails) > self.max_clients:  # forget the least recently failing clients
                self._fails.popitem(last=False)
