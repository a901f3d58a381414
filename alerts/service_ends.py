"""Which services have ended, device by device: what the judgements made once per service need
(maintenance reminders, alerts/maintenance; data-integrity checks, alerts/integrity).

:meth:`ServiceEnds.observe` is given every commit's finalised windows (cheap: a dictionary look-up per
window) and notes each device's current service (:meth:`alerts.detection.hours.BusinessHours.service_of`:
a block of business hours; a local day when none are set). Once the detector's clock is a window and the
allowed lateness past a service's end, :meth:`due` hands it out, once. The note is not saved: after a
restart the first service end of a device is the first one handed out.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from alerts.detection.hours import BusinessHours
from alerts.detection.window import DetectorConfig
from alerts.model import WindowResult


class ServiceEnds:
    def __init__(self, detector: DetectorConfig) -> None:
        self.hours = BusinessHours(detector.business_hours, detector.business_tz)
        self._grace_ms = detector.window_ms + detector.lateness_ms
        self._current: dict[str, tuple[int, int]] = {}  # device -> its latest service (start, end)
        self._heap: list[tuple[int, str, int]] = []  # (service end, device, service start)

    def observe(self, windows: Iterable[WindowResult]) -> None:
        """Note the services of freshly finalised windows."""
        for w in windows:
            if w.pollutant != "oil_fume":
                continue
            start, end, inside = self.hours.service_of(w.start_ms)
            if not inside:
                continue
            cur = self._current.get(w.device_id)
            if cur is not None and cur[0] >= start:
                continue  # the same service, or a late window of an earlier one
            self._current[w.device_id] = (start, end)
            heapq.heappush(self._heap, (end, w.device_id, start))

    def due(self, now_ms: int) -> list[tuple[str, int, int]]:
        """(device, service start, service end) of the services over by ``now_ms``, oldest first."""
        out = []
        heap = self._heap
        while heap and heap[0][0] + self._grace_ms <= now_ms:
            end, device, start = heapq.heappop(heap)
            out.append((device, start, end))
        return out
