"""Generation: the readings of every device, time-major (every device at t, then t + interval)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ingest.registry import Registry
from ingest.simulate import inject
from ingest.simulate.kitchen import _day_plan, _DayPlan, _kitchen, behaviours
from ingest.simulate.model import DEFAULT_MODEL, KITCHEN_TZ, KitchenModel
from ingest.timeutil import ms_to_utc, zone


@dataclass(slots=True)
class SimReading:
    """What a monitor would send: measured values (not reference-converted), flow in m3/h."""

    device_id: str
    time_ms: int
    oil_fume: float
    pm: float | None
    nmhc: float | None
    flow: float | None
    fan: bool
    purifier: bool


def _n_steps(hours: float, interval_s: int) -> int:
    if interval_s <= 0:
        raise ValueError("interval_s must be > 0")
    if hours <= 0:
        return 0
    return int(math.floor(hours * 3600 / interval_s + 1e-9))


def _local_day(t_ms: int) -> tuple[int, int, int, int]:
    """(day_ordinal, weekday, day_start_ms, day_end_ms) of the kitchen-local day holding ``t_ms``."""
    tz = zone(KITCHEN_TZ)
    d = ms_to_utc(t_ms).astimezone(tz).date()
    start = datetime(d.year, d.month, d.day, tzinfo=tz)
    end = datetime.combine(d + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return d.toordinal(), d.weekday(), int(start.timestamp() * 1000), int(end.timestamp() * 1000)


class _Series:
    """Day plans of every device, computed one local day at a time as the clock moves on."""

    def __init__(self, registry: Registry, seed: int, interval_s: int, model: KitchenModel) -> None:
        beh = behaviours(registry, seed, model=model)
        self.kitchens = [_kitchen(d, beh[d.device_id], seed, model) for d in registry]
        self.faults = inject.assign(registry, beh, model.inject) if model.inject else {}
        self.first_day: tuple[int, int] | None = None  # (ordinal, weekday) of the first day simulated
        self.seed, self.interval_s, self.model = seed, interval_s, model
        self.day_end_ms = -(2**62)
        self.day_start_ms = 0
        self.plans: list[_DayPlan] = []

    def at(self, t_ms: int) -> tuple[list[_DayPlan], int]:
        """Plans for the day holding ``t_ms`` and the grid index of ``t_ms`` in that day."""
        if not (self.day_start_ms <= t_ms < self.day_end_ms):
            ordinal, weekday, self.day_start_ms, self.day_end_ms = _local_day(t_ms)
            n = math.ceil((self.day_end_ms - self.day_start_ms) / (self.interval_s * 1000))
            self.plans = [
                _day_plan(k, self.seed, ordinal, weekday, n, self.interval_s, self.model)
                for k in self.kitchens
            ]
            if self.faults:
                self._inject(ordinal, weekday, n)
        return self.plans, (t_ms - self.day_start_ms) // (self.interval_s * 1000)

    def _inject(self, ordinal: int, weekday: int, n: int) -> None:
        by_id = {k.device_id: i for i, k in enumerate(self.kitchens)}
        plans = list(self.plans)
        for dev, (fault, source) in self.faults.items():
            i = by_id[dev]
            previous, days = None, 0
            if fault == "replay":
                if self.first_day is None:
                    self.first_day = (ordinal, weekday)
                days = ordinal - self.first_day[0]
                if days <= 0:
                    continue  # the first day is sent as it is: the file the later days replay
                k = self.kitchens[i]
                previous = _day_plan(k, self.seed, *self.first_day, n, self.interval_s, self.model)
            plans[i] = inject.apply(
                fault,
                self.plans[i],
                interval_s=self.interval_s,
                previous=previous,
                days=days,
                source=self.plans[by_id[source]] if source else None,
            )
        self.plans = plans


def generate(
    registry: Registry,
    start_ms: int,
    hours: float,
    *,
    seed: int = 1,
    interval_s: int = 60,
    model: KitchenModel = DEFAULT_MODEL,
) -> Iterator[SimReading]:
    """Readings from ``start_ms`` for ``hours``, every ``interval_s``: all devices at t, then t + interval.

    Offline devices simply yield nothing during their outage. Values at a time depend only on (seed,
    device, local day, grid position), so overlapping windows on the same grid agree.
    """
    series = _Series(registry, seed, interval_s, model)
    step_ms = interval_s * 1000
    for step in range(_n_steps(hours, interval_s)):
        t = start_ms + step * step_ms
        plans, i = series.at(t)
        for k, p in zip(series.kitchens, plans, strict=True):
            if p.sending[i]:
                stamp = t - p.clock_back_ms[i] if p.clock_back_ms else t
                yield SimReading(
                    k.device_id, stamp, p.oil_fume[i], p.pm[i], p.nmhc[i], p.flow[i], p.fan[i], p.purifier[i]
                )


def count_readings(
    registry: Registry,
    start_ms: int,
    hours: float,
    *,
    seed: int = 1,
    interval_s: int = 60,
    model: KitchenModel = DEFAULT_MODEL,
) -> int:
    """How many readings :func:`generate` yields for these arguments (without building them)."""
    series = _Series(registry, seed, interval_s, model)
    step_ms = interval_s * 1000
    total, step, n = 0, 0, _n_steps(hours, interval_s)
    while step < n:
        t = start_ms + step * step_ms
        plans, i = series.at(t)
        steps_today = min(n - step, math.ceil((series.day_end_ms - t) / step_ms))
        total += sum(sum(p.sending[i : i + steps_today]) for p in plans)
        step += steps_today
    return total
