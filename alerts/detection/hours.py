"""Local business hours: how much of an interval fell inside them (the ``offline`` rule counts only
those minutes). DST-safe through zoneinfo.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

from ingest.timeutil import zone


def parse_business_hours(text: str) -> tuple[tuple[int, int], ...]:
    """``"10:00-14:00,16:30-21:30"`` -> ((600, 840), (990, 1290)) in local minutes; end < start wraps."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            a, b = part.split("-")
            out.append((_minutes(a), _minutes(b)))
        except ValueError as exc:
            raise ValueError(f"business hours {part!r}: expected HH:MM-HH:MM") from exc
    return tuple(out)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.strip().split(":")
    hi, mi = int(h), int(m)
    if not (0 <= hi <= 24 and 0 <= mi < 60 and hi * 60 + mi <= 1440):
        raise ValueError(hhmm)
    return hi * 60 + mi


class BusinessHours:
    """Local business hours; answers how much of an interval fell inside them (DST-safe via zoneinfo)."""

    def __init__(self, spec: str, tz: str) -> None:
        self.ranges = parse_business_hours(spec)
        self.tz = tz
        self._day = lru_cache(maxsize=64)(self._intervals_for_day)

    def _intervals_for_day(self, ordinal: int) -> tuple[tuple[int, int], ...]:
        day = date.fromordinal(ordinal)
        tzinfo = zone(self.tz)
        out = []
        midnight = datetime(day.year, day.month, day.day)
        for a, b in self.ranges:
            if a == b:
                continue
            start = midnight + timedelta(minutes=a)
            end = midnight + timedelta(minutes=b if b > a else b + 1440)
            out.append(
                (
                    int(start.replace(tzinfo=tzinfo).timestamp() * 1000),
                    int(end.replace(tzinfo=tzinfo).timestamp() * 1000),
                )
            )
        return tuple(out)

    def overlap_ms(self, start_ms: int, end_ms: int) -> int:
        """Milliseconds of ``[start_ms, end_ms)`` inside business hours (looks back at most 8 days)."""
        if end_ms <= start_ms or not self.ranges:
            return 0
        start_ms = max(start_ms, end_ms - 8 * 86_400_000)
        tzinfo = zone(self.tz)
        d0 = datetime.fromtimestamp(start_ms / 1000, tzinfo).date().toordinal() - 1
        d1 = datetime.fromtimestamp(end_ms / 1000, tzinfo).date().toordinal()
        total = 0
        for o in range(d0, d1 + 1):
            for a, b in self._day(o):
                lo, hi = max(a, start_ms), min(b, end_ms)
                if hi > lo:
                    total += hi - lo
        return total

    def contains(self, ms: int) -> bool:
        return self.overlap_ms(ms, ms + 1) == 1
