"""Windows and events into InfluxDB, for the Grafana dashboards (the state database stays the record).

- ``fume_window``: one point per finalised window, time = window start; tags restaurant_id, device_id,
  district, pollutant; fields mean_mg_m3, max_mg_m3, limit_mg_m3 (floats), samples, expected, valid,
  exceeds, compliant (integers; compliant = valid and not exceeds).
- ``fume_event``: one point per event, time = event start, rewritten when the event changes (same series
  and time, so the newest state wins); tags restaurant_id, device_id, district, kind, pollutant; fields
  event_id, state, profile, level, rule (strings; rule only when the event has one: the judgement rule,
  for a ``data_integrity`` finding its check), open, end_ms, duration_s, severity (integers),
  peak_mg_m3, mean_mg_m3, limit_mg_m3 (floats, exceedances only).
- ``fume_case``: one point per case of the case ledger, time = case start, rewritten when the case
  changes (same series and time: the newest state wins; every field is written each time, so a cleared
  outcome is cleared here too); tags restaurant_id, device_id, district, kind, pollutant (those of the
  case's lead event) and case_type (``enforcement`` unless the record says otherwise: a step's
  enforcement case and an inspectors' task may share a lead event, and must not share a point); fields
  case_id, event_id, status, outcome, assignee (strings, "" when unset), open (integer: 1 unless status
  is ``closed``), updated_ms (integer). Written by alerts/case_sync.py.
- ``fume_restaurant``: the registry, one point per restaurant each time it is written (at start of the
  alerts service and every few hours, alerts/case_sync.py); tags restaurant_id, district; fields name,
  address, device_ids (space-separated), devices, stove_heads (integers: the restaurant's devices and
  their stove heads summed), lat, lon (floats, WGS-84, when the registry has them), active (integer 1).
  A restaurant that left the registry or moved district gets one last point with active=0 under its
  old tags (a tombstone), so ``last("active") = 1`` selects the current registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from alerts.model import EDUCATION, ENFORCEMENT, WARNING, Event, WindowResult
from ingest.registry import Registry
from ingest.store.influx import _escape_str_field, _escape_tag

WINDOW_MEASUREMENT = "fume_window"
EVENT_MEASUREMENT = "fume_event"
CASE_MEASUREMENT = "fume_case"
RESTAURANT_MEASUREMENT = "fume_restaurant"
REMINDER_MEASUREMENT = "fume_reminder"
#: The case status that ends a case (every other status counts as open, as `fumewatch cases` lists it).
CLOSED = "closed"
SEVERITY = {ENFORCEMENT: 3, WARNING: 2, EDUCATION: 1}


def _tags(measurement: str, **tags: str) -> str:
    parts = [measurement]
    for k in sorted(tags):
        v = tags[k]
        if v:  # InfluxDB drops empty tag values; leave them out explicitly
            parts.append(f"{k}={_escape_tag(v)}")
    return ",".join(parts)


def window_lines(
    windows: Iterable[WindowResult], registry: Registry, limits: dict[tuple[str, str], float]
) -> list[str]:
    out = []
    for w in windows:
        d = registry.get(w.device_id)
        if d is None:
            continue
        fields = [
            f"samples={int(w.samples)}i",
            f"expected={int(w.expected)}i",
            f"valid={1 if w.valid else 0}i",
            f"exceeds={1 if w.exceeds else 0}i",
            f"compliant={1 if (w.valid and not w.exceeds) else 0}i",
        ]
        if w.mean_mg_m3 is not None:
            fields.append(f"mean_mg_m3={float(w.mean_mg_m3)!r}")
        if w.max_mg_m3 is not None:
            fields.append(f"max_mg_m3={float(w.max_mg_m3)!r}")
        limit = limits.get((w.device_id, w.pollutant))
        if limit is not None:
            fields.append(f"limit_mg_m3={float(limit)!r}")
        tags = _tags(
            WINDOW_MEASUREMENT,
            restaurant_id=d.restaurant_id,
            device_id=w.device_id,
            district=d.district,
            pollutant=w.pollutant,
        )
        out.append(f"{tags} {','.join(fields)} {int(w.start_ms)}")
    return out


def event_line(e: Event) -> str:
    fields = [
        f'event_id="{_escape_str_field(e.event_id)}"',
        f'state="{_escape_str_field(e.state)}"',
        f'profile="{_escape_str_field(e.profile)}"',
        f'level="{_escape_str_field(e.level)}"',
        f"open={1 if e.state == 'open' else 0}i",
        f"end_ms={int(e.end_ms or 0)}i",
        f"duration_s={int(((e.end_ms or e.start_ms) - e.start_ms) // 1000) if e.end_ms else 0}i",
        f"severity={SEVERITY.get(e.level, 0)}i",
    ]
    if e.rule:  # the dashboards' data-integrity table shows the check (suspect_zero, ...)
        fields.append(f'rule="{_escape_str_field(e.rule)}"')
    for name in ("peak_mg_m3", "mean_mg_m3", "limit_mg_m3"):
        v = getattr(e, name)
        if v is not None:
            fields.append(f"{name}={float(v)!r}")
    tags = _tags(
        EVENT_MEASUREMENT,
        restaurant_id=e.restaurant_id,
        device_id=e.device_id,
        district=e.district,
        kind=e.kind,
        pollutant=e.pollutant,
    )
    return f"{tags} {','.join(fields)} {int(e.start_ms)}"


def reminder_line(o: Any) -> str:
    """One maintenance reminder and its outcome (:class:`alerts.maintenance.outcomes.ReminderOutcome`), at
    the reminder's time: rewritten in place (same series and time) as the outcome becomes known, so the
    dashboards' count and sums stay one per reminder. The outcome is a field, not a tag, for that reason."""
    e = o.event
    fields = [
        f'event_id="{_escape_str_field(e.event_id)}"',
        f'outcome="{_escape_str_field(o.outcome)}"',
        *(
            f"{name}={1 if o.outcome == name else 0}i"
            for name in ("pending", "back_under", "exceeded", "still_above")
        ),
    ]
    for name, v in (("threshold_mg_m3", o.threshold_mg_m3), ("mean_mg_m3", e.mean_mg_m3)):
        if v is not None:
            fields.append(f"{name}={float(v)!r}")
    tags = _tags(
        REMINDER_MEASUREMENT, restaurant_id=e.restaurant_id, device_id=e.device_id, district=e.district
    )
    return f"{tags} {','.join(fields)} {int(e.start_ms)}"


