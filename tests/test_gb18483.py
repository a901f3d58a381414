"""The gb18483 rule: GB 18483-2001 §6 groups of 5 valid windows of one service (alerts.detection.gb18483),
in the streaming detector, through snapshots, and in the replay."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alerts.detection.detector import Detector
from alerts.detection.gb18483 import GroupTracker
from alerts.detection.hours import BusinessHours
from alerts.detection.replay import replay_frame
from alerts.detection.window import DetectorConfig, summary
from alerts.model import EXCEEDANCE, LATE_DATA, OFFLINE, PURIFIER_OFF, Event, Transition
from alerts.profiles import Profiles, load_profiles
from ingest.model import Reading
from ingest.registry import Registry
from ingest.timeutil import parse_time

MIN = 60_000
WIN = 10 * MIN
TZ = "Asia/Shanghai"


def at(local: str) -> int:
    return parse_time(local, tz=TZ)


LUNCH = at("2026-11-26T10:00:00")  # lunch 10:00-14:00, break 14:00-16:30, dinner 16:30-21:30
LUNCH_END = at("2026-11-26T14:00:00")
DINNER = at("2026-11-26T16:30:00")

REGISTRY_CSV = """restaurant_id,name,district,device_id,stove_heads,profile
R1,小馆,Xicheng,k1,2,
R2,京味,Dongcheng,bj1,2,db11-1488
R3,筛查,Haidian,nm1,2,screening
R4,标准,Haidian,gb1,2,standard
"""

GB = DetectorConfig()  # the default rule
NM = DetectorConfig(rule="consecutive")


@pytest.fixture(scope="module")
def profiles() -> Profiles:
    base = load_profiles()
    gb = base["gb18483"]
    extra = {
        "screening": replace(gb, name="screening", rule="consecutive"),
        "standard": replace(gb, name="standard", rule="gb18483"),
    }
    return Profiles({**base, **extra})


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.parse(REGISTRY_CSV)


def reading(
    dev: str,
    t: int,
    oil: float,
    *,
    pm: float | None = None,
    fan: bool | None = True,
    pur: bool | None = True,
    converted: bool = True,
) -> Reading:
    return Reading(t, dev, "", "", oil, oil, converted, pm_mg_m3=pm, fan_on=fan, purifier_on=pur)


def windows(dev: str, start: int, means: list[float | None], per: int = 10, **kw) -> list[Reading]:
    """``per`` readings a minute apart in each consecutive window at the given value (None: no data)."""
    return [
        reading(dev, start + w * WIN + k * MIN, v, **kw)
        for w, v in enumerate(means)
        if v is not None
        for k in range(per)
    ]


def run(det: Detector, readings: list[Reading], flush: bool = True) -> list[Transition]:
    out = det.process_many(readings)
    if flush:
        out += det.flush()
    return out


def exceedances(trs: list[Transition]) -> list[tuple[str, str, int]]:
    return [(tr.action, tr.event.rule, tr.event.start_ms) for tr in trs if tr.event.kind == EXCEEDANCE]


# -- the two examples ------------------------------------------------------------------------------------


def test_alternating_windows_exceed_as_a_group_not_consecutively(
    registry: Registry, profiles: Profiles
) -> None:
    means = [1.9, 2.6, 1.9, 2.6, 1.9]
    trs = run(Detector(registry, profiles, GB), windows("k1", LUNCH, means))
    assert exceedances(trs) == [("opened", "gb18483", LUNCH)]
    tr = trs[0]
    ev = tr.event
    assert tr.at_ms == LUNCH + 5 * WIN  # the window that completed the group
    assert ev.event_id == f"exceedance:k1:oil_fume:{LUNCH}" and ev.state == "open" and ev.end_ms is None
    window_means = [w["mean_mg_m3"] for w in ev.evidence]
    assert ev.mean_mg_m3 == pytest.approx(2.18) and ev.limit_mg_m3 == 2.0
    assert window_means == pytest.approx(means) and ev.peak_mg_m3 == max(window_means)
    assert set(ev.evidence[0]) == {"start_ms", "end_ms", "mean_mg_m3", "max_mg_m3", "samples", "unconverted"}
    assert ev.judgement == {
        "groups": [
            {
                "start_ms": LUNCH,
                "end_ms": LUNCH + 5 * WIN,
                "mean_mg_m3": ev.mean_mg_m3,
                "kept": 5,
                "dropped": 0,
                "exceeds": True,
            }
        ],
        "service_start_ms": LUNCH,
        "service_end_ms": LUNCH_END,
        "no_judgement": 0,
    }
    # sequential sum in window order, as the replay reproduces it
    s = 0.0
    for m in window_means:
        s += m
    assert ev.mean_mg_m3 == s / 5
    assert run(Detector(registry, profiles, NM), windows("k1", LUNCH, means)) == []


def test_three_over_then_two_low_is_compliant_as_a_group(registry: Registry, profiles: Profiles) -> None:
    means = [2.2, 2.2, 2.2, 1.0, 1.0]
    assert run(Detector(registry, profiles, GB), windows("k1", LUNCH, means)) == []  # group mean 1.72
    assert exceedances(run(Detector(registry, profiles, NM), windows("k1", LUNCH, means))) == [
        ("opened", "consecutive", LUNCH),
        ("closed", "consecutive", LUNCH),
    ]


# -- the group rules -------------------------------------------------------------------------------------


def test_windows_below_a_quarter_of_the_largest_are_dropped(registry: Registry, profiles: Profiles) -> None:
    # all five averaged: 1.48 (compliant); 0.1 < 2.4 / 4 is dropped twice: 2.4 over 3 windows
    trs = run(Detector(registry, profiles, GB), windows("k1", LUNCH, [2.4, 0.1, 2.4, 2.4, 0.1]))
    assert exceedances(trs) == [("opened", "gb18483", LUNCH)]
    ev = trs[0].event
    assert ev.mean_mg_m3 == pytest.approx(2.4)
    assert [w.get("dropped", False) for w in ev.evidence] == [False, True, False, False, True]
    group = ev.judgement["groups"][0]
    assert (group["kept"], group["dropped"], group["exceeds"]) == (3, 2, True)
    # exactly a quarter is kept
    assert run(Detector(registry, profiles, GB), windows("k1", LUNCH, [2.4, 0.6, 2.4, 0.6, 0.6])) == []


def test_fewer_than_three_left_is_no_judgement(registry: Registry, profiles: Profiles) -> None:
    det = Detector(registry, profiles, GB)
    assert run(det, windows("k1", LUNCH, [4.0, 4.0, 0.5, 0.5, 0.5]), flush=False) == []
    # groups 2 and 3 are not judged either (two 4.0 windows); group 4 (0.5 0.5 4 4 4) opens the event
    trs = run(det, windows("k1", LUNCH + 5 * WIN, [4.0, 4.0, 4.0]))
    assert exceedances(trs) == [("opened", "gb18483", LUNCH + 3 * WIN)]
    ev = trs[0].event
    assert ev.judgement["no_judgement"] == 3 and ev.mean_mg_m3 == pytest.approx(4.0)
    assert [w.get("dropped", False) for w in ev.evidence] == [True, True, False, False, False]


def test_a_group_without_judgement_neither_extends_nor_closes() -> None:
    tr = GroupTracker()
    service = (LUNCH, LUNCH_END, True)
    meta = {"device_id": "k1", "restaurant_id": "R1", "district": "D", "profile": "gb18483"}
    meta |= {"pollutant": "oil_fume", "limit_mg_m3": 2.0}
    out: list[Transition] = []
    for w, m in enumerate([3.0, 3.0, 3.0, 3.0, 3.0, 0.1, 0.1, 0.1, 3.0, 0.1]):
        s = LUNCH + w * WIN
        out += tr.feed(summary(s, s + WIN, m, m, 10, 0), m > 2.0, meta, GB, service)
    # groups: 3 3 3 3 3 over; 3 3 3 3 .1 over; 3 3 3 .1 .1 over; 3 3 .1 .1 .1 none; 3 .1 .1 .1 3 none;
    # .1 .1 .1 3 .1 none
    assert [t.action for t in out] == ["opened"]
    ev = tr.event
    assert ev is not None and [g["exceeds"] for g in ev.judgement["groups"]] == [True, True, True]
    assert ev.judgement["no_judgement"] == 3
    assert [w["start_ms"] for w in ev.evidence] == [LUNCH + k * WIN for k in range(7)]
    more = [summary(LUNCH + k * WIN, LUNCH + (k + 1) * WIN, 1.0, 1.0, 10, 0) for k in (10, 11)]
    # .1 .1 3 .1 1 (3 and 1 kept): none; .1 3 .1 1 1 (kept 3 1 1: mean 1.67, compliant) closes
    assert tr.feed(more[0], False, meta, GB, service) == []
    closed = tr.feed(more[1], False, meta, GB, service)
    assert [t.action for t in closed] == ["closed"]
    ev = closed[0].event
    assert ev.end_ms == LUNCH + 7 * WIN and closed[0].at_ms == LUNCH + 12 * WIN  # last exceeding group's end
    assert [g["exceeds"] for g in ev.judgement["groups"]] == [True, True, True, False]
    assert ev.judgement["no_judgement"] == 4 and ev.judgement["groups"][-1]["mean_mg_m3"] == pytest.approx(
        5 / 3
    )
    assert tr.event is None and not tr.idle  # the run goes on in the same service


def test_a_compliant_group_closes_and_a_later_one_reopens(registry: Registry, profiles: Profiles) -> None:
    means = [3.0] * 6 + [1.0] * 3 + [3.0] * 5
    trs = run(Detector(registry, profiles, GB), windows("k1", LUNCH, means))
    acts = [(t.action, t.event.start_ms, t.at_ms) for t in trs]
    # groups: 0-4 opens, 1-5 grows, 2-6 (3 3 3 3 1: 2.6) grows, 3-7 (3 3 3 1 1: 2.2) grows,
    # 4-8 (3 3 1 1 1: 1.8) closes
    assert acts[:2] == [("opened", LUNCH, LUNCH + 5 * WIN), ("closed", LUNCH, LUNCH + 9 * WIN)]
    ev = trs[1].event
    assert ev.end_ms == LUNCH + 8 * WIN and ev.mean_mg_m3 == pytest.approx(3.0) and ev.peak_mg_m3 == 3.0
    assert len(ev.evidence) == 8 and [g["exceeds"] for g in ev.judgement["groups"]] == [True] * 4 + [False]
    assert ev.judgement["groups"][-1]["mean_mg_m3"] == pytest.approx(1.8)
    # 5-9 (3 1 1 1 3: 1.8) and 6-10 (1 1 1 3 3: 1.8) compliant, 7-11 (1 1 3 3 3: 2.2) opens again; it
    # starts before the first one's end (window 7 was in its closing group): one episode of the service
    assert acts[2:] == [("opened", LUNCH + 7 * WIN, LUNCH + 12 * WIN)]


def test_fewer_than_five_valid_windows_in_a_service_give_no_event(
    registry: Registry, profiles: Profiles
) -> None:
    # 13:20-14:40 at 5.0: 4 windows at lunch, 4 in the afternoon break
    rs = windows("k1", LUNCH_END - 4 * WIN, [5.0] * 8)
    assert run(Detector(registry, profiles, GB), rs) == []
    assert exceedances(run(Detector(registry, profiles, NM), rs)) == [
        ("opened", "consecutive", LUNCH_END - 4 * WIN)
    ]


def test_invalid_windows_are_skipped(registry: Registry, profiles: Profiles) -> None:
    rs = windows("k1", LUNCH, [3.0, 3.0])
    rs += windows("k1", LUNCH + 2 * WIN, [3.0], fan=False)  # fan off
    rs += windows("k1", LUNCH + 3 * WIN, [3.0], per=5)  # incomplete
    rs += windows("k1", LUNCH + 5 * WIN, [3.0, 3.0, 3.0])  # window 4 missing entirely
    trs = run(Detector(registry, profiles, GB), rs)
    assert exceedances(trs) == [("opened", "gb18483", LUNCH)]
    ev = trs[0].event
    starts = [LUNCH, LUNCH + WIN, LUNCH + 5 * WIN, LUNCH + 6 * WIN, LUNCH + 7 * WIN]
    assert [w["start_ms"] for w in ev.evidence] == starts
    assert ev.judgement["groups"][0]["end_ms"] == LUNCH + 8 * WIN and trs[0].at_ms == LUNCH + 8 * WIN


# -- services --------------------------------------------------------------------------------------------


def test_service_end_closes_via_advance(registry: Registry, profiles: Profiles) -> None:
    det = Detector(registry, profiles, GB)
    trs = run(det, windows("k1", LUNCH_END - 6 * WIN, [3.0] * 6), flush=False)
    assert exceedances(trs) == [("opened", "gb18483", LUNCH_END - 6 * WIN)]
    lateness = GB.lateness_ms
    assert det.advance(LUNCH_END + lateness - 1) == []  # the 13:50 window is not final yet
    trs = det.advance(LUNCH_END + lateness)
    assert [(t.action, t.at_ms) for t in trs] == [("closed", LUNCH_END)]
    ev = trs[0].event
    assert ev.end_ms == LUNCH_END and len(ev.evidence) == 6
    assert [g["exceeds"] for g in ev.judgement["groups"]] == [True, True]  # no closing group
    assert det._devs["k1"].trackers is None  # nothing kept once the service is over
    # the dinner starts fresh: no lunch window counts in its groups
    trs = run(det, windows("k1", DINNER, [3.0] * 5))
    assert exceedances(trs) == [("opened", "gb18483", DINNER)]
    assert trs[0].event.judgement["service_start_ms"] == DINNER


def test_service_end_closes_when_the_next_service_window_comes() -> None:
    bh = BusinessHours(GB.business_hours, GB.business_tz)
    meta = {"device_id": "k1", "restaurant_id": "R1", "district": "D", "profile": "gb18483"}
    meta |= {"pollutant": "oil_fume", "limit_mg_m3": 2.0}
    tr = GroupTracker()
    out: list[Transition] = []
    starts = [LUNCH_END - k * WIN for k in (4, 3, 2, 1)] + [DINNER + k * WIN for k in range(5)]
    values = [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    lunch = [LUNCH_END - k * WIN for k in range(9, 4, -1)]  # five more lunch windows before those
    for s, m in zip(lunch + starts, [3.0] * 5 + values, strict=True):
        out += tr.feed(summary(s, s + WIN, m, m, 10, 0), True, meta, GB, bh.service_of(s))
    acts = [(t.action, t.event.start_ms, t.at_ms) for t in out]
    assert acts == [
        ("opened", lunch[0], lunch[-1] + WIN),
        ("closed", lunch[0], LUNCH_END),  # the first dinner window closed it, at the lunch end
        ("opened", DINNER, DINNER + 5 * WIN),
    ]
    assert out[1].event.end_ms == LUNCH_END


def test_service_end_off_the_window_grid(registry: Registry, profiles: Profiles) -> None:
    config = DetectorConfig(business_hours="10:00-13:55,16:30-21:30")
    det = Detector(registry, profiles, config)
    run(det, windows("k1", LUNCH_END - 6 * WIN, [3.0] * 6), flush=False)
    # the 13:50 window belongs to lunch (it starts before 13:55): the event closes once it is final
    assert det.advance(LUNCH_END - 5 * MIN + config.lateness_ms) == []
    trs = det.advance(LUNCH_END + config.lateness_ms)
    assert [(t.action, t.at_ms, t.event.end_ms) for t in trs] == [("closed", LUNCH_END - 5 * MIN, LUNCH_END)]


def test_service_of() -> None:
    bh = BusinessHours("10:00-14:00,16:30-21:30", TZ)
    assert bh.service_of(at("2026-11-26T12:00:00")) == (LUNCH, LUNCH_END, True)
    assert bh.service_of(LUNCH_END) == (LUNCH_END, DINNER, False)
    assert bh.service_of(at("2026-11-27T03:00:00")) == (
        at("2026-11-26T21:30:00"),
        at("2026-11-27T10:00:00"),
        False,
    )
    assert bh.service_of(LUNCH - 1) == (at("2026-11-25T21:30:00"), LUNCH, False)
    # DST: the night before the spring change is an hour shorter
    berlin = BusinessHours("10:00-14:00,16:30-21:30", "Europe/Berlin")
    a, b, inside = berlin.service_of(parse_time("2026-03-29T03:30:00", tz="Europe/Berlin"))
    assert (b - a, inside) == (11.5 * 3_600_000, False)
    midnight = BusinessHours("", TZ).service_of(LUNCH)
    assert midnight == (at("2026-11-26T00:00:00"), at("2026-11-27T00:00:00"), False)


# -- rule selection, other rules, conversion -------------------------------------------------------------


def test_profile_rule_overrides_the_config(registry: Registry, profiles: Profiles) -> None:
    alternating = [1.9, 2.6, 1.9, 2.6, 1.9]
    high_low = [2.2, 2.2, 2.2, 1.0, 1.0]
    for config in (GB, NM):
        rs = windows("nm1", LUNCH, alternating) + windows("gb1", LUNCH, high_low)
        rs += windows("nm1", DINNER, high_low) + windows("gb1", DINNER, alternating)
        rs.sort(key=lambda r: r.time_ms)
        trs = run(Detector(registry, profiles, config), rs)
        got = [(t.event.device_id, t.event.rule, t.event.start_ms) for t in trs if t.action == "opened"]
        assert got == [("nm1", "consecutive", DINNER), ("gb1", "gb18483", DINNER)]


def test_every_event_records_its_rule(registry: Registry, profiles: Profiles) -> None:
    det = Detector(registry, profiles, GB)
    det.advance(LUNCH)
    rs = windows("k1", LUNCH, [3.0] * 5, pur=False)
    trs = run(det, rs, flush=False)
    trs += det.process(reading("k1", LUNCH, 1.0))  # late
    trs += det.advance(LUNCH + 52 * MIN)  # the 5th window is final; the others never reported
    rules = {(t.event.kind, t.event.rule) for t in trs}
    assert {
        (EXCEEDANCE, "gb18483"),
        (PURIFIER_OFF, "bypass"),
        (LATE_DATA, "late"),
        (OFFLINE, "offline"),
    } <= rules


def test_unconverted_samples_are_counted(registry: Registry, profiles: Profiles) -> None:
    rs = windows("bj1", LUNCH, [1.5] * 5, pm=6.0)
    for i in (0, 3, 4, 15):  # three in window 0, one in window 1
        r = rs[i]
        rs[i] = Reading(r.time_ms, r.device_id, "", "", 3.0, 1.5, False, pm_mg_m3=6.0, fan_on=True)
    det = Detector(registry, profiles, GB)
    trs = run(det, rs)
    ws = {(w.pollutant, w.start_ms): w.unconverted for w in det.drain_windows()}
    assert ws[("oil_fume", LUNCH)] == 3 and ws[("oil_fume", LUNCH + WIN)] == 1
    assert ws[("oil_fume", LUNCH + 2 * WIN)] == 0 and ws[("pm", LUNCH)] == 0
    evs = {t.event.pollutant: t.event for t in trs}
    assert [w["unconverted"] for w in evs["oil_fume"].evidence] == [3, 1, 0, 0, 0]
    assert "unconverted" not in evs["pm"].evidence[0]
    # the replay counts them the same way
    df = pd.DataFrame(
        {
            "time_ms": [r.time_ms for r in rs],
            "device_id": "bj1",
            "oil_fume_ref_mg_m3": [r.oil_fume_ref_mg_m3 for r in rs],
            "pm_mg_m3": 6.0,
            "fan_on": True,
            "ref_converted": [r.ref_converted for r in rs],
        }
    )
    events, windows_ = replay_frame(df, registry, profiles, GB)
    oil = windows_[windows_["pollutant"] == "oil_fume"]
    assert oil["unconverted"].tolist() == [3, 1, 0, 0, 0]
    assert [w["unconverted"] for w in events[0].evidence] == [3, 1, 0, 0, 0]


# -- snapshot / restore ----------------------------------------------------------------------------------


def _day_series() -> list[Reading]:
    rng = random.Random(11)
    levels = [1.0, 2.6, 1.9, 2.6, 3.0, 0.3, 2.4, 2.4, 1.0, 0.2, 0.2, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0]
    rs = windows("k1", LUNCH_END - 12 * WIN, levels)
    rs += windows("bj1", LUNCH_END - 9 * WIN, [1.2, 0.4, 1.3, 1.1, 1.5, 1.5, 0.9, 1.4, 1.6], pm=6.0)
    rs += windows("k1", DINNER, [2.5, 2.5, None, 2.5, 2.5, 2.5, 1.0])
    return [
        Reading(
            r.time_ms, r.device_id, "", "", r.oil_fume_mg_m3, r.oil_fume_ref_mg_m3 * rng.uniform(0.9, 1.1),
            rng.random() > 0.2, pm_mg_m3=r.pm_mg_m3, fan_on=r.fan_on, purifier_on=r.purifier_on,
        )
        for r in sorted(rs, key=lambda r: r.time_ms)
    ]  # fmt: skip


def _trace(trs: list[Transition]) -> list[tuple]:
    return [(t.action, t.at_ms, json.dumps(t.event.as_dict(), sort_keys=True)) for t in trs]


@pytest.mark.parametrize("cut_min", [-75, -52, -44, -15, -1, 30, 170, 200])
def test_snapshot_restore_mid_group_continues_identically(
    registry: Registry, profiles: Profiles, cut_min: int
) -> None:
    rs = _day_series()
    whole = Detector(registry, profiles, GB)
    t_whole = run(whole, rs)
    assert {t.event.device_id for t in t_whole} == {"k1", "bj1"}
    cut = next(i for i, r in enumerate(rs) if r.time_ms >= LUNCH_END + cut_min * MIN + 7_000)
    first = Detector(registry, profiles, GB)
    t1 = first.process_many(rs[:cut])
    snap = json.loads(json.dumps(first.snapshot()))
    assert snap["version"] == 4
    second = Detector.restore(registry, profiles, None, snap)
    t2 = run(second, rs[cut:])
    assert _trace(t1 + t2) == _trace(t_whole)
    assert second.drain_windows() == whole.drain_windows()


def test_a_version_1_snapshot_still_loads(registry: Registry, profiles: Profiles) -> None:
    rs = [r for r in _day_series() if r.device_id == "k1"]
    rs = [replace(r, ref_converted=True) for r in rs]  # version 1 did not count unconverted samples
    whole = Detector(registry, profiles, NM)
    t_whole = run(whole, rs)
    cut = next(i for i, r in enumerate(rs) if r.time_ms >= LUNCH_END + 25 * MIN)  # N/M event open
    first = Detector(registry, profiles, NM)
    t1 = first.process_many(rs[:cut])
    snap = copy.deepcopy(first.snapshot())
    snap["version"] = 1
    for dev in snap["devices"].values():
        for tr in dev["trackers"].values():
            del tr["type"]
        del dev["gaps"]  # version 3
        for w in dev["windows"]:
            del w[7:]  # version 1 windows had 7 fields (no unconverted, lower-bound, excluded counts)
    assert any(dev["trackers"] for dev in snap["devices"].values())
    t2 = run(Detector.restore(registry, profiles, None, snap), rs[cut:])
    assert _trace(t1 + t2) == _trace(t_whole)


# -- replay == stream (hypothesis) -----------------------------------------------------------------------

REPLAY_REGISTRY = Registry.parse(
    "restaurant_id,name,district,device_id,stove_heads,profile\n"
    "R1,a,D1,k1,2,\nR2,b,D2,bj1,4,db11-1488\nR3,c,D1,nm1,2,screening\n"
)
LEVELS = [0.1, 0.4, 1.0, 1.6, 1.9, 2.2, 2.6, 4.0, None]


def _stream(df: pd.DataFrame, profiles: Profiles, config: DetectorConfig) -> tuple[list[Event], Detector]:
    det = Detector(REPLAY_REGISTRY, profiles, config)
    final: dict[str, Event] = {}
    for r in df.sort_values("time_ms", kind="stable").itertuples(index=False):
        pm = None if np.isnan(r.pm_mg_m3) else float(r.pm_mg_m3)
        rd = Reading(
            int(r.time_ms), r.device_id, "", "", float(r.oil_fume_ref_mg_m3), float(r.oil_fume_ref_mg_m3),
            bool(r.ref_converted), pm_mg_m3=pm, fan_on=bool(r.fan_on),
        )  # fmt: skip
        for tr in det.process(rd):
            final[tr.event.event_id] = tr.event
    for tr in det.flush():
        final[tr.event.event_id] = tr.event
    final.update({e.event_id: e for e in det.open_events()})
    evs = sorted((e for e in final.values() if e.kind == EXCEEDANCE), key=lambda e: (e.start_ms, e.event_id))
    return evs, det


@st.composite
def day_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, DetectorConfig]:
    config = DetectorConfig(
        window_s=draw(st.sampled_from([300, 600])),
        max_evidence_windows=draw(st.sampled_from([3, 288])),
        business_hours=draw(st.sampled_from(["10:00-14:00,16:30-21:30", "11:00-12:05,12:45-13:20"])),
    )
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    W = config.window_ms
    rows = []
    start = at("2026-11-26T10:40:00")
    n_win = 4 * 3_600_000 // W  # 10:40 to 14:40: lunch end, and the second timetable's cuts
    for dev in ("k1", "bj1", "nm1"):
        levels = draw(st.lists(st.sampled_from(LEVELS), min_size=n_win, max_size=n_win))
        fan_off = draw(st.lists(st.sampled_from([False] * 6 + [True]), min_size=n_win, max_size=n_win))
        raw = draw(st.sampled_from([0.0, 0.5]))
        for w, lvl in enumerate(levels):
            if lvl is None:
                continue
            off = fan_off[w]
            per = W // 60_000
            for k in range(per):
                if rnd.random() < 0.1:
                    continue
                t = start + w * W + k * 60_000
                v = lvl * rnd.choice([0.9, 1.0, 1.1])
                pm = rnd.choice([np.nan, 4.0, 6.0])
                rows.append((t, dev, v, pm, not off, rnd.random() >= raw))
    df = pd.DataFrame(
        rows, columns=["time_ms", "device_id", "oil_fume_ref_mg_m3", "pm_mg_m3", "fan_on", "ref_converted"]
    ).astype({"time_ms": "int64", "pm_mg_m3": "float64"})
    return df, config


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day_frames())
def test_replay_equals_stream_for_gb18483(
    profiles: Profiles, case: tuple[pd.DataFrame, DetectorConfig]
) -> None:
    df, config = case
    s_events, det = _stream(df, profiles, config)
    r_events, r_windows = replay_frame(df, REPLAY_REGISTRY, profiles, config)
    r_events = [e for e in r_events if e.kind == EXCEEDANCE]
    assert [e.as_dict() for e in r_events] == [e.as_dict() for e in s_events]
    assert len(r_windows) == det.windows_finalised
    for e in s_events:
        event(f"{e.rule}:{e.state}")
        if e.rule == "gb18483" and e.state == "closed" and e.judgement["groups"][-1]["exceeds"]:
            event("closed at the service end")
