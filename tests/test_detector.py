"""Streaming detector: windowing edge cases on hand-built series (no servers)."""

from __future__ import annotations

import json
import random

import pytest

from alerts.detection.detector import Detector
from alerts.detection.hours import BusinessHours
from alerts.detection.window import DetectorConfig, max_reading_mg_m3
from alerts.model import EXCEEDANCE, LATE_DATA, OFFLINE, PURIFIER_OFF, Event, Transition, WindowResult
from alerts.profiles import Profiles, load_profiles
from ingest.model import Reading
from ingest.registry import Registry
from ingest.timeutil import format_local, parse_time

MIN = 60_000
WIN = 10 * MIN
#: 2026-11-26 10:00 Asia/Shanghai (02:00 UTC), a window boundary.
T0 = parse_time("2026-11-26T02:00:00Z")

REGISTRY_CSV = """restaurant_id,name,district,device_id,stove_heads,profile
R1,小馆,Xicheng,k1,2,
R2,京味,Dongcheng,bj1,2,db11-1488
R3,大排档,Haidian,k2,2,
R4,高流量,Haidian,k3,2,
"""


@pytest.fixture(scope="module")
def profiles() -> Profiles:
    return load_profiles()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.parse(REGISTRY_CSV)


#: The N/M screening rule (the default rule is gb18483, tested in tests/test_gb18483.py).
NM = DetectorConfig(rule="consecutive")


@pytest.fixture
def det(registry: Registry, profiles: Profiles) -> Detector:
    return Detector(registry, profiles, NM)


def reading(
    dev: str,
    t: int,
    oil: float,
    *,
    pm: float | None = None,
    nmhc: float | None = None,
    fan: bool | None = True,
    pur: bool | None = True,
) -> Reading:
    return Reading(t, dev, "", "", oil, oil, True, pm_mg_m3=pm, nmhc_mg_m3=nmhc, fan_on=fan, purifier_on=pur)


def windows(dev: str, start: int, means: list[float | None], per: int = 10, **kw) -> list[Reading]:
    """``per`` readings a minute apart in each consecutive window, all at the given value (None: no data)."""
    out = []
    for w, v in enumerate(means):
        if v is None:
            continue
        for k in range(per):
            out.append(reading(dev, start + w * WIN + k * MIN, v, **kw))
    return out


def run(det: Detector, readings: list[Reading], flush: bool = True) -> list[Transition]:
    out = det.process_many(readings)
    if flush:
        out += det.flush()
    return out


def final_events(trs: list[Transition], det: Detector | None = None) -> dict[str, Event]:
    evs = {tr.event.event_id: tr.event for tr in trs}
    if det is not None:
        evs.update({e.event_id: e for e in det.open_events()})
    return evs


def of_kind(trs: list[Transition], kind: str) -> list[Transition]:
    return [tr for tr in trs if tr.event.kind == kind]


# -- N / M ---------------------------------------------------------------------------------------------


def test_exactly_n_windows_over_opens_one_event(det: Detector) -> None:
    trs = run(det, windows("k1", T0, [1.0, 1.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0]))
    assert [tr.action for tr in trs] == ["opened", "closed"]
    opened, closed = trs
    ev = closed.event
    assert ev.event_id == f"exceedance:k1:oil_fume:{T0 + 2 * WIN}"
    assert (ev.kind, ev.restaurant_id, ev.district, ev.profile) == (EXCEEDANCE, "R1", "Xicheng", "gb18483")
    assert (ev.pollutant, ev.limit_mg_m3, ev.level, ev.state) == ("oil_fume", 2.0, "", "closed")
    assert ev.start_ms == T0 + 2 * WIN
    assert ev.end_ms == T0 + 5 * WIN  # end of the last exceeding window
    assert (ev.peak_mg_m3, ev.mean_mg_m3) == (3.0, 3.0)
    assert [w["start_ms"] for w in ev.evidence] == [T0 + 2 * WIN, T0 + 3 * WIN, T0 + 4 * WIN]
    assert set(ev.evidence[0]) == {"start_ms", "end_ms", "mean_mg_m3", "max_mg_m3", "samples", "unconverted"}
    assert ev.rule == "consecutive" and ev.judgement == {"open_after_windows": 3, "close_after_windows": 2}
    # opened when the 3rd exceeding window ended; closed when the 2nd compliant one ended
    assert opened.at_ms == T0 + 5 * WIN and opened.event.end_ms is None and opened.event.state == "open"
    assert closed.at_ms == T0 + 7 * WIN
    assert opened.key == f"{ev.event_id}:opened"


