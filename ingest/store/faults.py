"""Store write errors: which are permanent, which pass, and how a writer keeps count of them.

A write error is either

- **permanent**: the store rejected the points themselves and will reject them again (InfluxDB 400/422:
  "partial write: points beyond retention policy dropped=1", a field type conflict, unparsable line
  protocol; 413 for one point; SQLite integrity/data errors). Retrying is pointless and blocks everything
  behind the batch, so the offending points are found (:func:`split_rejected` bisects the batch) and set
  aside as dead letters with the server's message, and the rest goes on.
- **transient**: the store cannot take anything right now (connection refused, timeouts, 5xx, 429, SQLite
  "database or disk is full" / "database is locked", ENOSPC and other OSErrors, a full InfluxDB buffer).
  Nothing is dropped: the writer backs off (:class:`Backoff`) and retries, ingest stops acknowledging, the
  broker holds the messages, and writing resumes by itself when the fault clears.

InfluxDB 401/403/404 are transient on purpose: a bad token or a missing bucket concerns the request, not
the points, and bisecting would turn every reading into a dead letter. /healthz reports them instead.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson

PERMANENT = "permanent"
TRANSIENT = "transient"

#: HTTP statuses that reject the points of a write (InfluxDB 1.x answers 400, 2.x 422 for retention).
_REJECTING_STATUS = {400, 413, 422}

T = TypeVar("T")


class StoreRejected(Exception):
    """A store refused these readings for good (raised by stores that can tell on their own)."""


def http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def classify(exc: BaseException) -> str:
    """``"permanent"`` or ``"transient"`` (see the module docstring)."""
    if isinstance(exc, StoreRejected):
        return PERMANENT
    status = http_status(exc)
    if status is not None:
        return PERMANENT if status in _REJECTING_STATUS else TRANSIENT
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
        return PERMANENT
    return TRANSIENT  # OperationalError (full, locked, I/O), OSError, timeouts, BufferFull, unknown


def error_message(exc: BaseException) -> str:
    """The server's own words when it gave any (InfluxDB's JSON ``error``/``message``), else str(exc)."""
    body = getattr(exc, "body", None)
    if body:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            text = doc.get("error") or doc.get("message")
            if text:
                return str(text)[:500]
        return (body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body))[:500]
    text = str(exc).replace("\n", " ").strip() or type(exc).__name__
    return text[:500]


def split_rejected(items: Sequence[T], post: Callable[[Sequence[T]], None]) -> list[tuple[T, str]]:
    """Post ``items``; when the store rejects them permanently, bisect to find which ones it rejects.

    Returns the rejected items with the store's message; everything else has been posted (some twice,
    which the stores' idempotence on series and time makes harmless). A transient error propagates: the
    caller retries later, from the start."""
    try:
        post(items)
        return []
    except Exception as exc:
        if classify(exc) != PERMANENT:
            raise
        if len(items) == 1:
            return [(items[0], error_message(exc))]
        mid = len(items) // 2
        return split_rejected(items[:mid], post) + split_rejected(items[mid:], post)


class Backoff:
    """Exponential back-off: ``min_s`` doubling up to ``max_s``; ``reset()`` after a success."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s = max(0.01, min_s)
        self.max_s = max(self.min_s, max_s)
        self._next = self.min_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self.max_s, delay * 2)
        return delay

    def reset(self) -> None:
        self._next = self.min_s


class WriteHealth:
    """Progress of one writer (the ingest writer thread, the InfluxDB buffer drain), for /healthz.

    ``stuck_for()`` is how long the writer has failed (since the first error after its last success) or
    has been inside one write, whichever is longer; 0 while it makes progress."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.errors = {PERMANENT: 0, TRANSIENT: 0}
        self.rejected_points = 0
        self.last_success: float | None = None
        self.failing_since: float | None = None
        self.busy_since: float | None = None
        self.last_error = ""

    def begin(self) -> None:
        self.busy_since = time.monotonic()

    def success(self) -> None:
        with self._lock:
            self.last_success = time.monotonic()
            self.failing_since = None
            self.busy_since = None
            self.last_error = ""

    def failure(self, kind: str, exc: BaseException) -> bool:
        """Count an error; True when it is the first of a run (log it then, not on every retry)."""
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.busy_since = None
            self.last_error = error_message(exc)[:300]
            if kind == TRANSIENT and self.failing_since is None:
                self.failing_since = time.monotonic()
                return True
            return kind == PERMANENT

    def rejected(self, n: int) -> None:
        with self._lock:
            self.rejected_points += n

    def stuck_for(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        starts = [t for t in (self.failing_since, self.busy_since) if t is not None]
        return max(0.0, now - min(starts)) if starts else 0.0

    def snapshot(self) -> dict:
        now = time.monotonic()
        return {
            "writer": self.name,
            "errors": dict(self.errors),
            "rejected_points": self.rejected_points,
            "last_success_age_s": None if self.last_success is None else round(now - self.last_success, 1),
            "stuck_for_s": round(self.stuck_for(now), 1),
            "last_error": self.last_error,
        }
