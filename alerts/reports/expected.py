"""The windows a report expects: every epoch-aligned window of the period that starts within business
hours (``[alerts] business_hours`` in ``business_tz``, :class:`alerts.detection.hours.BusinessHours`),
whether or not any data came for it. Data completeness is measured against these, so a device that sent
nothing for 3.5 hours of its business day shows it (the stored windows alone only hold what arrived).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from alerts.detection.hours import BusinessHours
from ingest.timeutil import zone

DAY_MS = 86_400_000


def business_intervals(spec: str, tz: str, since_ms: int, until_ms: int) -> list[tuple[int, int]]:
    """Business hours inside ``[since_ms, until_ms)`` as sorted, disjoint ``[start, end)`` epoch-ms
    intervals (DST-safe: local wall times through zoneinfo). No business hours configured (an empty
    ``spec``): the whole period."""
    hours = BusinessHours(spec, tz)
    if not hours.ranges:
        return [(since_ms, until_ms)] if since_ms < until_ms else []
    tzinfo = zone(tz)
    first = datetime.fromtimestamp(since_ms / 1000, tzinfo).date() - timedelta(days=1)  # a range may wrap
    last = datetime.fromtimestamp(until_ms / 1000, tzinfo).date()
    raw: list[tuple[int, int]] = []
    day = first
    while day <= last:
        midnight = datetime(day.year, day.month, day.day)
        for a, b in hours.ranges:
            if a == b:
                continue
            lo = midnight + timedelta(minutes=a)
            hi = midnight + timedelta(minutes=b if b > a else b + 1440)
            s = int(lo.replace(tzinfo=tzinfo).timestamp() * 1000)
            e = int(hi.replace(tzinfo=tzinfo).timestamp() * 1000)
            s, e = max(s, since_ms), min(e, until_ms)
            if e > s:
                raw.append((s, e))
        day += timedelta(days=1)
    merged: list[tuple[int, int]] = []
    for s, e in sorted(raw):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def window_starts_in(intervals: list[tuple[int, int]], window_ms: int) -> int:
    """How many epoch-aligned window starts (``t % window_ms == 0``, as the detector aligns them) lie in
    the intervals: the windows expected of one device."""
    return sum(-(-e // window_ms) - -(-s // window_ms) for s, e in intervals)
