"""What happened after each maintenance reminder: the bureau's figure for "service before penalty".

For a reminder at ``t`` (its service end) and a horizon (a report's end, or now for the dashboards):

- ``exceeded``: an exceedance of the restaurant started after ``t`` (dismissed ones do not count);
- else ``pending``: fewer than the rule's ``services`` valid services of the device after ``t``;
- else ``still_above``: the rule, with the numbers the reminder was judged by (stored in its judgement),
  would still remind on the latest services: their mean above the threshold, or still rising towards
  the limit;
- else ``back_under``: the latest services are under the threshold and no longer rising towards the
  limit (a trend reminder is not "back under" just because its values were never above the threshold).

Service values are those of the rule (:func:`alerts.maintenance.rule.service_values`), from the ledger's
windows (from ``LOOKBACK_DAYS`` before the reminder, so the trend has its services), so a report and the
dashboards count the same services the reminder did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alerts.detection.hours import BusinessHours
from alerts.ledger import Ledger
from alerts.maintenance.rule import DAY_MS, ReminderRule, judge, service_values
from alerts.model import EXCEEDANCE, MAINTENANCE_REMINDER, Event, WindowResult

PENDING, BACK_UNDER, EXCEEDED, STILL_ABOVE = "pending", "back_under", "exceeded", "still_above"
OUTCOMES = (PENDING, BACK_UNDER, EXCEEDED, STILL_ABOVE)
LOOKBACK_DAYS = 7


@dataclass(frozen=True, slots=True)
class ReminderOutcome:
    event: Event
    outcome: str
    services_after: int
    mean_after_mg_m3: float | None  # mean of the latest `services` services after it (None: too few)
    exceeded_ms: int | None  # start of the first exceedance after it

    @property
    def threshold_mg_m3(self) -> float | None:
        return self.event.judgement.get("threshold_mg_m3")


def rule_of(reminder: Event) -> ReminderRule:
    """The rule's numbers the reminder was judged by (its judgement), defaults for what it lacks."""
    j, d = reminder.judgement, ReminderRule()
    return ReminderRule(
        services=int(j.get("services") or d.services),
        share_of_limit=float(j.get("share_of_limit") or d.share_of_limit),
        trend_days=float(j.get("trend_days", d.trend_days) or 0.0),
        trend_services=int(j.get("trend_services") or d.trend_services),
        trend_floor_share=float(j.get("trend_floor_share") or d.trend_floor_share),
    )


def outcome_of(
    reminder: Event,
    windows: Iterable[WindowResult],
    exceedance_starts: Iterable[int],
    hours: BusinessHours,
) -> ReminderOutcome:
    """The outcome of one reminder from the device's windows around it (from a few days before: the
    trend needs them) and the restaurant's exceedances."""
    t = reminder.start_ms
    values = service_values(windows, hours)
    after = [s for s in values if s.start_ms >= t]
    rule = rule_of(reminder)
    n = rule.services
    later = sorted(s for s in exceedance_starts if s >= t)
    mean = sum(s.value_mg_m3 for s in after[-n:]) / n if len(after) >= n else None
    limit = reminder.limit_mg_m3 or float(reminder.judgement.get("limit_mg_m3") or 0.0)
    if later:
        outcome = EXCEEDED
    elif mean is None:
        outcome = PENDING
    elif judge(values, limit, rule) is not None:
        outcome = STILL_ABOVE
    else:
        outcome = BACK_UNDER
    return ReminderOutcome(reminder, outcome, len(after), mean, later[0] if later else None)


def outcomes(
    ledger: Ledger,
    hours: BusinessHours,
    since_ms: int,
    until_ms: int,
    *,
    horizon_ms: int | None = None,
    restaurant_id: str | None = None,
    district: str | None = None,
) -> list[ReminderOutcome]:
    """The reminders sent in ``[since_ms, until_ms)`` with what followed them up to ``horizon_ms`` (default
    ``until_ms``), oldest first. Two queries per reminder (its device's windows, its restaurant's
    exceedances): reminders are few (at most one per restaurant and period)."""
    horizon = until_ms if horizon_ms is None else horizon_ms
    out = []
    for r in ledger.list_events(
        since_ms=since_ms,
        until_ms=until_ms,
        restaurant_id=restaurant_id,
        district=district,
        kind=MAINTENANCE_REMINDER,
    ):
        if not since_ms <= r.start_ms < until_ms:
            continue
        ws = ledger.list_windows(
            device_id=r.device_id,
            pollutant="oil_fume",
            since_ms=r.start_ms - LOOKBACK_DAYS * DAY_MS,
            until_ms=horizon,
        )
        exc = [
            e.start_ms
            for e in ledger.list_events(
                since_ms=r.start_ms, until_ms=horizon, restaurant_id=r.restaurant_id, kind=EXCEEDANCE
            )
        ]
        out.append(outcome_of(r, ws, exc, hours))
    return out
