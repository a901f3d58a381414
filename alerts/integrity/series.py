"""Equal series: ``suspect_replay`` (a device's service equal to its own earlier data) and
``suspect_clone`` (equal to another restaurant's device in the same service).

A series is a device's oil-fume readings with the fan on, in time order, as reported, compared to
:data:`QUANTUM` (0.001 mg/m3, the resolution monitors report oil fume at). Two series match where their
*steps* (value minus the previous value) are equal: a logger replaying yesterday's file gives the same
steps, and so does one that adds a constant to hide it ("equal after a constant shift"). Equal steps from
a real sensor, whose last digit moves minute to minute, do not last.

:func:`longest_match` finds the longest run of equal steps between two series: the other series' runs of
:data:`K` steps are indexed, each run of ``a`` looked up, and a hit extended as far as the steps agree.
A match only counts with at least ``min_distinct`` distinct values: a constant or a zero run matches any
other one (that is ``suspect_flatline``'s and ``suspect_zero``'s business).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

QUANTUM = 1000
#: Steps in an indexed run (a hit is extended from there).
K = 5
#: Positions kept per indexed run (a periodic series repeats its runs; more adds time, not matches).
MAX_POSITIONS = 8


@dataclass(frozen=True, slots=True)
class Series:
    times: list[int]
    values: list[int]  # in QUANTUM units

    def __len__(self) -> int:
        return len(self.values)

    def steps(self) -> list[int]:
        v = self.values
        return [b - a for a, b in zip(v, v[1:], strict=False)]

    def minutes(self, i: int, n: int) -> float:
        """Minutes covered by readings ``i .. i+n-1`` (the last one counted for its interval)."""
        t = self.times
        step = (t[i + n - 1] - t[i]) / (n - 1) if n > 1 else 60_000
        return (t[i + n - 1] - t[i] + step) / 60_000


def series_of(rows: Iterable[dict[str, Any]]) -> Series:
    """The fan-on oil-fume series of stored readings (``store.query`` rows)."""
    pts = sorted(
        (int(r["time_ms"]), round(float(v) * QUANTUM))
        for r in rows
        if r.get("fan_on") and (v := r.get("oil_fume_mg_m3")) is not None and v == v
    )
    return Series([t for t, _ in pts], [v for _, v in pts])


def grams(steps: list[int], k: int = K) -> dict[tuple[int, ...], list[int]]:
    """Each run of ``k`` steps -> where it starts (at most :data:`MAX_POSITIONS`)."""
    out: dict[tuple[int, ...], list[int]] = {}
    for j in range(len(steps) - k + 1):
        at = out.setdefault(tuple(steps[j : j + k]), [])
        if len(at) < MAX_POSITIONS:
            at.append(j)
    return out


@dataclass(frozen=True, slots=True)
class Match:
    """Readings ``a_start .. a_start+readings-1`` of ``a`` equal those from ``b_start`` of ``b`` plus
    ``shift`` (QUANTUM units)."""

    a_start: int
    b_start: int
    readings: int
    shift: int
    distinct: int


def longest_match(
    a: Series, b: Series, *, min_distinct: int, b_grams: dict | None = None, k: int = K
) -> Match | None:
    """The longest run of ``a`` whose steps equal a run of ``b``'s, with ``min_distinct`` values."""
    da, db = a.steps(), b.steps()
    index = grams(db, k) if b_grams is None else b_grams
    best: Match | None = None
    i = 0
    while i <= len(da) - k:
        hits = index.get(tuple(da[i : i + k]))
        if not hits:
            i += 1
            continue
        run, at = 0, -1
        for j in hits:
            n = k
            while i + n < len(da) and j + n < len(db) and da[i + n] == db[j + n]:
                n += 1
            if n > run:
                run, at = n, j
        readings = run + 1
        distinct = len(set(a.values[i : i + readings]))
        if distinct >= min_distinct and (best is None or readings > best.readings):
            best = Match(i, at, readings, a.values[i] - b.values[at], distinct)
        i += run
    return best


def match_detail(a: Series, b: Series, m: Match) -> dict[str, Any]:
    """The evidence of a match: both spans, the readings, the shift (mg/m3)."""
    return {
        "readings": m.readings,
        "distinct_values": m.distinct,
        "shift_mg_m3": m.shift / QUANTUM,
        "other_start_ms": b.times[m.b_start],
        "other_end_ms": b.times[m.b_start + m.readings - 1],
        "other_minutes": round(b.minutes(m.b_start, m.readings), 1),
    }
