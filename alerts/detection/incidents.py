"""Per-device incidents of the streaming detector (:class:`alerts.detection.detector.Detector`):
``purifier_off`` (fan on, purifier off, rule ``bypass``), ``late_data`` episodes (rule ``late``) and the
``offline`` event's opening and closing (rule ``offline``). The rules are described in
:mod:`alerts.detection.detector`.
"""

from __future__ import annotations

from alerts.detection.state import _NEG, _bypass, _Dev
from alerts.detection.window import DetectorConfig, snapshot_event
from alerts.model import LATE_DATA, OFFLINE, PURIFIER_OFF, Event, Transition
from alerts.rules import BYPASS, LATE_RULE, OFFLINE_RULE


def purifier(
    st: _Dev, t: int, fan: bool | None, pur: bool | None, config: DetectorConfig, out: list[Transition]
) -> None:
    """The bypass run of one device's reading at ``t`` (in event-time order): opens or closes ``purifier_off``."""
    if fan is True and pur is False:
        if st.p_event is None:
            if st.p_start is None or t - st.p_last > config.purifier_max_gap_s * 1000:
                st.p_start, st.p_count = t, 0
            st.p_last = t
            st.p_count += 1
            if t - st.p_start >= config.purifier_off_ms:
                st.p_event = Event(
                    event_id=f"{PURIFIER_OFF}:{st.device.device_id}::{st.p_start}",
                    kind=PURIFIER_OFF,
                    start_ms=st.p_start,
                    state="open",
                    evidence=[_bypass(st)],
                    rule=BYPASS,
                    **st.meta(),
                )
                out.append(Transition(snapshot_event(st.p_event), "opened", t))
        else:
            st.p_last = t
            st.p_count += 1
    elif pur is True or fan is False:
        if st.p_event is not None:
            ev = st.p_event
            ev.end_ms, ev.state, ev.evidence = t, "closed", [_bypass(st)]
            st.p_event = None
            out.append(Transition(snapshot_event(ev), "closed", t))
        st.p_start, st.p_last, st.p_count = None, None, 0


def late(st: _Dev, t: int, out: list[Transition]) -> None:
    """A late reading at ``t``: opens the device's ``late_data`` episode or adds to it."""
    st.late_wm = st.wm
    ev = st.late
    if ev is None:
        st.late = Event(
            event_id=f"{LATE_DATA}:{st.device.device_id}::{t}",
            kind=LATE_DATA,
            start_ms=t,
            state="open",
            evidence=[{"late_readings": 1, "first_ms": t, "last_ms": t}],
            rule=LATE_RULE,
            **st.meta(),
        )
        out.append(Transition(snapshot_event(st.late), "opened", t))
        return
    e = ev.evidence[0]
    ev.evidence = [
        {
            "late_readings": e["late_readings"] + 1,
            "first_ms": min(e["first_ms"], t),
            "last_ms": max(e["last_ms"], t),
        }
    ]


def close_late(st: _Dev, out: list[Transition]) -> None:
    """End the device's ``late_data`` episode (at its watermark)."""
    ev = st.late
    assert ev is not None
    ev.end_ms = max(ev.start_ms, ev.evidence[0]["last_ms"])
    ev.state = "closed"
    st.late = None
    out.append(Transition(snapshot_event(ev), "closed", st.wm))


def open_offline(st: _Dev, last: int, now_ms: int, out: list[Transition]) -> None:
    """Open the device's ``offline`` event: nothing heard since ``last`` (its last reading, or the first
    ``advance`` for a device never heard from), found at ``now_ms``."""
    st.offline = ev = Event(
        event_id=f"{OFFLINE}:{st.device.device_id}::{last}",
        kind=OFFLINE,
        start_ms=last,
        state="open",
        evidence=[{"last_seen_ms": None if st.last_seen == _NEG else st.last_seen, "detected_ms": now_ms}],
        rule=OFFLINE_RULE,
        **st.meta(),
    )
    out.append(Transition(snapshot_event(ev), "opened", now_ms))


def close_offline(st: _Dev, t: int, out: list[Transition]) -> None:
    """A reading at ``t`` (any reading: late, duplicate or excluded too) ends the device's ``offline``."""
    ev = st.offline
    assert ev is not None
    ev.end_ms, ev.state = max(t, ev.start_ms), "closed"
    st.offline = None
    out.append(Transition(snapshot_event(ev), "closed", t))
