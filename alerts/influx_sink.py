"""Windows and events into InfluxDB, for the Grafana dashboards (the state database stays the record).

- ``fume_window``: one point per finalised window, time = window start; tags restaurant_id, device_id,
  district, pollutant; fields mean_mg_m3, max_mg_m3, limit_mg_m3 (floats), samples, expected, valid,
  exceeds, compliant (integers; compliant = valid and not exceeds).
- ``fume_event``: one point per event, time = event start, rewritten when the event changes (same series
  and time, so the newest state wins); tags restaurant_id, device_id, district, kind, pollutant; fields
  event_id, state, profile, level (strings), open, end_ms, duration_s, severity (integers), peak_mg_m3,
  mean_mg_m3, limit_mg_m3 (floats, exceedances only).
"""

from __future__ import annotations

from collections.abc import Iterable

from alerts.model import EDUCATION, ENFORCEMENT, WARNING, Event, WindowResult
from ingest.registry import Registry
from ingest.store.influx import _escape_str_field, _escape_tag

WINDOW_MEASUREMENT = "fume_window"
EVENT_MEASUREMENT = "fume_event"
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
