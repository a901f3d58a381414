"""Mutable per-device state of the streaming detector (:class:`alerts.detection.detector.Detector`), and
its part of the detector's snapshot.
"""

from __future__ import annotations

from operator import sub

from alerts.detection.acc import WindowAcc
from alerts.detection.cadence import GAPS_KEPT, learned_interval_s
from alerts.detection.gb18483 import GroupTracker
from alerts.detection.window import ExceedanceTracker
from alerts.model import Event
from alerts.rules import CONSECUTIVE, GB18483
from ingest.registry import Device

#: Tracker class by the ``type`` tag of its snapshot state (an untagged state is an ExceedanceTracker's,
#: from a snapshot taken before the gb18483 rule existed).
TRACKERS: dict[str, type[ExceedanceTracker] | type[GroupTracker]] = {
    CONSECUTIVE: ExceedanceTracker,
    GB18483: GroupTracker,
}

_NEG = -(2**62)  # "no time yet" (JSON-safe, below any real epoch ms)
_FAR = 2**62  # "never" (above any real epoch ms)


class _Dev:
    """Mutable state of one device (kept small: the service may hold 100,000 of these)."""

    __slots__ = (
        "device",
        "judged",
        "profile",
        "rule",
        "wm",
        "max_t",
        "last_seen",
        "windows",
        "trackers",
        "svc_due",
        "p_start",
        "p_last",
        "p_count",
        "p_event",
        "offline",
        "late",
        "late_wm",
        "gaps",
        "gaps_last",
        "floor_s",
    )

    def __init__(
        self,
        device: Device,
        judged: tuple[tuple[int, str, float], ...],
        profile: str,
        rule: str = GB18483,
        floor_s: int = 60,
    ) -> None:
        self.device = device
        self.judged = judged  # ((accumulator slot, pollutant, limit), ...), shared between devices
        self.profile = profile
        self.rule = rule  # exceedance rule: the profile's, else the config's
        self.wm = _NEG
        self.max_t = _NEG  # latest event time accepted into a window
        self.last_seen = _NEG  # latest event time of any reading (late and duplicates too): offline
        self.windows: list[WindowAcc] = []  # open windows, by start
        # one tracker per judged pollutant (ExceedanceTracker for the consecutive rule, GroupTracker for
        # gb18483), None while idle (nothing pending or buffered, no open event)
        self.trackers: list[ExceedanceTracker | GroupTracker | None] | None = None
        # watermark at which a gb18483 tracker's service may be over (a lower bound; _FAR: none)
        self.svc_due = _FAR
        self.p_start: int | None = None
        self.p_last: int | None = None
        self.p_count = 0
        self.p_event: Event | None = None
        self.offline: Event | None = None
        self.late: Event | None = None
        self.late_wm = _NEG  # watermark when the last late reading arrived
        # the reporting interval is the registry's, else learned: the last GAPS_KEPT gaps (ms) between the
        # distinct reading times of the finalised windows, and the latest of those times (gaps None: the
        # registry's interval_s is used)
        self.floor_s = floor_s  # DetectorConfig.expected_interval_s
        self.gaps: list[int] | None = None if device.interval_s else []
        self.gaps_last = _NEG

    def interval_for(self, acc: WindowAcc) -> int:
        """The reporting interval (s) judging ``acc``, the window being finalised (already out of
        :attr:`windows`), and its times added to the learned gaps.

        Learned: the last GAPS_KEPT gaps of every distinct reading time known now, in event-time order:
        those of the finalised windows, then ``acc``'s and the still open windows' (the readings so far:
        in a time-ordered stream, every reading up to the one that finalises ``acc``)."""
        gaps = self.gaps
        if gaps is None:
            return self.device.interval_s or self.floor_s
        own = sorted(acc.times)
        if own:
            if self.gaps_last != _NEG:
                gaps.append(own[0] - self.gaps_last)
            gaps.extend(map(sub, own[1:], own[:-1]))
            del gaps[:-GAPS_KEPT]
            self.gaps_last = own[-1]
        known = gaps
        later = [t for a in self.windows for t in sorted(a.times)]  # open windows: later, in start order
        if later:
            known = gaps[:]
            if self.gaps_last != _NEG:
                known.append(later[0] - self.gaps_last)
            known.extend(map(sub, later[1:], later[:-1]))
        return learned_interval_s(known[-GAPS_KEPT:], self.floor_s)

    def meta(self) -> dict:
        d = self.device
        return {
            "device_id": d.device_id,
            "restaurant_id": d.restaurant_id,
            "district": d.district,
            "profile": self.profile,
        }

    def to_state(self) -> dict:
        """This device's part of :meth:`Detector.snapshot` (JSON-serialisable)."""
        return {
            "wm": self.wm,
            "max_t": self.max_t,
            "last_seen": self.last_seen,
            "windows": [acc.to_state() for acc in self.windows],
            "trackers": {
                p: tr.to_state()
                for (_, p, _), tr in zip(self.judged, self.trackers or (), strict=False)
                if tr is not None
            },
            "purifier": [self.p_start, self.p_last, self.p_count, _ev(self.p_event)],
            "offline": _ev(self.offline),
            "late": _ev(self.late),
            "late_wm": self.late_wm,
            "gaps": None if self.gaps is None else [self.gaps, self.gaps_last],
        }

    def load_state(self, s: dict) -> None:
        """Take back what :meth:`to_state` gave (:meth:`Detector.restore`)."""
        self.wm, self.max_t, self.last_seen = s["wm"], s["max_t"], s["last_seen"]
        self.windows = sorted((WindowAcc.from_state(w) for w in s["windows"]), key=lambda a: a.start_ms)
        if s["trackers"]:
            self.trackers = [
                None if p not in s["trackers"] else _tracker(s["trackers"][p]) for _, p, _ in self.judged
            ]
            self.svc_due = _NEG  # recomputed by the detector's next look at the services
        self.p_start, self.p_last, self.p_count = s["purifier"][:3]
        self.p_event = _unev(s["purifier"][3])
        self.offline = _unev(s["offline"])
        self.late = _unev(s["late"])
        self.late_wm = s["late_wm"]
        learned = s.get("gaps")  # absent before snapshot version 3; None for a registry interval
        if self.gaps is not None and learned:  # learning (no registry interval): what was learned so far
            self.gaps = [int(g) for g in learned[0]][-GAPS_KEPT:]
            self.gaps_last = int(learned[1])


def _tracker(s: dict) -> ExceedanceTracker | GroupTracker:
    """A tracker back from its state, by its ``type`` tag (none: an ExceedanceTracker)."""
    return TRACKERS[s.get("type", CONSECUTIVE)].from_state(s)


def _bypass(st: _Dev) -> dict:
    return {"first_bypass_ms": st.p_start, "last_bypass_ms": st.p_last, "bypass_readings": st.p_count}


def _ev(ev: Event | None) -> dict | None:
    return None if ev is None else ev.as_dict()


def _unev(d: dict | None) -> Event | None:
    return None if d is None else Event(**d)
