"""The case file of an enforcement step: every episode of the step with its events, rule, judgement,
deciding windows, C/Q/n and fan/purifier states, every notice receipt, and the earlier steps with their
delivery (stored with :meth:`Ledger.upsert_case`, listed by ``fumewatch cases --format json``)."""

from __future__ import annotations

from typing import Any

from alerts.enforcement import ladder
from alerts.enforcement.episodes import Decision, LadderPolicy, step_episodes
from alerts.enforcement.notify.facts import owner_delivery, receipts
from alerts.ledger import Ledger
from alerts.model import ENFORCEMENT, EXCEEDANCE, Event, Transition
from alerts.rules import rule


def refresh_case(
    ledger: Ledger,
    tr: Transition,
    d: Decision,
    facts: dict[str, Any],
    *,
    tz: str,
    locale: str,
    policy: LadderPolicy,
) -> dict[str, Any] | None:
    """Store (or refresh) the case of an enforcement step with everything a case file needs; None when
    the step is not an enforcement step."""
    step = d.step
    if step.level != ENFORCEMENT:
        return None
    eps = step_episodes(ledger, step)
    lead = ledger.get_event(step.lead_event_id) or tr.event
    episodes_out = []
    for p in eps:
        evs = []
        for e in ledger.episode_events([p.episode_id]):
            m = p.record.get(f"measures:{e.event_id}") or (
                facts["measures"] if e.event_id == tr.event.event_id else None
            )
            evs.append(
                {
                    "event_id": e.event_id,
                    "kind": e.kind,
                    "pollutant": e.pollutant,
                    "rule": e.rule,
                    "rule_title": rule(e.rule).title(locale),
                    "rule_source": rule(e.rule).source,
                    "state": e.state,
                    "start_ms": e.start_ms,
                    "end_ms": e.end_ms,
                    "limit_mg_m3": e.limit_mg_m3,
                    "peak_mg_m3": e.peak_mg_m3,
                    "mean_mg_m3": e.mean_mg_m3,
                    "windows": [ladder.window_summary(w, e, tz) for w in evidence(ledger, e, tr.at_ms)],
                    "judgement": e.judgement,
                    "bypass": [w for w in e.evidence if "bypass_readings" in w],
                    "measures": m,
                    # messages of the device ingest refused while the event ran, by reason
                    "dead_letters": p.record.get(f"dead_letters:{e.event_id}")
                    or (facts.get("dead_letters") if e.event_id == tr.event.event_id else None),
                }
            )
        episodes_out.append({**p.as_dict(), "events": evs})
    case = ladder.build_case(
        lead,
        evidence(ledger, lead, tr.at_ms),
        occurrence=step.step,
        lookback_days=policy.lookback_days,
        created_ms=step.start_ms,
        tz=tz,
        step={**step.as_dict(), "owner_delivery": owner_delivery(ledger, step, tz)},
        episodes=episodes_out,
        receipts=receipts(ledger, [p.episode_id for p in eps], tz),
        history=facts["history"],
    )
    ledger.upsert_case(case)
    return case


def evidence(ledger: Ledger, event: Event, at_ms: int) -> list[Any]:
    """An exceedance's windows from the ledger (valid or not: the service stores drained windows before it
    notifies), else the event's own evidence (a bypass's readings)."""
    until = event.end_ms if event.end_ms is not None else at_ms
    stored = ledger.list_windows(
        device_id=event.device_id,
        pollutant=event.pollutant or None,
        since_ms=event.start_ms,
        until_ms=until,
    )
    return list(stored) if stored and event.kind == EXCEEDANCE else list(event.evidence)


def owner_unreachable_task(
    tr: Transition, ep: Any, reasons: list[str], facts: dict[str, Any], tz: str
) -> dict[str, Any]:
    """The inspectors' task (and case, ``case_type`` owner_unreachable) when no owner channel took a
    step's notice: what to serve on site, and the offence as a case file shows it."""
    return {
        "task_id": f"owner_unreachable:{ep.episode_id}",
        "kind": "owner_unreachable",
        "episode_id": ep.episode_id,
        "event_id": tr.event.event_id,
        "start_ms": ep.start_ms,
        "end_ms": ep.end_ms,
        "restaurant_id": ep.restaurant_id,
        "district": ep.district,
        "device_id": ep.device_id,
        "level": ep.level,
        "notice_key": tr.key,
        "reasons": reasons,
        # what the notice to be served is about: the offence as the case file shows it
        "event_kind": tr.event.kind,
        "pollutant": tr.event.pollutant,
        "rule": tr.event.rule,
        "profile": tr.event.profile,
        "limit_mg_m3": tr.event.limit_mg_m3,
        "peak_mg_m3": tr.event.peak_mg_m3,
        "mean_mg_m3": tr.event.mean_mg_m3,
        "evidence": {
            "windows": [ladder.window_summary(w, tr.event, tz) for w in tr.event.evidence],
            "judgement": tr.event.judgement,
        },
        "measures": facts.get("measures"),
        "created_ms": tr.at_ms,
        "action": "serve the notice on site (现场送达) and record the owner's contact",
    }
