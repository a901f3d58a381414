"""Graduated enforcement ladder: 1st education, 2nd warning, 3rd+ enforcement within the look-back period."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.enforcement.ladder import (
    DAY_MS,
    assign_level,
    build_case,
    level_for,
    occurrence_of,
    readings_summary,
    window_summary,
)
from alerts.ledger import Ledger
from alerts.model import (
    EDUCATION,
    ENFORCEMENT,
    EXCEEDANCE,
    OFFLINE,
    PURIFIER_OFF,
    WARNING,
    Event,
    WindowResult,
)

T0 = 1795667400000  # 2026-11-26T04:30:00Z


def ev(
    day: float, restaurant: str = "R1", kind: str = EXCEEDANCE, suffix: str = "", hours: float | None = 2.0
) -> Event:
    """An event of ``hours`` (None: still open) starting ``day`` days after T0."""
    start = T0 + int(day * DAY_MS)
    return Event(
        end_ms=None if hours is None else start + int(hours * 3_600_000),
        state="open" if hours is None else "closed",
        event_id=f"{restaurant}-{kind}-{start}{suffix}",
        kind=kind,
        restaurant_id=restaurant,
        device_id=f"{restaurant}-D1",
        district="朝阳区",
        start_ms=start,
        pollutant="oil_fume" if kind == EXCEEDANCE else "",
        peak_mg_m3=3.0,
        mean_mg_m3=2.5,
        limit_mg_m3=2.0,
        profile="gb18483",
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "state.db")
    try:
        yield led
    finally:
        led.close()


def test_level_for() -> None:
    assert [level_for(k) for k in (1, 2, 3, 4, 10)] == [
        EDUCATION,
        WARNING,
        ENFORCEMENT,
        ENFORCEMENT,
        ENFORCEMENT,
    ]
    with pytest.raises(ValueError):
        level_for(0)


def test_first_second_third_fourth(ledger: Ledger) -> None:
    events = [ev(d) for d in (0, 10, 20, 30)]
    assert [assign_level(ledger, e) for e in events] == [EDUCATION, WARNING, ENFORCEMENT, ENFORCEMENT]
    assert [e.level for e in events] == [EDUCATION, WARNING, ENFORCEMENT, ENFORCEMENT]
    assert [ledger.get_occurrence(e.event_id) for e in events] == [1, 2, 3, 4]
    assert [ledger.get_event(e.event_id).level for e in events] == [
        EDUCATION,
        WARNING,
        ENFORCEMENT,
        ENFORCEMENT,
    ]


def test_lookback_expiry_resets(ledger: Ledger) -> None:
    a, b, c, d = ev(0), ev(100), ev(500), ev(560)
    assert [assign_level(ledger, e) for e in (a, b, c, d)] == [EDUCATION, WARNING, EDUCATION, WARNING]
    # a shorter look-back period is a setting
    e = ev(700)
    assert assign_level(ledger, e, lookback_days=30) == EDUCATION


def test_lookback_boundary_is_inclusive(ledger: Ledger) -> None:
    assign_level(ledger, ev(0))
    assert assign_level(ledger, ev(365)) == WARNING  # exactly 365 days later still counts
    assert assign_level(ledger, ev(365 * 2 + 0.001)) == EDUCATION  # day 365 is now just outside


def test_level_is_stable_on_replay_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    led = Ledger(path)
    events = [ev(d) for d in (0, 1, 2)]
    first = [assign_level(led, e) for e in events]
    # replay: the same events again (fresh objects without a level, in another order)
    replay = [ev(d) for d in (2, 0, 1)]
    assert [assign_level(led, e) for e in replay] == [ENFORCEMENT, EDUCATION, WARNING]
    led.close()
    led2 = Ledger(path)
    assert [assign_level(led2, ev(d)) for d in (0, 1, 2)] == first
    # a detector upsert without a level (or with another one) never changes the assigned level
    stale = ev(1)
    stale.level = EDUCATION
    stale.end_ms, stale.state = stale.start_ms + 3_600_000, "closed"
    stored = led2.upsert_event(stale)
    assert stored.level == WARNING and stored.state == "closed"
    led2.close()


def test_late_arriving_earlier_event_does_not_reshuffle(ledger: Ledger) -> None:
    later = ev(10)
    assert assign_level(ledger, later) == EDUCATION
    earlier = ev(5)  # arrives afterwards (replayed history): counts events before it in event time
    assert assign_level(ledger, earlier) == EDUCATION
    assert assign_level(ledger, ev(10)) == EDUCATION  # kept, even though it is now 2nd by start
    assert assign_level(ledger, ev(20)) == ENFORCEMENT  # a new one sees both


def test_other_kinds_get_no_level_and_do_not_count(ledger: Ledger) -> None:
    assert assign_level(ledger, ev(0, kind=PURIFIER_OFF)) == ""
    assert assign_level(ledger, ev(1, kind=OFFLINE)) == ""
    assert assign_level(ledger, ev(2)) == EDUCATION


def test_restaurants_are_independent_and_ties_break_by_id(ledger: Ledger) -> None:
    assert assign_level(ledger, ev(0, "R1")) == EDUCATION
    assert assign_level(ledger, ev(0, "R2")) == EDUCATION
    # two exceedances (two pollutants / two flues) starting at the same instant are one episode
    b, a = ev(3, suffix="-b"), ev(3, suffix="-a")
    assert assign_level(ledger, b) == WARNING  # day 0 and b
    assert assign_level(ledger, a) == WARNING  # the same episode as b
    assert occurrence_of(ledger, a) == 2 and occurrence_of(ledger, b) == 2
    assert ledger.get_occurrence(b.event_id) == 2
    assert assign_level(ledger, ev(3, suffix="-c")) == WARNING  # still the same episode
    assert assign_level(ledger, ev(4)) == ENFORCEMENT


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    days=st.lists(st.integers(min_value=0, max_value=1200), min_size=1, max_size=12, unique=True),
    lookback=st.sampled_from([30, 90, 365]),
    seed=st.integers(0, 1000),
)
def test_levels_match_a_sliding_count_and_never_change(
    tmp_path_factory: pytest.TempPathFactory, days: list[int], lookback: int, seed: int
) -> None:
    led = Ledger(tmp_path_factory.mktemp("ladder") / "state.db")
    try:
        ordered = sorted(days)
        got = {d: assign_level(led, ev(d), lookback_days=lookback) for d in ordered}
        for d in ordered:
            k = sum(1 for x in ordered if d - lookback <= x <= d)
            assert got[d] == level_for(k)
        shuffled = ordered[:]
        random.Random(seed).shuffle(shuffled)
        assert {d: assign_level(led, ev(d), lookback_days=lookback) for d in shuffled} == got
    finally:
        led.close()


def _windows(e: Event) -> list[WindowResult]:
    out = []
    for i, (mean, mx, n, exceeds, valid) in enumerate(
        [
            (2.4, 3.1, 10, True, True),
            (2.8, 3.6, 8, True, True),
            (1.2, 1.5, 10, False, True),
            (None, None, 2, False, False),
        ]
    ):
        s = e.start_ms + i * 600_000
        out.append(
            WindowResult(
                e.device_id, s, s + 600_000, n, 10, valid, "" if valid else "incomplete", mean, mx, exceeds
            )
        )
    return out


def test_build_case_carries_the_evidence(ledger: Ledger) -> None:
    e = ev(0, hours=None)
    e.evidence = [window_summary(w) for w in _windows(e)]
    case = build_case(e, occurrence=3, created_ms=T0)
    json.dumps(case)  # storable as JSON
    assert (
        case["case_id"] == f"case-{e.event_id}" and case["level"] == ENFORCEMENT and case["occurrence"] == 3
    )
    assert case["start"] == "2026-11-26T04:30:00Z" and case["end"] is None
    r = case["evidence"]["readings"]
    assert (r["windows"], r["valid_windows"], r["exceeding_windows"]) == (4, 3, 2)
    assert (r["samples"], r["expected_samples"]) == (30, 40)
    assert r["mean_mg_m3"] == pytest.approx((2.4 * 10 + 2.8 * 8 + 1.2 * 10) / 28)
    assert r["max_mg_m3"] == 3.6
    assert r["first_start"] == "2026-11-26T04:30:00Z" and r["last_end"] == "2026-11-26T05:10:00Z"
    # explicit WindowResults and a store-side readings summary
    case2 = build_case(e, _windows(e)[:1], readings={"readings": 57, "max_mg_m3": 3.9})
    assert (
        case2["evidence"]["readings"]["readings"] == 57 and case2["evidence"]["readings"]["max_mg_m3"] == 3.9
    )
    assert readings_summary([])["mean_mg_m3"] is None


def test_build_case_from_detector_style_evidence() -> None:
    """The detector keeps only the exceeding windows in Event.evidence, without valid/exceeds flags."""
    e = ev(0)
    e.evidence = [
        {
            "start_ms": e.start_ms + i * 600_000,
            "end_ms": e.start_ms + (i + 1) * 600_000,
            "mean_mg_m3": m,
            "max_mg_m3": m + 0.5,
            "samples": 10,
        }
        for i, m in enumerate((2.2, 2.9, 2.4))
    ]
    case = build_case(e, occurrence=4)
    w0 = case["evidence"]["windows"][0]
    assert (w0["device_id"], w0["pollutant"], w0["valid"], w0["exceeds"]) == ("R1-D1", "oil_fume", True, True)
    r = case["evidence"]["readings"]
    assert (r["windows"], r["valid_windows"], r["exceeding_windows"], r["samples"]) == (3, 3, 3, 30)
    assert r["mean_mg_m3"] == pytest.approx(2.5) and r["max_mg_m3"] == pytest.approx(3.4)


def test_cases_upsert_and_list(ledger: Ledger) -> None:
    e = ev(0)
    ledger.upsert_case(build_case(e, _windows(e), occurrence=3, created_ms=T0))
    ledger.upsert_case(build_case(e, _windows(e), occurrence=3, created_ms=T0))
    [c] = ledger.list_cases()
    assert c["created_ms"] == T0 and c["status"] == "open"
    ledger.set_case_status(c["case_id"], "closed")
    e.end_ms = e.start_ms + 7_200_000
    ledger.upsert_case(build_case(e, _windows(e), occurrence=3, created_ms=T0 + 99))
    [c] = ledger.list_cases(restaurant_id="R1", status="closed")
    assert c["end_ms"] == e.end_ms and c["created_ms"] == T0
    assert ledger.list_cases(district="海淀区") == []
    assert ledger.list_cases(since_ms=e.end_ms + 1) == []


def test_overlapping_exceedances_are_one_episode(ledger: Ledger) -> None:
    """Oil fume and particulate over the limit in the same dinner service are one offence, one step."""
    oil = ev(0, hours=2.5)
    pm = ev(0.02, suffix="-pm")  # starts ~29 min later, overlaps
    pm.pollutant = "pm"
    assert assign_level(ledger, oil) == EDUCATION
    assert assign_level(ledger, pm) == EDUCATION
    assert assign_level(ledger, ev(1)) == WARNING  # the next day: the second episode
    still_open = ev(2, hours=None)
    still_open.evidence = [{"start_ms": still_open.start_ms, "end_ms": still_open.start_ms + 3 * 3_600_000}]
    assert assign_level(ledger, still_open) == ENFORCEMENT
    nmhc = ev(2.1, suffix="-nmhc")  # inside the still-open oil-fume event's known extent: same episode
    assert assign_level(ledger, nmhc) == ENFORCEMENT
    assert occurrence_of(ledger, nmhc) == 3
