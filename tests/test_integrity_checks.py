"""The data-integrity checks suspect_replay, suspect_clone, suspect_clock and suspect_flow on hand-made
readings (alerts/integrity, ingest/clock.py, docs/integrity.md), each positive and negative: a real
sensor's noisy series is neither a replay nor a clone, a backfill after an outage is not a clock fault,
a steady fan is not a flow fault. The process test (tests/test_integrity.py) runs them through
``fumewatch run``."""

from __future__ import annotations

import random

from alerts.integrity.clock import suspect_clock
from alerts.integrity.copies import CloneIndex, suspect_replay
from alerts.integrity.flow import suspect_flow
from alerts.integrity.series import series_of
from ingest.clock import ClockWatch
from ingest.model import Reading

MIN = 60_000
T0 = 1795651200000  # 2026-12-01 08:00 Asia/Shanghai


def noisy(n: int, seed: int, base: float = 1.2) -> list[float]:
    rng = random.Random(seed)
    return [round(base + 0.4 * rng.random(), 3) for _ in range(n)]


def rows(start: int, values: list[float], fan: bool = True, flows: list[float] | None = None) -> list[dict]:
    return [
        {
            "time_ms": start + i * MIN,
            "oil_fume_mg_m3": v,
            "fan_on": 1 if fan else 0,
            "flow_m3_h": flows[i] if flows else 4000.0,
        }
        for i, v in enumerate(values)
    ]


def check_replay(now: list[dict], earlier: list[dict]):
    return suspect_replay(series_of(now), series_of(earlier), min_minutes=60, min_distinct=10)


def test_suspect_replay_finds_yesterday_replayed_even_shifted():
    yesterday = noisy(180, 1)
    earlier = rows(T0 - 86_400_000, yesterday)
    f = check_replay(rows(T0, yesterday), earlier)
    assert f is not None and f.minutes == 180 and f.detail["shift_mg_m3"] == 0
    assert f.detail["other_start_ms"] == T0 - 86_400_000
    shifted = [round(v + 0.05, 3) for v in yesterday]
    f = check_replay(rows(T0, shifted), earlier)
    assert f is not None and f.detail["shift_mg_m3"] == 0.05 and f.detail["readings"] == 180
    # 70 minutes of yesterday inside today's own data is enough; 50 is not
    part = noisy(40, 2) + yesterday[20:90] + noisy(40, 3)
    f = check_replay(rows(T0, part), earlier)
    assert f is not None and f.minutes == 70
    short = noisy(40, 2) + yesterday[20:70] + noisy(40, 3)
    assert check_replay(rows(T0, short), earlier) is None


def test_suspect_replay_not_for_a_real_sensor_a_constant_or_the_fan_off():
    earlier = rows(T0 - 86_400_000, noisy(600, 1))
    assert check_replay(rows(T0, noisy(600, 9)), earlier) is None
    # a constant (or zeros) repeats trivially: suspect_flatline's and suspect_zero's business
    flat = rows(T0 - 86_400_000, [0.5] * 200)
    assert check_replay(rows(T0, [0.5] * 200), flat) is None
    assert check_replay(rows(T0, [0.0] * 200), rows(T0 - 86_400_000, [0.0] * 200)) is None
    # with the fan off nothing is compared
    same = noisy(180, 4)
    assert check_replay(rows(T0, same, fan=False), rows(T0 - 86_400_000, same)) is None


def test_suspect_clone_pairs_two_restaurants_not_one():
    idx = CloneIndex()
    svc = (T0, T0 + 4 * 3600_000)
    a = noisy(200, 5)
    kw = {"min_minutes": 60, "min_distinct": 10}
    assert idx.add("A1", "R-A", svc, series_of(rows(T0, a)), **kw) == []
    assert idx.add("C1", "R-C", svc, series_of(rows(T0, noisy(200, 6))), **kw) == []
    found = idx.add("B1", "R-B", svc, series_of(rows(T0 + 20_000, a)), **kw)
    assert sorted(c.device_id for c in found) == ["A1", "B1"]
    by = {c.device_id: c.finding for c in found}
    assert by["B1"].detail["other_device_id"] == "A1" and by["A1"].detail["other_device_id"] == "B1"
    assert by["B1"].minutes == 200 and by["B1"].detail["other_restaurant_id"] == "R-A"
    # another service is another index
    assert idx.add("D1", "R-D", (svc[1], svc[1] + 1), series_of(rows(T0, a)), **kw) == []


