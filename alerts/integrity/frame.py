"""The data-integrity checks over a whole frame of stored readings at numpy speed (issue 16: the detector's
replay benchmark with the checks on).

:func:`integrity_frame` gives the findings :class:`alerts.integrity.watch.IntegrityWatch` gives when every
(device, service) of the frame is judged as if it had ended, with the frame as the readings store and
``windows`` (the windows frame of :func:`alerts.detection.replay.replay_frame`) as the ledger. The
services are judged in the order :class:`alerts.service_ends.ServiceEnds` hands them out (service end,
then device id), and only services in business hours (it hands out no other). The checks:
``suspect_flatline``, ``suspect_flow``, ``suspect_replay``, ``suspect_clone`` and, given ``windows``,
``suspect_zero``; the same check, span, minutes and detail. ``tests/test_integrity_frame.py`` checks it
against the streaming functions.

How (nearly all the time is numpy; Python only touches what may be a finding):

- Rows of registered devices only, in (device, time) order, duplicates dropped (the first row of the frame
  wins, as in the store). Columns as the store's query rows: ``time_ms``, ``device_id``,
  ``oil_fume_mg_m3``, ``flow_m3_h`` (optional: no flow check without it), ``fan_on`` (None/NA: off, as
  ``bool(None)``). The services' cut points over the frame's time range are found once
  (:meth:`~alerts.detection.hours.BusinessHours.service_of` from cut to cut), each row's service by
  ``np.searchsorted``.
- flatline: run-length encoding of equal fan-on values over the zero limit, broken by a gap longer than
  ``max(MAX_GAP_MS, 2 x the median interval of the device's service)``, the longest run per service (the
  first of equal ones), exactly :func:`alerts.integrity.checks.suspect_flatline`'s rules.
- flow: each service's minimum and maximum flow and oil fume decide whether it can be flagged (a median
  lies between them); those services go through :func:`alerts.integrity.flow.judge_flow` (the stream's own check).
- replay and clone: the fan-on series quantised to :data:`~alerts.integrity.series.QUANTUM`, the steps
  within each device, and a polynomial hash (uint64, wrapping) of every run of ``max(K,
  series_min_distinct - 1)`` steps: a match with ``series_min_distinct`` values has at least that many
  equal steps, not all 0, so runs whose steps are all 0 are skipped. Hashes seen twice (a pandas hash
  table) name the candidates: the same device's earlier readings within ``replay_lookback_days``
  (replay), devices of other restaurants in the same service (clone). Only those are compared, by
  :func:`~alerts.integrity.copies.suspect_replay` and a :class:`~alerts.integrity.copies.CloneIndex` fed
  in service-end order, so what they find is what the stream finds. Honest data has no candidates.
- zero: each service's zero minutes from ``windows``; a service with ``zero_min`` of them goes through
  :func:`~alerts.integrity.checks.judge_zero` with the device's windows of the look-back, as the watch
  gives it those it reads from the ledger.

Not here: ``suspect_clock``. It judges the receive times and HJ 212 QNs of the messages
(:class:`ingest.clock.ClockWatch`); a frame of stored readings holds neither. History (earlier readings,
earlier services' windows) is what the frame holds.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from alerts.detection.hours import BusinessHours
from alerts.detection.replay import _device_time_order, _floats, _tristate
from alerts.detection.window import DetectorConfig
from alerts.integrity.checks import MAX_GAP_MS, SUSPECT_FLATLINE, Finding, judge_zero
from alerts.integrity.copies import DAY_MS, CloneIndex, suspect_replay
from alerts.integrity.flow import HIGH_RATIO, judge_flow
from alerts.integrity.series import QUANTUM, K, Series
from alerts.integrity.settings import IntegritySettings
from alerts.model import WindowResult
from ingest.registry import Registry

__all__ = ["integrity_frame"]

_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: the hash's multiplier


class _Frame:
    """The frame's rows of registered devices in (device, time) order, and their (device, service) groups."""

    def __init__(self, df: pd.DataFrame, registry: Registry, hours: BusinessHours, extra_ms: list[int]):
        t = df["time_ms"].to_numpy(dtype=np.int64, copy=False)
        dev = df["device_id"]
        if isinstance(dev.dtype, pd.CategoricalDtype):
            codes, uniques = dev.cat.codes.to_numpy(), np.asarray(dev.cat.categories, dtype=object)
        else:
            codes, idx = pd.factorize(dev, sort=False)
            uniques = np.asarray(idx, dtype=object)
        self.devices = [registry.get(str(u)) for u in uniques]
        self.ids = [str(u) for u in uniques]
        known = np.array([d is not None for d in self.devices] + [False])
        rows = None if known[codes].all() else np.flatnonzero(known[codes])
        c, tt = (codes, t) if rows is None else (codes[rows], t[rows])
        perm = _device_time_order(c, tt, len(uniques))
        if perm is not None:
            rows = perm if rows is None else rows[perm]
            c, tt = c[perm], tt[perm]
        if len(tt) > 1:
            dup = (c[1:] == c[:-1]) & (tt[1:] == tt[:-1])
            if dup.any():
                keep = np.flatnonzero(np.concatenate(([True], ~dup)))
                rows = keep if rows is None else rows[keep]
                c, tt = c[keep], tt[keep]

        def take(a: np.ndarray) -> np.ndarray:
            return a if rows is None else a[rows]

        self.t, self.code, self.n = tt, c.astype(np.int64), len(tt)
        self.v = take(_floats(df["oil_fume_mg_m3"]))
        self.fan = take(_tristate(df["fan_on"])) if "fan_on" in df.columns else np.zeros(self.n, np.int8)
        self.q = take(_floats(df["flow_m3_h"])) if "flow_m3_h" in df.columns else None
        self.heads = np.array([d.stove_heads if d else 0 for d in self.devices] + [0], dtype=np.int64)
        self.restaurant = [d.restaurant_id if d else "" for d in self.devices]
        # services: the cut points over the time range, then each row's
        lo = min([int(tt.min())] + extra_ms) if self.n else min(extra_ms, default=0)
        hi = max([int(tt.max())] + extra_ms) if self.n else max(extra_ms, default=0)
        cuts = [hours.service_of(lo)]
        while cuts[-1][1] <= hi:
            cuts.append(hours.service_of(cuts[-1][1]))
        self.starts = np.array([x[0] for x in cuts], dtype=np.int64)
        self.ends = np.array([x[1] for x in cuts], dtype=np.int64)
        self.inside = np.array([x[2] for x in cuts], dtype=bool)
        sv = np.searchsorted(self.starts, tt, side="right") - 1
        brk = np.ones(self.n, dtype=bool)
        if self.n > 1:
            brk[1:] = (c[1:] != c[:-1]) | (sv[1:] != sv[:-1])
        self.gstart = np.flatnonzero(brk)
        self.gend = np.append(self.gstart[1:], self.n)
        self.gid = np.cumsum(brk) - 1
        self.g_code, self.g_sv = self.code[self.gstart], sv[self.gstart]
        self.judged = self.inside[self.g_sv]  # ServiceEnds hands out services in business hours only

    def service(self, g: int) -> tuple[int, int]:
        return int(self.starts[self.g_sv[g]]), int(self.ends[self.g_sv[g]])

    def order(self, groups: Iterable) -> list[int]:
        """Groups in the order ServiceEnds hands them out: service end, then device id."""
        return sorted((int(g) for g in groups), key=lambda g: (self.service(g)[1], self.ids[self.g_code[g]]))


