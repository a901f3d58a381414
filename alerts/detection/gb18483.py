"""The ``gb18483`` exceedance rule: GB 18483-2001 §6 data treatment, automated over the valid windows of
one service.

The standard samples 5 consecutive 10-minute means at the cooking peak, drops the values below a quarter
of the largest, needs at least 3 to remain, and judges their mean against the limit. Automated, per
(device, pollutant) and over the *valid* windows of one service (:meth:`BusinessHours.service_of`) in
window order:

- Invalid windows are skipped: they neither count nor break the run. A valid window of a later service
  starts a new run (and ends the previous service's open event).
- Once 5 valid windows of the service are seen, every new valid window forms a group with the 4 before
  it (sliding groups of 5 consecutive valid windows).
- In a group, windows whose mean is below 1/4 of the largest of the five are dropped; with fewer than 3
  left the group gets no judgement (counted in ``judgement["no_judgement"]``). Otherwise it exceeds when
  the mean of the kept windows (summed sequentially in window order from 0.0, like every mean of the
  detector, so the replay is bit-identical) is strictly over the limit.
- No open event and an exceeding group: an exceedance opens. ``start_ms`` = the group's first window
  start, id ``exceedance:{device}:{pollutant}:{start}``, ``rule="gb18483"``, transition ``opened`` at the
  end of the window that completed the group.
- Open event and an exceeding group: the event grows (its evidence gains the group's new windows, its end
  is the end of the group's last window). A group without judgement neither extends nor closes it.
- Open event and a compliant (judged) group: the event closes, ``end_ms`` = end of the last window of the
  last exceeding group; transition ``closed`` at the end of the deciding window.
- The service ends: an open event closes (same ``end_ms``), the closed transition's ``at_ms`` being the
  service end. It happens when a valid window of a later service is fed, or in the streaming detector as
  soon as the device watermark reaches the end of the last window that can belong to the service
  (:meth:`GroupTracker.due`; the service end itself when it falls on a window boundary).
- A service with fewer than 5 valid windows gives no group and so no event.

Event fields: ``peak_mg_m3`` = highest window mean of the event's windows, ``mean_mg_m3`` = highest mean
of its exceeding groups (the judged concentration), ``evidence`` = the windows of the exceeding groups
(window summaries, at most ``max_evidence_windows``; ``"dropped": True`` on a window the 1/4 rule dropped
in the group that opened the event), ``judgement`` = ``{"groups": [...], "service_start_ms",
"service_end_ms", "no_judgement"}`` where each group is ``{"start_ms", "end_ms", "mean_mg_m3", "kept",
"dropped", "exceeds"}`` (every exceeding group, at most ``max_evidence_windows``, plus the compliant
group that closed the event) and ``no_judgement`` counts the groups without judgement since the service
start or the previous event's close.

A second exceeding group after a close opens a new event, which may start before the previous one's end
(its first window may belong to the closing group): both are in the same service, so the enforcement
ladder counts them as one episode.
"""

from __future__ import annotations

from alerts.detection.window import DetectorConfig, exceedance_id, snapshot_event, summary
from alerts.model import EXCEEDANCE, Event, Transition
from alerts.rules import GB18483

__all__ = ["GroupTracker", "GROUP_SIZE", "MIN_KEPT"]

#: Windows per group (GB 18483-2001: 5 consecutive samples).
GROUP_SIZE = 5
#: A group is judged only with at least this many windows left after the 1/4 drop.
MIN_KEPT = 3


def judge_group(means: list[float], limit: float) -> tuple[list[bool], float | None, bool]:
    """(kept flags, mean of the kept windows or None without judgement, exceeds) of one group."""
    top = max(means)
    quarter = top / 4.0
    kept = [m >= quarter for m in means]
    n = sum(kept)
    if n < MIN_KEPT:
        return kept, None, False
    s = 0.0
    for m, k in zip(means, kept, strict=True):
        if k:
            s += m
    mean = s / n
    return kept, mean, mean > limit


