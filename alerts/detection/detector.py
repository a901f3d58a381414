"""Streaming event-time detector: readings in, event transitions and finalised windows out.

Pure: no I/O, no MQTT, no database, no wall clock (time enters only through readings and
:meth:`Detector.advance`). The service around it subscribes to readings, calls :meth:`Detector.advance`
periodically with the wall clock, stores :meth:`Detector.drain_windows` and the transitions, and saves
:meth:`Detector.snapshot` so a restart loses nothing (:meth:`Detector.restore`).

Per device:

- **Windows and watermark.** Tumbling windows aligned to the epoch clock (rules in :mod:`alerts.detection.window`).
  The device watermark is ``max(event time seen, advance() wall clock) - allowed_lateness``; a window is
  finalised when the watermark reaches its end. A reading whose window is already finalised is *late*: it
  is counted (:attr:`Detector.late_readings`) and recorded in a ``late_data`` event, and changes no
  finalised result. Duplicates (same device, same ``time_ms``, window still open) count once
  (:attr:`Detector.duplicates`), so re-delivered MQTT messages are harmless. Excluded readings
  (``Reading.excluded``) are kept out of every judgement and counted per window
  (:attr:`Detector.excluded`); the samples a window needs follow the device's reporting interval, from
  the registry or learned from its gaps (both rules in :mod:`alerts.detection.window`).
- **exceedance** per limited pollutant (``oil_fume`` on ``oil_fume_ref_mg_m3``; ``pm``/``nmhc`` where the
  profile limits them and readings carry them), by the device's rule (its profile's ``rule``, else
  ``DetectorConfig.rule``; ``Event.rule`` records it):

  - ``gb18483`` (default): GB 18483-2001 groups of 5 valid windows of one service
    (:class:`alerts.detection.gb18483.GroupTracker`, rules in :mod:`alerts.detection.gb18483`). Every
    valid window is fed (a compliant one can be part of an exceeding group). An open event also closes
    when the device watermark passes the end of its service (here, in :meth:`_finalise_due`, so also via
    :meth:`Detector.advance` and :meth:`Detector.flush`), with ``at_ms`` = the service end.
  - ``consecutive``: N/M hysteresis over valid windows (:class:`alerts.detection.window.ExceedanceTracker`):
    opens after N consecutive valid windows with mean > limit (start = first of them), closes after M
    consecutive valid compliant ones (end = end of the last exceeding window). Invalid windows and gaps
    are skipped: they neither count nor reset (unless ``max_gap_s`` is set, see
    :class:`~alerts.detection.window.DetectorConfig`). ``peak_mg_m3`` = highest window mean,
    ``mean_mg_m3`` = mean of the exceeding windows' means.

  The highest single reading is the largest ``max_mg_m3`` of the evidence windows
  (:func:`alerts.detection.window.max_reading_mg_m3`). Evidence = window summaries (start_ms, end_ms,
  mean_mg_m3, max_mg_m3, samples, and for oil fume ``unconverted``). Id
  ``exceedance:{device_id}:{pollutant}:{start_ms}``; transitions carry the event-time end of the window
  that decided them (``at_ms``), so replays give identical ids and times. While an event is open the
  transitions say nothing; :meth:`Detector.open_events` shows its current state.
- **purifier_off**: readings with ``fan_on is True`` and ``purifier_on is False`` (bypass) for at least
  ``purifier_off_min`` (first to latest bypass reading, no gap over ``purifier_max_gap_s``) open it,
  starting at the first bypass reading; a reading with the purifier on or the fan off closes it (end = that
  reading's time). Readings with either state unknown are ignored, as are out-of-order readings (older than
  the device's latest). Evidence: first/last bypass time and the number of bypass readings. Rule ``bypass``.
- **offline**: from :meth:`Detector.advance` with the wall clock: a registered device without a reading for
  ``offline_min`` minutes *of business hours* (time outside business hours does not count) opens it,
  starting at its last reading (or at the first ``advance`` for a device never heard from); the next reading
  closes it. Rule ``offline``.
- **late_data**: one event per device *episode* of late readings, id from the first late reading's time,
  evidence with the count and time range; it closes when the device watermark has moved
  ``late_episode_s`` past the last late reading (or at :meth:`Detector.flush`). Rule ``late``.

Readings of devices missing from the registry are counted (:attr:`Detector.unregistered`) and ignored.
``level`` is left empty: the enforcement ladder is another module's job. Transitions carry copies of the
events (later updates do not change what was handed out); ``Transition.action`` is ``opened`` or
``closed`` for every kind. :mod:`alerts.detection.replay` reproduces exceedance and purifier_off events at numpy
speed for whole frames.
"""

