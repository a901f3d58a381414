"""Data-integrity checks in the alerts service: service ends -> the checks -> ``data_integrity`` events.

Once a service of a device is over (:class:`alerts.service_ends.ServiceEnds`), :meth:`IntegrityWatch.evaluate`
reads the device's oil-fume windows of the last ``lookback_days`` from the ledger (one query) and, when
the service has a readings store, the service's readings (one query), on the service's own thread, never
on the commit path, and runs :mod:`alerts.integrity.checks`.

A finding is an event of kind ``data_integrity`` whose rule is the check (``suspect_zero``,
``suspect_flatline``: alerts/rules.py names and sources them): no level, no episode, never on the ladder,
never an owner notice; inspectors get one notice. Its span is what the check found (``start_ms``,
``end_ms``), it is closed at once, and its id is ``integrity:<check>:<device>:<service start>``, so a
service judged twice gives the same event and the same single notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from alerts.detection.hours import BusinessHours
from alerts.detection.window import DetectorConfig
from alerts.integrity.checks import Finding, by_service, suspect_flatline, suspect_zero
from alerts.integrity.settings import IntegritySettings
from alerts.ledger import Ledger
from alerts.model import DATA_INTEGRITY, Event, Transition
from ingest.registry import Registry

log = logging.getLogger("fumewatch.alerts.integrity")

DAY_MS = 86_400_000
ReadingsOf = Callable[[str, int, int], list[dict]]


def event_id(check: str, device_id: str, service_start_ms: int) -> str:
    return f"integrity:{check}:{device_id}:{service_start_ms}"


class IntegrityWatch:
    def __init__(
        self,
        ledger: Ledger,
        registry: Registry,
        settings: IntegritySettings,
        detector: DetectorConfig,
        readings_of: ReadingsOf | None = None,
    ) -> None:
        self.ledger = ledger
        self.registry = registry
        self.settings = settings
        self.readings_of = readings_of
        self._hours = BusinessHours(detector.business_hours, detector.business_tz)

    def set_registry(self, registry: Registry) -> None:
        self.registry = registry

    def findings(self, device_id: str, service_start_ms: int, service_end_ms: int) -> list[Finding]:
        s = self.settings
        since = service_end_ms - int(s.lookback_days * DAY_MS)
        windows = self.ledger.list_windows(
            device_id=device_id, pollutant="oil_fume", since_ms=since, until_ms=service_end_ms
        )
        services = by_service(windows, self._hours)
        current = services.pop((service_start_ms, service_end_ms), [])
        history = {k: ws for k, ws in services.items() if k[1] <= service_start_ms}
        out = []
        zero = suspect_zero(
            current,
            history,
            min_minutes=s.zero_min,
            limit=s.zero_limit_mg_m3,
            history_services=s.zero_history_services,
        )
        if zero is not None:
            out.append(zero)
        if self.readings_of is not None:
            rows = self.readings_of(device_id, service_start_ms, service_end_ms)
            flat = suspect_flatline(rows, min_minutes=s.flatline_min, zero_limit=s.zero_limit_mg_m3)
            if flat is not None:
                out.append(flat)
        return out

    def evaluate(self, device_id: str, service_start_ms: int, service_end_ms: int) -> list[Transition]:
        """The ``data_integrity`` transitions of this service (none when every check passed)."""
        dev = self.registry.get(device_id)
        if dev is None:
            return []
        out = []
        for f in self.findings(device_id, service_start_ms, service_end_ms):
            event = Event(
                event_id=event_id(f.check, device_id, service_start_ms),
                kind=DATA_INTEGRITY,
                restaurant_id=dev.restaurant_id,
                device_id=device_id,
                district=dev.district,
                start_ms=f.start_ms,
                end_ms=f.end_ms,
                pollutant="oil_fume",
                state="closed",
                rule=f.check,
                judgement={
                    "check": f.check,
                    "minutes": round(f.minutes, 1),
                    "service_start_ms": service_start_ms,
                    "service_end_ms": service_end_ms,
                    **f.detail,
                },
            )
            out.append(Transition(event, "opened", service_end_ms))
        return out
