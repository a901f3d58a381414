"""What a device's clock looks like from here: the data-integrity check ``suspect_clock`` (issue 16,
docs/integrity.md) needs facts only the receiving side has.

- **Lag** (received time minus reading time, the monitor's ``ts`` / HJ 212 ``DataTime``): per device and
  UTC hour of the reading time, the *smallest* lag seen. A monitor's clock offset is best estimated by
  its smallest lag: data sent live arrives within a second or two, data a DTU held back during an outage
  arrives later, so a backlog raises the hour's mean but not its minimum. A clock 20 minutes behind gives
  a minimum near +20 min, one 3 minutes ahead near -3 min.
- **Backwards steps**: a reading stamped more than ``backwards_ms`` earlier than the device's previous
  reading (in receive order). A DTU's backfill after an outage steps back once; a clock that is reset or
  jumps steps back each time.
- **Repeated QN**: an HJ 212 request number (``QN``, meant to be unique per request) seen again with
  another ``DataTime`` or another oil-fume value (a logger whose clock was set back numbers its requests
  from that clock again). A redelivered frame (same QN, time and value) is not counted.

:meth:`ClockWatch.observe` is called with each message's readings and its received time: by the ingest
service (``fumewatch ingest``, ``fumewatch run``) before the store's duplicate check (a clock that went
back sends times already stored), or by the alerts service reading MQTT itself (``fumewatch alerts``).
:meth:`ClockWatch.take` hands the alerts side the hours of a span, by reading time, and forgets them.

Bounded, since the input is untrusted: only registry devices (the pipeline refuses others), at most
:data:`MAX_HOURS` hours per device (the oldest dropped first), and at most :data:`MAX_QNS` recent QNs. Nothing is saved: after a restart, a service's clock facts start again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ingest.model import Reading

HOUR_MS = 3_600_000
#: Hours of clock facts kept per device until the alerts side takes them (a service is taken once it
#: ended; a replay flat out may run days ahead of the judging): beyond, the oldest hour is dropped.
MAX_HOURS = 8 * 24
#: Recent QNs remembered per device for the repeat check.
MAX_QNS = 512


@dataclass(slots=True)
class ClockHour:
    """One device's clock facts for one UTC hour of reading time."""

    readings: int = 0
    min_lag_ms: int | None = None
    backwards: int = 0
    #: The largest backwards step of the hour (ms).
    max_back_ms: int = 0
    qn_repeats: int = 0
    #: A few repeated QNs, for the evidence.
    qn_examples: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Device:
    last_ms: int | None = None
    hours: dict[int, ClockHour] = field(default_factory=dict)
    qns: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)


class ClockWatch:
    def __init__(self, backwards_s: float = 300.0) -> None:
        self.backwards_ms = int(backwards_s * 1000)
        self._devices: dict[str, _Device] = {}
        self._lock = threading.Lock()

    def observe(self, readings: Iterable[Reading], received_ms: int) -> None:
        """Note one message's readings, received at ``received_ms`` (hourly means are skipped: they are
        stamped with their hour, not when they were taken)."""
        with self._lock:
            devices = self._devices
            for r in readings:
                if r.interval_s:
                    continue
                d = devices.get(r.device_id)
                if d is None:
                    d = devices[r.device_id] = _Device()
                t = r.time_ms
                hour = t - t % HOUR_MS
                h = d.hours.get(hour)
                if h is None:
                    if len(d.hours) >= MAX_HOURS:
                        oldest = min(d.hours)
                        if hour < oldest:
                            continue  # older than all that is kept: nothing to judge it with
                        del d.hours[oldest]
                    h = d.hours[hour] = ClockHour()
                h.readings += 1
                lag = received_ms - t
                if h.min_lag_ms is None or lag < h.min_lag_ms:
                    h.min_lag_ms = lag
                if d.last_ms is not None and d.last_ms - t > self.backwards_ms:
                    h.backwards += 1
                    h.max_back_ms = max(h.max_back_ms, d.last_ms - t)
                d.last_ms = t
                if r.qn:
                    seen = d.qns.get(r.qn)
                    if seen is None:
                        d.qns[r.qn] = (t, r.oil_fume_mg_m3)
                        if len(d.qns) > MAX_QNS:
                            d.qns.popitem(last=False)
                    elif seen != (t, r.oil_fume_mg_m3):
                        h.qn_repeats += 1
                        if len(h.qn_examples) < 3 and r.qn not in h.qn_examples:
                            h.qn_examples.append(r.qn)

    def take(self, device_id: str, start_ms: int, end_ms: int) -> dict[int, ClockHour]:
        """The hours (by their UTC start) of readings stamped in [start_ms, end_ms), removed."""
        with self._lock:
            d = self._devices.get(device_id)
            if d is None:
                return {}
            first = start_ms - start_ms % HOUR_MS
            keys = sorted(k for k in d.hours if first <= k < end_ms)
            return {k: d.hours.pop(k) for k in keys}