def test_n_minus_one_windows_over_opens_nothing(det: Detector) -> None:
    trs = run(det, windows("k1", T0, [3.0, 3.0, 1.0, 3.0, 3.0, 1.0, 1.0]))
    assert trs == []
    ws = det.drain_windows()
    assert sum(w.exceeds for w in ws) == 4 and all(w.valid for w in ws)


def test_single_spike_never_opens(det: Detector) -> None:
    rs = windows("k1", T0, [1.0] * 6)
    rs[25] = reading("k1", rs[25].time_ms, 50.0)  # one reading in window 2
    trs = run(det, rs)
    assert trs == []
    ws = {w.start_ms: w for w in det.drain_windows()}
    spiked = ws[T0 + 2 * WIN]
    assert spiked.exceeds and spiked.max_mg_m3 == 50.0 and spiked.mean_mg_m3 == pytest.approx(5.9)


def test_peak_is_highest_window_mean_and_max_reading_kept(det: Detector) -> None:
    rs = windows("k1", T0, [3.0, 4.0, 3.0, 1.0, 1.0])
    rs[3] = reading("k1", rs[3].time_ms, 12.0)  # window 0 mean 3.9, max 12
    ev = final_events(run(det, rs))[f"exceedance:k1:oil_fume:{T0}"]
    assert ev.peak_mg_m3 == pytest.approx(4.0)  # window 1 mean
    assert ev.mean_mg_m3 == pytest.approx((3.9 + 4.0 + 3.0) / 3)
    assert max_reading_mg_m3(ev) == 12.0


# -- validity ------------------------------------------------------------------------------------------


def test_incomplete_window_neither_counts_nor_resets(det: Detector) -> None:
    rs = windows("k1", T0, [3.0, 3.0]) + windows("k1", T0 + 2 * WIN, [3.0], per=5)  # 5 < 7.5 samples
    rs += windows("k1", T0 + 3 * WIN, [None, 3.0, 1.0, 1.0])  # window 3 missing entirely (gap)
    trs = run(det, rs)
    assert [tr.action for tr in trs] == ["opened", "closed"]
    ev = trs[-1].event
    assert ev.start_ms == T0  # the gap did not reset the run
    assert [w["start_ms"] for w in ev.evidence] == [T0, T0 + WIN, T0 + 4 * WIN]
    assert trs[0].at_ms == T0 + 5 * WIN
    invalid = [w for w in det.drain_windows() if not w.valid]
    assert [(w.start_ms, w.invalid_reason, w.samples, w.expected) for w in invalid] == [
        (T0 + 2 * WIN, "incomplete", 5, 10)
    ]


def test_invalid_windows_do_not_close_an_open_event(det: Detector) -> None:
    rs = windows("k1", T0, [3.0, 3.0, 3.0])
    rs += windows("k1", T0 + 3 * WIN, [1.0, 1.0], per=4)  # compliant but incomplete
    rs += windows("k1", T0 + 5 * WIN, [1.0, 1.0], fan=False)  # fan off
    rs += windows("k1", T0 + 7 * WIN, [3.0, 1.0, 1.0])
    trs = run(det, rs)
    assert [tr.action for tr in trs] == ["opened", "closed"]
    assert trs[1].event.end_ms == T0 + 8 * WIN


def test_fan_off_windows_are_invalid(det: Detector) -> None:
    trs = run(det, windows("k1", T0, [5.0] * 4, fan=False))
    assert trs == []
    ws = det.drain_windows()
    assert {w.invalid_reason for w in ws} == {"fan_off"} and not any(w.exceeds for w in ws)


