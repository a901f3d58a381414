"""The owner page's chart: the last days of the restaurant's oil-fume reference concentration against its
limit, one bar per hour with valid data (the hour's highest valid 10-minute mean, the value a judgement
would look at), drawn as inline SVG by ``templates/_owner_chart.html`` (no script, no inline style).

The windows come from the ledger (every finalised window is stored there with its mean of the
reference-converted readings); invalid windows (too few samples, fan off) are left out, as a judgement
leaves them out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.console.chart import nice_top
from ingest.timeutil import zone

W, H = 360, 200
LEFT, RIGHT, TOP, BOTTOM = 34, 6, 14, 26
HOUR_MS = 3_600_000


def hourly_peaks(windows: list[Any], since_ms: int, until_ms: int) -> dict[int, float]:
    """hour start (ms) -> the highest mean of a valid window starting in that hour."""
    out: dict[int, float] = {}
    for w in windows:
        if not w.valid or w.mean_mg_m3 is None or not (since_ms <= w.start_ms < until_ms):
            continue
        h = w.start_ms - w.start_ms % HOUR_MS
        out[h] = max(out.get(h, 0.0), float(w.mean_mg_m3))
    return out


def owner_chart(
    windows: list[Any], limit: float | None, since_ms: int, until_ms: int, tz: str
) -> dict[str, Any] | None:
    """The chart's geometry, or None when there is no valid window in the period."""
    peaks = hourly_peaks(windows, since_ms, until_ms)
    if not peaks:
        return None
    top = nice_top(max([*peaks.values(), float(limit or 0)]) * 1.1)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    span = max(HOUR_MS, until_ms - since_ms)
    bar_w = max(1.2, plot_w * HOUR_MS / span * 0.8)

    def x(ms: int) -> float:
        return round(LEFT + (ms - since_ms) / span * plot_w, 1)

    def y(v: float) -> float:
        return round(TOP + plot_h - (v / top) * plot_h, 1)

    bars = []
    for h, v in sorted(peaks.items()):
        over = limit is not None and v > limit
        near = limit is not None and not over and v >= 0.8 * limit
        bars.append(
            {
                "x": x(h),
                "w": round(bar_w, 1),
                "y": y(v),
                "h": round(TOP + plot_h - y(v), 1),
                "kind": "over" if over else ("near" if near else "under"),
                "title": f"{datetime.fromtimestamp(h / 1000, zone(tz)):%m-%d %H}时 · 最高 {v:.2f} mg/m³",
            }
        )
    days = []
    tzinfo = zone(tz)
    d = datetime.fromtimestamp(since_ms / 1000, tzinfo).replace(hour=0, minute=0, second=0, microsecond=0)
    while True:
        ms = int(d.timestamp() * 1000)
        if ms >= until_ms:
            break
        if ms >= since_ms:
            days.append({"x": x(ms), "text": f"{d:%m-%d}"})
        d = d.fromtimestamp(ms / 1000 + 86_400, tzinfo)
    return {
        "w": W,
        "h": H,
        "left": LEFT,
        "right": W - RIGHT,
        "top": TOP,
        "base": TOP + plot_h,
        "label_y": TOP + plot_h + 17,
        "bars": bars,
        "days": days,
        "ticks": [{"y": y(top * k / 4), "text": f"{top * k / 4:.1f}"} for k in range(5)],
        "limit_y": y(float(limit)) if limit else None,
        "limit_text": f"限值 {limit:.1f}" if limit else "",
        "over": sum(1 for b in bars if b["kind"] == "over"),
        "near": sum(1 for b in bars if b["kind"] == "near"),
        "hours": len(bars),
    }
