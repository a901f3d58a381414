"""Time helpers: epoch milliseconds UTC inside, RFC 3339 on the wire, local time for display."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def ms_to_utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def format_utc(ms: int) -> str:
    """RFC 3339 UTC with millisecond precision when needed: 2026-11-26T08:00:00Z."""
    dt = ms_to_utc(ms)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_local(ms: int, tz: str = "Asia/Shanghai", fmt: str = "%Y-%m-%d %H:%M") -> str:
    return ms_to_utc(ms).astimezone(zone(tz)).strftime(fmt)


def format_display(ms: int, tz: str = "Asia/Shanghai") -> str:
    """RFC 3339 in the display zone with its offset, for people: 2026-11-20T10:00:00+08:00.

    Milliseconds are shown only when there are any (2026-11-20T10:00:00.250+08:00).
    """
    dt = ms_to_utc(ms).astimezone(zone(tz))
    return dt.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")


def parse_time(text: str, tz: str = "UTC") -> int:
    """Parse RFC 3339 / ISO 8601 (naive means ``tz``) or epoch milliseconds into epoch ms."""
    s = text.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(tz))
    return int(dt.timestamp() * 1000)
