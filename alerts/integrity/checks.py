"""The data-integrity checks: pure functions of one service of one device.

``suspect_zero`` (an unplugged, covered or bypassed sensor reads 0.00 while the kitchen cooks). From the
ledger's windows: a valid window (the fan ran, data complete) whose highest reading is at or under
``zero_limit_mg_m3`` is a zero window. The service's zero windows, 10 minutes each, must add up to
``zero_min`` (30) (not necessarily in one run: the fan may stop in between), and the device must have
earlier valid services (within ``lookback_days``, the last ``zero_history_services`` of them) of which none
had as many: a kitchen whose readings were always that low while the fan ran is a genuinely quiet
kitchen (or one broken for longer than the look-back), not a sensor that just failed.

``suspect_flatline`` (a stuck sensor or a logger sending a constant). From the stored readings: the longest
run of readings with the fan on carrying exactly the same oil-fume value (equal as reported: the store
keeps what the monitor sent) must reach ``flatline_min`` (60). Values at or under the zero limit are the
zero check's business. A run ends at a different value, at a reading with the fan off or unknown, or at a
gap without readings longer than twice the device's own interval (at least ``MAX_GAP_MS``). Real sensors vary in their last digit minute to minute,
so a constant-but-noisy kitchen is not a flatline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerts.detection.hours import BusinessHours
from alerts.integrity.settings import IntegritySettings
from alerts.model import WindowResult

SUSPECT_ZERO = "suspect_zero"
SUSPECT_FLATLINE = "suspect_flatline"
CHECKS = (SUSPECT_ZERO, SUSPECT_FLATLINE)
#: A flatline run survives a gap without readings up to this long (a lost message or two).
MAX_GAP_MS = 5 * 60_000


@dataclass(frozen=True, slots=True)
class Finding:
    """What a check found: the span, its length and the numbers behind it (the event's judgement)."""

    check: str
    start_ms: int
    end_ms: int
    minutes: float
    detail: dict[str, Any] = field(default_factory=dict)


def zero_windows(windows: Sequence[WindowResult], limit: float) -> list[WindowResult]:
    """The zero windows: valid (the fan ran, data complete) with the highest reading at or under ``limit``."""
    return [w for w in windows if w.valid and w.max_mg_m3 is not None and w.max_mg_m3 <= limit]


def _zero_minutes(windows: Sequence[WindowResult], limit: float) -> float:
    return sum(w.end_ms - w.start_ms for w in zero_windows(windows, limit)) / 60_000


def suspect_zero(
    service: Sequence[WindowResult],
    history: dict[tuple[int, int], Sequence[WindowResult]],
    *,
    min_minutes: float,
    limit: float,
    history_services: int,
) -> Finding | None:
    """``service``: the ended service's oil-fume windows; ``history``: earlier services' windows by
    (service start, end), oldest first."""
    zeros = sorted(zero_windows(service, limit), key=lambda w: w.start_ms)
    minutes = sum(w.end_ms - w.start_ms for w in zeros) / 60_000
    if minutes < min_minutes:
        return None
    past = [(k, ws) for k, ws in history.items() if any(w.valid for w in ws)][-history_services:]
    if not past:
        return None  # nothing to compare with: a new monitor is not suspected on its first service
    past_minutes = [_zero_minutes(ws, limit) for _, ws in past]
    if any(m >= min_minutes for m in past_minutes):
        return None  # the kitchen's earlier services were as quiet: no reason to suspect the sensor
    return Finding(
        SUSPECT_ZERO,
        zeros[0].start_ms,
        zeros[-1].end_ms,
        minutes,
        {
            "zero_windows": len(zeros),
            "valid_windows": sum(1 for w in service if w.valid),
            "zero_limit_mg_m3": limit,
            "min_minutes": min_minutes,
            "history": [
                {
                    "service_start_ms": k[0],
                    "service_end_ms": k[1],
                    "valid_windows": sum(1 for w in ws if w.valid),
                    "zero_min": m,
                    "mean_mg_m3": _mean([w.mean_mg_m3 for w in ws if w.valid]),
                }
                for (k, ws), m in zip(past, past_minutes, strict=True)
            ],
        },
    )


def suspect_flatline(
    readings: Iterable[dict[str, Any]], *, min_minutes: float, zero_limit: float
) -> Finding | None:
    """``readings``: the stored readings of the service (``store.query`` rows)."""
    best: tuple[int, int, int, float] | None = None  # (start, end, readings, value)
    start = last = -1
    n = 0
    value: float | None = None
    ordered = sorted(readings, key=lambda r: r["time_ms"])
    diffs = sorted(b["time_ms"] - a["time_ms"] for a, b in zip(ordered, ordered[1:], strict=False))
    # a gap survives up to twice the device's own interval (10-minute data), at least MAX_GAP_MS
    max_gap = max(MAX_GAP_MS, 2 * diffs[len(diffs) // 2]) if diffs else MAX_GAP_MS
    for r in ordered:
        v, t = r.get("oil_fume_mg_m3"), int(r["time_ms"])
        on = bool(r.get("fan_on"))
        if on and v is not None and v > zero_limit and v == value and t - last <= max_gap:
            last, n = t, n + 1
        else:
            if n and (best is None or last - start > best[1] - best[0]):
                best = (start, last, n, value)  # type: ignore[assignment]
            if on and v is not None and v > zero_limit:
                start = last = t
                n, value = 1, v
            else:
                n, value = 0, None
    if n and (best is None or last - start > best[1] - best[0]):
        best = (start, last, n, value)  # type: ignore[assignment]
    if best is None or best[2] < 2:
        return None
    s, e, count, val = best
    step = (e - s) / (count - 1)  # the reporting interval inside the run
    minutes = (e - s + step) / 60_000
    if minutes < min_minutes:
        return None
    return Finding(
        SUSPECT_FLATLINE,
        s,
        int(e + step),
        minutes,
        {"value_mg_m3": val, "readings": count, "min_minutes": min_minutes},
    )


def by_service(
    windows: Iterable[WindowResult], hours: BusinessHours
) -> dict[tuple[int, int], list[WindowResult]]:
    """Oil-fume windows grouped by their service (business hours only), oldest service first."""
    out: dict[tuple[int, int], list[WindowResult]] = {}
    for w in windows:
        if w.pollutant != "oil_fume":
            continue
        s, e, inside = hours.service_of(w.start_ms)
        if inside:
            out.setdefault((s, e), []).append(w)
    return dict(sorted(out.items()))


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def judge_zero(
    windows: Iterable[WindowResult], hours: BusinessHours, service: tuple[int, int], s: IntegritySettings
) -> Finding | None:
    """``suspect_zero`` of ``service`` (start, end) with the ``[integrity]`` settings, from the device's
    oil-fume windows of the look-back (the streaming watch reads them from the ledger, the frame path
    from the replay's windows): the service's windows against the earlier services'."""
    services = by_service(windows, hours)
    current = services.pop(service, [])
    history = {k: ws for k, ws in services.items() if k[1] <= service[0]}
    return suspect_zero(
        current,
        history,
        min_minutes=s.zero_min,
        limit=s.zero_limit_mg_m3,
        history_services=s.zero_history_services,
    )
