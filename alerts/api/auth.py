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


class TokenChecker:
    """Constant-time bearer-token check against every configured token."""

    def __init__(self, tokens: list[str]) -> None:
        self._digests = [hashlib.sha256(t.encode("utf-8")).digest() for t in tokens]

    def check(self, authorization: str | None) -> str:
        """``ok``, ``missing`` (no usable Bearer credentials) or ``invalid``."""
        if not authorization:
            return "missing"
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            return "missing"
        presented = hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
        ok = False
        for d in self._digests:  # no early exit: the time does not say which token matched
            ok |= hmac.compare_digest(presented, d)
        return "ok" if ok else "invalid"


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
