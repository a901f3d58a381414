"""The events of a replay: N/M hysteresis over the valid windows (``exceedance``, rule ``consecutive``,
vectorised), GB 18483-2001 groups (``exceedance``, rule ``gb18483``, the stream's GroupTracker in a loop
over the valid windows) and bypass runs over the readings (``purifier_off``, vectorised), the same rules
as the streaming detector (see :mod:`alerts.detection.replay` for how the two stay identical).
"""

from __future__ import annotations

import numpy as np

from alerts.detection.gb18483 import GroupTracker
from alerts.detection.hours import BusinessHours
from alerts.detection.window import DetectorConfig, exceedance_id, snapshot_event, summary
from alerts.model import EXCEEDANCE, PURIFIER_OFF, Event
from alerts.rules import BYPASS, CONSECUTIVE


def _exceedances(
    pollutant: str,
    code: np.ndarray,
    ws: np.ndarray,
    mean: np.ndarray,
    mx: np.ndarray,
    samples: np.ndarray,
    raw: np.ndarray | None,
    lower: np.ndarray,
    excl: list[dict[str, int] | None],
    exceeds: np.ndarray,
    lim: np.ndarray,
    meta: list[dict | None],
    config: DetectorConfig,
) -> list[Event]:
    """N/M hysteresis over the valid windows (ordered by device, start) of one pollutant; ``raw``: the
    windows' unconverted samples (oil fume), None for pm/nmhc; ``lower``: their lower-bound samples;
    ``excl``: their excluded readings by reason."""
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
        ev_raw = [None] * len(ev_idx) if raw is None else raw[ev_idx].tolist()
        evidence = [
            summary(w, w + W, mu, xx, n, u, lb, excl[j])
            for w, mu, xx, n, u, lb, j in zip(
                ws[ev_idx].tolist(),
                means[:k],
                mx[ev_idx].tolist(),
                samples[ev_idx].tolist(),
                ev_raw,
                lower[ev_idx].tolist(),
                ev_idx.tolist(),
                strict=True,
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
                rule=CONSECUTIVE,
                judgement={"open_after_windows": N, "close_after_windows": M},
            )
        )
    return out


def _groups(
    pollutant: str,
    code: np.ndarray,
    ws: np.ndarray,
    mean: np.ndarray,
    mx: np.ndarray,
    samples: np.ndarray,
    raw: np.ndarray | None,
    lower: np.ndarray,
    excl: list[dict[str, int] | None],
    lim: np.ndarray,
    meta: list[dict | None],
    config: DetectorConfig,
    final_wm: dict[int, int],
    business: BusinessHours,
) -> list[Event]:
    """gb18483 groups over the valid windows (ordered by device, start) of one pollutant: each device's
    windows through a :class:`GroupTracker`, then the service end for the device's final watermark
    (``raw``, ``lower``, ``excl`` as for :func:`_exceedances`)."""
    m = len(code)
    if m < 5:
        return []
    W = config.window_ms
    found: dict[str, Event] = {}
    codes, starts, means = code.tolist(), ws.tolist(), mean.tolist()
    maxs, counts, lims = mx.tolist(), samples.tolist(), lim.tolist()
    raws = [None] * m if raw is None else raw.tolist()
    lows = lower.tolist()
    bounds = np.flatnonzero(np.concatenate(([True], code[1:] != code[:-1], [True])))
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if b - a < 5:
            continue  # fewer than 5 valid windows in all: no group
        c = codes[a]
        md = meta[c]
        assert md is not None
        info = dict(md, pollutant=pollutant, limit_mg_m3=float(lims[a]))
        tr = GroupTracker()
        for j in range(a, b):
            s = starts[j]
            w = summary(s, s + W, means[j], maxs[j], counts[j], raws[j], lows[j], excl[j])
            for t in tr.feed(w, False, info, config, business.service_of(s)):
                found[t.event.event_id] = t.event
        if tr.due(final_wm[c], W):
            for t in tr.expire():
                found[t.event.event_id] = t.event
        elif tr.event is not None:
            found[tr.event.event_id] = snapshot_event(tr.event)
    return list(found.values())


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
                rule=BYPASS,
            )
        )
    return out
