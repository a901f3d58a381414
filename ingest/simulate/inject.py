"""Data-integrity faults the simulator can inject (``fumewatch simulate --inject flatline,zero,...``):
one kitchen per fault, each sending well-formed data that alerts/integrity should flag (docs/integrity.md).

The kitchens are the last "normal" ones of the registry (a clone takes two: the copy and its source), so
the drawn behaviours of the others do not change. Per local day, on the kitchen's own day plan:

- ``flatline``: from 30 minutes after the fan first starts, 70 minutes of one constant oil-fume value.
- ``zero``: from 30 minutes into dinner (the fan's first run after 15:00), 60 minutes of 0.00.
- ``replay``: from the second simulated day on, the day is the first day's plan with the oil fume
  shifted by +0.05 mg/m3 a day (a logger replaying an old file, adding a constant to hide it).
- ``clone``: the day is a copy of another restaurant's kitchen's (values, fan, flow; its own device id).
- ``clock``: at every half hour of fan time the logger's clock is set back 10 minutes (it keeps the
  offset until midnight): its readings step back in time, and their times repeat times already sent.
- ``flow``: the reported flow falls to 40 % whenever the oil fume is in the day's top quarter (fan on).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

FAULTS = ("flatline", "zero", "replay", "clone", "clock", "flow")
FLATLINE_AFTER_MIN, FLATLINE_MIN = 30.0, 70.0
ZERO_AFTER_MIN, ZERO_MIN = 30.0, 60.0
DINNER_FROM_MIN = 15 * 60.0
REPLAY_SHIFT_MG_M3 = 0.05
CLOCK_EVERY_MIN, CLOCK_BACK_MIN = 30.0, 10.0
FLOW_HIGH_QUANTILE, FLOW_DROP_TO = 0.75, 0.4


def parse(text: str) -> tuple[str, ...]:
    """``"flatline,zero"`` -> ``("flatline", "zero")``; a clear error naming an unknown fault."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in FAULTS]
    if bad:
        raise ValueError(f"--inject: unknown fault {bad[0]!r}; choose from {','.join(FAULTS)}")
    return tuple(n for n in FAULTS if n in names)


def assign(registry: Any, behaviour: dict[str, str], faults: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """device -> (fault, source device for a clone or ""), from the last normal kitchens."""
    normal = [d for d in registry if behaviour.get(d.device_id) == "normal"]
    out: dict[str, tuple[str, str]] = {}
    for fault in faults:
        if not normal:
            raise ValueError(
                f"--inject {fault}: no normal kitchen left to inject it into (more --restaurants)"
            )
        dev = normal.pop()
        source = ""
        if fault == "clone":
            others = [d for d in normal if d.restaurant_id != dev.restaurant_id]
            if not others:
                raise ValueError("--inject clone: needs a second restaurant's normal kitchen as its source")
            src = others[-1]
            normal.remove(src)
            source = src.device_id
        out[dev.device_id] = (fault, source)
    return out


def _fan_on_from(plan: Any, first: int, after_min: float, minutes: float, interval_s: int) -> list[int]:
    """Indices with the fan on, from ``after_min`` after the fan's first run at or after ``first``."""
    fan = plan.fan
    start = next((i for i in range(first, len(fan)) if fan[i]), None)
    if start is None:
        return []
    i0 = start + math.ceil(after_min * 60 / interval_s)
    n = math.ceil(minutes * 60 / interval_s)
    return [i for i in range(i0, min(len(fan), i0 + n)) if fan[i]]


def apply(
    fault: str, plan: Any, *, interval_s: int, previous: Any = None, source: Any = None, days: int = 1
) -> Any:
    """The day plan with ``fault`` injected (a new plan; ``previous``: the kitchen's plan of the day it
    replays, ``days`` later, for ``replay``; ``source``: the copied kitchen's plan, for ``clone``)."""
    if fault == "clone":
        return replace(source, sending=list(source.sending))
    if fault == "replay":
        shift = REPLAY_SHIFT_MG_M3 * days
        oil = [round(v + shift, 3) if f else v for v, f in zip(previous.oil_fume, previous.fan, strict=True)]
        return replace(previous, oil_fume=oil)
    oil, flow = list(plan.oil_fume), list(plan.flow)
    if fault == "flatline":
        idx = _fan_on_from(plan, 0, FLATLINE_AFTER_MIN, FLATLINE_MIN, interval_s)
        value = round(max(oil[idx[0]], 0.1), 3) if idx else 0.0
        for i in idx:
            oil[i] = value
    elif fault == "zero":
        first = math.ceil(DINNER_FROM_MIN * 60 / interval_s)
        for i in _fan_on_from(plan, first, ZERO_AFTER_MIN, ZERO_MIN, interval_s):
            oil[i] = 0.0
    elif fault == "flow":
        on = sorted(v for v, f in zip(oil, plan.fan, strict=True) if f)
        if on:
            cut = on[min(len(on) - 1, int(len(on) * FLOW_HIGH_QUANTILE))]
            flow = [
                q * FLOW_DROP_TO if f and v >= cut else q for v, q, f in zip(oil, flow, plan.fan, strict=True)
            ]
    elif fault == "clock":
        back, fan_min, offset = [], 0.0, 0
        step_min = interval_s / 60
        for f in plan.fan:
            if f:
                fan_min += step_min
                if fan_min >= CLOCK_EVERY_MIN:
                    fan_min -= CLOCK_EVERY_MIN
                    offset += int(CLOCK_BACK_MIN * 60_000)
            back.append(offset)
        return replace(plan, clock_back_ms=back)
    return replace(plan, oil_fume=oil, flow=flow)