def test_fan_unknown_counts_as_on_and_majority_rule(det: Detector) -> None:
    trs = run(det, windows("k1", T0, [5.0] * 3, fan=None))
    assert [tr.action for tr in trs] == ["opened"]
    # 5 of 10 on is not a majority; 6 of 10 is
    rs = windows("k2", T0, [1.0, 1.0])
    for i in range(5):
        rs[i] = reading("k2", rs[i].time_ms, 1.0, fan=False)
    for i in range(10, 14):
        rs[i] = reading("k2", rs[i].time_ms, 1.0, fan=False)
    run(det, rs)
    ws = {w.start_ms: w for w in det.drain_windows() if w.device_id == "k2"}
    assert ws[T0].invalid_reason == "fan_off" and ws[T0 + WIN].valid


# -- event time: out of order, late, midnight ----------------------------------------------------------


def test_out_of_order_within_lateness_is_accepted(registry: Registry, profiles: Profiles) -> None:
    values = [1.25, 2.5, 3.75, 2.25, 4.5, 1.0, 1.5, 0.75]
    rs = []
    for w, base in enumerate(values):
        for k in range(10):
            rs.append(reading("k1", T0 + w * WIN + k * MIN, base + 0.25 * (k % 3)))
    shuffled = list(rs)
    for i in range(0, len(shuffled) - 1, 2):  # every pair swapped: each reading at most 60 s out of order
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    a, b = Detector(registry, profiles, NM), Detector(registry, profiles, NM)
    ta, tb = run(a, rs), run(b, shuffled)
    assert b.late_readings == 0 and b.readings == len(rs)
    assert [t.event.as_dict() for t in ta] == [t.event.as_dict() for t in tb] and ta
    key = lambda w: (w.device_id, w.start_ms)  # noqa: E731
    assert sorted(a.drain_windows(), key=key) == sorted(b.drain_windows(), key=key)


def test_late_reading_counted_recorded_and_not_applied(det: Detector) -> None:
    trs = run(det, windows("k1", T0, [1.0] * 4), flush=False)
    assert det.watermark("k1") == T0 + 4 * WIN - MIN - 2 * MIN
    before = {w.start_ms: w for w in det.drain_windows()}
    assert set(before) == {T0, T0 + WIN, T0 + 2 * WIN}
    late1 = det.process(reading("k1", T0 + 5 * MIN + 1, 100.0))  # window 0 finalised long ago
    late2 = det.process(reading("k1", T0 + WIN + 7, 100.0))
    assert det.late_readings == 2
    assert [tr.action for tr in late1] == ["opened"] and late2 == []
    ev = late1[0].event
    assert ev.kind == LATE_DATA and ev.event_id == f"late_data:k1::{T0 + 5 * MIN + 1}"
    assert ev.evidence[0]["late_readings"] == 1
    trs = det.flush()
    closed = of_kind(trs, LATE_DATA)
    assert [tr.action for tr in closed] == ["closed"]
    assert closed[0].event.evidence[0] == {
        "late_readings": 2,
        "first_ms": T0 + 5 * MIN + 1,
        "last_ms": T0 + WIN + 7,
    }
    after = det.drain_windows()
    assert [w.start_ms for w in after] == [T0 + 3 * WIN]  # nothing re-finalised
    assert before[T0].mean_mg_m3 == 1.0 and not of_kind(trs, EXCEEDANCE)


def test_lateness_boundary(registry: Registry, profiles: Profiles) -> None:
    w0 = windows("k1", T0, [1.0])
    missing = w0.pop(5)  # T0 + 5 min arrives last
    # next window's reading at end + 1:59: watermark T0 + 9:59 < window end -> still accepted
    inside = Detector(registry, profiles, NM)
    inside.process_many([*w0, reading("k1", T0 + WIN + 2 * MIN - 1000, 1.0), missing])
    assert inside.late_readings == 0
    inside.flush()
    assert inside.drain_windows()[0].samples == 10
    # at end + 2:00 the watermark reaches the window end: window 0 is finalised, the straggler is late
    beyond = Detector(registry, profiles, NM)
    beyond.process_many([*w0, reading("k1", T0 + WIN + 2 * MIN, 1.0)])
    assert beyond.watermark("k1") == T0 + WIN
    assert beyond.drain_windows()[0].samples == 9
    beyond.process(missing)
    assert beyond.late_readings == 1


