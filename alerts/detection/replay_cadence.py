"""The reporting interval judging each window of a replay, vectorised: the same numbers as the streaming
detector's per-device learning (:mod:`alerts.detection.cadence`, rule in :mod:`alerts.detection.window`).

The stream judges a window with the interval its device has when the window is finalised. Fed in time
order and flushed, that is the moment the device's first reading at or after ``window end + allowed
lateness`` is processed (its gap already learned), or the end of the stream for the last windows. So
per window: find that reading (one ``searchsorted`` over (device, time) keys), then take the median of
the up to 9 gaps ending there, in integers like the stream (twice the median), and snap it.
"""

from __future__ import annotations

import numpy as np

from alerts.detection.cadence import GAPS_KEPT, SNAP_TOLERANCE_PERMILLE, STANDARD_INTERVALS_S

_BIG = np.iinfo(np.int64).max // 4  # "no gap" (sorts after every real gap; a sum of two stays in range)


def window_intervals(
    t: np.ndarray,
    codes: np.ndarray,
    gstart: np.ndarray,
    window_ms: int,
    lateness_ms: int,
    fixed_s: np.ndarray,
    floor_s: int,
) -> np.ndarray:
    """Interval (s) judging each window: ``t``/``codes`` rows in (device, time) order without duplicates,
    ``gstart`` the first row of each window (windows in the same order), ``fixed_s`` per device code the
    registry's ``interval_s`` (0: learn it), ``floor_s`` ``DetectorConfig.expected_interval_s``."""
    n, n_win = len(t), len(gstart)
    g_code = codes[gstart]
    out = fixed_s[g_code].astype(np.int64)
    learn = out == 0
    if not learn.any():
        return out
    # device blocks of rows, each row's block, and each block's first row and end (exclusive)
    brk = np.empty(n, dtype=bool)
    brk[0] = True
    np.not_equal(codes[1:], codes[:-1], out=brk[1:])
    block_first = np.flatnonzero(brk)
    block_end = np.append(block_first[1:], n)
    blk = np.cumsum(brk) - 1
    # the finalising row of each window: its device's first row at or after end + lateness, else its last
    t0 = int(t.min())
    span = int(t.max()) - t0 + window_ms + lateness_ms + 1
    key = blk.astype(np.int64) * span + (t - t0)
    g_blk = blk[gstart]
    g_end = t[gstart] - t[gstart] % window_ms + window_ms
    target = g_blk.astype(np.int64) * span + (g_end + lateness_ms - t0)
    q = np.searchsorted(key, target, side="left")
    q = np.minimum(q, block_end[g_blk] - 1)  # none found: the device's last row (flush)
    q = q[learn]
    first = block_first[g_blk[learn]]
    # the gaps ending at q: rows q, q-1, ... while the row has a predecessor of the same device
    m = np.full((len(q), GAPS_KEPT), _BIG, dtype=np.int64)
    for k in range(GAPS_KEPT):
        r = q - k
        ok = r > first
        rr = np.where(ok, r, 1)
        m[:, k] = np.where(ok, t[rr] - t[rr - 1], _BIG)
    cnt = np.count_nonzero(m != _BIG, axis=1)
    m.sort(axis=1)
    half = cnt // 2
    upper = np.take_along_axis(m, half[:, None], axis=1)[:, 0]
    lower = np.take_along_axis(m, np.maximum(half - 1, 0)[:, None], axis=1)[:, 0]
    med2 = np.where(cnt % 2 == 1, 2 * upper, lower + upper)
    std = np.asarray(STANDARD_INTERVALS_S, dtype=np.int64)
    idx = np.searchsorted(2 * SNAP_TOLERANCE_PERMILLE * std, med2, side="right") - 1
    snapped = np.where(idx >= 0, std[np.maximum(idx, 0)], 0)
    learned = np.where(cnt > 0, np.maximum(floor_s, snapped), floor_s)
    out[learn] = learned
    assert len(out) == n_win
    return out
