"""The events of a replay, vectorised: N/M hysteresis over the valid windows (``exceedance``) and bypass
runs over the readings (``purifier_off``), the same rules as the streaming detector (see
:mod:`alerts.detection.replay` for how the two stay identical).
"""

from __future__ import annotations

import numpy as np

from alerts.detection.window import DetectorConfig, exceedance_id, summary
from alerts.model import EXCEEDANCE, PURIFIER_OFF, Event


def _exceedances(
    pollutant: str,
    code: np.ndarray,
    ws: np.ndarray,
    mean: np.ndarray,
    mx: np.ndarray,
    samples: np.ndarray,
    exceeds: np.ndarray,
    lim: np.ndarray,
    meta: list[dict | None],
    config: DetectorConfig,
) -> list[Event]:
    """N/M hysteresis over the valid windows (ordered by device, start) of one pollutant."""
    m = len(code)
    if m == 0 or not exceeds.any():
        return []
    N, M, W = config.open_after_windows, config.close_after_windows, config.window_ms
    # segments: one device's valid windows, cut where the silence between two exceeds max_gap_s
    cut = np.empty(m, dtype=bool)
    cut[0] = True
    cut[1:] = code[1:] != code[:-1]
    if config.max_gap_s is not None:
        cut[1:] |= ws[1:] - (ws[:-1] + W) > config.max_gap_s * 1000
    seg = np.cumsum(cut)
    chg = cut.copy()
    chg[1:] |= exceeds[1:] != exceeds[:-1]
    rstart = np.flatnonzero(chg)
    rlen = np.diff(np.append(rstart, m))
    rtype = exceeds[rstart]
    rseg = seg[rstart]
    long_ = np.flatnonzero(np.where(rtype, rlen >= N, rlen >= M))
    if len(long_) == 0:
        return []
    lt, ls = rtype[long_], rseg[long_]
    # a long run changes the state when its type differs from the previous long run of the same segment;
    # the first long run of a segment matters only if it exceeds (each segment starts idle)
    same_seg = np.concatenate(([False], ls[1:] == ls[:-1]))
    prev_t = np.concatenate(([False], lt[:-1]))
    kept = long_[np.where(same_seg, lt != prev_t, lt)]
    ktype, kseg = rtype[kept], rseg[kept]
    out: list[Event] = []
    for i in np.flatnonzero(ktype):
        a = int(rstart[kept[i]])
        c = int(code[a])
        if i + 1 < len(kept) and kseg[i + 1] == kseg[i]:  # M compliant windows close it
            closed = True
            b = int(rstart[kept[i + 1]])
        else:  # open to the end of its segment; a gap closes it if the device has valid windows after
            b = int(np.searchsorted(seg, kseg[i], side="right"))
            closed = b < m and int(code[b]) == c
        idx = a + np.flatnonzero(exceeds[a:b])
        means = mean[idx].tolist()
        s = 0.0
        for x in means:
            s += x
        last_end = int(ws[idx[-1]]) + W
        k = config.max_evidence_windows
        ev_idx = idx[:k]
        evidence = [
            summary(w, w + W, mu, xx, n)
            for w, mu, xx, n in zip(
                ws[ev_idx].tolist(), means[:k], mx[ev_idx].tolist(), samples[ev_idx].tolist(), strict=True
            )
        ]
        start = int(ws[a])
        md = meta[c]
        assert md is not None
        out.append(
            Event(
                event_id=exceedance_id(md["device_id"], pollutant, start),
                kind=EXCEEDANCE,
                restaurant_id=md["restaurant_id"],
                device_id=md["device_id"],
                district=md["district"],
                start_ms=start,
                end_ms=last_end if closed else None,
                pollutant=pollutant,
                peak_mg_m3=max(means),
                mean_mg_m3=s / len(means),
                limit_mg_m3=float(lim[a]),
                profile=md["profile"],
                state="closed" if closed else "open",
                evidence=evidence,
            )
        )
    return out


def _purifier_off(
    t: np.ndarray,
    codes: np.ndarray,
    fan: np.ndarray,
    pur: np.ndarray,
    meta: list[dict | None],
    config: DetectorConfig,
) -> list[Event]:
    """purifier_off events over readings ordered by (device, time), duplicates removed."""
    bypass = (fan == 1) & (pur == 0)
    if not bypass.any():
        return []
    known = bypass | (pur == 1) | (fan == 0)
    ki = np.flatnonzero(known)
    kt, kc, kb = t[ki], codes[ki], bypass[ki]
    m = len(kt)
    gap_ms, min_ms = config.purifier_max_gap_s * 1000, config.purifier_off_ms
    # bypass runs: maximal stretches of bypass readings of one device between "ok" readings
    start_run = kb & np.concatenate(([True], (kc[1:] != kc[:-1]) | ~kb[:-1]))
    run_id = np.cumsum(start_run) - 1  # meaningful on bypass rows only
    # sub-runs: a bypass run split where two bypass readings are more than gap_ms apart
    big_gap = np.concatenate(([False], (kt[1:] - kt[:-1]) > gap_ms))
    start_sub = kb & (start_run | big_gap)
    sub_first = np.flatnonzero(start_sub)
    # end (exclusive) of each sub-run: next sub start, or end of its bypass run
    bi = np.flatnonzero(kb)
    ends_of_run = np.flatnonzero(kb & np.concatenate(((kc[1:] != kc[:-1]) | ~kb[1:], [True]))) + 1
    sub_run = run_id[sub_first]
    nxt_sub = np.append(sub_first[1:], m)
    run_end = ends_of_run[sub_run]
    sub_end = np.minimum(nxt_sub, run_end)
    dur = kt[sub_end - 1] - kt[sub_first]
    qual = dur >= min_ms
    if not qual.any() or len(bi) == 0:
        return []
    q = np.flatnonzero(qual)
    _, first_q = np.unique(sub_run[q], return_index=True)
    out: list[Event] = []
    for s_idx in q[first_q].tolist():
        a = int(sub_first[s_idx])
        r_end = int(run_end[s_idx])
        start = int(kt[a])
        c = int(kc[a])
        md = meta[c]
        assert md is not None
        closed = r_end < m and kc[r_end] == c
        end = int(kt[r_end]) if closed else None
        evidence = {
            "first_bypass_ms": start,
            "last_bypass_ms": int(kt[r_end - 1]),
            "bypass_readings": r_end - a,
        }
        out.append(
            Event(
                event_id=f"{PURIFIER_OFF}:{md['device_id']}::{start}",
                kind=PURIFIER_OFF,
                restaurant_id=md["restaurant_id"],
                device_id=md["device_id"],
                district=md["district"],
                start_ms=start,
                end_ms=end,
                profile=md["profile"],
                state="closed" if closed else "open",
                evidence=[evidence],
            )
        )
    return out