def test_event_spanning_midnight(det: Detector) -> None:
    start = parse_time("2026-11-26T23:30:00", tz="Asia/Shanghai")  # 15:30 UTC
    trs = run(det, windows("k1", start, [3.0] * 6 + [1.0, 1.0]))
    ev = trs[-1].event
    assert ev.event_id == f"exceedance:k1:oil_fume:{parse_time('2026-11-26T15:30:00Z')}"
    assert ev.end_ms == parse_time("2026-11-26T16:30:00Z")
    assert format_local(ev.start_ms) == "2026-11-26 23:30" and format_local(ev.end_ms) == "2026-11-27 00:30"


def test_hysteresis_flapping_gives_one_event(det: Detector) -> None:
    trs = run(det, windows("k1", T0, [3.0, 3.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0, 2.1, 1.9, 3.0, 1.0, 1.0, 3.0]))
    assert [tr.action for tr in trs] == ["opened", "closed"]
    ev = trs[1].event
    assert ev.start_ms == T0 and ev.end_ms == T0 + 11 * WIN
    assert len(ev.evidence) == 7  # only exceeding windows are evidence
    # flapping that never stays over for N windows opens nothing
    trs = run(det, windows("k2", T0, [3.0, 1.0] * 8))
    assert trs == []


def test_evidence_is_capped_but_peak_and_mean_cover_all(registry: Registry, profiles: Profiles) -> None:
    det = Detector(registry, profiles, DetectorConfig(max_evidence_windows=4, rule="consecutive"))
    trs = run(det, windows("k1", T0, [3.0] * 5 + [5.0, 3.0, 1.0, 1.0]))
    ev = trs[-1].event
    assert len(ev.evidence) == 4 and ev.end_ms == T0 + 7 * WIN
    assert ev.peak_mg_m3 == 5.0 and ev.mean_mg_m3 == pytest.approx(23.0 / 7)


def test_gap_ends_an_event_only_when_max_gap_is_set(registry: Registry, profiles: Profiles) -> None:
    dinner = windows("k1", T0, [3.0] * 4)
    night = windows("k1", T0 + 4 * WIN, [0.2] * 60, fan=False)  # 10 h fan off: invalid windows
    lunch = windows("k1", T0 + 64 * WIN, [3.0] * 3 + [1.0] * 2)
    default = run(
        Detector(registry, profiles, DetectorConfig(max_gap_s=None, rule="consecutive")),
        dinner + night + lunch,
    )
    assert [(t.event.start_ms, t.action) for t in default] == [(T0, "opened"), (T0, "closed")]
    assert default[-1].event.end_ms == T0 + 67 * WIN and len(default[-1].event.evidence) == 7
    split = run(
        Detector(registry, profiles, DetectorConfig(max_gap_s=3600, rule="consecutive")),
        dinner + night + lunch,
    )
    assert [(t.event.start_ms, t.action) for t in split] == [
        (T0, "opened"),
        (T0, "closed"),
        (T0 + 64 * WIN, "opened"),
        (T0 + 64 * WIN, "closed"),
    ]
    assert split[1].event.end_ms == T0 + 4 * WIN and split[1].at_ms == T0 + 65 * WIN


def test_limit_is_strictly_above(det: Detector) -> None:
    assert run(det, windows("k1", T0, [2.0] * 5)) == []


# -- conversion, pollutants ----------------------------------------------------------------------------


def ref_mg_m3(measured_mg_m3: float, flow_m3_h: float, stove_heads: int) -> float:
    """GB 18483-2001 reference concentration C_ref = C * Q / (n * 2000)."""
    return measured_mg_m3 * flow_m3_h / (stove_heads * 2000.0)


def test_reference_conversion_changes_the_verdict(det: Detector) -> None:
    measured = 1.5  # under the 2.0 limit as measured
    high = ref_mg_m3(measured, 8000.0, 2)  # 3.0: diluted by extra air -> over the limit
    low = ref_mg_m3(measured, 2000.0, 2)  # 0.75
    rs = []
    for w in range(4):
        for k in range(10):
            t = T0 + w * WIN + k * MIN
            rs.append(Reading(t, "k3", "R4", "", measured, high, True, flow_m3_h=8000.0, fan_on=True))
            rs.append(Reading(t, "k2", "R3", "", measured, low, True, flow_m3_h=2000.0, fan_on=True))
    evs = final_events(run(det, rs))
    assert list(evs) == [f"exceedance:k3:oil_fume:{T0}"]
    assert evs[f"exceedance:k3:oil_fume:{T0}"].peak_mg_m3 == pytest.approx(3.0)