def test_suspect_clone_not_for_one_restaurant_s_devices():
    """Two devices of one restaurant may share a duct and a logger: they are not compared."""
    idx = CloneIndex()
    svc = (T0, T0 + 4 * 3600_000)
    a = noisy(200, 5)
    kw = {"min_minutes": 60, "min_distinct": 10}
    idx.add("A1", "R-A", svc, series_of(rows(T0, a)), **kw)
    assert idx.add("A2", "R-A", svc, series_of(rows(T0, a)), **kw) == []


def reading(t: int, v: float = 1.0, qn: str = "") -> Reading:
    return Reading(t, "D1", "R1", "X", v, v, True, qn=qn)


def judge(hours, *, drift=True, interval_s=60.0):
    return suspect_clock(hours, interval_s=interval_s, drift_s=600, drift=drift, backwards_n=3, qn_repeats=3)


def test_suspect_clock_drift_from_the_smallest_lag():
    w = ClockWatch()
    behind = 20 * MIN
    for i in range(180):
        t = T0 + i * MIN
        w.observe([reading(t)], t + behind + 2_000)
    f = judge(w.take("D1", T0, T0 + 4 * 3600_000))
    assert f is not None and f.detail["reasons"] == ["drift"] and f.detail["offset_s"] == 1202
    # on the event clock (a replay) the receive time says nothing: not judged
    for i in range(180):
        t = T0 + i * MIN
        w.observe([reading(t)], t + behind)
    assert judge(w.take("D1", T0, T0 + 4 * 3600_000), drift=False) is None


def test_a_backfill_after_an_outage_is_not_a_clock_fault():
    w = ClockWatch()
    live = [T0 + i * MIN for i in range(60)] + [T0 + i * MIN for i in range(120, 180)]
    for t in live:
        w.observe([reading(t)], t + 1_000)
    # the DTU sends the hour it held back once it is online again: late, one step back
    now = T0 + 180 * MIN
    w.observe([reading(T0 + i * MIN) for i in range(60, 120)], now)
    hours = w.take("D1", T0, T0 + 4 * 3600_000)
    assert sum(h.backwards for h in hours.values()) == 1
    assert judge(hours) is None


def test_suspect_clock_backwards_and_repeated_qn():
    w = ClockWatch()
    t = T0
    for i in range(180):
        if i and i % 30 == 0:
            t -= 10 * MIN  # the logger's clock is set back 10 minutes every half hour
        w.observe([reading(t, v=1.0 + i / 1000, qn=f"QN{t}")], T0 + i * MIN)
        t += MIN
    f = judge(w.take("D1", T0 - 3600_000, T0 + 4 * 3600_000), drift=False)
    assert f is not None and f.detail["backwards"] == 5 and f.detail["max_back_s"] == 540
    assert f.detail["reasons"] == ["backwards", "qn_repeated"] and f.detail["qn_repeats"] >= 3
    # a redelivered frame (same QN, same time, same value) is not a repeat
    w2 = ClockWatch()
    for _ in range(5):
        w2.observe([reading(T0, qn="Q1")], T0 + 1000)
    assert judge(w2.take("D1", T0, T0 + 3600_000)) is None


def flow_check(rs):
    return suspect_flow(
        rs,
        stove_heads=2,
        ref_per_head_m3_h=2000.0,
        min_share=0.25,
        max_share=3.0,
        drop_share=0.3,
        min_readings=20,
    )


