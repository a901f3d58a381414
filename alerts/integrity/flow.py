"""``suspect_flow``: the exhaust flow that the reference conversion rests on, implausible.

GB 18483-2001 judges the reference concentration ``C_ref = C * Q / (n * 2000)`` (``n`` the registered
stove heads, 2000 m3/h the reference flow per head): the flow ``Q`` the monitor reports scales what is
judged. From the stored readings of one service with the fan on (and a reported flow):

- ``flow_low``: the median flow is under ``flow_min_share`` of ``n * 2000``. Far less air than a fan for
  the registered heads moves: a stuck or tampered flow sensor (or too many registered heads) lowers
  ``C_ref`` as much.
- ``flow_high``: the median flow is over ``flow_max_share`` of ``n * 2000``. More than such a fan can
  move: a faulty flow sensor, too few registered heads, or dilution air let into the duct; the
  conversion is only right if the flow is.
- ``flow_drops_when_high``: the flow is low (``flow_drop_share`` under the median flow of the service's
  lower half by oil fume) in at least :data:`DROP_TOP_SHARE` of its high-concentration readings (its top
  quarter) and in at most :data:`DROP_REST_SHARE` of the lower half, the top quarter's median fume at
  least :data:`HIGH_RATIO` times the lower half's. A flow that falls just when the fume is high lowers
  ``C_ref`` just when it matters. An honest two-speed fan is not that: at its low speed the same
  emission is less diluted, so its low-speed readings do read higher, but they spread over the whole
  range of the service's fume (cooking rises and falls at either speed), while a tampered flow follows
  the fume itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import median
from typing import Any

from alerts.integrity.checks import Finding
from alerts.integrity.settings import IntegritySettings

SUSPECT_FLOW = "suspect_flow"
#: The top quarter's median concentration must be this many times the lower half's.
HIGH_RATIO = 1.5
#: flow_drops_when_high: the share of the top quarter with a low flow, at least, and of the lower half,
#: at most.
DROP_TOP_SHARE = 0.8
DROP_REST_SHARE = 0.1


def suspect_flow(
    rows: Iterable[dict[str, Any]],
    *,
    stove_heads: int,
    ref_per_head_m3_h: float,
    min_share: float,
    max_share: float,
    drop_share: float,
    min_readings: int,
) -> Finding | None:
    pts = sorted(
        (int(r["time_ms"]), float(c), float(q))
        for r in rows
        if r.get("fan_on")
        and (c := r.get("oil_fume_mg_m3")) is not None
        and (q := r.get("flow_m3_h")) is not None
        and c == c
        and q == q
    )
    if len(pts) < min_readings or stove_heads <= 0:
        return None
    expected = stove_heads * ref_per_head_m3_h
    flows = [q for _, _, q in pts]
    med = median(flows)
    reasons = []
    if med < min_share * expected:
        reasons.append("flow_low")
    elif med > max_share * expected:
        reasons.append("flow_high")
    by_c = sorted(pts, key=lambda p: p[1])
    n = len(by_c)
    low, top = by_c[: n // 2], by_c[n - max(n // 4, 1) :]
    q_low, q_top = median(p[2] for p in low), median(p[2] for p in top)
    c_low, c_top = median(p[1] for p in low), median(p[1] for p in top)
    cut = (1 - drop_share) * q_low
    low_in_top = sum(p[2] < cut for p in top) / len(top)
    low_in_rest = sum(p[2] < cut for p in low) / len(low)
    drops = (
        q_low > 0
        and low_in_top >= DROP_TOP_SHARE
        and low_in_rest <= DROP_REST_SHARE
        and c_top >= HIGH_RATIO * max(c_low, 1e-9)
    )
    if drops:
        reasons.append("flow_drops_when_high")
    if not reasons:
        return None
    span = top if reasons == ["flow_drops_when_high"] else pts
    start, end = min(p[0] for p in span), max(p[0] for p in span)
    step = (pts[-1][0] - pts[0][0]) / (n - 1) if n > 1 else 60_000
    return Finding(
        SUSPECT_FLOW,
        start,
        int(end + step),
        len(span) * step / 60_000,
        {
            "reasons": reasons,
            "readings": n,
            "stove_heads": stove_heads,
            "expected_flow_m3_h": expected,
            "median_flow_m3_h": round(med, 1),
            "min_share": min_share,
            "max_share": max_share,
            "high_readings": len(top),
            "high_median_mg_m3": round(c_top, 3),
            "high_median_flow_m3_h": round(q_top, 1),
            "low_median_mg_m3": round(c_low, 3),
            "low_median_flow_m3_h": round(q_low, 1),
            "high_low_flow_share": round(low_in_top, 3),
            "rest_low_flow_share": round(low_in_rest, 3),
            "drop_share": drop_share,
        },
    )


def judge_flow(
    rows: Iterable[dict[str, Any]], stove_heads: int, ref_per_head_m3_h: float, s: IntegritySettings
) -> Finding | None:
    """:func:`suspect_flow` with the ``[integrity]`` settings (the streaming watch and the frame path)."""
    return suspect_flow(
        rows,
        stove_heads=stove_heads,
        ref_per_head_m3_h=ref_per_head_m3_h,
        min_share=s.flow_min_share,
        max_share=s.flow_max_share,
        drop_share=s.flow_drop_share,
        min_readings=s.flow_min_readings,
    )
