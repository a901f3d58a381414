"""The maintenance-reminder rule (清洗提醒): pure functions of one device's finalised windows.

**Service value.** For each service (:meth:`alerts.detection.hours.BusinessHours.service_of`: one block
of business hours; a local day when none are set) the highest GB 18483-2001 group result over its valid
oil-fume windows: every run of 5 consecutive valid 10-minute means (reference-converted), those below a
quarter of the group's largest dropped, at least 3 kept, their mean
(:func:`alerts.detection.gb18483.judge_group`). It is the number the standard judges, so "80 % of the
limit" means 80 % of what would be an exceedance. A service with fewer than 5 valid windows, or without a
judged group, has no value and does not count (it is not a *valid* service).

**Reminder** when, over the device's valid services up to the one that just ended, either

- *level*: the mean of the last ``services`` (3) values is above ``share_of_limit`` (0.8) x the limit; or
- *trend* (``trend_days`` > 0): the least-squares line through the last ``trend_services`` (6) values,
  against the service end times, rises, reaches the limit within ``trend_days`` (7) days after the last
  service, and the last value is at least ``trend_floor_share`` (0.6) x the limit (a steep rise from a
  clean purifier's low values is no reason to write);

and none of those services was over the limit: a service over the limit is an exceedance, the ladder's
business, never a reminder's. Which restaurants may be reminded (at most once per ``period_days``) is the
service side's job (:mod:`alerts.maintenance.watch`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from alerts.detection.gb18483 import GROUP_SIZE, judge_group
from alerts.detection.hours import BusinessHours
from alerts.model import WindowResult

LEVEL = "level"
TREND = "trend"
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class ServiceValue:
    """One valid service of one device: its bounds, value and the windows behind it."""

    start_ms: int
    end_ms: int
    value_mg_m3: float
    valid_windows: int
    groups: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ReminderRule:
    """The rule's numbers for one device (``[maintenance]``, a profile's share overriding)."""

    services: int = 3
    share_of_limit: float = 0.8
    trend_days: float = 7.0
    trend_services: int = 6
    trend_floor_share: float = 0.6


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a reminder is due: the basis, the numbers it compared and the services it looked at."""

    basis: str  # LEVEL | TREND
    limit_mg_m3: float
    threshold_mg_m3: float  # share_of_limit x limit: "back under" in the reports means under this
    mean_mg_m3: float  # mean of the last `services` values
    services: tuple[ServiceValue, ...]  # the services looked at, oldest first
    rule: ReminderRule
    slope_mg_m3_per_day: float | None = None
    projected_cross_ms: int | None = None

    def judgement(self) -> dict[str, Any]:
        """What the event stores as its ``judgement`` (the evidence: every number of the decision)."""
        return {
            "basis": self.basis,
            "limit_mg_m3": self.limit_mg_m3,
            "threshold_mg_m3": self.threshold_mg_m3,
            "mean_mg_m3": self.mean_mg_m3,
            "services": self.rule.services,
            "share_of_limit": self.rule.share_of_limit,
            "trend_days": self.rule.trend_days,
            "trend_services": self.rule.trend_services,
            "trend_floor_share": self.rule.trend_floor_share,
            "slope_mg_m3_per_day": self.slope_mg_m3_per_day,
            "projected_cross_ms": self.projected_cross_ms,
            "service_values": [s.as_dict() for s in self.services],
        }


def service_values(windows: Iterable[WindowResult], hours: BusinessHours) -> list[ServiceValue]:
    """The valid services of one device's oil-fume windows (any order), oldest first."""
    by_service: dict[tuple[int, int], list[WindowResult]] = {}
    for w in windows:
        if w.pollutant != "oil_fume" or not w.valid or w.mean_mg_m3 is None:
            continue
        start, end, inside = hours.service_of(w.start_ms)
        if inside:
            by_service.setdefault((start, end), []).append(w)
    out = []
    for (start, end), ws in sorted(by_service.items()):
        ws.sort(key=lambda w: w.start_ms)
        means = [float(w.mean_mg_m3) for w in ws]  # type: ignore[arg-type]
        results = [
            m
            for i in range(len(means) - GROUP_SIZE + 1)
            if (m := judge_group(means[i : i + GROUP_SIZE], float("inf"))[1]) is not None
        ]
        if results:
            out.append(ServiceValue(start, end, max(results), len(ws), len(results)))
    return out


def _slope(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(slope, value of the fitted line at the last x) of a least-squares line through ``points``."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0, my
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return b, my + b * (points[-1][0] - mx)


def judge(values: list[ServiceValue], limit: float, rule: ReminderRule) -> Finding | None:
    """The reminder due after the last of ``values`` (oldest first), or None."""
    if not values or limit <= 0:
        return None
    threshold = rule.share_of_limit * limit
    last = values[-rule.services :]
    if len(last) == rule.services:
        mean = sum(s.value_mg_m3 for s in last) / len(last)
        if mean > threshold and all(s.value_mg_m3 <= limit for s in last):
            return Finding(LEVEL, limit, threshold, mean, tuple(last), rule)
    if rule.trend_days <= 0 or len(values) < rule.trend_services:
        return None
    seen = values[-rule.trend_services :]
    if any(s.value_mg_m3 > limit for s in seen) or seen[-1].value_mg_m3 < rule.trend_floor_share * limit:
        return None
    t_last = seen[-1].end_ms
    slope, fitted = _slope([((s.end_ms - t_last) / DAY_MS, s.value_mg_m3) for s in seen])
    if slope <= 0:
        return None
    days = max(0.0, (limit - fitted) / slope)
    if days > rule.trend_days:
        return None
    tail = seen[-rule.services :]
    mean = sum(s.value_mg_m3 for s in tail) / len(tail)
    return Finding(
        TREND, limit, threshold, mean, tuple(seen), rule, round(slope, 4), t_last + int(days * DAY_MS)
    )
