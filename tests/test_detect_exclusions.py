"""Excluded readings (``Reading.excluded``: calibration, maintenance, fault...) are stored but never judged,
and lower bounds (HJ 212 flag T) are judged and counted, in the stream and in the replay alike."""

from __future__ import annotations

import json

import pytest
from detectdata import MIN, PROFILES, T0, WIN, frame, run
from test_replay import assert_same

from alerts.detection.acc import WindowAcc
from alerts.detection.detector import Detector
from alerts.detection.window import EXCLUDED, DetectorConfig
from alerts.model import OFFLINE, PURIFIER_OFF
from ingest.model import Reading
from ingest.registry import Registry

REGISTRY = Registry.parse(
    "restaurant_id,name,district,device_id,stove_heads,profile\nR1,小馆,Xicheng,k1,2,\n"
)
NM = DetectorConfig(rule="consecutive")


def reading(
    t: int, oil: float, excluded: str = "", *, fan: bool | None = True, pur: bool | None = True, t_flag=False
) -> Reading:
    return Reading(
        t,
        "k1",
        "",
        "",
        oil,
        oil,
        True,
        fan_on=fan,
        purifier_on=pur,
        excluded=excluded,
        flags={"oil_fume": "T"} if t_flag else None,
    )


def window(start: int, oil: float, excluded: dict[int, str] | None = None, **kw) -> list[Reading]:
    """Ten 1-minute readings; ``excluded`` maps a minute to its exclusion reason."""
    excluded = excluded or {}
    return [reading(start + k * MIN, oil, excluded.get(k, ""), **kw) for k in range(10)]


def test_a_calibration_window_is_invalid_as_excluded_not_incomplete() -> None:
    det = Detector(REGISTRY, PROFILES, NM)
    cal = {k: "flag_C" for k in range(6)}
    run(det, window(T0, 1.0, cal) + window(T0 + WIN, 1.0, {0: "flag_C"}) + window(T0 + 2 * WIN, 1.0)[:4])
    ws = det.drain_windows()
    got = [(w.samples, w.expected, w.valid, w.invalid_reason, w.excluded) for w in ws]
    assert got == [
        (4, 10, False, EXCLUDED, {"flag_C": 6}),  # short because of the calibration
        (9, 10, True, "", {"flag_C": 1}),  # enough samples left: judged on the 9
        (4, 10, False, "incomplete", {}),  # short, nothing excluded: data missing
    ]
    assert det.counters["excluded"] == 7 and det.counters["readings"] == 4 + 9 + 4


def test_excluded_counts_by_reason_in_the_evidence() -> None:
    det = Detector(REGISTRY, PROFILES, NM)
    rs = (
        window(T0, 3.0, {2: "flag_M", 3: "rs_3"})
        + window(T0 + WIN, 3.0)
        + window(T0 + 2 * WIN, 3.0, {9: "flag_M"})
    )
    trs = run(det, rs)
    assert [t.action for t in trs] == ["opened"]
    assert [w.get("excluded") for w in trs[0].event.evidence] == [
        {"flag_M": 1, "rs_3": 1},
        None,
        {"flag_M": 1},
    ]
    assert [w["samples"] for w in trs[0].event.evidence] == [8, 10, 9]


@pytest.mark.parametrize("rule", ["gb18483", "consecutive"])
def test_excluded_readings_never_open_an_event(rule: str) -> None:
    """A calibration gas run reads far over the limit, with the purifier off: neither is judged."""
    det = Detector(REGISTRY, PROFILES, DetectorConfig(rule=rule))
    rs = []
    for w in range(6):
        rs += window(T0 + w * WIN, 50.0, {k: "flag_C" for k in range(10)}, pur=False)
    assert run(det, rs) == []
    ws = det.drain_windows()
    assert len(ws) == 6  # shown, so that a report says "calibration", not "no data"
    assert {(w.samples, w.mean_mg_m3, w.max_mg_m3, w.valid, w.invalid_reason) for w in ws} == {
        (0, None, None, False, EXCLUDED)
    }
    assert all(w.excluded == {"flag_C": 10} for w in ws)
    assert not any(e.kind == PURIFIER_OFF for e in det.open_events())


def test_fan_majority_counts_judged_readings_only() -> None:
    det = Detector(REGISTRY, PROFILES, NM)
    # 5 of the 8 judged readings have the fan on (a majority); the 2 excluded ones have it off
    rs = [reading(T0 + k * MIN, 1.0, fan=k < 5) for k in range(8)]
    rs += [reading(T0 + k * MIN, 1.0, "flag_D", fan=False) for k in (8, 9)]
    run(det, rs)
    (w,) = det.drain_windows()
    assert (w.valid, w.samples, w.excluded) == (True, 8, {"flag_D": 2})


