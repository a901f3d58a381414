"""``suspect_clock``: the monitor's clock, judged from what the receiving side noted
(:class:`ingest.clock.ClockWatch`, hour by hour of the service):

- ``drift``: the clock offset (each hour's smallest lag, received minus reading time; the median over
  the service's hours) above ``clock_drift_s`` past the device's interval (data stamped at the start of
  its period arrives an interval later) or below ``-clock_drift_s`` (ahead; ingest refuses readings more
  than ``[validation] max_future_skew_s`` in the future). Judged only on the wall clock: a replay's or a
  backfill's receive times say nothing of the monitor's clock (the caller passes ``drift=False``).
- ``backwards``: ``clock_backwards_n`` steps back in time in the service (a backfill after an outage
  steps back once).
- ``qn_repeated``: ``clock_qn_repeats`` HJ 212 QNs repeated with another DataTime.
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import median

from alerts.integrity.checks import Finding
from ingest.clock import HOUR_MS, ClockHour

SUSPECT_CLOCK = "suspect_clock"


def suspect_clock(
    hours: Mapping[int, ClockHour],
    *,
    interval_s: float,
    drift_s: float,
    drift: bool,
    backwards_n: int,
    qn_repeats: int,
) -> Finding | None:
    if not hours:
        return None
    lags = [h.min_lag_ms for h in hours.values() if h.min_lag_ms is not None]
    offset_ms = median(lags) if lags else 0
    back = sum(h.backwards for h in hours.values())
    qns = sum(h.qn_repeats for h in hours.values())
    reasons = []
    if drift and drift_s > 0 and lags:
        if offset_ms > (drift_s + interval_s) * 1000 or offset_ms < -drift_s * 1000:
            reasons.append("drift")
    if back >= backwards_n:
        reasons.append("backwards")
    if qns >= qn_repeats:
        reasons.append("qn_repeated")
    if not reasons:
        return None
    keys = sorted(hours)
    flagged = [k for k in keys if hours[k].backwards or hours[k].qn_repeats] or keys
    if "drift" in reasons:
        flagged = keys
    examples = [q for k in keys for q in hours[k].qn_examples][:5]
    return Finding(
        SUSPECT_CLOCK,
        flagged[0],
        flagged[-1] + HOUR_MS,
        len(flagged) * 60.0,
        {
            "reasons": reasons,
            "offset_s": round(offset_ms / 1000, 1),
            "drift_s": drift_s,
            "drift_judged": drift,
            "interval_s": interval_s,
            "backwards": back,
            "max_back_s": round(max(h.max_back_ms for h in hours.values()) / 1000, 1),
            "backwards_n": backwards_n,
            "qn_repeats": qns,
            "qn_repeats_n": qn_repeats,
            "qn_examples": examples,
            "readings": sum(h.readings for h in hours.values()),
            "hours": len(keys),
        },
    )
