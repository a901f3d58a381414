"""The evidence chart of a case page: each deciding window's mean and max against the limit.

Only geometry is computed here (bars, markers, the limit line, axis ticks in a 480 x 220 view box); the
template ``_chart.html`` draws it as inline SVG with presentation attributes (no script, no inline style,
so the strict Content-Security-Policy holds and the chart scales with the page).
"""

from __future__ import annotations

import math
from typing import Any

from alerts.console.labels import local_text, number, short_time

W, H = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 38, 8, 16, 28


def nice_top(value: float) -> float:
    """A round axis top at or above ``value`` (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x a power of ten)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * exp >= value:
            return m * exp
    return 10 * exp


def evidence_chart(windows: list[dict[str, Any]], limit: float | None, tz: str) -> dict[str, Any] | None:
    """The chart of ``windows`` (window summaries of a case record) or None when there is nothing to draw."""
    ws = [w for w in windows if w.get("mean_mg_m3") is not None or w.get("max_mg_m3") is not None]
    if not ws:
        return None
    top_value = max(
        [float(w.get("max_mg_m3") or 0) for w in ws]
        + [float(w.get("mean_mg_m3") or 0) for w in ws]
        + [float(limit or 0)]
    )
    top = nice_top(top_value * 1.08)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    step = plot_w / len(ws)
    bar_w = max(2.0, min(30.0, step * 0.62))

    def y(v: float) -> float:
        return round(TOP + plot_h - (v / top) * plot_h, 1)

    bars = []
    label_every = max(1, math.ceil(len(ws) / 6))
    for i, w in enumerate(ws):
        cx = LEFT + step * i + step / 2
        mean = w.get("mean_mg_m3")
        mx = w.get("max_mg_m3")
        valid = w.get("valid", True) and not w.get("dropped")
        kind = "invalid" if not valid else ("over" if w.get("exceeds") else "under")
        title = (
            f"{local_text(w.get('start') or w.get('start_ms'), tz)} 起 · 均值 {number(mean)} · "
            f"最大 {number(mx)} mg/m³" + ("" if valid else f" · 无效：{w.get('invalid_reason') or '已剔除'}")
        )
        bars.append(
            {
                "x": round(cx - bar_w / 2, 1),
                "w": round(bar_w, 1),
                "y": y(float(mean)) if mean is not None else None,
                "h": round(TOP + plot_h - y(float(mean)), 1) if mean is not None else 0,
                "max_y": y(float(mx)) if mx is not None else None,
                "cx": round(cx, 1),
                "kind": kind,
                "title": title,
                "label": short_time(w.get("start_ms"), tz)[-5:] if i % label_every == 0 else "",
            }
        )
    ticks = [{"y": y(top * k / 4), "text": number(top * k / 4, 1)} for k in range(5)]
    return {
        "w": W,
        "h": H,
        "left": LEFT,
        "right": W - RIGHT,
        "top": TOP,
        "base": TOP + plot_h,
        "label_y": TOP + plot_h + 19,
        "bars": bars,
        "ticks": ticks,
        "limit_y": y(float(limit)) if limit else None,
        "limit_text": f"限值 {number(limit, 1)}" if limit else "",
        "first": local_text(ws[0].get("start") or ws[0].get("start_ms"), tz),
        "last": local_text(ws[-1].get("end") or ws[-1].get("end_ms"), tz),
    }