class GroupTracker:
    """GB 18483-2001 groups of one (device, pollutant), see the module docstring. Small on purpose (one
    per cooking device and pollutant, 100,000 devices): the rolling buffer holds at most 5 tuples."""

    __slots__ = ("buf", "svc_start", "svc_end", "event", "last_end_ms", "ev_last_start", "no_judgement")

    TYPE = GB18483  # tag of the snapshot state

    def __init__(self) -> None:
        # the last valid windows of the service (at most GROUP_SIZE), each
        # (start_ms, mean, max, samples, unconverted or None for pm/nmhc, lower_bound, excluded or None)
        self.buf: list[tuple] = []
        self.svc_start: int | None = None  # service of the buffered windows / the open event
        self.svc_end: int | None = None
        self.event: Event | None = None
        self.last_end_ms = 0  # end of the last window of the last exceeding group of the open event
        self.ev_last_start = 0  # start of the last window of the open event's exceeding groups
        self.no_judgement = 0  # groups without judgement since the service start / the last close

    @property
    def idle(self) -> bool:
        """Nothing buffered and no open event: equivalent to a fresh tracker."""
        return self.event is None and not self.buf

    def feed(
        self,
        w: dict,
        exceeds: bool,
        meta: dict,
        config: DetectorConfig,
        service: tuple[int, int, bool] | None = None,
    ) -> list[Transition]:
        """Feed one valid window summary of ``service`` (``BusinessHours.service_of(w["start_ms"])``);
        returns the transitions it caused. ``exceeds`` (the window alone) is not used: groups decide."""
        assert service is not None, "the gb18483 rule needs the window's service"
        out: list[Transition] = []
        if self.svc_start != service[0]:
            if self.event is not None:
                assert self.svc_end is not None
                out.append(self._close(self.svc_end, None))
            self.buf = []
            self.no_judgement = 0
            self.svc_start, self.svc_end = service[0], service[1]
        buf = self.buf
        buf.append(
            (
                w["start_ms"],
                w["mean_mg_m3"],
                w["max_mg_m3"],
                w["samples"],
                w.get("unconverted"),
                w.get("lower_bound", 0),
                w.get("excluded"),
            )
        )
        if len(buf) > GROUP_SIZE:
            del buf[0]
        if len(buf) < GROUP_SIZE:
            return out
        W = config.window_ms
        means = [b[1] for b in buf]
        kept, mean, over = judge_group(means, meta["limit_mg_m3"])
        if mean is None:
            self.no_judgement += 1
            ev = self.event
            if ev is not None:
                ev.judgement["no_judgement"] = self.no_judgement
            return out
        n_kept = sum(kept)
        group = {
            "start_ms": buf[0][0],
            "end_ms": buf[-1][0] + W,
            "mean_mg_m3": mean,
            "kept": n_kept,
            "dropped": GROUP_SIZE - n_kept,
            "exceeds": over,
        }
        ev = self.event
        cap = config.max_evidence_windows
        if ev is None:
            if not over:
                return out
            start = buf[0][0]
            evidence = []
            for b, k in zip(buf, kept, strict=True):
                if len(evidence) < cap:
                    s = summary(b[0], b[0] + W, *b[1:])
                    if not k:
                        s["dropped"] = True
                    evidence.append(s)
            ev = self.event = Event(
                event_id=exceedance_id(meta["device_id"], meta["pollutant"], start),
                kind=EXCEEDANCE,
                start_ms=start,
                state="open",
                peak_mg_m3=max(means),
                mean_mg_m3=mean,
                evidence=evidence,
                rule=GB18483,
                judgement={
                    "groups": [group],
                    "service_start_ms": self.svc_start,
                    "service_end_ms": self.svc_end,
                    "no_judgement": self.no_judgement,
                },
                **meta,
            )
            self.last_end_ms = group["end_ms"]
            self.ev_last_start = buf[-1][0]
            out.append(Transition(snapshot_event(ev), "opened", w["end_ms"]))
            return out
        if over:
            for b in buf:
                if b[0] > self.ev_last_start:
                    if b[1] > ev.peak_mg_m3:
                        ev.peak_mg_m3 = b[1]
                    if len(ev.evidence) < cap:
                        ev.evidence.append(summary(b[0], b[0] + W, *b[1:]))
            self.ev_last_start = buf[-1][0]
            if mean > ev.mean_mg_m3:
                ev.mean_mg_m3 = mean
            groups = ev.judgement["groups"]
            if len(groups) < cap:
                groups.append(group)
            self.last_end_ms = group["end_ms"]
            return out
        out.append(self._close(w["end_ms"], group))
        return out

    def due_ms(self, window_ms: int) -> int:
        """The watermark at which the service is over: the end of the last window that can belong to it
        (the first window boundary at or after the service end). Never for a fresh tracker."""
        end = self.svc_end
        if end is None:
            return 2**62
        return -(-end // window_ms) * window_ms

    def due(self, watermark: int, window_ms: int) -> bool:
        """The service is over for a device at ``watermark``: every window that can belong to it (starting
        before the service end) is finalised."""
        return watermark >= self.due_ms(window_ms)

    def expire(self) -> list[Transition]:
        """The service ended (:meth:`due`): close the open event at the service end, drop the buffer."""
        out = []
        if self.event is not None:
            assert self.svc_end is not None
            out.append(self._close(self.svc_end, None))
        self.buf = []
        self.no_judgement = 0
        return out

    def _close(self, at_ms: int, group: dict | None) -> Transition:
        ev = self.event
        assert ev is not None
        if group is not None:
            ev.judgement["groups"].append(group)
        ev.judgement["no_judgement"] = self.no_judgement
        ev.end_ms = self.last_end_ms
        ev.state = "closed"
        self.event = None
        self.no_judgement = 0
        return Transition(snapshot_event(ev), "closed", at_ms)

    def to_state(self) -> dict:
        return {
            "type": self.TYPE,
            "buf": [list(b) for b in self.buf],
            "service": [self.svc_start, self.svc_end],
            "event": None if self.event is None else self.event.as_dict(),
            "last_end_ms": self.last_end_ms,
            "ev_last_start": self.ev_last_start,
            "no_judgement": self.no_judgement,
        }

    @classmethod
    def from_state(cls, s: dict) -> GroupTracker:
        tr = cls()
        # older snapshots: 5-tuples without the lower-bound and excluded counts
        tr.buf = [
            (
                b[0],
                float(b[1]),
                float(b[2]),
                b[3],
                b[4],
                b[5] if len(b) > 5 else 0,
                b[6] if len(b) > 6 else None,
            )
            for b in s["buf"]
        ]
        tr.svc_start, tr.svc_end = s["service"]
        tr.event = None if s["event"] is None else Event(**s["event"])
        tr.last_end_ms = s["last_end_ms"]
        tr.ev_last_start = s["ev_last_start"]
        tr.no_judgement = s["no_judgement"]
        return tr
