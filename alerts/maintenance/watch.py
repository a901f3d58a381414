"""Maintenance reminders in the alerts service: service ends -> the rule -> ``maintenance_reminder`` events.

Once a service of a device is over (:class:`alerts.service_ends.ServiceEnds`),
:meth:`MaintenanceWatch.evaluate` reads the device's windows of the last ``lookback_days`` from the
ledger (one query per device and service end, on the service's own thread, never on the commit path) and
applies :func:`alerts.maintenance.rule.judge`.

A reminder is an event of kind ``maintenance_reminder``, rule ``maintenance``: no level, no episode, never
on the ladder. It is a point in time (``start_ms = end_ms`` = the service end, state closed), and its id is
``maintenance:<device>:<service start>``, so a service judged twice (a restart, a redelivery) gives the
same event and, through the outbox, the same single notice. At most one reminder per restaurant in
``period_days``: a reminder already in the ledger inside the period (this one included) means none.
"""

from __future__ import annotations

import logging

from alerts.detection.hours import BusinessHours
from alerts.detection.window import DetectorConfig
from alerts.ledger import Ledger
from alerts.maintenance.rule import DAY_MS, ReminderRule, judge, service_values
from alerts.maintenance.settings import MaintenanceSettings
from alerts.model import MAINTENANCE_REMINDER, Event, Transition
from alerts.profiles import Profiles
from alerts.rules import MAINTENANCE
from ingest.registry import Registry

log = logging.getLogger("fumewatch.alerts.maintenance")


def event_id(device_id: str, service_start_ms: int) -> str:
    return f"maintenance:{device_id}:{service_start_ms}"


class MaintenanceWatch:
    def __init__(
        self,
        ledger: Ledger,
        registry: Registry,
        profiles: Profiles,
        settings: MaintenanceSettings,
        detector: DetectorConfig,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.profiles = profiles
        self.detector = detector
        self._hours = BusinessHours(detector.business_hours, detector.business_tz)
        self.set_registry(registry)

    def set_registry(self, registry: Registry) -> None:
        self.registry = registry

    def rule_for(self, profile: str) -> ReminderRule:
        s = self.settings
        share = s.share_of_limit
        try:
            override = self.profiles.get(profile).maintenance_share_of_limit
        except Exception:
            override = None
        return ReminderRule(
            services=s.services,
            share_of_limit=override if override is not None else share,
            trend_days=s.trend_days,
            trend_services=s.trend_services,
            trend_floor_share=s.trend_floor_share,
        )

    def evaluate(self, device_id: str, service_start_ms: int, service_end_ms: int) -> Transition | None:
        """The reminder transition due at the end of this service, or None (logged at debug level)."""
        dev = self.registry.get(device_id)
        if dev is None:
            return None
        try:
            profile = self.profiles.for_device(dev, self.detector.default_profile)
        except Exception:
            return None
        limit = profile.limits_for(dev.stove_heads).get("oil_fume")
        if not limit:
            return None
        rule = self.rule_for(profile.name)
        since = service_end_ms - int(self.settings.lookback_days * DAY_MS)
        windows = self.ledger.list_windows(
            device_id=device_id, pollutant="oil_fume", since_ms=since, until_ms=service_end_ms
        )
        values = service_values(windows, self._hours)
        if not values or values[-1].start_ms != service_start_ms:
            return None  # the service that ended gave no valid value: nothing new to judge
        finding = judge(values, limit, rule)
        if finding is None:
            return None
        eid = event_id(device_id, service_start_ms)
        period_ms = int(self.settings.period_days * DAY_MS)
        earlier = [
            e.event_id
            for e in self.ledger.list_events(
                since_ms=service_end_ms - period_ms + 1,
                restaurant_id=dev.restaurant_id,
                kind=MAINTENANCE_REMINDER,
            )
        ]
        if earlier:
            log.debug("event=maintenance_reminder_held device_id=%s by=%s", device_id, ",".join(earlier[:3]))
            return None
        event = Event(
            event_id=eid,
            kind=MAINTENANCE_REMINDER,
            restaurant_id=dev.restaurant_id,
            device_id=device_id,
            district=dev.district,
            start_ms=service_end_ms,
            end_ms=service_end_ms,
            pollutant="oil_fume",
            peak_mg_m3=max(s.value_mg_m3 for s in finding.services),
            mean_mg_m3=finding.mean_mg_m3,
            limit_mg_m3=limit,
            profile=profile.name,
            state="closed",
            evidence=[s.as_dict() for s in finding.services],
            rule=MAINTENANCE,
            judgement=finding.judgement(),
        )
        return Transition(event, "opened", service_end_ms)
