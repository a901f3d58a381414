"""The values of a data-integrity finding in its inspectors' notice (alerts/integrity)."""

from __future__ import annotations

from typing import Any

KEYS = ("integrity_detail",)


def integrity_values(event: Any, texts: dict[str, Any]) -> dict[str, str]:
    """``integrity_detail``: what the check found, in words ("—" for other events)."""
    j = event.judgement if event.kind == "data_integrity" else {}
    if not j:
        return {"integrity_detail": texts["none"]}
    if j.get("check") == "suspect_zero":
        hist = j.get("history") or []
        detail = texts["integrity_zero"].format(
            minutes=f"{j.get('minutes', 0):g}",
            limit=f"{j.get('zero_limit_mg_m3', 0):.2f}",
            windows=j.get("zero_windows", 0),
            n=len(hist),
            past=f"{max((h.get('zero_min') or 0 for h in hist), default=0):g}",
        )
    elif j.get("check") == "suspect_flatline":
        detail = texts["integrity_flatline"].format(
            minutes=f"{j.get('minutes', 0):g}", value=j.get("value_mg_m3"), readings=j.get("readings", 0)
        )
    else:
        detail = str(j.get("check", ""))
    return {"integrity_detail": detail}
