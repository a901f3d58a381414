"""The enforcement ladder on episodes: one offence = one step, correction periods, delivery-aware
escalation, event-time decisions; and the case record of a step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.casework import Casework
from alerts.enforcement.episodes import DAY_MS, LadderPolicy, decide, level_for
from alerts.enforcement.ladder import assign_level, build_case, readings_summary, window_summary
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

T0 = 1795667400000  # 2026-11-26T04:30:00Z = 12:30 in Shanghai


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
        rule="gb18483" if kind == EXCEEDANCE else "bypass",
    )


@pytest.fixture
def ledger(state_url: str) -> Iterator[Ledger]:
    """On both backends, migrated by ``fumewatch db upgrade`` (so migration 0003 is what is tested)."""
    led = Ledger(state_url)
    try:
        yield led
    finally:
        led.close()


POLICY = LadderPolicy(correction_days=7)


def delivered(ledger: Ledger, e: Event, ok: bool = True) -> None:
    """Record the owner's opened notice of ``e`` as the notifier does (sent, or failed)."""
    key = f"{e.event_id}:opened"
    assert ledger.notice_begin(key, "owner", "json://owner.example/hook", {"restaurant_id": e.restaurant_id})
    ledger.notice_done(key, "json://owner.example/hook", ok, "" if ok else "HTTP 500", 1)


def step(ledger: Ledger, e: Event, policy: LadderPolicy = POLICY, reach: bool = True):
    d = decide(ledger, e, policy)
    if not d.joined:
        delivered(ledger, e, reach)
    return d


def test_level_for() -> None:
    assert [level_for(k) for k in (1, 2, 3, 4, 10)] == [EDUCATION, WARNING] + [ENFORCEMENT] * 3
    with pytest.raises(ValueError):
        level_for(0)


def test_episodes_inside_the_correction_period_repeat_the_step(ledger: Ledger) -> None:
    """Three episodes inside one correction period: no escalation; the first after the deadline escalates."""
    first = step(ledger, ev(0))
    assert (first.level, first.episode.step, first.episode.repeat) == (EDUCATION, 1, False)
    # the deadline is the end of the local day 7 days later: 2026-12-03 23:59:59.999 +08:00
    assert first.episode.deadline_ms == 1796313600000 - 1
    repeats = [step(ledger, ev(d)) for d in (1, 3, 7.4)]  # day 7.4 = 2026-12-03 22:06 local: still inside
    assert [(r.level, r.episode.step, r.episode.repeat) for r in repeats] == [(EDUCATION, 1, True)] * 3
    assert {r.step.episode_id for r in repeats} == {first.episode.episode_id}
    after = step(ledger, ev(8))
    assert (after.level, after.episode.step, after.episode.repeat) == (WARNING, 2, False)
    assert step(ledger, ev(9)).episode.repeat  # inside the warning's period
    third = step(ledger, ev(16))
    assert (third.level, third.episode.step) == (ENFORCEMENT, 3)
    assert step(ledger, ev(30)).level == ENFORCEMENT  # every later step is enforcement too


def test_no_escalation_on_a_notice_the_owner_never_got(ledger: Ledger) -> None:
    step(ledger, ev(0), reach=False)
    again = step(ledger, ev(8), reach=False)
    assert (again.level, again.episode.step, again.episode.reissued) == (EDUCATION, 1, True)
    reached = step(ledger, ev(16))  # the reissued step's notice was not delivered either: reissued again
    assert (reached.level, reached.episode.reissued) == (EDUCATION, True)
    assert step(ledger, ev(24)).level == WARNING  # the day-16 notice reached the owner


def test_a_repeat_notice_that_reached_the_owner_counts_for_its_step(ledger: Ledger) -> None:
    step(ledger, ev(0), reach=False)
    step(ledger, ev(2), reach=True)  # a repeat inside the period; this one got through
    assert step(ledger, ev(8)).level == WARNING


def test_overlapping_events_and_purifier_off_are_one_episode(ledger: Ledger) -> None:
    """Oil fume, particulate and a bypass in the same dinner service: one offence, one step."""
    oil = ev(0, hours=2.5)
    pm = ev(0.02, suffix="-pm")  # starts ~29 min later, overlaps
    pm.pollutant = "pm"
    bypass = ev(0, kind=PURIFIER_OFF, hours=0.5)
    bypass.start_ms, bypass.end_ms = oil.end_ms, oil.end_ms + 1_800_000  # touches the oil-fume event's end
    d1, d2, d3 = (step(ledger, e) for e in (oil, pm, bypass))
    assert (d1.joined, d2.joined, d3.joined) == (False, True, True)
    assert d1.episode.episode_id == d2.episode.episode_id == d3.episode.episode_id
    assert {e.event_id for e in ledger.episode_events([d1.episode.episode_id])} == {
        oil.event_id,
        pm.event_id,
        bypass.event_id,
    }
    assert [e.level for e in ledger.list_events()] == [EDUCATION] * 3
    assert len(ledger.list_episodes()) == 1