def test_pm_and_nmhc_limits_with_beijing_profile(det: Detector) -> None:
    rs = windows("bj1", T0, [0.8] * 3, pm=6.0, nmhc=9.0) + windows("bj1", T0 + 3 * WIN, [0.8] * 2, pm=4.0)
    rs += windows("k1", T0, [1.0] * 5, pm=50.0, nmhc=50.0)  # gb18483 does not limit pm / nmhc
    trs = run(det, rs)
    assert [(tr.event.event_id, tr.action) for tr in trs] == [
        (f"exceedance:bj1:pm:{T0}", "opened"),
        (f"exceedance:bj1:pm:{T0}", "closed"),
    ]
    ev = trs[1].event
    assert (ev.pollutant, ev.limit_mg_m3, ev.profile, ev.peak_mg_m3) == ("pm", 5.0, "db11-1488", 6.0)
    ws = det.drain_windows()
    assert {(w.device_id, w.pollutant) for w in ws} == {
        ("bj1", "oil_fume"),
        ("bj1", "pm"),
        ("bj1", "nmhc"),
        ("k1", "oil_fume"),
    }
    nmhc = [w for w in ws if w.pollutant == "nmhc"]
    assert len(nmhc) == 3 and not any(w.exceeds for w in nmhc)  # windows 3-4 carry no nmhc


def test_oil_fume_limit_one_for_beijing(det: Detector) -> None:
    trs = run(det, windows("bj1", T0, [1.5] * 3))
    assert [(tr.event.pollutant, tr.event.limit_mg_m3) for tr in trs] == [("oil_fume", 1.0)]


# -- purifier_off, offline -----------------------------------------------------------------------------


def test_purifier_off(det: Detector) -> None:
    rs = [reading("k1", T0 + k * MIN, 0.5, fan=True, pur=False) for k in range(13)]
    rs.append(reading("k1", T0 + 13 * MIN, 0.5, fan=True, pur=None))  # unknown: ignored
    rs.append(reading("k1", T0 + 14 * MIN, 0.5, fan=True, pur=True))
    trs = of_kind(run(det, rs), PURIFIER_OFF)
    assert [tr.action for tr in trs] == ["opened", "closed"]
    assert trs[0].at_ms == T0 + 10 * MIN  # 10 minutes after the first bypass reading
    ev = trs[1].event
    assert ev.event_id == f"purifier_off:k1::{T0}" and ev.start_ms == T0 and ev.end_ms == T0 + 14 * MIN
    assert ev.evidence == [{"first_bypass_ms": T0, "last_bypass_ms": T0 + 12 * MIN, "bypass_readings": 13}]


def test_purifier_off_needs_the_full_duration_without_gaps(det: Detector) -> None:
    short = [reading("k1", T0 + k * MIN, 0.5, pur=False) for k in range(10)]  # 9 minutes
    fan_off = [reading("k2", T0 + k * MIN, 0.5, fan=False, pur=False) for k in range(20)]
    gappy = [reading("k3", T0 + k * MIN, 0.5, pur=False) for k in (0, 1, 2, 3, 4, 12, 13, 14, 15, 16, 17)]
    assert of_kind(run(det, short + fan_off + gappy), PURIFIER_OFF) == []


