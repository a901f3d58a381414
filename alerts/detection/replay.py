"""Vectorised replay: the detector's verdicts over a whole frame of readings at numpy speed.

:func:`replay_frame` gives exactly the ``exceedance`` and ``purifier_off`` events (ids, start, end, peak,
mean, limit, evidence, rule, judgement, state) under both exceedance rules and the finalised windows that the streaming
:class:`alerts.detection.detector.Detector` gives when fed the same readings in time order followed by
:meth:`~alerts.detection.detector.Detector.flush` (closed events as their ``closed`` transition carries them, events
still open as :meth:`~alerts.detection.detector.Detector.open_events` shows them). ``tests/test_replay.py`` checks
the two paths against each other on hypothesis-generated and random series.

How it stays identical:

- Rows are ordered by (device, time) with a stable sort, so for duplicate (device, time_ms) rows the first
  row of the frame wins, as in the stream. Rows of devices missing from the registry are skipped.
- Window sums are accumulated in event-time order, one sample rank at a time across all windows
  (``acc[windows with > j samples] += value of their j-th sample``), which reproduces the stream's
  sequential ``0.0 + v1 + v2 + ...`` bit for bit; numpy's pairwise ``sum`` would not.
- N/M hysteresis runs on run-length encoded valid windows: an event opens at the first run of >= N
  exceeding windows and closes at the next run of >= M compliant windows (invalid windows are dropped
  beforehand, as the stream skips them; with ``max_gap_s`` the valid windows are cut into segments at
  longer silences, and a segment end closes its open event if the device has valid windows later). Only
  the events themselves are built in a Python loop; the event mean is summed in window order like the
  stream's running sum.
- The ``gb18483`` rule feeds each (device, pollutant)'s valid window summaries, in window order, through
  the stream's own :class:`alerts.detection.gb18483.GroupTracker` in a Python loop, then closes the events
  whose service the device's final watermark passed. After the stream's flush that watermark is the end
  of the device's last window (the window of its latest reading); an event the stream closed earlier,
  when its watermark first passed the service end, closes with the same fields (end, judgement) since
  no window of that service can come after.
- ``ref_converted`` (optional column, default True): the oil-fume samples of rows with False are counted
  per window (``unconverted``), as the stream counts them; ``lower_bound`` (optional, default False) the
  same way (``lower_bound``).
- ``excluded`` (optional column, ``Reading.excluded``; ""/None = judged): those rows keep their place
  (they make windows, move the final watermark and win duplicates like any row) but their values are
  set to NaN, they take no part in the fan majority and their fan/purifier states are set to unknown
  (the stream skips them in the bypass rule); each window counts them by reason.
- The interval judging each window (registry ``interval_s``, else learned from the gaps) is the one the
  stream has when it finalises the window (:mod:`alerts.detection.replay_cadence`).
- A window with no sample (only excluded readings) has NaN mean and max where the stream has None.

Not covered here (streaming only): ``offline`` needs the wall clock and business hours, and ``late_data``
cannot happen in a time-ordered replay. :func:`replay_frame` returns the counts of duplicate and
unregistered rows in ``windows.attrs``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alerts.detection.hours import BusinessHours
from alerts.detection.replay_cadence import window_intervals
from alerts.detection.replay_events import _exceedances, _groups, _purifier_off
from alerts.detection.window import EXCLUDED, FAN_OFF, INCOMPLETE, DetectorConfig
from alerts.model import Event, WindowResult
from alerts.profiles import POLLUTANTS, ProfileError, Profiles, check_registry
from alerts.rules import GB18483
from ingest.registry import Registry

__all__ = ["replay_frame", "WINDOW_COLUMNS", "INPUT_COLUMNS"]

#: Columns of the windows frame (the fields of :class:`alerts.model.WindowResult`).
WINDOW_COLUMNS = tuple(WindowResult.__dataclass_fields__)

#: Input columns; only ``time_ms``, ``device_id`` and ``oil_fume_ref_mg_m3`` are required.
INPUT_COLUMNS = (
    "time_ms",
    "device_id",
    "oil_fume_ref_mg_m3",
    "pm_mg_m3",
    "nmhc_mg_m3",
    "fan_on",
    "purifier_on",
    "ref_converted",
    "lower_bound",
    "excluded",
)
_VALUE_COLUMNS = {"oil_fume": "oil_fume_ref_mg_m3", "pm": "pm_mg_m3", "nmhc": "nmhc_mg_m3"}
_REASONS = np.array(["", FAN_OFF, INCOMPLETE, EXCLUDED], dtype=object)


def replay_frame(
    df: pd.DataFrame, registry: Registry, profiles: Profiles, config: DetectorConfig | None = None
) -> tuple[list[Event], pd.DataFrame]:
    """Detect over a frame of readings; returns (events sorted by start then id, windows frame).

    ``df`` columns: ``time_ms`` (int epoch ms), ``device_id``, ``oil_fume_ref_mg_m3`` and optionally
    ``pm_mg_m3``, ``nmhc_mg_m3`` (NaN/None = not measured), ``fan_on``, ``purifier_on`` (bool, None/NA
    = unknown), ``ref_converted`` (bool, default and None/NA True), ``lower_bound`` (bool, default and
    None/NA False), ``excluded`` (str, ""/None: judged). Any row order; a ``category`` dtype
    ``device_id`` is fastest.
    """
    config = config or DetectorConfig()
    problems = check_registry(profiles, registry, config.default_profile)
    if problems:
        raise ProfileError("registry does not match the limit profiles:\n  " + "\n  ".join(problems))
    W = config.window_ms
    n_in = len(df)

    # -- columns -> arrays ------------------------------------------------------------------------------
    t = df["time_ms"].to_numpy(dtype=np.int64, copy=False)
    dev = df["device_id"]
    if isinstance(dev.dtype, pd.CategoricalDtype):
        codes = dev.cat.codes.to_numpy()
        uniques = np.asarray(dev.cat.categories, dtype=object)
    else:
        codes, uniq_idx = pd.factorize(dev, sort=False)
        uniques = np.asarray(uniq_idx, dtype=object)
    n_dev = len(uniques)

    # per device code: registered?, profile, limits
    registered = np.zeros(n_dev + 1, dtype=bool)  # last slot: code -1 (missing id)
    profile_of = np.empty(n_dev, dtype=object)
    groups = np.zeros(n_dev + 1, dtype=bool)  # device judged by the gb18483 rule
    limits = {p: np.full(n_dev, np.nan) for p in POLLUTANTS}
    fixed_s = np.zeros(n_dev + 1, dtype=np.int64)  # registry interval_s (0: learned from the data)
    meta: list[dict | None] = [None] * n_dev
    for u, dev_id in enumerate(uniques):
        d = registry.get(str(dev_id))
        if d is None:
            continue
        registered[u] = True
        prof = profiles.for_device(d, config.default_profile)
        profile_of[u] = prof.name
        groups[u] = (prof.rule or config.rule) == GB18483
        fixed_s[u] = d.interval_s or 0
        for p, v in prof.limits_for(d.stove_heads).items():
            limits[p][u] = v
        meta[u] = {
            "device_id": d.device_id,
            "restaurant_id": d.restaurant_id,
            "district": d.district,
            "profile": prof.name,
        }

    values = {}
    for p, col in _VALUE_COLUMNS.items():
        if col in df.columns and (p == "oil_fume" or not np.isnan(limits[p]).all()):
            values[p] = _floats(df[col])
    fan = _tristate(df["fan_on"]) if "fan_on" in df.columns else np.full(n_in, -1, dtype=np.int8)
    pur = _tristate(df["purifier_on"]) if "purifier_on" in df.columns else np.full(n_in, -1, dtype=np.int8)
    # 1 where the oil-fume value is the measured concentration (no reference conversion)
    raw = (_tristate(df["ref_converted"]) == 0).astype(np.int8) if "ref_converted" in df.columns else None
    if raw is not None and not raw.any():
        raw = None
    # 1 where the oil-fume value is a lower bound (HJ 212 flag T)
    low = (_tristate(df["lower_bound"]) == 1).astype(np.int8) if "lower_bound" in df.columns else None
    if low is not None and not low.any():
        low = None
    # excluded readings: 0 judged, else 1 + the index of the reason in ``reasons``
    exc, reasons = _reasons(df["excluded"]) if "excluded" in df.columns else (None, [])
    rows = {"t": t, "codes": codes, "fan": fan, "pur": pur, "raw": raw, "low": low, "exc": exc}

    def take(ix: np.ndarray) -> None:
        for name, a in rows.items():
            if a is not None:
                rows[name] = a[ix]
        for p in values:
            values[p] = values[p][ix]

    keep = registered[codes]  # code -1 indexes the last slot (False)
    unregistered = int(n_in - np.count_nonzero(keep))
    if unregistered:
        take(np.flatnonzero(keep))

    # -- order by (device, time), stable; drop duplicates (first row wins) -------------------------------
    perm = _device_time_order(rows["codes"], rows["t"], n_dev)
    if perm is not None:
        take(perm)
    t, codes = rows["t"], rows["codes"]
    n = len(t)
    duplicates = 0
    if n > 1:
        same = (codes[1:] == codes[:-1]) & (t[1:] == t[:-1])
        duplicates = int(np.count_nonzero(same))
        if duplicates:
            take(np.concatenate(([True], ~same)))
            t, codes = rows["t"], rows["codes"]
            n = len(t)
    fan, pur, raw, low, exc = rows["fan"], rows["pur"], rows["raw"], rows["low"], rows["exc"]
    # excluded rows: no values, no fan vote, fan/purifier unknown (not judged for bypass either)
    judged = None if exc is None else exc == 0
    if judged is not None:
        values = {p: np.where(judged, v, np.nan) for p, v in values.items()}
        fan, pur = np.where(judged, fan, -1).astype(np.int8), np.where(judged, pur, -1).astype(np.int8)

    events: list[Event] = []
    frames: list[pd.DataFrame] = []
    if n:
        # -- windows: contiguous groups of (device, window start) ------------------------------------------
        ws = t - t % W
        brk = np.empty(n, dtype=bool)
        brk[0] = True
        np.not_equal(codes[1:], codes[:-1], out=brk[1:])
        brk[1:] |= ws[1:] != ws[:-1]
        gstart = np.flatnonzero(brk)
        gsize = np.diff(np.append(gstart, n))
        g_code = codes[gstart]
        g_ws = ws[gstart]
        on = fan != 0 if judged is None else (fan != 0) & judged  # unknown counts as on
        fan_on = np.add.reduceat(on.astype(np.int32), gstart)
        n_judged = gsize if judged is None else np.add.reduceat(judged.astype(np.int32), gstart)
        fan_ok = (n_judged == 0) | (2 * fan_on > n_judged)
        sums, counts, maxs = _window_sums(values, gstart, gsize)
        oil_sample = ~np.isnan(values["oil_fume"])
        g_raw = np.zeros(len(gstart), dtype=np.int64)
        if raw is not None:  # unconverted oil-fume samples
            g_raw = np.add.reduceat((raw * oil_sample).astype(np.int64), gstart)
        g_low = np.zeros(len(gstart), dtype=np.int64)
        if low is not None:  # lower-bound oil-fume samples
            g_low = np.add.reduceat((low * oil_sample).astype(np.int64), gstart)
        g_nex, g_ex = _excluded_counts(exc, reasons, gstart)
        # samples expected and needed per window: by the interval the stream judges it with
        g_int = window_intervals(t, codes, gstart, W, config.lateness_ms, fixed_s, config.expected_interval_s)
        u_int, inv = np.unique(g_int, return_inverse=True)
        at = np.array([config.samples_at(int(i)) for i in u_int], dtype=np.int64).reshape(-1, 2)
        g_expected, g_min = at[inv, 0], at[inv, 1]
        # the stream's watermark after flush: the end of each device's last window
        last_row = np.append(gstart[1:], n)[np.append(g_code[1:] != g_code[:-1], True)] - 1
        final_wm = dict(zip(codes[last_row].tolist(), (ws[last_row] + W).tolist(), strict=True))
        business = BusinessHours(config.business_hours, config.business_tz)

        for p in POLLUTANTS:
            if p not in values:
                continue
            g_lim = limits[p][g_code]
            cnt = counts[p]
            oil = p == "oil_fume"
            # a window of excluded readings only is shown for oil fume, as the stream shows it
            emit = ((cnt > 0) | (g_nex > 0)) if oil else cnt > 0
            emit &= ~np.isnan(g_lim)
            if not emit.any():
                continue
            sel = np.flatnonzero(emit)
            c, lim = cnt[sel], g_lim[sel]
            with np.errstate(invalid="ignore"):
                mean = sums[p][sel] / c  # NaN without samples
            ok = fan_ok[sel]
            complete = c >= g_min[sel]
            valid = ok & complete
            exceeds = valid & (mean > lim)
            short = np.where(g_nex[sel] > 0, 3, 2)  # excluded | incomplete
            reason = np.where(~ok, 1, np.where(~complete, short, 0)).astype(np.int8)
            zeros = np.zeros(len(sel), dtype=np.int64)
            unconv = g_raw[sel] if oil else zeros
            lower = g_low[sel] if oil else zeros
            # one dict per row
            excl = [dict(g_ex.get(g, ())) for g in sel.tolist()] if g_ex else [{} for _ in range(len(sel))]
            frames.append(
                pd.DataFrame(
                    {
                        "device_id": pd.Categorical.from_codes(g_code[sel], categories=uniques),
                        "start_ms": g_ws[sel],
                        "end_ms": g_ws[sel] + W,
                        "samples": c.astype(np.int64),
                        "expected": g_expected[sel],
                        "valid": valid,
                        "invalid_reason": pd.Categorical.from_codes(reason, categories=_REASONS.tolist()),
                        "mean_mg_m3": mean,
                        "max_mg_m3": maxs[p][sel],
                        "exceeds": exceeds,
                        "pollutant": p,
                        "unconverted": unconv,
                        "excluded": excl,
                        "lower_bound": lower,
                    }
                )
            )
            gb = groups[g_code[sel]]
            v_raw = unconv if oil else None
            for rule_gb in (False, True):
                v = np.flatnonzero(valid & (gb == rule_gb))
                if len(v) == 0:
                    continue
                args = (p, g_code[sel][v], g_ws[sel][v], mean[v], maxs[p][sel][v], c[v])
                raw_v = None if v_raw is None else v_raw[v]
                # lower-bound samples, exclusions
                marks = (lower[v], [excl[i] for i in v.tolist()] if g_ex else [None] * len(v))
                if rule_gb:
                    events.extend(_groups(*args, raw_v, *marks, lim[v], meta, config, final_wm, business))
                else:
                    events.extend(_exceedances(*args, raw_v, *marks, exceeds[v], lim[v], meta, config))
        events.extend(_purifier_off(t, codes, fan, pur, meta, config))

    events.sort(key=lambda e: (e.start_ms, e.event_id))
    if frames:
        windows = pd.concat(frames, ignore_index=True)
    else:
        windows = pd.DataFrame({c: pd.Series(dtype=object) for c in WINDOW_COLUMNS})
    windows.attrs.update(readings=n_in, duplicates=duplicates, unregistered=unregistered)
    return events, windows


# -- helpers --------------------------------------------------------------------------------------------


def _floats(s: pd.Series) -> np.ndarray:
    if s.dtype.kind == "f":
        return s.to_numpy(dtype=np.float64, copy=False)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _tristate(s: pd.Series) -> np.ndarray:
    """bool-ish column -> int8: 1 True, 0 False, -1 unknown (None/NaN/NA)."""
    if s.dtype == bool:
        return s.to_numpy().astype(np.int8)
    f = s.astype("boolean").to_numpy(dtype=np.float64, na_value=np.nan)
    out = (f != 0).astype(np.int8)
    out[np.isnan(f)] = -1
    return out


def _reasons(s: pd.Series) -> tuple[np.ndarray | None, list[str]]:
    """``excluded`` column -> (int32 per row: 0 judged, else 1 + index into the reasons; the reasons).
    None when no row is excluded."""
    text = s.astype(object).where(s.notna(), "").astype(str).to_numpy(dtype=object)
    codes, uniq = pd.factorize(text, sort=True)
    reasons = [str(u) for u in uniq]
    if "" in reasons:  # sorted: "" comes first
        codes = codes.astype(np.int32)
        reasons = reasons[1:]
    else:
        codes = codes.astype(np.int32) + 1
    if not reasons:
        return None, []
    return codes, reasons


def _excluded_counts(
    exc: np.ndarray | None, reasons: list[str], gstart: np.ndarray
) -> tuple[np.ndarray, dict[int, dict[str, int]]]:
    """Per window: excluded readings, and for windows with any ``{reason: readings}`` (sorted by reason,
    as :attr:`alerts.detection.acc.WindowAcc.excluded`)."""
    if exc is None:
        return np.zeros(len(gstart), dtype=np.int64), {}
    total = np.add.reduceat((exc > 0).astype(np.int64), gstart)
    per = [np.add.reduceat((exc == r + 1).astype(np.int64), gstart) for r in range(len(reasons))]
    out: dict[int, dict[str, int]] = {}
    for g in np.flatnonzero(total).tolist():
        out[g] = {reasons[r]: int(per[r][g]) for r in range(len(reasons)) if per[r][g]}
    return total, out


def _device_time_order(codes: np.ndarray, t: np.ndarray, n_dev: int) -> np.ndarray | None:
    """Stable permutation to (device code, time) order; None when already in that order."""
    if len(t) < 2:
        return None
    if np.all(codes[1:] >= codes[:-1]):
        same = codes[1:] == codes[:-1]
        if np.all(t[1:][same] >= t[:-1][same]):
            return None
    perm = None
    if not np.all(t[1:] >= t[:-1]):
        perm = np.argsort(t, kind="stable")
    key = codes if perm is None else codes[perm]
    # numpy's stable sort is a radix sort for integers of 16 bits or less: O(n)
    if n_dev < 2**16:
        key = key.astype(np.uint16)
    elif n_dev < 2**31:
        key = key.astype(np.int32)
    order = np.argsort(key, kind="stable")
    return order if perm is None else perm[order]


def _window_sums(
    values: dict[str, np.ndarray], gstart: np.ndarray, gsize: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per window and pollutant: sequential sum (event-time order, from 0.0), sample count, max."""
    G = len(gstart)
    sums, counts, maxs, filled = {}, {}, {}, {}
    for p, v in values.items():
        nan = np.isnan(v)
        counts[p] = np.add.reduceat((~nan).astype(np.int32), gstart)
        maxs[p] = np.fmax.reduceat(v, gstart)  # NaN only where the window has no sample
        filled[p] = np.where(nan, 0.0, v)  # x + 0.0 == x: adding missing samples as 0.0 changes nothing
        sums[p] = np.zeros(G)
    # groups by size, largest first: those with more than j samples are a prefix of this order
    order = np.argsort(-gsize, kind="stable")
    sizes_desc = gsize[order]
    neg_sizes = -sizes_desc
    for j in range(int(sizes_desc[0]) if G else 0):
        k = int(np.searchsorted(neg_sizes, -j, side="left"))  # groups with size > j
        gi = order[:k]
        rows = gstart[gi] + j
        for p, f in filled.items():
            sums[p][gi] += f[rows]
    return sums, counts, maxs
