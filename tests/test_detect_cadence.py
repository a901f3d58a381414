"""Per-device reporting cadence: a 10-minute monitor (HJ 212 CN 2051) is judged on its own cadence, from
the registry's ``interval_s`` or learned from its data, in the stream and in the replay alike."""

from __future__ import annotations

import copy
import json

import pytest
from detectdata import MIN, PROFILES, T0, WIN, frame, run
from test_replay import assert_same

from alerts.detection.cadence import learned_interval_s, median2, samples_per_window
from alerts.detection.detector import SNAPSHOT_VERSION, Detector
from alerts.detection.window import DetectorConfig
from alerts.model import EXCEEDANCE, Transition
from ingest.model import Reading
from ingest.registry import Registry

REGISTRY = Registry.parse(
    "restaurant_id,name,district,device_id,stove_heads,profile,interval_s\n"
    "R1,十分钟,Xicheng,m10,2,,600\n"  # registry: 10-minute data
    "R2,学习,Xicheng,l10,2,,\n"  # learned from its data
    "R3,一分钟,Xicheng,m1,2,,60\n"  # registry: 1-minute data
)


def ten_minute(dev: str, n: int = 5, oil: float = 5.0, start: int = T0) -> list[Reading]:
    """``n`` 10-minute averages, one per window, without flow (not reference-converted)."""
    return [Reading(start + k * WIN, dev, "", "", oil, oil, False, fan_on=True) for k in range(n)]


# -- the rule ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gaps_s", "floor_s", "interval_s"),
    [
        ([], 60, 60),  # nothing known yet
        ([600], 60, 600),  # one gap is enough
        ([600] * 9, 60, 600),
        ([60] * 9, 60, 60),
        ([600, 1200, 600], 60, 600),  # a lost average does not move the median
        ([60, 60, 60, 60, 120, 120, 120, 120, 120], 60, 120),  # median 120
        ([60, 120], 60, 60),  # median 90 snaps down to 60
        ([120, 120], 60, 120),
        ([599] * 9, 60, 600),  # clock jitter: within 5 % of 600 s is 600 s
        ([569] * 9, 60, 300),  # more than 5 % below 600 s snaps down to 300 s
        ([700] * 9, 60, 600),
        ([7200] * 3, 60, 3600),  # nothing slower than hourly
        ([30] * 9, 60, 60),  # never below the floor
        ([60] * 9, 120, 120),
        ([45] * 9, 30, 30),  # no standard cadence at or below 45 s: the floor
    ],
)
def test_learned_interval(gaps_s: list[int], floor_s: int, interval_s: int) -> None:
    assert learned_interval_s([g * 1000 for g in gaps_s], floor_s) == interval_s


def test_median_in_integers() -> None:
    assert median2([3, 1, 2]) == 4 and median2([1, 2]) == 3 and median2([5]) == 10


@pytest.mark.parametrize(
    ("interval_s", "expected", "minimum"),
    [(60, 10, 8), (120, 5, 4), (300, 2, 2), (600, 1, 1), (900, 1, 1), (3600, 1, 1), (30, 20, 15)],
)
def test_samples_per_window(interval_s: int, expected: int, minimum: int) -> None:
    assert samples_per_window(600, interval_s, 0.75) == (expected, minimum)
    assert DetectorConfig().samples_at(interval_s) == (expected, minimum)


# -- a 10-minute device --------------------------------------------------------------------------------


@pytest.mark.parametrize("dev", ["m10", "l10"])
def test_ten_minute_device_opens_an_exceedance(dev: str) -> None:
    det = Detector(REGISTRY, PROFILES)  # default rule gb18483, expected_interval_s 60
    trs = run(det, ten_minute(dev))
    assert [(t.action, t.event.kind, t.event.rule) for t in trs] == [("opened", EXCEEDANCE, "gb18483")]
    ev = trs[0].event
    assert (ev.start_ms, ev.mean_mg_m3, ev.device_id) == (T0, 5.0, dev)
    assert [w["samples"] for w in ev.evidence] == [1] * 5
    assert all(w["unconverted"] == 1 for w in ev.evidence)  # no flow: marked as measured
    ws = det.drain_windows()
    assert [(w.samples, w.expected, w.valid, w.invalid_reason) for w in ws] == [(1, 1, True, "")] * 5


def test_one_minute_expectation_never_judges_ten_minute_data() -> None:
    det = Detector(REGISTRY, PROFILES)
    assert run(det, ten_minute("m1")) == []
    ws = det.drain_windows()
    assert {(w.samples, w.expected, w.invalid_reason) for w in ws} == {(1, 10, "incomplete")}


