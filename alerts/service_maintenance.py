"""The alerts service's service-end judgements (a part of :class:`alerts.service.AlertsService`): the
thread that judges services that ended (:class:`alerts.service_ends.ServiceEnds`) off the commit path:
maintenance reminders (:class:`alerts.maintenance.watch.MaintenanceWatch`) and data-integrity checks
(:class:`alerts.integrity.watch.IntegrityWatch`). Each finding is stored with its outbox row in one
transaction and handed to the notice thread.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

from alerts.influx_sink import event_line
from alerts.integrity.watch import IntegrityWatch
from alerts.maintenance.watch import MaintenanceWatch
from alerts.model import Transition
from alerts.service_ends import ServiceEnds
from ingest.clock import ClockWatch

log = logging.getLogger("fumewatch.alerts.maintenance")


class MaintenanceThread:
    """What :class:`~alerts.service.AlertsService` provides: the attributes below."""

    ledger: Any
    fence: Any
    maintenance: MaintenanceWatch | None
    integrity: IntegrityWatch | None
    clock: ClockWatch | None
    integrity_total: int
    integrity_by_check: dict[str, int]
    service_ends: ServiceEnds | None
    reminders_total: int
    _sink: Any
    _notice_q: queue.Queue
    _maint_q: queue.Queue

    def _init_judgements(self, ledger: Any, registry: Any, settings: Any, store: Any) -> None:
        cfg = settings.alerts.detector_config()
        self.maintenance = (
            MaintenanceWatch(ledger, registry, self.profiles, settings.maintenance, cfg)  # type: ignore[attr-defined]
            if settings.maintenance.enabled
            else None
        )
        # the receiving side's view of each device's clock (suspect_clock): fed by _on_message when this
        # service reads MQTT itself, by the ingest service (IngestService(clock=...)) in ``fumewatch run``
        self.clock = ClockWatch(settings.integrity.clock_backwards_s) if settings.integrity.enabled else None
        self.integrity = (
            IntegrityWatch(
                ledger,
                registry,
                settings.integrity,
                cfg,
                readings_of=self._readings_of if store is not None else None,  # type: ignore[attr-defined]
                clock_of=self.clock.take if self.clock is not None else None,
                wall_clock=settings.alerts.clock == "wall",
                ref_flow_per_head_m3_h=settings.gb18483.reference_flow_per_head_m3_h,
            )
            if settings.integrity.enabled
            else None
        )
        judged = self.maintenance is not None or self.integrity is not None
        self.service_ends = ServiceEnds(cfg) if judged else None

    def use_clock(self, clock: ClockWatch) -> None:
        """Judge suspect_clock from ``clock`` (an ingest service's, fed in the same process)."""
        self.clock = clock
        if self.integrity is not None:
            self.integrity.clock_of = clock.take

    def _maintenance_due(self, now_ms: int) -> None:
        """Queue the services over by ``now_ms`` for judging (called under the service's lock)."""
        if self.service_ends is not None:
            for item in self.service_ends.due(now_ms):
                self._maint_q.put(item)

    def _maintenance_loop(self) -> None:
        while True:
            item = self._maint_q.get()
            try:
                if item is None:
                    return
                # each judgement on its own: a failing one does not skip the other
                for judge, name in ((self._remind, "maintenance"), (self._check_integrity, "integrity")):
                    if getattr(self, name) is None:
                        continue
                    try:
                        judge(*item)
                    except Exception:
                        log.exception("event=service_judge_failed judgement=%s item=%s", name, item)
            finally:
                self._maint_q.task_done()

    def _remind(self, device_id: str, start_ms: int, end_ms: int) -> None:
        assert self.maintenance is not None
        tr: Transition | None = self.maintenance.evaluate(device_id, start_ms, end_ms)
        if tr is None:
            return
        if self.fence is not None:
            self.fence()
        with self.ledger.transaction():
            self.ledger.upsert_event(tr.event)
            self.ledger.add_outbox([tr])  # stored implies notified, as for the detector's transitions
        self.reminders_total += 1
        j = tr.event.judgement
        log.info(
            "event=maintenance_reminder restaurant_id=%s device_id=%s id=%s basis=%s mean_mg_m3=%.3f "
            "threshold_mg_m3=%.3f",
            tr.event.restaurant_id,
            device_id,
            tr.event.event_id,
            j.get("basis"),
            tr.event.mean_mg_m3 or 0.0,
            j.get("threshold_mg_m3") or 0.0,
        )
        if self._sink is not None:
            self._to_influx([event_line(tr.event)])  # type: ignore[attr-defined]
        self._notice_q.put(tr)

    def _check_integrity(self, device_id: str, start_ms: int, end_ms: int) -> None:
        assert self.integrity is not None
        trs = self.integrity.evaluate(device_id, start_ms, end_ms)
        if not trs:
            return
        if self.fence is not None:
            self.fence()
        with self.ledger.transaction():
            for tr in trs:
                self.ledger.upsert_event(tr.event)
            self.ledger.add_outbox(trs)
        for tr in trs:
            self.integrity_total += 1
            check = tr.event.rule
            self.integrity_by_check[check] = self.integrity_by_check.get(check, 0) + 1
            log.info(
                "event=data_integrity check=%s restaurant_id=%s device_id=%s id=%s minutes=%s",
                tr.event.rule,
                tr.event.restaurant_id,
                tr.event.device_id,  # a clone finding may be for the other device of the pair
                tr.event.event_id,
                tr.event.judgement.get("minutes"),
            )
            if self._sink is not None:
                self._to_influx([event_line(tr.event)])  # type: ignore[attr-defined]
            self._notice_q.put(tr)

    def wait_maintenance(self, timeout_s: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._maint_q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._maint_q.unfinished_tasks