def test_an_excluded_reading_is_heard_from_and_counts_for_duplicates() -> None:
    det = Detector(REGISTRY, PROFILES, NM)
    det.advance(T0)
    opened = det.advance(T0 + 31 * MIN)
    assert [(t.action, t.event.kind) for t in opened] == [("opened", OFFLINE)]
    t = T0 + 31 * MIN
    closed = det.process(reading(t, 1.0, "rs_2"))
    assert [(t.action, t.event.kind) for t in closed] == [("closed", OFFLINE)]
    det.process(reading(t, 9.0))  # same time as the excluded reading: a duplicate, not a sample
    det.flush()
    assert det.duplicates == 1
    (w,) = det.drain_windows()
    assert (w.samples, w.excluded, w.invalid_reason) == (0, {"rs_2": 1}, EXCLUDED)


def test_lower_bounds_are_judged_and_counted() -> None:
    det = Detector(REGISTRY, PROFILES, NM)
    rs = []
    for w in range(3):
        rs += [reading(T0 + w * WIN + k * MIN, 3.0, t_flag=k < 4) for k in range(10)]
    trs = run(det, rs)
    assert [t.action for t in trs] == ["opened"]
    assert [w["lower_bound"] for w in trs[0].event.evidence] == [4, 4, 4]
    assert {w.lower_bound for w in det.drain_windows()} == {4}


def test_an_excluded_lower_bound_is_not_counted() -> None:
    det = Detector(REGISTRY, PROFILES, NM)
    run(det, [reading(T0 + k * MIN, 3.0, "flag_C" if k < 3 else "", t_flag=True) for k in range(10)])
    (w,) = det.drain_windows()
    assert (w.lower_bound, w.samples) == (7, 7)


def test_snapshot_keeps_the_counts_of_open_windows() -> None:
    rs = window(T0, 3.0, {1: "flag_C", 2: "flag_C", 3: "flag_M"}, t_flag=True) + window(T0 + WIN, 3.0)
    whole = Detector(REGISTRY, PROFILES, NM)
    run(whole, rs)
    first = Detector(REGISTRY, PROFILES, NM)
    first.process_many(rs[:5])
    second = Detector.restore(REGISTRY, PROFILES, None, json.loads(json.dumps(first.snapshot())))
    run(second, rs[5:])
    assert second.drain_windows() == whole.drain_windows()
    assert whole.counters == second.counters


def test_window_state_of_older_snapshots_loads_with_zero_counts() -> None:
    acc = WindowAcc.from_state([T0, 2, 2, [2, 0, 0], [3.0, 0.0, 0.0], [2.0, None, None], [T0, T0 + MIN]])
    assert (acc.unconverted, acc.lower_bound, acc.excluded, acc.stats(0)) == (0, 0, {}, (2, 3.0, 2.0))
    acc.add(T0 + 2 * MIN, (1.0, None, None), True, excluded="flag_C")
    back = WindowAcc.from_state(json.loads(json.dumps(acc.to_state())))
    assert back.excluded == {"flag_C": 1} and back.times.tolist() == [T0, T0 + MIN, T0 + 2 * MIN]


@pytest.mark.parametrize("rule", ["gb18483", "consecutive"])
def test_replay_equals_stream_with_exclusions(rule: str) -> None:
    rs = []
    for w in range(12):
        marks = {k: ("flag_C", "flag_M", "rs_2")[w % 3] for k in range(w % 5 * 2)}
        rs += window(T0 + w * WIN, 50.0 if w % 4 == 0 else 2.5, marks, pur=w % 3 != 1, t_flag=w % 2 == 0)
    rs += window(T0 + 12 * WIN, 80.0, {k: "flag_C" for k in range(10)})  # a calibration: huge, not judged
    events, windows = assert_same(frame(rs), DetectorConfig(rule=rule), REGISTRY)
    assert events and (windows["invalid_reason"] == EXCLUDED).sum() >= 4
    assert any("excluded" in w for e in events for w in e.evidence)
    last = windows[windows["start_ms"] == T0 + 12 * WIN].iloc[0]
    assert (last["samples"], last["excluded"], last["invalid_reason"]) == (0, {"flag_C": 10}, EXCLUDED)