def integrity_frame(
    df: pd.DataFrame,
    registry: Registry,
    settings: IntegritySettings,
    detector: DetectorConfig,
    windows: pd.DataFrame | None = None,
    ref_flow_per_head_m3_h: float = 2000.0,
) -> list[tuple[str, Finding]]:
    """(device, finding) of every service of the frame, ordered by start, device and check."""
    if not settings.enabled:
        return []
    hours = BusinessHours(detector.business_hours, detector.business_tz)
    w = None
    extra: list[int] = []
    if windows is not None and len(windows):
        w = windows[windows["pollutant"] == "oil_fume"]
        if len(w):
            extra = [int(w["start_ms"].min()), int(w["start_ms"].max())]
    fr = _Frame(df, registry, hours, extra)
    out: list[tuple[str, Finding]] = []
    if fr.n:
        out += _flatline(fr, settings)
        out += _flow(fr, settings, ref_flow_per_head_m3_h)
        out += _copies(fr, settings)
    if w is not None and len(w):
        out += _zero(fr, w, hours, settings, registry)
    out.sort(key=lambda p: (p[1].start_ms, p[0], p[1].check, p[1].end_ms))
    return out


def _flatline(fr: _Frame, s: IntegritySettings) -> list[tuple[str, Finding]]:
    t, v, gid = fr.t, fr.v, fr.gid
    ok = (fr.fan == 1) & (v > s.zero_limit_mg_m3) & fr.judged[gid]  # NaN > x is False
    same = np.zeros(fr.n, dtype=bool)
    same[1:] = ok[1:] & ok[:-1] & (gid[1:] == gid[:-1]) & (v[1:] == v[:-1])
    far = np.flatnonzero(same[1:] & (np.diff(t) > MAX_GAP_MS)) + 1
    for g in np.unique(gid[far]).tolist():  # the gap tolerance, only where a gap could break a run
        d = np.sort(np.diff(t[fr.gstart[g] : fr.gend[g]]))
        gap = max(MAX_GAP_MS, 2 * int(d[len(d) // 2]))
        at = far[gid[far] == g]
        same[at] = t[at] - t[at - 1] <= gap
    nxt = np.append(same[1:], False)
    rs, re = np.flatnonzero(ok & ~same), np.flatnonzero(ok & ~nxt)
    span = t[re] - t[rs]
    # minutes = span * n / (n - 1) <= 2 * span: the longest run of a service can only pass if this holds
    sel = np.flatnonzero((re > rs) & (2 * span >= s.flatline_min * 60_000 * 0.999))
    if not len(sel):
        return []
    rs, re, span, g = rs[sel], re[sel], span[sel], gid[rs[sel]]
    order = np.lexsort((rs, -span, g))  # per service: the longest run, the first of equal ones
    first = order[np.concatenate(([True], g[order][1:] != g[order][:-1]))]
    out = []
    for i in first.tolist():
        start, end, count = int(t[rs[i]]), int(t[re[i]]), int(re[i] - rs[i] + 1)
        step = (end - start) / (count - 1)
        minutes = (end - start + step) / 60_000
        if minutes >= s.flatline_min:
            detail = {"value_mg_m3": float(v[rs[i]]), "readings": count, "min_minutes": s.flatline_min}
            f = Finding(SUSPECT_FLATLINE, start, int(end + step), minutes, detail)
            out.append((fr.ids[fr.code[rs[i]]], f))
    return out


def _flow(fr: _Frame, s: IntegritySettings, ref: float) -> list[tuple[str, Finding]]:
    if fr.q is None:
        return []
    v, q, gs = fr.v, fr.q, fr.gstart
    pts = (fr.fan == 1) & ~np.isnan(v) & ~np.isnan(q)
    n = np.add.reduceat(pts.astype(np.int64), gs)
    qmin = np.minimum.reduceat(np.where(pts, q, np.inf), gs)
    qmax = np.maximum.reduceat(np.where(pts, q, -np.inf), gs)
    cmin = np.minimum.reduceat(np.where(pts, v, np.inf), gs)
    cmax = np.maximum.reduceat(np.where(pts, v, -np.inf), gs)
    heads = fr.heads[fr.g_code]
    expected = heads * ref
    # the median flow lies between the minimum and the maximum, a part's median too
    low_high = (qmin < s.flow_min_share * expected) | (qmax > s.flow_max_share * expected)
    drops = (
        (qmax > 0) & (qmin < (1 - s.flow_drop_share) * qmax) & (cmax >= HIGH_RATIO * np.maximum(cmin, 1e-9))
    )
    cand = fr.judged & (heads > 0) & (n >= s.flow_min_readings) & (low_high | drops)
    out = []
    for g in fr.order(np.flatnonzero(cand)):
        at = np.arange(gs[g], fr.gend[g])[pts[gs[g] : fr.gend[g]]]
        rows = [
            {"time_ms": a, "oil_fume_mg_m3": c, "flow_m3_h": f, "fan_on": True}
            for a, c, f in zip(fr.t[at].tolist(), v[at].tolist(), q[at].tolist(), strict=True)
        ]
        f = judge_flow(rows, int(heads[g]), ref, s)
        if f is not None:
            out.append((fr.ids[fr.g_code[g]], f))
    return out


def _copies(fr: _Frame, s: IntegritySettings) -> list[tuple[str, Finding]]:
    at = np.flatnonzero((fr.fan == 1) & ~np.isnan(fr.v))  # the series rows (series.series_of)
    kp = max(K, s.series_min_distinct - 1)
    m = len(at)
    if m <= kp:
        return []
    st, sc, sg = fr.t[at], fr.code[at], fr.gid[at]
    val = np.rint(fr.v[at] * QUANTUM).astype(np.int64)
    d = np.diff(val)
    L = m - kp  # runs j: steps j .. j+kp-1, readings j .. j+kp
    h = np.zeros(L, dtype=np.uint64)
    du = d.view(np.uint64)
    for i in range(kp):
        h *= _MIX
        h += du[i : i + L]
    nz = np.concatenate(([0], np.cumsum(d != 0)))
    pos = np.flatnonzero((sc[:L] == sc[kp:]) & (nz[kp : kp + L] > nz[:L]))
    keys = h[pos]
    srt = np.sort(keys)  # a SIMD sort: faster than a hash table here
    seen = np.unique(srt[1:][srt[1:] == srt[:-1]])  # hashes of more than one run
    if not len(seen):
        return []
    mask = np.uint64((1 << 24) - 1)  # a bitmap of the hashes' low bits first, the exact look-up then
    bits = np.zeros(1 << 24, dtype=bool)
    bits[(seen & mask).astype(np.intp)] = True
    may = np.flatnonzero(bits[(keys & mask).astype(np.intp)])
    pos = pos[may[seen[np.minimum(np.searchsorted(seen, keys[may]), len(seen) - 1)] == keys[may]]]
    g = np.where(sg[pos] == sg[pos + kp], sg[pos], -1)
    runs = pd.DataFrame({"h": h[pos], "code": sc[pos], "t0": st[pos], "t1": st[pos + kp], "g": g})
    cur = runs[(runs["g"] >= 0) & fr.judged[np.maximum(runs["g"].to_numpy(), 0)]]
    cur = cur.assign(sv=fr.g_sv[cur["g"].to_numpy()])
    lookback = int(s.replay_lookback_days * DAY_MS)
    # replay: a run of the service equal to one of the device's readings of the look-back before it
    pairs = cur.merge(runs, on=["h", "code"], suffixes=("", "_b"))
    begin = fr.starts[pairs["sv"].to_numpy()]
    pairs = pairs[(pairs["t1_b"].to_numpy() < begin) & (pairs["t0_b"].to_numpy() >= begin - lookback)]
    dev_lo = np.searchsorted(sc, np.arange(len(fr.ids) + 1))  # each device's series rows

    def series(lo: int, hi: int) -> Series:
        return Series(st[lo:hi].tolist(), val[lo:hi].tolist())

    def of_group(gr: int) -> Series:
        return series(*np.searchsorted(sg, [gr, gr + 1]).tolist())

    out = []
    for gr in fr.order(pairs["g"].unique()):
        start, _ = fr.service(gr)
        c = fr.g_code[gr]
        lo, hi = dev_lo[c], dev_lo[c + 1]
        a, b = np.searchsorted(st[lo:hi], [start - lookback, start]).tolist()
        f = suspect_replay(
            of_group(gr), series(lo + a, lo + b), min_minutes=s.replay_min, min_distinct=s.series_min_distinct
        )
        if f is not None:
            out.append((fr.ids[c], f))
    # clone: a run equal to one of another restaurant's device in the same service
    pairs = cur.merge(cur, on=["h", "sv"], suffixes=("", "_b"))
    rest = np.array(fr.restaurant + [""], dtype=object)
    pairs = pairs[rest[pairs["code"].to_numpy()] != rest[pairs["code_b"].to_numpy()]]
    index = CloneIndex()
    for gr in fr.order(pairs["g"].unique()):
        c = int(fr.g_code[gr])
        for cf in index.add(
            fr.ids[c],
            fr.restaurant[c],
            fr.service(gr),
            of_group(gr),
            min_minutes=s.clone_min,
            min_distinct=s.series_min_distinct,
        ):
            out.append((cf.device_id, cf.finding))
    return out


def _zero(
    fr: _Frame, w: pd.DataFrame, hours: BusinessHours, s: IntegritySettings, registry: Registry
) -> list[tuple[str, Finding]]:
    start = w["start_ms"].to_numpy(dtype=np.int64)
    mx = _floats(w["max_mg_m3"])
    zero = w["valid"].to_numpy(dtype=bool) & (mx <= s.zero_limit_mg_m3)  # NaN (no sample) is not zero
    if not zero.any():
        return []
    sv = np.searchsorted(fr.starts, start, side="right") - 1
    ids = w["device_id"].astype(str).to_numpy()
    z = pd.DataFrame({"id": ids, "sv": sv, "ms": w["end_ms"].to_numpy(dtype=np.int64) - start})
    z = z[zero & fr.inside[sv]].groupby(["sv", "id"])["ms"].sum()  # an upper bound of the stream's
    cand = [p for p in z[z >= s.zero_min * 60_000 * 0.999].index.tolist() if registry.get(p[1]) is not None]
    if not cand:
        return []
    lookback = int(s.lookback_days * DAY_MS)
    out = []
    for k, dev_id in sorted(cand, key=lambda p: (int(fr.ends[p[0]]), p[1])):
        svc = (int(fr.starts[k]), int(fr.ends[k]))
        mine = (ids == dev_id) & (start >= svc[1] - lookback) & (start < svc[1])
        f = judge_zero(_window_results(w[mine]), hours, svc, s)
        if f is not None:
            out.append((dev_id, f))
    return out


def _window_results(w: pd.DataFrame) -> list[WindowResult]:
    """Rows of a windows frame as the ledger's windows (NaN mean and max: None), by start."""
    w = w.sort_values("start_ms", kind="stable")
    out = []
    for r in w.itertuples(index=False):
        mean = None if pd.isna(r.mean_mg_m3) else float(r.mean_mg_m3)
        mx = None if pd.isna(r.max_mg_m3) else float(r.max_mg_m3)
        out.append(
            WindowResult(
                str(r.device_id), int(r.start_ms), int(r.end_ms), int(r.samples), int(r.expected),
                bool(r.valid), str(r.invalid_reason), mean, mx, bool(r.exceeds), str(r.pollutant),
            )
        )  # fmt: skip
    return out