def _text(value: Any) -> str:
    """A case record value as a string field: "" for None, a dict's name or id (an assignee record)."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return str(value.get("name") or value.get("id") or json.dumps(value, ensure_ascii=False))
    return str(value)


def case_line(case: Mapping[str, Any]) -> str:
    """The ``fume_case`` point of a case record (:meth:`Ledger.cases_updated_since`); ValueError when the
    record has no case_id or start time."""
    if not case.get("case_id") or not isinstance(case.get("start_ms"), int):
        raise ValueError(f"case record without case_id or start_ms: {str(case.get('case_id'))[:80]!r}")
    status = _text(case.get("status")) or "open"
    fields = [
        f'case_id="{_escape_str_field(_text(case["case_id"]))}"',
        f'event_id="{_escape_str_field(_text(case.get("event_id")))}"',
        f'status="{_escape_str_field(status)}"',
        f'outcome="{_escape_str_field(_text(case.get("outcome")))}"',
        f'assignee="{_escape_str_field(_text(case.get("assignee")))}"',
        f"open={0 if status == CLOSED else 1}i",
        f"updated_ms={int(case.get('updated_ms') or 0)}i",
    ]
    tags = _tags(
        CASE_MEASUREMENT,
        restaurant_id=_text(case.get("restaurant_id")),
        device_id=_text(case.get("device_id")),
        district=_text(case.get("district")),
        kind=_text(case.get("kind")),
        pollutant=_text(case.get("pollutant")),
        case_type=_text(case.get("case_type")) or "enforcement",
    )
    return f"{tags} {','.join(fields)} {int(case['start_ms'])}"


def restaurant_lines(registry: Registry, time_ms: int) -> list[str]:
    """One ``fume_restaurant`` point per restaurant of ``registry`` at ``time_ms``."""
    out = []
    for rid, devices in sorted(registry.restaurants().items()):
        first = devices[0]
        placed = next((d for d in devices if d.lat is not None and d.lon is not None), None)
        fields = [
            f'name="{_escape_str_field(first.name)}"',
            f'address="{_escape_str_field(first.address)}"',
            f'device_ids="{_escape_str_field(" ".join(d.device_id for d in devices))}"',
            f"devices={len(devices)}i",
            f"stove_heads={sum(d.stove_heads for d in devices)}i",
            "active=1i",
        ]
        if placed is not None:
            fields += [f"lat={float(placed.lat)!r}", f"lon={float(placed.lon)!r}"]  # type: ignore[arg-type]
        tags = _tags(RESTAURANT_MEASUREMENT, restaurant_id=rid, district=first.district)
        out.append(f"{tags} {','.join(fields)} {int(time_ms)}")
    return out


def restaurant_tombstone(restaurant_id: str, district: str, time_ms: int) -> str:
    """The last ``fume_restaurant`` point of a restaurant under tags it no longer has (active=0)."""
    tags = _tags(RESTAURANT_MEASUREMENT, restaurant_id=restaurant_id, district=district)
    return f"{tags} active=0i {int(time_ms)}"
