"""A device's reporting cadence and the samples its windows need (the rule is in
:mod:`alerts.detection.window`).

Pure Python on purpose: the streaming detector calls :func:`learned_interval_s` once per finalised window
of a device without a registry interval (:meth:`alerts.detection.state._Dev.interval_for`); the replay
computes the same numbers with numpy (:func:`alerts.detection.replay_cadence.window_intervals`) and both
must agree exactly, so the median is kept in integers (twice the median, :func:`median2`).
"""

from __future__ import annotations

import math
from bisect import bisect_right

#: Standard reporting intervals in seconds (HJ 212 minute data, the common 2-, 5-, 10-, 15-, 30-minute
#: averages, hourly data). A learned median is snapped down to the largest of these at or below it.
STANDARD_INTERVALS_S = (60, 120, 300, 600, 900, 1800, 3600)

#: A median at least this share (in thousandths) of a standard interval counts as that interval: clocks
#: jitter (a 10-minute monitor stamping 10:59:59 after 10:50:00 gives a 599 s gap), so a median of 599 s
#: must read 600 s, not 300 s. 950: within 5 %.
SNAP_TOLERANCE_PERMILLE = 950

_THRESHOLDS2 = tuple(2 * SNAP_TOLERANCE_PERMILLE * c for c in STANDARD_INTERVALS_S)  # 2 x 95 % of each, in ms

#: Gaps remembered per device: the learned interval is the median of the last this many.
GAPS_KEPT = 9


def median2(gaps_ms: list[int]) -> int:
    """Twice the median of ``gaps_ms`` (non-empty), exact in integers: ``2 * middle`` for an odd count,
    the sum of the two middle values for an even one."""
    s = sorted(gaps_ms)
    n = len(s)
    k = n // 2
    return 2 * s[k] if n % 2 else s[k - 1] + s[k]


def learned_interval_s(gaps_ms: list[int], floor_s: int) -> int:
    """The interval a device's gaps say, in seconds: their median snapped down to the largest standard
    interval at or below it (within :data:`SNAP_TOLERANCE_PERMILLE`), never below ``floor_s`` (``DetectorConfig.expected_interval_s``); ``floor_s``
    while no gap is known."""
    if not gaps_ms:
        return floor_s
    i = bisect_right(_THRESHOLDS2, median2(gaps_ms))  # intervals at or below the median
    return max(floor_s, STANDARD_INTERVALS_S[i - 1]) if i else floor_s


def samples_per_window(window_s: int, interval_s: int, min_valid_share: float) -> tuple[int, int]:
    """(expected, minimum for a valid window) samples of a window at one reading every ``interval_s``:
    ``max(1, round(window_s / interval_s))`` and ``max(1, ceil(min_valid_share * window_s / interval_s))``
    (less 1e-9, so that a share landing exactly on a whole number is not rounded up by float noise)."""
    expected = max(1, round(window_s / interval_s))
    minimum = max(1, math.ceil(min_valid_share * window_s / interval_s - 1e-9))
    return expected, minimum
