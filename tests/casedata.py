"""Test data shared by the case tests: a closed exceedance event, and its enforcement case in a ledger;
a maintenance reminder."""

from __future__ import annotations

from alerts.enforcement.ladder import build_case
from alerts.ledger import Ledger
from alerts.model import EXCEEDANCE, MAINTENANCE_REMINDER, Event
from ingest.timeutil import now_ms

H = 3_600_000


def exceedance(
    eid: str | None = None,
    start: int | None = None,
    *,
    restaurant: str = "R1",
    device: str = "D1",
    district: str = "朝阳区",
) -> Event:
    """A closed one-hour oil-fume exceedance at the enforcement level (peak 4.2, mean 3.1, limit 2.0)."""
    start = now_ms() - 3 * H if start is None else start
    return Event(
        event_id=eid or f"exceedance:{device}:oil_fume:{start}",
        kind=EXCEEDANCE,
        restaurant_id=restaurant,
        device_id=device,
        district=district,
        start_ms=start,
        end_ms=start + H,
        pollutant="oil_fume",
        peak_mg_m3=4.2,
        mean_mg_m3=3.1,
        limit_mg_m3=2.0,
        profile="gb18483",
        level="enforcement",
        state="closed",
        evidence=[],
    )


def reminder(at: int, judgement: dict, *, restaurant: str = "R1", device: str = "D1", **kw) -> Event:
    """A maintenance reminder (清洗提醒) at ``at`` (its service end) with the rule's ``judgement``."""
    return Event(
        event_id=f"maintenance:{device}:{at}",
        kind=MAINTENANCE_REMINDER,
        restaurant_id=restaurant,
        device_id=device,
        district="朝阳区",
        start_ms=at,
        end_ms=at,
        pollutant="oil_fume",
        limit_mg_m3=2.0,
        state="closed",
        rule="maintenance",
        judgement=judgement,
        **kw,
    )


def open_case(ledger: Ledger, e: Event | None = None) -> dict:
    """Store ``e`` (default: :func:`exceedance`) and its enforcement case; the case as the ledger has it."""
    e = e or exceedance()
    ledger.upsert_event(e)
    case = build_case(e)
    ledger.upsert_case(case)
    stored = ledger.get_case(case["case_id"])
    assert stored is not None
    return stored
