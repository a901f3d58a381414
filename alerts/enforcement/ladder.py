"""Graduated enforcement: 一次教育劝导、二次告诫、三次运用执法手段, and the case record of a step.

How events become episodes and episodes steps (correction periods, delivery-aware escalation) is in
:mod:`alerts.enforcement.episodes`. The levels:

- step 1: ``education`` (教育劝导) — guidance to the owner. A first minor offence corrected in time *may* go
  unpunished (首违不罚, 行政处罚法 §33), so this notice is guidance, not a penalty;
- step 2: ``warning`` (告诫) — a formal warning to the owner, inspectors in copy;
- step >= 3: ``enforcement`` (执法) — a case for inspectors with the evidence attached (:func:`build_case`),
  and a notice to the owner that the matter went to the inspectors, with the right to state and defend.

offline and late_data events are not offences and get no level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from alerts.enforcement.episodes import LADDER_KINDS, LadderPolicy, decide, level_for
from alerts.ledger import Ledger
from alerts.model import ENFORCEMENT, Event, WindowResult
from ingest.timeutil import format_display, now_ms

__all__ = ["DEFAULT_LOOKBACK_DAYS", "LadderPolicy", "assign_level", "build_case", "level_for"]

#: Default look-back period of the ladder, days (a setting: ``[notify] lookback_days``).
DEFAULT_LOOKBACK_DAYS = 365.0


def assign_level(
    ledger: Ledger,
    event: Event,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
    policy: LadderPolicy | None = None,
) -> str:
    """Store ``event``, put it into its episode and return the episode's level (education | warning |
    enforcement; "" for kinds that are not offences). See :func:`alerts.enforcement.episodes.decide`."""
    if event.kind not in LADDER_KINDS:
        return ""
    decision = decide(ledger, event, policy or LadderPolicy(lookback_days=lookback_days))
    event.level = decision.level
    event.episode_id = decision.episode.episode_id
    return decision.level


# ---------------------------------------------------------------------------------------------------------
# Enforcement case
# ---------------------------------------------------------------------------------------------------------


def case_id_for(event_id: str) -> str:
    return f"case-{event_id}"


def window_summary(
    window: WindowResult | Mapping[str, Any], event: Event | None = None, tz: str = "Asia/Shanghai"
) -> dict[str, Any]:
    """A finalised window as stored in a case (JSON-ready; times also as local ISO 8601 with offset).

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
    if w.get("unconverted"):
        out["unconverted"] = w["unconverted"]
    if w.get("lower_bound"):  # oil-fume samples above the instrument's range (flag T)
        out["lower_bound"] = w["lower_bound"]
    if w.get("excluded"):  # readings not judged, by reason (calibration, maintenance, ...)
        out["excluded"] = dict(w["excluded"])
    if w.get("dropped"):
        out["dropped"] = True
    for k in ("start", "end"):
        ms = out[f"{k}_ms"]
        out[k] = format_display(int(ms), tz) if isinstance(ms, int | float) else w.get(k)
    return out


def readings_summary(windows: Iterable[Mapping[str, Any]], tz: str = "Asia/Shanghai") -> dict[str, Any]:
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
        "unconverted_samples": sum(int(w.get("unconverted") or 0) for w in ws),
        "first_start": format_display(min(starts), tz) if starts else None,
        "last_end": format_display(max(ends), tz) if ends else None,
    }


def build_case(
    event: Event,
    evidence: Iterable[WindowResult | Mapping[str, Any]] | None = None,
    *,
    occurrence: int | None = None,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
    readings: Mapping[str, Any] | None = None,
    created_ms: int | None = None,
    tz: str = "Asia/Shanghai",
    step: Mapping[str, Any] | None = None,
    episodes: list[dict[str, Any]] | None = None,
    receipts: list[dict[str, Any]] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The enforcement case record for ``event`` (stored with :meth:`Ledger.upsert_case`).

    ``evidence``: the windows behind the event (WindowResult or window-summary dicts); defaults to
    ``event.evidence``. ``readings``: an optional summary of the raw readings from the store merged over
    the one computed from the windows. ``case_id`` is derived from the event id (the step's lead event),
    so building the case again (a repeat episode, a close) refreshes the same record.

    The notifier adds what a case file needs: ``step`` (the ladder step: episode, level, deadline,
    decision), ``episodes`` (every episode of the step with its events, rule, judgement, deciding
    windows, C/Q/n and fan/purifier states), ``receipts`` (every notice of those episodes: channel,
    target, status, time) and ``history`` (the earlier steps and whether their notices reached the owner).
    Times are epoch ms (``*_ms``) plus local ISO 8601 strings in ``tz``.
    """
    windows = [window_summary(w, event, tz) for w in (event.evidence if evidence is None else evidence)]
    summary = readings_summary(windows, tz)
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
        "rule": event.rule,
        "limit_mg_m3": event.limit_mg_m3,
        "peak_mg_m3": event.peak_mg_m3,
        "mean_mg_m3": event.mean_mg_m3,
        "start_ms": event.start_ms,
        "end_ms": event.end_ms,
        "start": format_display(event.start_ms, tz),
        "end": format_display(event.end_ms, tz) if event.end_ms is not None else None,
        "event_state": event.state,
        "status": "open",
        "created_ms": created_ms if created_ms is not None else now_ms(),
        "evidence": {"windows": windows, "readings": summary, "judgement": event.judgement},
        "step": dict(step) if step else None,
        "episodes": episodes or [],
        "receipts": receipts or [],
        "history": history or [],
    }
