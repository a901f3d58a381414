"""Local business hours: how much of an interval fell inside them (the ``offline`` rule counts only
those minutes), and the service a moment belongs to (the ``gb18483`` rule judges the valid windows of
one service). DST-safe through zoneinfo.

Services (:meth:`BusinessHours.service_of`): the local timeline is cut at every opening and closing time
of the business hours, every day; a service is one piece. With the default ``10:00-14:00,16:30-21:30``
a day has four: lunch, the afternoon break, dinner and the night (21:30 to 10:00 next day); the pieces
outside business hours are services too (``in_hours`` False), so a kitchen cooking after closing time is
judged over that piece. Hours with no range at all are cut at local midnight.
"""

from __future__ import annotations

from bisect import bisect_right
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
        self._cuts = lru_cache(maxsize=64)(self._cuts_around)
        self._last: tuple[int, int, bool] = (0, 0, False)  # the service found last (fast path)

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

    def service_of(self, ms: int) -> tuple[int, int, bool]:
        """``(start_ms, end_ms, in_hours)`` of the service holding ``ms`` (``start <= ms < end``).

        Cached: the last answer is checked first (in the live stream every device's window falls in the
        same service), then the cut points around ``ms``'s UTC day.
        """
        last = self._last
        if last[0] <= ms < last[1]:
            return last
        cuts, inside = self._cuts(ms // 86_400_000)
        i = bisect_right(cuts, ms)
        found = (cuts[i - 1], cuts[i], inside[i - 1])
        self._last = found
        return found

    def _cuts_around(self, utc_day: int) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        """Sorted cut points (UTC ms) of the local days around UTC day ``utc_day`` (two days either side,
        so any zone offset leaves a cut before and after every moment of that UTC day), and for each piece
        starting at a cut whether it lies in business hours."""
        ordinal = date(1970, 1, 1).toordinal() + utc_day
        tzinfo = zone(self.tz)
        cuts: set[int] = set()
        for o in range(ordinal - 2, ordinal + 3):
            intervals = self._day(o)
            if intervals:
                for a, b in intervals:
                    cuts.add(a)
                    cuts.add(b)
            else:
                day = date.fromordinal(o)
                cuts.add(int(datetime(day.year, day.month, day.day, tzinfo=tzinfo).timestamp() * 1000))
        ordered = tuple(sorted(cuts))
        inside = tuple(self.contains(c) for c in ordered)
        return ordered, inside
