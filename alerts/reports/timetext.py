"""Times as the human report formats and charts print them: local wall time followed by the offset."""

from __future__ import annotations

from ingest.timeutil import ms_to_utc, zone


def offset_text(dt) -> str:  # noqa: ANN001 - an aware datetime or pandas Timestamp
    """``+08:00`` (the ISO 8601 offset of an aware time)."""
    z = dt.strftime("%z")
    return f"{z[:3]}:{z[3:]}"


def local_text(ms: int, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``ms`` in ``tz`` as ``fmt`` followed by its offset: ``2026-11-25 10:00+08:00``."""
    dt = ms_to_utc(ms).astimezone(zone(tz))
    return dt.strftime(fmt) + offset_text(dt)
