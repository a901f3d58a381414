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
from collections.abc import Callable, Mapping

from alerts.detection.hours import BusinessHours
from alerts.detection.window import DetectorConfig
from alerts.integrity.checks import Finding, judge_zero, suspect_flatline
from alerts.integrity.clock import suspect_clock
from alerts.integrity.copies import CloneIndex, suspect_replay
from alerts.integrity.flow import judge_flow
from alerts.integrity.series import K, series_of
from alerts.integrity.settings import IntegritySettings
from alerts.ledger import Ledger
from alerts.model import DATA_INTEGRITY, Event, Transition
from ingest.clock import ClockHour
from ingest.registry import Registry

log = logging.getLogger("fumewatch.alerts.integrity")

DAY_MS = 86_400_000
ReadingsOf = Callable[[str, int, int], list[dict]]
ClockOf = Callable[[str, int, int], Mapping[int, ClockHour]]


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
        *,
        clock_of: ClockOf | None = None,
        wall_clock: bool = True,
        ref_flow_per_head_m3_h: float = 2000.0,
    ) -> None:
        self.ledger = ledger
        self.registry = registry
        self.settings = settings
        self.readings_of = readings_of
        self.clock_of = clock_of
        self.wall_clock = wall_clock
        self.ref_flow_per_head_m3_h = ref_flow_per_head_m3_h
        self.clones = CloneIndex()
        self._hours = BusinessHours(detector.business_hours, detector.business_tz)

    def set_registry(self, registry: Registry) -> None:
        self.registry = registry

    def findings(
        self, device_id: str, service_start_ms: int, service_end_ms: int
    ) -> list[tuple[str, Finding]]:
        """(device, finding) of the checks of this service; a clone finding may name the other device."""
        s = self.settings
        since = service_end_ms - int(s.lookback_days * DAY_MS)
        windows = self.ledger.list_windows(
            device_id=device_id, pollutant="oil_fume", since_ms=since, until_ms=service_end_ms
        )
        out: list[tuple[str, Finding]] = []
        zero = judge_zero(windows, self._hours, (service_start_ms, service_end_ms), s)
        if zero is not None:
            out.append((device_id, zero))
        rows: list[dict] = []
        if self.readings_of is not None:
            rows = self.readings_of(device_id, service_start_ms, service_end_ms)
            out.extend(self._from_readings(device_id, service_start_ms, service_end_ms, rows))
        if self.clock_of is not None:
            clock = self._clock(device_id, service_start_ms, service_end_ms, rows)
            if clock is not None:
                out.append((device_id, clock))
        return out

    def _from_readings(self, device_id: str, start_ms: int, end_ms: int, rows: list[dict]) -> list[Finding]:
        assert self.readings_of is not None
        s = self.settings
        out = []
        flat = suspect_flatline(rows, min_minutes=s.flatline_min, zero_limit=s.zero_limit_mg_m3)
        if flat is not None:
            out.append(flat)
        dev = self.registry.get(device_id)
        if dev is not None:
            flow = judge_flow(rows, dev.stove_heads, self.ref_flow_per_head_m3_h, s)
            if flow is not None:
                out.append(flow)
        pairs = [(device_id, f) for f in out]
        series = series_of(rows)
        if len(series) > K:
            earlier = series_of(
                self.readings_of(device_id, start_ms - int(s.replay_lookback_days * DAY_MS), start_ms)
            )
            replay = suspect_replay(
                series, earlier, min_minutes=s.replay_min, min_distinct=s.series_min_distinct
            )
            if replay is not None:
                pairs.append((device_id, replay))
            if dev is not None:
                for c in self.clones.add(
                    device_id,
                    dev.restaurant_id,
                    (start_ms, end_ms),
                    series,
                    min_minutes=s.clone_min,
                    min_distinct=s.series_min_distinct,
                ):
                    pairs.append((c.device_id, c.finding))
        return pairs

    def _clock(self, device_id: str, start_ms: int, end_ms: int, rows: list[dict]) -> Finding | None:
        assert self.clock_of is not None
        s = self.settings
        dev = self.registry.get(device_id)
        interval = float(dev.interval_s) if dev is not None and dev.interval_s else _median_gap_s(rows)
        return suspect_clock(
            self.clock_of(device_id, start_ms, end_ms),
            interval_s=interval,
            drift_s=s.clock_drift_s,
            drift=self.wall_clock,
            backwards_n=s.clock_backwards_n,
            qn_repeats=s.clock_qn_repeats,
        )

    def evaluate(self, device_id: str, service_start_ms: int, service_end_ms: int) -> list[Transition]:
        """The ``data_integrity`` transitions of this service (none when every check passed)."""
        if self.registry.get(device_id) is None:
            return []
        out = []
        for dev_id, f in self.findings(device_id, service_start_ms, service_end_ms):
            dev = self.registry.get(dev_id)
            if dev is None:
                continue
            event = Event(
                event_id=event_id(f.check, dev_id, service_start_ms),
                kind=DATA_INTEGRITY,
                restaurant_id=dev.restaurant_id,
                device_id=dev_id,
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


def _median_gap_s(rows: list[dict]) -> float:
    times = sorted({int(r["time_ms"]) for r in rows})
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    return gaps[len(gaps) // 2] / 1000 if gaps else 60.0
