"""Graduated enforcement: 一次教育劝导、二次告诫、三次运用执法手段.

A restaurant's exceedance episodes are counted over a look-back period (default 365 days); overlapping
exceedance events of one restaurant (e.g. oil fume and particulate in the same service) are one episode.
The k-th episode whose start lies within the look-back period before this one's start (counting itself,
ordered by start time, then event id) gets:

- k = 1: ``education`` (教育劝导) — guidance to the owner. A first minor offence that is corrected in time
  may go unpunished (首违不罚, Administrative Penalty Law art. 33), so this notice is a reminder, not a penalty;
- k = 2: ``warning`` (告诫) — a formal warning to the owner, inspectors in copy;
- k >= 3: ``enforcement`` (执法) — a case for inspectors, with the evidence attached (:func:`build_case`).

The order uses event time (start), not arrival order, and only events already in the ledger: an event
keeps the level it was first assigned (stored with it), so replays and restarts give the same answer.
Other event kinds (purifier_off, offline, late_data) get no level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from alerts.ledger import Ledger
from alerts.model import EDUCATION, ENFORCEMENT, EXCEEDANCE, WARNING, Event, WindowResult
from ingest.timeutil import format_utc, now_ms

DAY_MS = 86_400_000
#: Default look-back period of the ladder, days (a setting: ``[notify] lookback_days``).
DEFAULT_LOOKBACK_DAYS = 365.0


def level_for(occurrence: int) -> str:
    """Ladder level of the ``occurrence``-th exceedance within the look-back period (1-based)."""
    if occurrence < 1:
        raise ValueError(f"occurrence must be >= 1, got {occurrence}")
    if occurrence == 1:
        return EDUCATION
    if occurrence == 2:
        return WARNING
    return ENFORCEMENT


def occurrence_of(ledger: Ledger, event: Event, lookback_days: float = DEFAULT_LOOKBACK_DAYS) -> int:
    """Position of ``event``'s episode among its restaurant's exceedance episodes in the look-back period.

    An episode is a run of overlapping exceedance events of one restaurant: oil fume and particulate
    over the limit during the same dinner service are one offence, not two, so they share one ladder
    step. Counts episodes of events with start in ``[event.start - lookback, event.start]`` (ties on start
    broken by event id), so the result depends on event time only. Prefer the value recorded at
    assignment (:meth:`Ledger.get_occurrence`) once set.
    """
    since = event.start_ms - int(lookback_days * DAY_MS)
    events = [
        e
        for e in ledger.list_events(
            since_ms=since, until_ms=event.start_ms + 1, restaurant_id=event.restaurant_id, kind=EXCEEDANCE
        )
        if since <= e.start_ms <= event.start_ms
    ]
    if not any(e.event_id == event.event_id for e in events):
        events.append(event)
    events.sort(key=lambda e: (e.start_ms, e.event_id))
    episode = 0
    episode_end: float = float("-inf")
    for e in events:
        if e.start_ms > episode_end:
            episode += 1
            episode_end = float("-inf")
        episode_end = max(episode_end, _known_end(e))
        if e.event_id == event.event_id:
            return episode
    return episode


def _known_end(e: Event) -> int:
    """End of an event as far as known: its end, else (still open) the end of its last evidence window.
    An event left open by a device that went silent must not swallow every later offence."""
    if e.end_ms is not None:
        return e.end_ms
    ends = [w.get("end_ms") for w in e.evidence if isinstance(w, dict) and w.get("end_ms") is not None]
    return int(max(ends)) if ends else e.start_ms


def assign_level(ledger: Ledger, event: Event, lookback_days: float = DEFAULT_LOOKBACK_DAYS) -> str:
    """Return (and store) the ladder level of ``event``: education | warning | enforcement, "" for other kinds.

    Stores (upserts) the event, so it counts towards its restaurant's later events. If the ledger already
    holds a level for it, that level is returned unchanged (stable across replays and restarts). Sets
    ``event.level`` as a convenience. One transaction: the count and the assignment cannot interleave with
    another writer.
    """
    if event.kind != EXCEEDANCE:
        return ""
    with ledger.transaction():
        stored = ledger.upsert_event(event)
        if stored.level:
            level = stored.level
        else:
            k = occurrence_of(ledger, stored, lookback_days)
            level = ledger.set_level(event.event_id, level_for(k), k)
    event.level = level
    return level


# ---------------------------------------------------------------------------------------------------------
# Enforcement case
# ---------------------------------------------------------------------------------------------------------


def case_id_for(event_id: str) -> str:
    return f"case-{event_id}"


def window_summary(window: WindowResult | Mapping[str, Any], event: Event | None = None) -> dict[str, Any]:
    """A finalised window as stored in a case (JSON-ready, times also RFC 3339).

    Accepts a :class:`WindowResult` or a window-summary dict as the detector keeps in ``Event.evidence``
    (which lists only the event's valid windows and may omit ``valid``/``exceeds``/``device_id``): missing
    fields come from ``event`` — valid is assumed, ``exceeds`` is ``mean > event.limit_mg_m3``.
    """
    w: Mapping[str, Any] = asdict(window) if is_dataclass(window) else window  # type: ignore[arg-type]
    mean = w.get("mean_mg_m3")
    exceeds = w.get("exceeds")
    if exceeds is None and event is not None and mean is not None and event.limit_mg_m3 is not None:
        exceeds = mean > event.limit_mg_m3
    out = {
        "device_id": w.get("device_id") or (event.device_id if event else ""),
        "pollutant": w.get("pollutant") or (event.pollutant if event and event.pollutant else "oil_fume"),
        "start_ms": w.get("start_ms"),
        "end_ms": w.get("end_ms"),
        "samples": w.get("samples"),
        "expected": w.get("expected"),
        "valid": w.get("valid", True),
        "invalid_reason": w.get("invalid_reason", ""),
        "mean_mg_m3": mean,
        "max_mg_m3": w.get("max_mg_m3"),
        "exceeds": exceeds,
    }
    for k in ("start", "end"):
        ms = out[f"{k}_ms"]
        out[k] = format_utc(int(ms)) if isinstance(ms, int | float) else w.get(k)
    return out


def readings_summary(windows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate of window summaries: counts, samples, sample-weighted mean and overall max (mg/m³)."""
    ws = list(windows)
    valid = [w for w in ws if w.get("valid")]
    samples = sum(int(w.get("samples") or 0) for w in ws)
    expected = sum(int(w.get("expected") or 0) for w in ws)
    weighted = [
        (w["mean_mg_m3"], int(w.get("samples") or 0)) for w in valid if w.get("mean_mg_m3") is not None
    ]
    total_weight = sum(n for _, n in weighted)
    if total_weight:
        mean = sum(m * n for m, n in weighted) / total_weight
    elif weighted:
        mean = sum(m for m, _ in weighted) / len(weighted)
    else:
        mean = None
    maxima = [w["max_mg_m3"] for w in valid if w.get("max_mg_m3") is not None]
    starts = [w["start_ms"] for w in ws if w.get("start_ms") is not None]
    ends = [w["end_ms"] for w in ws if w.get("end_ms") is not None]
    return {
        "windows": len(ws),
        "valid_windows": len(valid),
        "exceeding_windows": sum(1 for w in valid if w.get("exceeds")),
        "samples": samples,
        "expected_samples": expected,
        "mean_mg_m3": mean,
        "max_mg_m3": max(maxima) if maxima else None,
        "first_start": format_utc(min(starts)) if starts else None,
        "last_end": format_utc(max(ends)) if ends else None,
    }


def build_case(
    event: Event,
    evidence: Iterable[WindowResult | Mapping[str, Any]] | None = None,
    *,
    occurrence: int | None = None,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
    readings: Mapping[str, Any] | None = None,
    created_ms: int | None = None,
) -> dict[str, Any]:
    """The enforcement case record for ``event`` (stored with :meth:`Ledger.upsert_case`).

    ``evidence``: the windows behind the event (WindowResult or window-summary dicts); defaults to
    ``event.evidence``. ``readings``: an optional summary of the raw readings from the store (count, min,
    max, ...) merged over the one computed from the windows. ``case_id`` is derived from the event id,
    so building the case again (replay, close) refreshes the same record.
    """
    windows = [window_summary(w, event) for w in (event.evidence if evidence is None else evidence)]
    summary = readings_summary(windows)
    if readings:
        summary.update(dict(readings))
    return {
        "case_id": case_id_for(event.event_id),
        "event_id": event.event_id,
        "kind": event.kind,
        "level": ENFORCEMENT,
        "occurrence": occurrence,
        "lookback_days": lookback_days,
        "restaurant_id": event.restaurant_id,
        "device_id": event.device_id,
        "district": event.district,
        "pollutant": event.pollutant,
        "profile": event.profile,
        "limit_mg_m3": event.limit_mg_m3,
        "peak_mg_m3": event.peak_mg_m3,
        "mean_mg_m3": event.mean_mg_m3,
        "start_ms": event.start_ms,
        "end_ms": event.end_ms,
        "start": format_utc(event.start_ms),
        "end": format_utc(event.end_ms) if event.end_ms is not None else None,
        "event_state": event.state,
        "status": "open",
        "created_ms": created_ms if created_ms is not None else now_ms(),
        "evidence": {"windows": windows, "readings": summary},
    }
