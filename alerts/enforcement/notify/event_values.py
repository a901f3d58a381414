"""The values of a data-integrity finding in its inspectors' notice (alerts/integrity)."""

from __future__ import annotations

from typing import Any

from ingest.timeutil import format_local

KEYS = ("integrity_detail",)


def integrity_values(event: Any, texts: dict[str, Any], tz: str = "Asia/Shanghai") -> dict[str, str]:
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
    elif j.get("check") in ("suspect_replay", "suspect_clone"):
        detail = _copy_detail(j, texts, tz)
    elif j.get("check") == "suspect_clock":
        detail = _clock_detail(j, texts)
    elif j.get("check") == "suspect_flow":
        detail = _flow_detail(j, texts)
    else:
        detail = str(j.get("check", ""))
    return {"integrity_detail": detail}


def _copy_detail(j: dict, texts: dict[str, Any], tz: str) -> str:
    shift = j.get("shift_mg_m3") or 0
    key = "integrity_replay" if j.get("check") == "suspect_replay" else "integrity_clone"
    return texts[key].format(
        minutes=f"{j.get('minutes', 0):g}",
        readings=j.get("readings", 0),
        distinct=j.get("distinct_values", 0),
        other_start=format_local(j["other_start_ms"], tz) if j.get("other_start_ms") else "?",
        other_end=format_local(j["other_end_ms"], tz) if j.get("other_end_ms") else "?",
        other_device=j.get("other_device_id", "?"),
        other_restaurant=j.get("other_restaurant_id", "?"),
        shift=texts["integrity_shift"].format(shift=f"{shift:+.3f}") if shift else "",
    )


def _clock_detail(j: dict, texts: dict[str, Any]) -> str:
    words = texts["integrity_clock_reason"]
    offset = j.get("offset_s") or 0
    parts = []
    for r in j.get("reasons") or []:
        if r == "drift":
            way = texts["integrity_clock_way"]["behind" if offset > 0 else "ahead"]
            allowed = (j.get("drift_s") or 0) + ((j.get("interval_s") or 0) if offset > 0 else 0)
            parts.append(words[r].format(way=way, offset=f"{abs(offset):g}", allowed=f"{allowed:g}"))
        elif r == "backwards":
            parts.append(
                words[r].format(backwards=j.get("backwards", 0), max_back=f"{j.get('max_back_s', 0):g}")
            )
        elif r == "qn_repeated":
            ex = ", ".join(j.get("qn_examples") or []) or "?"
            parts.append(words[r].format(qn=j.get("qn_repeats", 0), examples=ex))
    return texts["integrity_clock"].format(reasons="; ".join(parts))


def _flow_detail(j: dict, texts: dict[str, Any]) -> str:
    words = texts["integrity_flow_reason"]
    parts = [
        words[r].format(
            median=f"{j.get('median_flow_m3_h', 0):g}",
            min_share=f"{(j.get('min_share') or 0):.0%}",
            max_share=f"{j.get('max_share', 0):g}",
            c_top=f"{j.get('high_median_mg_m3', 0):g}",
            q_top=f"{j.get('high_median_flow_m3_h', 0):g}",
            c_low=f"{j.get('low_median_mg_m3', 0):g}",
            q_low=f"{j.get('low_median_flow_m3_h', 0):g}",
        )
        for r in j.get("reasons") or []
        if r in words
    ]
    return texts["integrity_flow"].format(
        reasons="; ".join(parts),
        heads=j.get("stove_heads", "?"),
        expected=f"{j.get('expected_flow_m3_h', 0):g}",
    )
