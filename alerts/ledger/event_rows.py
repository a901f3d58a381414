"""Events as rows of the ``events`` table and back (shared by the ledger's modules)."""

from __future__ import annotations

import json
from typing import Any

from alerts.ledger.schema import _EVENT_COLUMNS, events
from alerts.model import Event


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def _event_cols() -> list[Any]:
    return [events.c[c] for c in _EVENT_COLUMNS]


def asof_ms(e: Event) -> int:
    """The event time an event snapshot reflects: its end, else the latest end or reading time in its
    evidence, else its start. Snapshots of one open event only grow, so a larger value is newer."""
    best = e.end_ms if e.end_ms is not None else e.start_ms
    for w in e.evidence or ():
        if isinstance(w, dict):
            for k in ("end_ms", "last_bypass_ms", "last_ms", "detected_ms"):
                v = w.get(k)
                if isinstance(v, int) and v > best:
                    best = v
    return best


def _event_row(e: Event) -> dict[str, Any]:
    row = {c: getattr(e, c) for c in _EVENT_COLUMNS}
    row["evidence"] = _dumps(e.evidence or [])
    row["judgement"] = _dumps(e.judgement or {})
    row["asof_ms"] = asof_ms(e)
    return row


def _event_from_row(r: Any) -> Event:
    d = dict(zip(_EVENT_COLUMNS, r, strict=True))
    d["evidence"] = json.loads(d["evidence"])
    d["judgement"] = json.loads(d["judgement"] or "{}")
    return Event(**d)
