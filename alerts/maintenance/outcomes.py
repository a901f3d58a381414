"""What happened after each maintenance reminder: the bureau's figure for "service before penalty".

For a reminder at ``t`` (its service end) and a horizon (a report's end, or now for the dashboards):

- ``exceeded``: an exceedance of the restaurant started after ``t`` (dismissed ones do not count);
- else ``pending``: fewer than the rule's ``services`` valid services of the device after ``t``;
- else ``back_under``: the mean of the latest ``services`` of them is at or under the reminder's
  threshold (``share_of_limit`` x the limit, as stored in the event's judgement);
- else ``still_above``.

Service values are those of the rule (:func:`alerts.maintenance.rule.service_values`), from the ledger's
windows, so a report and the dashboards count the same services the reminder did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alerts.detection.hours import BusinessHours
from alerts.ledger import Ledger
from alerts.maintenance.rule import service_values
from alerts.model import EXCEEDANCE, MAINTENANCE_REMINDER, Event, WindowResult

PENDING, BACK_UNDER, EXCEEDED, STILL_ABOVE = "pending", "back_under", "exceeded", "still_above"
OUTCOMES = (PENDING, BACK_UNDER, EXCEEDED, STILL_ABOVE)


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


def outcome_of(
    reminder: Event,
    windows_after: Iterable[WindowResult],
    exceedance_starts: Iterable[int],
    hours: BusinessHours,
) -> ReminderOutcome:
    """The outcome of one reminder from the device's windows after it and the restaurant's exceedances."""
    t = reminder.start_ms
    after = [s for s in service_values(windows_after, hours) if s.start_ms >= t]
    n = int(reminder.judgement.get("services") or 3)
    threshold = float(reminder.judgement.get("threshold_mg_m3") or 0.0)
    later = sorted(s for s in exceedance_starts if s >= t)
    mean = sum(s.value_mg_m3 for s in after[-n:]) / n if len(after) >= n else None
    if later:
        outcome = EXCEEDED
    elif mean is None:
        outcome = PENDING
    elif mean <= threshold:
        outcome = BACK_UNDER
    else:
        outcome = STILL_ABOVE
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
            device_id=r.device_id, pollutant="oil_fume", since_ms=r.start_ms, until_ms=horizon
        )
        exc = [
            e.start_ms
            for e in ledger.list_events(
                since_ms=r.start_ms, until_ms=horizon, restaurant_id=r.restaurant_id, kind=EXCEEDANCE
            )
        ]
        out.append(outcome_of(r, ws, exc, hours))
    return out
