"""Window arithmetic shared by the streaming detector and the vectorised replay.

Everything here is pure: no I/O, no clock. Times are epoch milliseconds UTC.

Rules (the same in :mod:`alerts.detection.detector` and :mod:`alerts.detection.replay`):

- Tumbling windows aligned to the epoch clock: ``start = t - t % window_ms`` (UTC; with the default
  10-minute window this is also aligned to local time in every whole-hour zone such as Asia/Shanghai).
  GB 18483-2001 samples 10-minute means, so ``window_s = 600`` is the natural default.
- Samples of a window: readings of one device with distinct ``time_ms`` (a duplicate counts once, the
  first one wins). A pollutant's samples are the readings carrying a value for it (not None, not NaN).
- A window's value is the mean of its samples, summed sequentially in event-time order starting from
  ``0.0`` (the replay reproduces this order exactly, so both paths give bit-identical means).
- Validity: the fan was on in a strict majority of the window's judged readings (``fan_on`` None counts
  as on, since many monitors do not report it) -> else ``fan_off``; and the pollutant has at least the
  device's minimum samples (below) -> else ``excluded`` when the window holds excluded readings (the
  shortfall is calibration or maintenance, not lost data), else ``incomplete``. A window with no judged
  reading at all is never ``fan_off`` (there is no majority to take).
- Excluded readings (``Reading.excluded`` non-empty: HJ 212 flag D/M/C/F, equipment state 2/3): stored,
  never judged. They are not samples (no count, sum, maximum or fan vote) and take no part in the
  ``purifier_off`` rule, but they are heard from (``last_seen``, they end an ``offline`` event), move the
  device's watermark, and their time counts for duplicates. Each window counts them by reason
  (``WindowResult.excluded``, ``"excluded"`` in window summaries when any); an oil-fume window is also
  emitted when it holds excluded readings but no sample, so a report shows the calibration.
- Lower bounds (``Reading.lower_bound``, HJ 212 flag ``T``: above the instrument's range) are judged as
  they are (a lower bound over the limit is over the limit) and counted per oil-fume window
  (``WindowResult.lower_bound``, ``"lower_bound"`` in summaries when any).
- Samples per window, per device: ``expected = max(1, round(window_s / interval))`` and
  ``min = max(1, ceil(min_valid_share * window_s / interval))`` (:mod:`alerts.detection.cadence`), where
  ``interval`` is the device's reporting interval when the window is finalised:

  1. ``Device.interval_s`` from the registry when set: the operator knows the monitor, and it is the
     only way to pin a device whose data is patchy or whose time stamps jitter;
  2. else learned from the device's own data: the median of the last 9 gaps between its successive
     distinct reading times in event-time order (every reading known when the window is finalised,
     those of still open windows too; excluded readings count, a calibrating monitor keeps its cadence),
     snapped *down* to the largest of 60, 120, 300, 600, 900, 1800, 3600 s at or below the median
     (within 5 %, ``cadence.SNAP_TOLERANCE_PERMILLE``: clock jitter), and never below
     ``expected_interval_s``;
  3. ``expected_interval_s`` until one gap is known.

  Why learned: HJ 212 monitors upload 1-minute data (CN 2011) or 10-minute averages (CN 2051), and a
  10-minute device judged at 1 minute has every window ``incomplete``: it could never raise an
  exceedance. Why a median of a few gaps: one outage or a burst of re-sends does not move it. Why snapped
  down and floored: a 1-minute device losing data keeps a median of 60 s (until it loses about half of
  its readings), so it keeps 10 expected samples and the loss shows as ``incomplete`` instead of
  lowering the bar; devices faster than ``expected_interval_s`` keep that expectation. The costs: a
  device losing more than half of its readings looks slower than it is, time stamps more than 5 % under
  the cadence (570 s for 600 s) snap to the next lower one (300 s), and a new device's first window is judged at
  ``expected_interval_s`` when the wall clock finalises it before a second reading arrives. The
  registry's ``interval_s`` avoids all three, which is why it wins.
- Reference conversion: an oil-fume sample whose reading has ``ref_converted`` False carries the measured
  concentration (flow unknown). The window counts those samples (``WindowResult.unconverted``, and
  ``"unconverted"`` in the oil-fume window summaries of ``Event.evidence``), so a mean over converted and
  unconverted samples is never shown unmarked.
- Exceedance rules (``DetectorConfig.rule``, a profile's ``rule``): ``gb18483`` groups of 5 valid windows
  of one service (:class:`alerts.detection.gb18483.GroupTracker`), or the ``consecutive`` screening rule:
- Exceedance hysteresis (:class:`ExceedanceTracker`, rule ``consecutive``): an event opens when ``open_after_windows`` (N)
  consecutive *valid* windows have a mean strictly above the limit; it closes after
  ``close_after_windows`` (M) consecutive valid compliant windows. Invalid windows and gaps (no window at
  all) are skipped: they neither advance nor reset either counter, so a night with the fan off or a data
  gap neither creates nor ends an exceedance. Optional ``max_gap_s``: a longer silence between two valid
  windows ends the open event (at its last exceeding window) and resets the counters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from alerts.detection.cadence import samples_per_window
from alerts.detection.hours import parse_business_hours
from alerts.model import EXCEEDANCE, Event, Transition
from alerts.rules import CONSECUTIVE, EXCEEDANCE_RULES
from ingest.timeutil import zone

#: Invalid-window reasons (``WindowResult.invalid_reason``).
FAN_OFF = "fan_off"
INCOMPLETE = "incomplete"
EXCLUDED = "excluded"

#: Pollutant order of the accumulator slots (``oil_fume`` is judged on the reference concentration).
POLLUTANT_INDEX = {"oil_fume": 0, "pm": 1, "nmhc": 2}


@dataclass(frozen=True)
class DetectorConfig:
    """Every knob of the detector, with its default and why."""

    #: Tumbling window length; GB 18483-2001 judges 10-minute sample means.
    window_s: int = 600
    #: A window is finalised when the device watermark (max event time - lateness) passes its end.
    allowed_lateness_s: int = 120
    #: The reporting interval assumed for a device without a registry ``interval_s`` until its own data
    #: shows one, and the floor of learned intervals (see the module docstring): 1-minute HJ 212 data.
    expected_interval_s: int = 60
    #: A window is valid with at least this share of the expected samples (and the fan on).
    min_valid_share: float = 0.75
    #: N: consecutive valid exceeding windows that open an exceedance (3 x 10 min = 30 min over).
    open_after_windows: int = 3
    #: M: consecutive valid compliant windows that close it (hysteresis against flapping).
    close_after_windows: int = 2
    #: Fan on while the purifier is off for at least this long -> ``purifier_off`` (bypass).
    purifier_off_min: float = 10.0
    #: A silence longer than this between two bypass readings restarts the bypass run.
    purifier_max_gap_s: int = 300
    #: No reading for at least this many minutes of business hours -> ``offline``.
    offline_min: float = 30.0
    #: Local business hours, comma-separated ``HH:MM-HH:MM`` (an end before the start crosses midnight).
    business_hours: str = "10:00-14:00,16:30-21:30"
    #: Time zone of ``business_hours``.
    business_tz: str = "Asia/Shanghai"
    #: Profile for registry rows with an empty ``profile`` column.
    default_profile: str = "gb18483"
    #: A ``late_data`` episode of a device closes once its watermark has moved this far past the last
    #: late reading (so a backfill after an outage is one event, not one per reading).
    late_episode_s: int = 600
    #: An exceedance keeps at most this many exceeding windows in ``Event.evidence`` (the first ones; two
    #: days of 10-minute windows by default) so a never-ending event cannot grow without bound. Peak and
    #: mean always cover every exceeding window; the stored finalised windows are the complete record.
    max_evidence_windows: int = 288
    #: A silence longer than this between two *valid* windows (no data, fan off, incomplete) ends an open
    #: exceedance (at its last exceeding window) and resets the run of exceeding windows, so a kitchen
    #: over the limit at lunch and again at dinner (the afternoon break is longer than 2 h), or at dinner
    #: and again next lunch, gets two events. None: gaps never end an event, which then closes only
    #: after M compliant windows.
    max_gap_s: int | None = 7200
    #: Exceedance judgement rule (:mod:`alerts.rules`): ``gb18483`` (GB 18483-2001 §6 data treatment over
    #: groups of 5 valid windows of one service) or ``consecutive`` (the N-over / M-under screening rule
    #: above). A limit profile's ``rule`` overrides it for its kitchens.
    rule: str = "gb18483"

    def __post_init__(self) -> None:
        for name in (
            "window_s",
            "expected_interval_s",
            "open_after_windows",
            "close_after_windows",
            "max_evidence_windows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("allowed_lateness_s", "purifier_max_gap_s", "late_episode_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_gap_s is not None and self.max_gap_s < 0:
            raise ValueError("max_gap_s must be >= 0 or None")
        if not 0.0 < self.min_valid_share <= 1.0:
            raise ValueError("min_valid_share must be in (0, 1]")
        if self.purifier_off_min <= 0 or self.offline_min <= 0:
            raise ValueError("purifier_off_min and offline_min must be > 0")
        parse_business_hours(self.business_hours)
        zone(self.business_tz)
        if self.rule not in EXCEEDANCE_RULES:
            raise ValueError(f"rule must be one of {', '.join(EXCEEDANCE_RULES)}, got {self.rule!r}")

    @property
    def window_ms(self) -> int:
        return self.window_s * 1000

    @property
    def lateness_ms(self) -> int:
        return self.allowed_lateness_s * 1000

    def samples_at(self, interval_s: int) -> tuple[int, int]:
        """(expected, minimum) samples of a window of a device reporting every ``interval_s``."""
        return samples_per_window(self.window_s, interval_s, self.min_valid_share)

    @property
    def expected_samples(self) -> int:
        """Expected samples of a window at ``expected_interval_s`` (a device whose cadence is not known)."""
        return self.samples_at(self.expected_interval_s)[0]

    @property
    def min_samples(self) -> int:
        """Samples needed for a valid window at ``expected_interval_s``."""
        return self.samples_at(self.expected_interval_s)[1]

    @property
    def purifier_off_ms(self) -> int:
        return round(self.purifier_off_min * 60_000)

    @property
    def offline_ms(self) -> int:
        return round(self.offline_min * 60_000)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DetectorConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def window_start(time_ms: int, window_ms: int) -> int:
    """Start of the epoch-aligned tumbling window holding ``time_ms``."""
    return time_ms - time_ms % window_ms


def judge(
    acc_n: int,
    fan_on: int,
    samples: int,
    mean: float | None,
    limit: float,
    min_samples: int,
    excluded: int = 0,
) -> tuple[bool, str, bool]:
    """(valid, invalid_reason, exceeds) of one pollutant's window: ``acc_n`` judged readings, ``fan_on``
    of them with the fan on or unknown, ``excluded`` readings not judged."""
    if acc_n and 2 * fan_on <= acc_n:
        return False, FAN_OFF, False
    if samples < min_samples or mean is None:
        return False, EXCLUDED if excluded else INCOMPLETE, False
    return True, "", mean > limit


def summary(
    start_ms: int,
    end_ms: int,
    mean: float,
    max_: float,
    samples: int,
    unconverted: int | None = None,
    lower_bound: int = 0,
    excluded: dict[str, int] | None = None,
) -> dict:
    """A window summary as kept in ``Event.evidence``; ``unconverted`` (oil fume only, else None: no key)
    counts its samples without reference conversion; ``lower_bound`` (key only when > 0) its samples
    above the instrument's range; ``excluded`` (key only when non-empty) its excluded readings by reason."""
    w = {"start_ms": start_ms, "end_ms": end_ms, "mean_mg_m3": mean, "max_mg_m3": max_, "samples": samples}
    if unconverted is not None:
        w["unconverted"] = unconverted
    if lower_bound:
        w["lower_bound"] = lower_bound
    if excluded:
        w["excluded"] = dict(excluded)
    return w