from __future__ import annotations

from collections.abc import Iterable

from alerts.detection.acc import WindowAcc
from alerts.detection.gb18483 import GroupTracker
from alerts.detection.hours import BusinessHours
from alerts.detection.incidents import close_late, close_offline, late, open_offline, purifier
from alerts.detection.snapshot import SNAPSHOT_VERSION, DetectorState
from alerts.detection.state import _FAR, _NEG, _bypass, _Dev
from alerts.detection.window import (
    POLLUTANT_INDEX,
    DetectorConfig,
    ExceedanceTracker,
    judge,
    snapshot_event,
    summary,
    window_start,
)
from alerts.model import Event, Transition, WindowResult
from alerts.profiles import POLLUTANTS, ProfileError, Profiles, check_registry
from alerts.rules import GB18483
from ingest.model import Reading
from ingest.registry import Registry

__all__ = ["Detector", "DetectorConfig", "SNAPSHOT_VERSION"]


class Detector(DetectorState):
    """Per-device event-time windows, watermarks and event lifecycles. Not thread-safe."""

    def __init__(self, registry: Registry, profiles: Profiles, config: DetectorConfig | None = None) -> None:
        self.registry = registry
        self.profiles = profiles
        self.config = config = config or DetectorConfig()
        problems = check_registry(profiles, registry, config.default_profile)
        if problems:
            raise ProfileError("registry does not match the limit profiles:\n  " + "\n  ".join(problems))
        self._window_ms = config.window_ms
        self._lateness_ms = config.lateness_ms
        self._samples: dict[int, tuple[int, int]] = {}  # reporting interval -> (expected, min) samples
        self._business = BusinessHours(config.business_hours, config.business_tz)
        self._devs: dict[str, _Dev] = {}
        self._judged: dict[tuple[str, str], tuple[tuple[int, str, float], ...]] = {}
        self._windows_out: list[WindowResult] = []
        self._baseline_ms: int | None = None  # first advance(): "last seen" of never-heard devices
        # incremental state (alerts.detection.snapshot): the devices changed since take_changes(), those to
        # forget, the highest advance() watermark, and whether stored rows must all be replaced
        self._changed: set[str] = set()
        self._gone: set[str] = set()
        self._adv_wm = _NEG
        self._rewrite = True
        #: Readings accepted into a window as samples.
        self.readings = 0
        #: Readings accepted into a window but not judged (``Reading.excluded``: calibration, fault, ...).
        self.excluded = 0
        #: Readings whose window was already finalised (recorded in ``late_data`` events).
        self.late_readings = 0
        #: Readings repeating a (device, time_ms) already in an open window.
        self.duplicates = 0
        #: Readings from devices not in the registry (ignored).
        self.unregistered = 0
        #: Windows finalised so far (per pollutant).
        self.windows_finalised = 0

    # -- public API -----------------------------------------------------------------------------------

    def process(self, reading: Reading) -> list[Transition]:
        """Take one reading (any order); return the transitions it caused."""
        st = self._devs.get(reading.device_id)
        if st is None:
            st = self._dev(reading.device_id)
            if st is None:
                self.unregistered += 1
                return []
        out: list[Transition] = []
        t = reading.time_ms
        if t > st.last_seen or st.offline is not None:
            self._changed.add(reading.device_id)  # a duplicate changes nothing
            st.last_seen = max(st.last_seen, t)
            if st.offline is not None:
                close_offline(st, t, out)

        ws = window_start(t, self._window_ms)
        if ws + self._window_ms <= st.wm:
            self.late_readings += 1
            self._changed.add(reading.device_id)
            late(st, t, out)
            return out
        wins = st.windows
        if wins and wins[-1].start_ms == ws:
            acc = wins[-1]
        else:
            acc = next((a for a in wins if a.start_ms == ws), None)
            if acc is None:
                acc = WindowAcc(ws)
                wins.append(acc)
                if len(wins) > 1 and wins[-2].start_ms > ws:
                    wins.sort(key=lambda a: a.start_ms)
        fan = None if reading.fan_on is None else bool(reading.fan_on)  # numpy bools too
        values = (reading.oil_fume_ref_mg_m3, reading.pm_mg_m3, reading.nmhc_mg_m3)
        excluded = reading.excluded
        low = reading.flags is not None and reading.lower_bound
        if not acc.add(t, values, fan, bool(reading.ref_converted), excluded, low):
            self.duplicates += 1
            return out
        self._changed.add(reading.device_id)
        if excluded:
            self.excluded += 1
        else:
            self.readings += 1
        if t > st.max_t:
            if not excluded:  # bypass during maintenance (cleaning the purifier) is not judged either
                pur = None if reading.purifier_on is None else bool(reading.purifier_on)
                purifier(st, t, fan, pur, self.config, out)
            st.max_t = t
            wm = t - self._lateness_ms
            if wm > st.wm:
                st.wm = wm
                self._finalise_due(st, out)
        return out

    def process_many(self, readings: Iterable[Reading]) -> list[Transition]:
        out: list[Transition] = []
        for r in readings:
            out.extend(self.process(r))
        return out

    def advance(self, now_ms: int) -> list[Transition]:
        """Move every watermark to at least ``now_ms - allowed_lateness`` (wall clock), finalising due
        windows of silent devices, and open ``offline`` events. Call it periodically (e.g. every 10 s).

        A device whose watermark moved but nothing was due is not changed for :meth:`take_changes`: its
        stored state plus the detector's advance watermark restore it."""
        out: list[Transition] = []
        if self._baseline_ms is None:
            self._baseline_ms = now_ms
        wm = now_ms - self._lateness_ms
        if wm > self._adv_wm:
            self._adv_wm = wm
        changed = self._changed
        for dev_id, st in self._devs.items():
            if wm > st.wm:
                st.wm = wm
                if self._finalise_due(st, out):
                    changed.add(dev_id)
        offline_ms = self.config.offline_ms
        for device in self.registry:
            st = self._devs.get(device.device_id)
            if st is not None and st.offline is not None:
                continue
            last = st.last_seen if st is not None and st.last_seen != _NEG else self._baseline_ms
            if now_ms - last < offline_ms:
                continue
            overlap = self._business.overlap_ms(last, now_ms)
            if overlap < offline_ms:
                continue
            if st is None:
                st = self._dev(device.device_id)
                assert st is not None
            changed.add(device.device_id)
            open_offline(st, last, now_ms, out)
        return out

    def flush(self) -> list[Transition]:
        """End of stream: finalise every open window (and close late-data episodes, and gb18483
        exceedances whose service the watermark then passed). Other open exceedance, purifier_off and
        offline events stay open: nothing says they ended."""
        out: list[Transition] = []
        for dev_id, st in self._devs.items():
            if st.windows:
                st.wm = max(st.wm, st.windows[-1].start_ms + self._window_ms)
                self._finalise_due(st, out)
                self._changed.add(dev_id)
            if st.late is not None:
                close_late(st, out)
                self._changed.add(dev_id)
        return out

    def drain_windows(self) -> list[WindowResult]:
        """Windows finalised since the last call (one per device, window and judged pollutant)."""
        out, self._windows_out = self._windows_out, []
        return out

    def open_events(self, device_ids: Iterable[str] | None = None) -> list[Event]:
        """Copies of all currently open events (of ``device_ids`` only, if given), as they stand now (an
        exceedance with every exceeding window so far, a purifier_off with its bypass readings so far)."""
        evs: list[Event] = []
        devs = self._devs
        sts = devs.values() if device_ids is None else (devs[i] for i in device_ids if i in devs)
        for st in sts:
            for tr in st.trackers or ():
                if tr is not None and tr.event is not None:
                    evs.append(snapshot_event(tr.event))
            if st.p_event is not None:
                ev = snapshot_event(st.p_event)
                ev.evidence = [_bypass(st)]
                evs.append(ev)
            evs.extend(snapshot_event(e) for e in (st.offline, st.late) if e is not None)
        return evs

    def watermark(self, device_id: str) -> int | None:
        st = self._devs.get(device_id)
        return None if st is None or st.wm == _NEG else st.wm

    @property
    def counters(self) -> dict[str, int]:
        return {
            "readings": self.readings,
            "excluded": self.excluded,
            "late_readings": self.late_readings,
            "duplicates": self.duplicates,
            "unregistered": self.unregistered,
            "windows_finalised": self.windows_finalised,
        }

    def use_registry(self, registry: Registry) -> None:
        """Judge by an edited registry from now on, as a restart with it would: a device whose row changed
        continues its state under the new row, a device no longer in it is dropped."""
        self.registry = registry
        for dev_id, st in list(self._devs.items()):
            device = registry.get(dev_id)
            if device == st.device:
                continue
            del self._devs[dev_id]
            if device is None:
                self._changed.discard(dev_id)
                self._gone.add(dev_id)  # its state row goes at the next commit
            else:
                self._dev(dev_id).load_state(st.to_state())  # type: ignore[union-attr]
                self._changed.add(dev_id)

    # -- internals ------------------------------------------------------------------------------------

    def _dev(self, device_id: str) -> _Dev | None:
        device = self.registry.get(device_id)
        if device is None:
            return None
        prof = self.profiles.for_device(device, self.config.default_profile)
        key = (prof.name, prof.size_class(device.stove_heads))
        judged = self._judged.get(key)
        if judged is None:
            limits = prof.limits_for(device.stove_heads)
            judged = tuple((POLLUTANT_INDEX[p], p, limits[p]) for p in POLLUTANTS if p in limits)
            self._judged[key] = judged
        rule = prof.rule or self.config.rule
        st = self._devs[device_id] = _Dev(device, judged, prof.name, rule, self.config.expected_interval_s)
        return st

    def _finalise_due(self, st: _Dev, out: list[Transition]) -> bool:
        """Finalise what ``st``'s watermark made due; whether that changed its state (beyond ``wm``)."""
        wins = st.windows
        changed = False
        while wins and wins[0].start_ms + self._window_ms <= st.wm:
            self._finalise(st, wins.pop(0), out)
            changed = True
        if st.wm >= st.svc_due:
            changed = self._end_services(st, out) or changed
        if st.late is not None and st.wm - st.late_wm >= self.config.late_episode_s * 1000:
            close_late(st, out)
            changed = True
        return changed

    def _finalise(self, st: _Dev, acc: WindowAcc, out: list[Transition]) -> None:
        ws = acc.start_ms
        we = ws + self._window_ms
        dev_id = st.device.device_id
        service = None
        interval = st.interval_for(acc)
        expected, min_samples = self._samples.get(interval) or self._samples.setdefault(
            interval, self.config.samples_at(interval)
        )
        n_excluded = sum(acc.ex.values()) if acc.ex else 0
        for k, (i, pollutant, limit) in enumerate(st.judged):
            cnt, total, mx = acc.stats(i)
            if cnt == 0 and not (i == 0 and n_excluded):
                continue  # not measured; but an oil-fume window of excluded readings only is shown
            mean = total / cnt if cnt else None
            mx_ = mx if cnt else None
            valid, reason, exceeds = judge(acc.n, acc.fan_on, cnt, mean, limit, min_samples, n_excluded)
            unconverted = acc.unconverted if i == 0 else 0
            lower = acc.lower_bound if i == 0 else 0
            self._windows_out.append(
                WindowResult(
                    dev_id,
                    ws,
                    we,
                    cnt,
                    expected,
                    valid,
                    reason,
                    mean,
                    mx_,
                    exceeds,
                    pollutant,
                    unconverted,
                    acc.excluded if n_excluded else {},
                    lower,
                )
            )
            self.windows_finalised += 1
            if not valid:
                continue
            trs = st.trackers
            tr = None if trs is None else trs[k]
            if tr is None:
                if st.rule == GB18483:
                    tr = GroupTracker()  # a compliant window can be part of an exceeding group
                elif not exceeds:
                    continue  # an idle N/M tracker stays idle on a compliant window
                else:
                    tr = ExceedanceTracker()
                if trs is None:
                    trs = st.trackers = [None] * len(st.judged)
                trs[k] = tr
            meta = dict(st.meta(), pollutant=pollutant, limit_mg_m3=limit)
            w = summary(
                ws, we, mean, mx, cnt, unconverted if i == 0 else None, lower, acc.ex and acc.excluded
            )
            if isinstance(tr, GroupTracker):  # by the tracker: one restored under another rule runs out
                if service is None:
                    service = self._business.service_of(ws)
                out.extend(tr.feed(w, exceeds, meta, self.config, service))
                due = tr.due_ms(self._window_ms)
                if due < st.svc_due:
                    st.svc_due = due
            else:
                out.extend(tr.feed(w, exceeds, meta, self.config))
            if tr.idle:
                trs[k] = None
                if not any(trs):
                    st.trackers = None

    def _end_services(self, st: _Dev, out: list[Transition]) -> bool:
        """gb18483 trackers whose service the watermark passed: close their event, drop their buffer; then
        the next watermark worth a look (``st.svc_due``). Whether a tracker changed."""
        trs = st.trackers
        st.svc_due = _FAR
        if trs is None:
            return False
        expired = False
        for k, tr in enumerate(trs):
            if isinstance(tr, GroupTracker):
                if tr.due(st.wm, self._window_ms):
                    out.extend(tr.expire())
                    expired = True
                    if tr.idle:
                        trs[k] = None
                        continue
                st.svc_due = min(st.svc_due, tr.due_ms(self._window_ms))
        if not any(trs):
            st.trackers = None
        return expired