def test_a_separate_bypass_is_an_offence_too(ledger: Ledger) -> None:
    step(ledger, ev(0))
    alone = ev(8, kind=PURIFIER_OFF, hours=0.3)
    assert step(ledger, alone).level == WARNING


def test_open_event_known_extent_and_later_joiner(ledger: Ledger) -> None:
    still_open = ev(0, hours=None)
    still_open.evidence = [{"start_ms": still_open.start_ms, "end_ms": still_open.start_ms + 3 * 3_600_000}]
    d = step(ledger, still_open)
    nmhc = ev(0.1, suffix="-nmhc")  # inside the still-open event's known extent: same episode
    assert decide(ledger, nmhc, POLICY).episode.episode_id == d.episode.episode_id
    later = ev(0.2, suffix="-later")  # 4.8 h after the start, beyond the known extent: a new episode (repeat)
    assert decide(ledger, later, POLICY).episode.repeat


def test_decisions_are_idempotent_and_follow_event_time(tmp_path: Path) -> None:
    """Replaying the same events (any arrival order of already-decided ones) gives the same steps."""
    events = [ev(d) for d in (0, 3, 8, 12, 16)]
    a = Ledger(tmp_path / "a.db")
    got = [step(a, e).level for e in events]
    assert got == [EDUCATION, EDUCATION, WARNING, WARNING, ENFORCEMENT]
    assert [decide(a, e, POLICY).level for e in reversed(events)] == got[::-1]  # stable
    b = Ledger(tmp_path / "b.db")
    assert [step(b, ev(d)).level for d in (0, 3, 8, 12, 16)] == got  # a fresh replay: same answer


def test_lookback_period(ledger: Ledger) -> None:
    step(ledger, ev(0))
    assert step(ledger, ev(365)).level == WARNING  # exactly 365 days later still counts
    assert step(ledger, ev(365 * 2 + 0.001)).level == EDUCATION  # day 365 is now just outside
    policy = LadderPolicy(lookback_days=30)
    assert step(ledger, ev(800), policy).level == EDUCATION


def test_profile_correction_period(ledger: Ledger) -> None:
    policy = LadderPolicy(correction_days=7, profile_correction_days={"strict": 2})
    a = ev(0)
    a.profile = "strict"
    step(ledger, a, policy)
    b = ev(3)
    b.profile = "strict"
    assert step(ledger, b, policy).level == WARNING  # 3 days > its 2-day period


def test_other_kinds_get_no_level_and_restaurants_are_independent(ledger: Ledger) -> None:
    assert assign_level(ledger, ev(0, kind=OFFLINE)) == ""
    assert assign_level(ledger, ev(0, "R1")) == EDUCATION
    assert assign_level(ledger, ev(0, "R2")) == EDUCATION


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
    assert case["start"] == "2026-11-26T12:30:00+08:00" and case["end"] is None
    r = case["evidence"]["readings"]
    assert (r["windows"], r["valid_windows"], r["exceeding_windows"]) == (4, 3, 2)
    assert (r["samples"], r["expected_samples"]) == (30, 40)
    assert r["mean_mg_m3"] == pytest.approx((2.4 * 10 + 2.8 * 8 + 1.2 * 10) / 28)
    assert r["max_mg_m3"] == 3.6
    assert r["first_start"] == "2026-11-26T12:30:00+08:00" and r["last_end"] == "2026-11-26T13:10:00+08:00"
    # explicit WindowResults and a store-side readings summary
    case2 = build_case(e, _windows(e)[:1], readings={"readings": 57, "max_mg_m3": 3.9})
    assert (
        case2["evidence"]["readings"]["readings"] == 57 and case2["evidence"]["readings"]["max_mg_m3"] == 3.9
    )
    assert readings_summary([])["mean_mg_m3"] is None


def test_window_summary_keeps_exclusions_and_lower_bounds() -> None:
    """A case shows why a window was short (calibration) and which samples were lower bounds."""
    e = ev(0)
    w = WindowResult(e.device_id, e.start_ms, e.start_ms + 600_000, 1, 1, False, "excluded", 3.0, 3.0, False)
    w.excluded, w.lower_bound = {"flag_C": 1}, 1
    got = window_summary(w, e)
    assert (got["invalid_reason"], got["excluded"], got["lower_bound"], got["expected"]) == (
        "excluded",
        {"flag_C": 1},
        1,
        1,
    )
    plain = window_summary({"start_ms": e.start_ms, "end_ms": e.start_ms + 600_000, "samples": 10}, e)
    assert "excluded" not in plain and "lower_bound" not in plain


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
    Casework(ledger).act(
        c["case_id"], "close", {"outcome": "dismissed", "dismiss_reason": "other"}, actor="t", note="test"
    )
    e.end_ms = e.start_ms + 7_200_000
    ledger.upsert_case(build_case(e, _windows(e), occurrence=3, created_ms=T0 + 99))
    [c] = ledger.list_cases(restaurant_id="R1", status="closed")
    assert c["end_ms"] == e.end_ms and c["created_ms"] == T0
    assert ledger.list_cases(district="海淀区") == []
    assert ledger.list_cases(since_ms=e.end_ms + 1) == []
