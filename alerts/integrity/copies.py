"""``suspect_replay`` and ``suspect_clone``: a service's series equal to data already seen
(:mod:`alerts.integrity.series` says what "equal" means).

- ``suspect_replay``: the service's series against the same device's fan-on readings of the
  ``replay_lookback_days`` before the service (read from the store once per service end). A run of
  ``replay_min`` minutes equal, or equal after a constant shift, is a logger replaying an old file.
- ``suspect_clone``: the service's series against the other devices' of the same service, through
  :class:`CloneIndex` (in memory, the services of the last :data:`KEEP_MS`). A run of ``clone_min``
  minutes equal to a device of another restaurant gives a finding for each of the two devices. Devices of
  one restaurant may share a duct and a logger, so they are not compared. The index is not saved and
  holds only the devices this alerts process judges (one partition with ``[alerts] partitions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alerts.integrity.checks import Finding
from alerts.integrity.series import K, Match, Series, grams, longest_match, match_detail

SUSPECT_REPLAY = "suspect_replay"
SUSPECT_CLONE = "suspect_clone"
DAY_MS = 86_400_000
#: How long a service's series stays in the clone index after it ended.
KEEP_MS = 2 * DAY_MS
#: One indexed run in SAMPLE is kept (a matching run of an hour of minute data has ~55 of them).
SAMPLE = 4


def _finding(check: str, a: Series, b: Series, m: Match, min_minutes: float, **extra: Any) -> Finding:
    """The finding on ``a``'s side of match ``m`` (its run of ``a``, the other run in the detail)."""
    end = a.times[m.a_start + m.readings - 1]
    return Finding(
        check,
        a.times[m.a_start],
        end + 60_000,
        a.minutes(m.a_start, m.readings),
        {**match_detail(a, b, m), **extra, "min_minutes": min_minutes},
    )


def suspect_replay(
    service: Series, earlier: Series, *, min_minutes: float, min_distinct: int
) -> Finding | None:
    if len(service) < K + 1 or len(earlier) < K + 1:
        return None
    m = longest_match(service, earlier, min_distinct=min_distinct)
    if m is None or service.minutes(m.a_start, m.readings) < min_minutes:
        return None
    return _finding(SUSPECT_REPLAY, service, earlier, m, min_minutes)


@dataclass(slots=True)
class _Entry:
    restaurant_id: str
    series: Series
    grams: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CloneFinding:
    device_id: str
    finding: Finding


class CloneIndex:
    """The series of recent services by device, and a sample of their step runs (run -> devices)."""

    def __init__(self) -> None:
        self._services: dict[tuple[int, int], dict[str, _Entry]] = {}
        self._runs: dict[tuple[int, int], dict[int, set[str]]] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._services.values())

    def add(
        self,
        device_id: str,
        restaurant_id: str,
        service: tuple[int, int],
        series: Series,
        *,
        min_minutes: float,
        min_distinct: int,
    ) -> list[CloneFinding]:
        """Index ``series`` and return the clone findings it makes (for both devices of each pair)."""
        self._prune(service[1])
        entries = self._services.setdefault(service, {})
        runs = self._runs.setdefault(service, {})
        steps = series.steps()
        mine = grams(steps)
        sampled = [h for h in (hash(g) for g in mine) if h % SAMPLE == 0]
        candidates: dict[str, int] = {}
        for h in sampled:
            for other in runs.get(h, ()):
                candidates[other] = candidates.get(other, 0) + 1
        out: list[CloneFinding] = []
        for other in sorted(candidates):
            e = entries.get(other)
            if e is None or other == device_id or e.restaurant_id == restaurant_id:
                continue
            m = longest_match(series, e.series, min_distinct=min_distinct, b_grams=e.grams)
            if m is None:
                continue
            minutes = series.minutes(m.a_start, m.readings)
            if minutes < min_minutes:
                continue
            # both devices of the pair: each finding on its own run, the other's in its detail
            back = Match(m.b_start, m.a_start, m.readings, -m.shift, m.distinct)
            out.append(
                CloneFinding(
                    device_id,
                    _finding(
                        SUSPECT_CLONE,
                        series,
                        e.series,
                        m,
                        min_minutes,
                        other_device_id=other,
                        other_restaurant_id=e.restaurant_id,
                    ),
                )
            )
            out.append(
                CloneFinding(
                    other,
                    _finding(
                        SUSPECT_CLONE,
                        e.series,
                        series,
                        back,
                        min_minutes,
                        other_device_id=device_id,
                        other_restaurant_id=restaurant_id,
                    ),
                )
            )
        entries[device_id] = _Entry(restaurant_id, series, mine)
        for h in sampled:
            runs.setdefault(h, set()).add(device_id)
        return out

    def _prune(self, now_ms: int) -> None:
        for key in [k for k in self._services if k[1] < now_ms - KEEP_MS]:
            del self._services[key]
            self._runs.pop(key, None)