def test_before_learning_a_window_is_judged_at_the_configured_interval() -> None:
    det = Detector(REGISTRY, PROFILES)
    det.process_many(ten_minute("l10", n=1))
    det.advance(T0 + WIN + 3 * MIN)  # wall clock: window finalised before a second reading came
    (w,) = det.drain_windows()
    assert (w.samples, w.expected, w.invalid_reason) == (1, 10, "incomplete")
    # once a gap is known, the next windows are judged at 10 minutes
    det.process_many(ten_minute("l10", n=4, start=T0 + WIN))
    det.flush()
    assert [(w.expected, w.valid) for w in det.drain_windows()] == [(1, True)] * 4


def test_registry_interval_wins_over_the_data() -> None:
    one_minute = [Reading(T0 + k * MIN, "m10", "", "", 3.0, 3.0, True, fan_on=True) for k in range(30)]
    det = Detector(REGISTRY, PROFILES)
    run(det, one_minute)
    assert {w.expected for w in det.drain_windows()} == {1}  # pinned at 10 minutes: still 1 expected


def test_a_one_minute_device_losing_data_stays_incomplete() -> None:
    """Snapped down: 1-minute data with a quarter lost (gaps of 1, 1 and 2 minutes) keeps 10 expected."""
    times = [k for k in range(60) if k % 4 != 3]
    det = Detector(REGISTRY, PROFILES)
    run(det, [Reading(T0 + k * MIN, "l10", "", "", 3.0, 3.0, True) for k in times])
    ws = det.drain_windows()
    assert {w.expected for w in ws} == {10}
    assert {w.samples: w.invalid_reason for w in ws} == {7: "incomplete", 8: ""}  # 8 of 10 are enough


@pytest.mark.parametrize("rule", ["gb18483", "consecutive"])
def test_replay_equals_stream_for_ten_minute_devices(rule: str) -> None:
    readings = ten_minute("m10") + ten_minute("l10") + ten_minute("m1")
    readings += ten_minute("l10", n=6, oil=1.0, start=T0 + 6 * WIN)  # and back under the limit
    events, windows = assert_same(frame(readings), DetectorConfig(rule=rule), REGISTRY)
    assert {e.device_id for e in events} == {"m10", "l10"}
    expected = windows.groupby("device_id", observed=True)["expected"].unique().map(list).to_dict()
    assert expected == {"m10": [1], "l10": [1], "m1": [10]}


# -- snapshots ------------------------------------------------------------------------------------------


def _trace(trs: list[Transition]) -> list[str]:
    return [json.dumps([t.action, t.at_ms, t.event.as_dict()], sort_keys=True) for t in trs]


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_snapshot_keeps_the_learned_cadence(cut: int) -> None:
    rs = ten_minute("l10", n=8)
    whole = Detector(REGISTRY, PROFILES)
    t_whole = run(whole, rs)
    first = Detector(REGISTRY, PROFILES)
    t1 = first.process_many(rs[:cut])
    first.advance(rs[cut - 1].time_ms + WIN + 3 * MIN)  # finalise: the windows so far teach the gaps
    snap = json.loads(json.dumps(first.snapshot()))
    assert snap["version"] == SNAPSHOT_VERSION == 4
    gaps, last = snap["devices"]["l10"]["gaps"]
    assert (gaps, last) == ([WIN] * (cut - 1), rs[cut - 1].time_ms)
    second = Detector.restore(REGISTRY, PROFILES, None, snap)
    t2 = run(second, rs[cut:])
    ws = second.drain_windows()  # with the first detector's, which travelled in the snapshot
    assert [w.expected for w in ws][1:] == [1] * 7  # the first window came before any gap
    if cut > 1:  # a gap was known when the device went quiet: the same as the uninterrupted run
        assert _trace(t1 + t2) == _trace(t_whole)


def test_an_old_snapshot_without_learned_gaps_still_loads() -> None:
    rs = ten_minute("l10", n=7)
    whole = Detector(REGISTRY, PROFILES)
    t_whole = run(whole, rs)
    first = Detector(REGISTRY, PROFILES)
    t1 = first.process_many(rs[:3])  # window 0 finalised (gaps learned), windows 1 and 2 open
    snap = copy.deepcopy(first.snapshot())
    snap["version"] = 2
    for dev in snap["devices"].values():
        del dev["gaps"]
        for w in dev["windows"]:
            del w[8:]  # version 2 windows: no lower-bound or excluded counts
    second = Detector.restore(REGISTRY, PROFILES, None, snap)
    t2 = run(second, rs[3:])
    # nothing learned travelled, but the open windows' readings teach the cadence again at once
    assert _trace(t1 + t2) == _trace(t_whole)
    assert [w.expected for w in second.drain_windows()] == [w.expected for w in whole.drain_windows()]
