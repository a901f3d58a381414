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
- Validity: the fan was on in a strict majority of the window's readings (``fan_on`` None counts as on,
  since many monitors do not report it) -> else ``fan_off``; and the pollutant has at least
  ``ceil(min_valid_share * window_s / expected_interval_s)`` samples -> else ``incomplete``.
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

import math
from array import array
from dataclasses import asdict, dataclass, field, fields

from alerts.detection.hours import parse_business_hours
from alerts.model import EXCEEDANCE, Event, Transition
from alerts.rules import CONSECUTIVE, EXCEEDANCE_RULES
from ingest.timeutil import zone

#: Invalid-window reasons (``WindowResult.invalid_reason``).
FAN_OFF = "fan_off"
INCOMPLETE = "incomplete"

#: Pollutant order of the accumulator slots (``oil_fume`` is judged on the reference concentration).
POLLUTANT_INDEX = {"oil_fume": 0, "pm": 1, "nmhc": 2}

_NEG_INF = float("-inf")


@dataclass(frozen=True)
class DetectorConfig:
    """Every knob of the detector, with its default and why."""

    #: Tumbling window length; GB 18483-2001 judges 10-minute sample means.
    window_s: int = 600
    #: A window is finalised when the device watermark (max event time - lateness) passes its end.
    allowed_lateness_s: int = 120
    #: The monitors' reporting interval; ``window_s / expected_interval_s`` samples are expected.
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

    @property
    def expected_samples(self) -> int:
        return max(1, round(self.window_s / self.expected_interval_s))

    @property
    def min_samples(self) -> int:
        """Samples needed for a valid window: ``ceil(min_valid_share * window_s / expected_interval_s)``."""
        return max(1, math.ceil(self.min_valid_share * self.window_s / self.expected_interval_s - 1e-9))

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


# -- window accumulator ---------------------------------------------------------------------------------


class WindowAcc:
    """Running state of one open window of one device: counts, sequential sums, maxima, sample times.

    Compact on purpose (the detector holds one or two per device for 100,000 devices): ``v`` is one
    ``array('d')`` of ``[count x3, sum x3, max x3, unconverted oil-fume samples]`` in
    :data:`POLLUTANT_INDEX` order.
    """

    __slots__ = ("start_ms", "n", "fan_on", "v", "times")

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.n = 0  # distinct readings
        self.fan_on = 0  # readings with fan_on True or None
        self.v = array("d", (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, _NEG_INF, _NEG_INF, _NEG_INF, 0.0))
        self.times = array("q")

    def add(
        self,
        time_ms: int,
        values: tuple[float | None, float | None, float | None],
        fan: bool | None,
        converted: bool = True,
    ) -> bool:
        """Add one reading; False (nothing changed) when a reading with this ``time_ms`` was already added.

        ``converted`` False (``Reading.ref_converted``): the oil-fume value is the measured concentration;
        counted in :attr:`unconverted` when it is a sample."""
        times = self.times
        if times and time_ms <= times[-1] and time_ms in times:
            return False
        times.append(time_ms)
        self.n += 1
        if fan is not False:
            self.fan_on += 1
        v = self.v
        for i in (0, 1, 2):
            x = values[i]
            if x is not None and x == x:  # not None, not NaN
                v[i] += 1.0
                v[3 + i] += x  # sequential, in arrival order (= event-time order when fed in order)
                if x > v[6 + i]:
                    v[6 + i] = x
                if i == 0 and not converted:
                    v[9] += 1.0
        return True

    @property
    def unconverted(self) -> int:
        """Oil-fume samples of readings without reference conversion."""
        return int(self.v[9])

    def stats(self, i: int) -> tuple[int, float, float]:
        """(samples, sum, max) of pollutant slot ``i``."""
        v = self.v
        return int(v[i]), v[3 + i], v[6 + i]

    def to_state(self) -> list:
        v = self.v
        return [
            self.start_ms,
            self.n,
            self.fan_on,
            [int(c) for c in v[0:3]],
            list(v[3:6]),
            [None if m == _NEG_INF else m for m in v[6:9]],
            self.times.tolist(),
            int(v[9]),
        ]

    @classmethod
    def from_state(cls, s: list) -> WindowAcc:
        acc = cls(s[0])
        acc.n, acc.fan_on = s[1], s[2]
        maxs = [_NEG_INF if m is None else float(m) for m in s[5]]
        unconverted = float(s[7]) if len(s) > 7 else 0.0  # older snapshots did not count them
        acc.v = array("d", [float(c) for c in s[3]] + [float(x) for x in s[4]] + maxs + [unconverted])
        acc.times = array("q", s[6])
        return acc


def judge(
    acc_n: int, fan_on: int, samples: int, mean: float, limit: float, min_samples: int
) -> tuple[bool, str, bool]:
    """(valid, invalid_reason, exceeds) of one pollutant's window."""
    if 2 * fan_on <= acc_n:
        return False, FAN_OFF, False
    if samples < min_samples:
        return False, INCOMPLETE, False
    return True, "", mean > limit


def summary(
    start_ms: int, end_ms: int, mean: float, max_: float, samples: int, unconverted: int | None = None
) -> dict:
    """A window summary as kept in ``Event.evidence``; ``unconverted`` (oil fume only, else None: no key)
    counts its samples without reference conversion."""
    w = {"start_ms": start_ms, "end_ms": end_ms, "mean_mg_m3": mean, "max_mg_m3": max_, "samples": samples}
    if unconverted is not None:
        w["unconverted"] = unconverted
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