def test_offline_in_business_hours_not_at_night(registry: Registry, profiles: Profiles) -> None:
    reg = Registry.parse("restaurant_id,name,district,device_id,stove_heads\nR1,a,D,k1,2\n")
    det = Detector(reg, profiles)
    at = lambda s: parse_time(s, tz="Asia/Shanghai")  # noqa: E731
    det.process(reading("k1", at("2026-11-26T11:00:00"), 1.0))
    assert det.advance(at("2026-11-26T11:20:00")) == []
    trs = det.advance(at("2026-11-26T11:31:00"))
    assert [(tr.event.kind, tr.action) for tr in trs] == [(OFFLINE, "opened")]
    ev = trs[0].event
    assert ev.event_id == f"offline:k1::{at('2026-11-26T11:00:00')}" and ev.restaurant_id == "R1"
    assert det.advance(at("2026-11-26T11:40:00")) == []  # already open
    back = det.process(reading("k1", at("2026-11-26T11:45:00"), 1.0))
    assert [(tr.event.kind, tr.action, tr.event.end_ms) for tr in back] == [
        (OFFLINE, "closed", at("2026-11-26T11:45:00"))
    ]
    # closes at 21:30: silence after 21:20 is not offline at night, only once business resumes
    det.process(reading("k1", at("2026-11-26T21:20:00"), 1.0))
    assert det.advance(at("2026-11-26T23:59:00")) == []
    assert det.advance(at("2026-11-27T10:19:00")) == []  # 10 + 19 = 29 business minutes
    trs = det.advance(at("2026-11-27T10:21:00"))
    assert [(tr.event.kind, tr.event.start_ms) for tr in trs] == [(OFFLINE, at("2026-11-26T21:20:00"))]


def test_offline_for_a_device_never_heard_from(profiles: Profiles) -> None:
    reg = Registry.parse("restaurant_id,name,district,device_id,stove_heads\nR1,a,D,k1,2\nR2,b,D,k2,3\n")
    det = Detector(reg, profiles)
    at = lambda s: parse_time(s, tz="Asia/Shanghai")  # noqa: E731
    det.advance(at("2026-11-26T12:00:00"))  # baseline
    det.process(reading("k1", at("2026-11-26T12:20:00"), 1.0))
    trs = det.advance(at("2026-11-26T12:31:00"))
    assert [tr.event.device_id for tr in trs] == ["k2"]
    assert trs[0].event.start_ms == at("2026-11-26T12:00:00")


def test_business_hours_overlap() -> None:
    bh = BusinessHours("10:00-14:00,16:30-21:30", "Asia/Shanghai")
    at = lambda s: parse_time(s, tz="Asia/Shanghai")  # noqa: E731
    assert bh.overlap_ms(at("2026-11-26T13:50:00"), at("2026-11-26T16:50:00")) == 30 * MIN
    assert bh.overlap_ms(at("2026-11-26T22:00:00"), at("2026-11-27T09:00:00")) == 0
    assert bh.contains(at("2026-11-26T12:00:00")) and not bh.contains(at("2026-11-26T15:00:00"))
    night = BusinessHours("22:00-02:00", "Asia/Shanghai")
    assert night.overlap_ms(at("2026-11-26T23:00:00"), at("2026-11-27T03:00:00")) == 180 * MIN


def test_advance_finalises_windows_of_a_silent_device(det: Detector) -> None:
    det.process_many(windows("k1", T0, [3.0] * 3))
    assert det.drain_windows()[-1].start_ms == T0 + WIN  # last window still open (watermark short)
    trs = det.advance(T0 + 3 * WIN + 2 * MIN)
    assert [tr.action for tr in of_kind(trs, EXCEEDANCE)] == ["opened"]
    assert [w.start_ms for w in det.drain_windows()] == [T0 + 2 * WIN]


# -- restart, idempotence, duplicates ------------------------------------------------------------------


def _mixed_series() -> list[Reading]:
    rng = random.Random(7)
    rs = windows("k1", T0, [1.0, 3.0, 3.0, 3.0, 3.5, 1.0, 3.0, 1.0, 1.0, 1.0])
    rs += windows("bj1", T0, [1.2] * 6 + [0.5] * 4, pm=6.0, nmhc=11.0)
    rs += [reading("k2", T0 + k * MIN, 0.5, pur=k > 58 or k < 30) for k in range(60)]
    rs = [
        Reading(
            r.time_ms, r.device_id, "", "", r.oil_fume_mg_m3, r.oil_fume_ref_mg_m3 * rng.uniform(0.9, 1.1), False,
            pm_mg_m3=r.pm_mg_m3, nmhc_mg_m3=r.nmhc_mg_m3, fan_on=r.fan_on, purifier_on=r.purifier_on,
        )
        for r in rs
    ]  # fmt: skip
    rs.sort(key=lambda r: r.time_ms)
    return rs