def test_suspect_flow_drops_when_the_fume_is_high():
    rng = random.Random(3)
    oil = [round(0.3 + 2.0 * abs((i % 60) - 30) / 30 * rng.random(), 3) for i in range(180)]
    steady = [round(4000 * (1 + 0.03 * rng.uniform(-1, 1)), 1) for _ in oil]
    assert flow_check(rows(T0, oil, flows=steady)) is None
    cut = sorted(oil)[int(len(oil) * 0.75)]
    tampered = [q * 0.4 if v >= cut else q for v, q in zip(oil, steady, strict=True)]
    f = flow_check(rows(T0, oil, flows=tampered))
    assert f is not None and f.detail["reasons"] == ["flow_drops_when_high"]
    assert f.detail["high_median_flow_m3_h"] < 0.5 * f.detail["low_median_flow_m3_h"]


def test_suspect_flow_implausible_for_the_stove_heads():
    oil = noisy(60, 7)
    assert flow_check(rows(T0, oil, flows=[500.0] * 60)).detail["reasons"] == ["flow_low"]
    assert flow_check(rows(T0, oil, flows=[15000.0] * 60)).detail["reasons"] == ["flow_high"]
    # a fan turned up to 1.5 times the reference is plausible; too few readings are not judged
    assert flow_check(rows(T0, oil, flows=[6000.0] * 60)) is None
    assert flow_check(rows(T0, oil[:10], flows=[500.0] * 10)) is None
    assert flow_check(rows(T0, oil, fan=False, flows=[500.0] * 60)) is None


def test_metrics_count_findings_by_check():
    """/metrics' fumewatch_data_integrity_total has a series per check from the start (ingest/metrics.py
    may not import alerts: its list is tested equal to alerts.rules')."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest

    from alerts.rules import CHECK_LABELS
    from ingest.metrics import INTEGRITY_CHECKS, AlertsCollector

    assert set(INTEGRITY_CHECKS) == set(CHECK_LABELS)
    svc = SimpleNamespace(
        detector=SimpleNamespace(
            counters={"readings": 0, "late_readings": 0, "windows_finalised": 0}, open_events=lambda: []
        ),
        transitions_total=0,
        reminders_total=0,
        integrity_by_check={"suspect_clone": 2},
        notices={},
    )
    reg = CollectorRegistry()
    reg.register(AlertsCollector(svc))
    text = generate_latest(reg).decode()
    assert 'fumewatch_data_integrity_total{check="suspect_clone"} 2.0' in text
    assert 'fumewatch_data_integrity_total{check="suspect_zero"} 0.0' in text


def test_an_honest_two_speed_fan_is_not_a_flow_fault():
    """At its low speed the same emission is less diluted, so the low-speed readings read higher (C = E/Q);
    but cooking rises and falls at either speed, so the low speed is not kept for the high fume. A
    tampered flow that falls exactly when the fume is high is flagged."""
    for seed in range(20):
        rng = random.Random(seed)
        oil, flows = [], []
        for i in range(240):
            emission = 4000 * (0.5 + 1.5 * abs(((i / 60) % 2) - 1)) * (1 + 0.1 * rng.random())  # mg/h
            q = 4000 * (0.6 if (i // 20 + seed) % 2 else 1.0) * (1 + 0.02 * rng.uniform(-1, 1))
            oil.append(round(emission / q, 3))
            flows.append(round(q, 1))
        assert flow_check(rows(T0, oil, flows=flows)) is None, seed
        cut = sorted(oil)[int(len(oil) * 0.75)]
        steady = [4000.0 * (1 + 0.02 * rng.uniform(-1, 1)) for _ in oil]
        tampered = [q * 0.4 if v >= cut else q for v, q in zip(oil, steady, strict=True)]
        f = flow_check(rows(T0, oil, flows=tampered))
        assert f is not None and f.detail["reasons"] == ["flow_drops_when_high"], seed
        assert f.detail["high_low_flow_share"] == 1.0 and f.detail["rest_low_flow_share"] == 0.0