def max_reading_mg_m3(event: Event) -> float | None:
    """Highest single reading of an exceedance (``Event.peak_mg_m3`` is the highest *window mean*)."""
    vals = [w["max_mg_m3"] for w in event.evidence if w.get("max_mg_m3") is not None]
    return max(vals) if vals else None


def exceedance_id(device_id: str, pollutant: str, start_ms: int) -> str:
    return f"{EXCEEDANCE}:{device_id}:{pollutant}:{start_ms}"


def snapshot_event(ev: Event) -> Event:
    """A copy to hand out in a :class:`Transition`, so later updates do not change what was emitted
    (evidence and the judgement's lists grow in place while an event is open)."""
    judgement = {k: list(v) if isinstance(v, list) else v for k, v in ev.judgement.items()}
    return Event(
        **{f.name: getattr(ev, f.name) for f in fields(Event)}
        | {"evidence": list(ev.evidence), "judgement": judgement}
    )


@dataclass(slots=True)
class ExceedanceTracker:
    """N/M hysteresis of one (device, pollutant) over its valid windows, in window order.

    Idle: ``pending`` holds the current run of exceeding windows (fewer than N). Open: ``event`` is the
    open exceedance; ``under`` counts consecutive compliant windows. ``peak_mg_m3`` is the highest window
    mean, ``mean_mg_m3`` the mean of the exceeding windows' means (sequential sum / count), ``end_ms`` the
    end of the last exceeding window; the evidence lists the exceeding windows only (at most
    ``max_evidence_windows``). With ``max_gap_s`` set, a longer silence between valid windows ends the
    open event and the pending run. Events carry ``rule="consecutive"`` and ``judgement =
    {"open_after_windows": N, "close_after_windows": M}``.
    """

    TYPE = CONSECUTIVE  # tag of the snapshot state

    pending: list[dict] = field(default_factory=list)
    event: Event | None = None
    sum_means: float = 0.0
    n_means: int = 0
    under: int = 0
    last_end_ms: int = 0  # end of the last exceeding window of the open event
    last_valid_end_ms: int | None = None  # end of the last valid window fed

    @property
    def idle(self) -> bool:
        """No pending run and no open event: equivalent to a fresh tracker."""
        return self.event is None and not self.pending

    def feed(
        self,
        w: dict,
        exceeds: bool,
        meta: dict,
        config: DetectorConfig,
        service: tuple[int, int, bool] | None = None,
    ) -> list[Transition]:
        """Feed one valid window summary; returns the ``opened``/``closed`` transitions it caused.

        ``meta`` supplies the event fields that do not come from windows (device_id, restaurant_id,
        district, pollutant, limit_mg_m3, profile). ``service`` is not used by this rule.
        """
        out: list[Transition] = []
        gap_s = config.max_gap_s
        if (
            gap_s is not None
            and self.last_valid_end_ms is not None
            and w["start_ms"] - self.last_valid_end_ms > gap_s * 1000
        ):
            if self.event is not None:
                out.append(self._close(w["end_ms"]))
            self.pending = []
        self.last_valid_end_ms = w["end_ms"]
        ev = self.event
        if ev is None:
            if not exceeds:
                self.pending.clear()
                return out
            self.pending.append(w)
            if len(self.pending) < config.open_after_windows:
                return out
            start = self.pending[0]["start_ms"]
            ev = Event(
                event_id=exceedance_id(meta["device_id"], meta["pollutant"], start),
                kind=EXCEEDANCE,
                start_ms=start,
                state="open",
                evidence=[],
                rule=CONSECUTIVE,
                judgement={
                    "open_after_windows": config.open_after_windows,
                    "close_after_windows": config.close_after_windows,
                },
                **meta,
            )
            self.event, self.sum_means, self.n_means, self.under = ev, 0.0, 0, 0
            for p in self.pending:
                self._add(ev, p, config.max_evidence_windows)
            self.pending = []
            out.append(Transition(snapshot_event(ev), "opened", w["end_ms"]))
            return out
        if exceeds:
            self.under = 0
            self._add(ev, w, config.max_evidence_windows)
            return out
        self.under += 1
        if self.under >= config.close_after_windows:
            out.append(self._close(w["end_ms"]))
        return out

    def _close(self, at_ms: int) -> Transition:
        ev = self.event
        assert ev is not None
        ev.end_ms = self.last_end_ms
        ev.state = "closed"
        self.event, self.under, self.sum_means, self.n_means = None, 0, 0.0, 0
        return Transition(snapshot_event(ev), "closed", at_ms)

    def _add(self, ev: Event, w: dict, max_evidence: int) -> None:
        m = w["mean_mg_m3"]
        self.sum_means += m
        self.n_means += 1
        ev.mean_mg_m3 = self.sum_means / self.n_means
        if ev.peak_mg_m3 is None or m > ev.peak_mg_m3:
            ev.peak_mg_m3 = m
        if len(ev.evidence) < max_evidence:
            ev.evidence.append(w)
        self.last_end_ms = w["end_ms"]

    def to_state(self) -> dict:
        return {
            "type": self.TYPE,
            "pending": list(self.pending),
            "event": None if self.event is None else self.event.as_dict(),
            "sum_means": self.sum_means,
            "n_means": self.n_means,
            "under": self.under,
            "last_end_ms": self.last_end_ms,
            "last_valid_end_ms": self.last_valid_end_ms,
        }

    @classmethod
    def from_state(cls, s: dict) -> ExceedanceTracker:
        ev = None if s["event"] is None else Event(**s["event"])
        return cls(
            list(s["pending"]),
            ev,
            float(s["sum_means"]),
            s["n_means"],
            s["under"],
            s["last_end_ms"],
            s.get("last_valid_end_ms"),
        )