def test_snapshot_restore_mid_event_continues_identically(registry: Registry, profiles: Profiles) -> None:
    rs = _mixed_series()
    whole = Detector(registry, profiles, NM)
    t_whole = run(whole, rs)
    w_whole = whole.drain_windows()

    cut = next(i for i, r in enumerate(rs) if r.time_ms >= T0 + 5 * WIN + 4 * MIN)  # mid-event, mid-window
    first = Detector(registry, profiles, NM)
    t1 = first.process_many(rs[:cut])
    assert {e.kind for e in first.open_events()} == {EXCEEDANCE, PURIFIER_OFF}
    snap = json.loads(json.dumps(first.snapshot()))  # must survive JSON
    second = Detector.restore(registry, profiles, None, snap)
    t2 = run(second, rs[cut:])
    assert [t.event.as_dict() for t in t1 + t2] == [t.event.as_dict() for t in t_whole]
    assert [(t.action, t.at_ms) for t in t1 + t2] == [(t.action, t.at_ms) for t in t_whole]
    assert second.drain_windows() == w_whole  # undrained windows travelled in the snapshot
    assert second.counters == whole.counters


def test_restore_refuses_a_different_window_length(registry: Registry, profiles: Profiles) -> None:
    snap = Detector(registry, profiles, NM).snapshot()
    with pytest.raises(ValueError, match="window_s"):
        Detector.restore(registry, profiles, DetectorConfig(window_s=300), snap)


def test_replaying_the_same_readings_gives_identical_events(registry: Registry, profiles: Profiles) -> None:
    rs = _mixed_series()
    a, b = Detector(registry, profiles, NM), Detector(registry, profiles, NM)
    ta, tb = run(a, rs), run(b, rs)
    assert ta and [t.event.as_dict() for t in ta] == [t.event.as_dict() for t in tb]
    assert [t.key for t in ta] == [t.key for t in tb]
    assert {t.event.kind for t in ta} >= {EXCEEDANCE, PURIFIER_OFF}


def test_redelivered_readings_change_nothing(registry: Registry, profiles: Profiles) -> None:
    """An MQTT redelivery after a restart: the same readings again, in the same detector."""
    rs = _mixed_series()
    det = Detector(registry, profiles, NM)
    first = det.process_many(rs)
    windows_before = det.drain_windows()
    again = det.process_many(rs)
    assert {t.event.kind for t in again} <= {LATE_DATA}  # no exceedance / purifier transition twice
    assert det.late_readings + det.duplicates == len(rs)
    assert det.drain_windows() == []  # no window finalised a second time
    assert first and windows_before


def test_duplicates_count_once(registry: Registry, profiles: Profiles) -> None:
    rs = _mixed_series()
    once, twice = Detector(registry, profiles, NM), Detector(registry, profiles, NM)
    t_once = run(once, rs)
    doubled = [r for r in rs for _ in range(2)]
    t_twice = run(twice, doubled)
    assert [t.event.as_dict() for t in t_once] == [t.event.as_dict() for t in t_twice]
    assert twice.duplicates == len(rs) and twice.readings == len(rs)
    assert once.drain_windows() == twice.drain_windows()


def test_unregistered_devices_are_counted(det: Detector) -> None:
    assert det.process(reading("ghost", T0, 9.0)) == []
    assert det.unregistered == 1


def test_config_validation() -> None:
    assert DetectorConfig().min_samples == 8 and DetectorConfig().expected_samples == 10
    with pytest.raises(ValueError):
        DetectorConfig(min_valid_share=0)
    with pytest.raises(ValueError):
        DetectorConfig(business_hours="10-14")
    with pytest.raises(ValueError):
        DetectorConfig(open_after_windows=0)


def test_windows_match_the_model(det: Detector) -> None:
    run(det, windows("k1", T0, [1.0, 3.0]))
    ws = det.drain_windows()
    assert all(isinstance(w, WindowResult) for w in ws) and det.drain_windows() == []
    assert ws[0] == WindowResult("k1", T0, T0 + WIN, 10, 10, True, "", 1.0, 1.0, False, "oil_fume")
