"""Behaviours and the per-day kitchen model: each device's series for one local day.

The model and its knobs are described in :mod:`ingest.simulate.model`.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

import numpy as np

from ingest.registry import Device, Registry
from ingest.simulate.model import DEFAULT_MODEL, KitchenModel


def _share_count(n: int, share: float, minimum_n: int) -> int:
    if n < minimum_n or share <= 0:
        return 0
    return max(1, int(n * share + 0.5))


def behaviours(registry: Registry, seed: int, *, model: KitchenModel = DEFAULT_MODEL) -> dict[str, str]:
    """device_id -> "normal" | "worn_purifier" | "bypass" | "offline" | "flaky_sensor" | "silting_purifier"
    | "unplugged_sensor".

    Counts scale with n: round(n x share); at least one worn_purifier when n >= 3 and at least one of
    each other behaviour when n >= 10 (a share of 0 turns a behaviour off). With 50 devices:
    4 worn_purifier, 1 bypass, 1 offline, 1 flaky, 1 silting_purifier, 1 unplugged_sensor. Each behaviour takes the next
    devices of one shuffle in the order below, and silting_purifier comes last, so adding it turned only
    a normal kitchen into a silting one.
    """
    ids = sorted(d.device_id for d in registry)
    n = len(ids)
    rng = random.Random(f"fumewatch-behaviours:{seed}")
    rng.shuffle(ids)
    plan = [
        ("worn_purifier", _share_count(n, model.worn_purifier_share, 3)),
        ("bypass", _share_count(n, model.bypass_share, 10)),
        ("offline", _share_count(n, model.offline_share, 10)),
        ("flaky_sensor", _share_count(n, model.flaky_share, 10)),
        ("silting_purifier", _share_count(n, model.silting_share, 10)),
        ("unplugged_sensor", _share_count(n, model.unplugged_share, 10)),
    ]
    out = {d.device_id: "normal" for d in registry}
    pos = 0
    for name, count in plan:
        for dev in ids[pos : pos + count]:
            out[dev] = name
        pos += count
    for dev, name in model.behaviour_of:  # set by hand: a part of a registry replayed on its own
        if dev in out:
            out[dev] = name
    return out


@dataclass(frozen=True, slots=True)
class _Kitchen:
    """Per-restaurant habits, drawn once per (seed, device)."""

    device_id: str
    heads: int
    behaviour: str
    flow_factor: float
    base_ref_mg_m3: float
    lunch_start_min: float
    lunch_end_min: float
    dinner_start_min: float
    dinner_end_min: float
    all_day: bool
    pm_background_mg_m3: float
    pm_per_oil_fume: float
    nmhc_background_mg_m3: float
    nmhc_cooking_mg_m3: float
    has_pm: bool
    has_nmhc: bool
    silting_cleaned_ordinal: int = 0  # silting_purifier only: a local day (date.toordinal()) of a cleaning


_SEED_MASK = (1 << 64) - 1


def _seed_key(device_id: str) -> int:
    return zlib.crc32(device_id.encode("utf-8"))


def _kitchen(dev: Device, behaviour: str, seed: int, model: KitchenModel) -> _Kitchen:
    rng = np.random.default_rng([seed & _SEED_MASK, _seed_key(dev.device_id), 0x5717C])
    j = model.habit_jitter_min

    def habit(mean: float) -> float:
        return mean + float(np.clip(rng.normal(0.0, j / 2), -j, j))

    flow_factor = float(rng.uniform(*model.flow_factor))
    base = float(rng.uniform(*model.normal_ref_mg_m3))
    ls, le = habit(model.lunch_start_tod_min), habit(model.lunch_end_tod_min)
    ds, de = habit(model.dinner_start_tod_min), habit(model.dinner_end_tod_min)
    all_day = bool(rng.random() < model.all_day_share)
    pm_bg = float(rng.uniform(*model.pm_background_mg_m3))
    pm_k = float(rng.uniform(*model.pm_per_oil_fume))
    nmhc_bg = float(rng.uniform(*model.nmhc_background_mg_m3))
    nmhc_k = float(rng.uniform(*model.nmhc_cooking_mg_m3))
    has_pm = bool(rng.random() >= model.no_pm_sensor_share)
    has_nmhc = bool(rng.random() >= model.no_nmhc_sensor_share)
    worn_base = float(rng.uniform(*model.worn_ref_mg_m3))
    if behaviour == "worn_purifier":
        base = worn_base
    cleaned = 0
    if behaviour == "silting_purifier":
        cleaned = model.silting_cleaned_ordinal
        if cleaned is None:  # its own stream: the habits above are what they were before silting existed
            phase_rng = np.random.default_rng([seed & _SEED_MASK, _seed_key(dev.device_id), 0x5117])
            cleaned = int(phase_rng.integers(max(1, model.silting_cycle_days)))
    return _Kitchen(
        dev.device_id,
        dev.stove_heads,
        behaviour,
        flow_factor,
        base,
        ls,
        le,
        ds,
        de,
        all_day,
        pm_bg,
        pm_k,
        nmhc_bg,
        nmhc_k,
        has_pm,
        has_nmhc,
        cleaned,
    )


@dataclass(slots=True)
class _DayPlan:
    """One device's series for one local day on the interval grid (index 0 = local midnight)."""

    sending: list[bool]
    oil_fume: list[float]
    pm: list[float | None]
    nmhc: list[float | None]
    flow: list[float]
    fan: list[bool]
    purifier: list[bool]
    #: ``--inject clock`` only: how far the logger's clock is behind at each index (ms).
    clock_back_ms: list[int] | None = None


def _smooth_noise(rng: np.random.Generator, n: int, interval_s: float, tau_s: float) -> np.ndarray:
    """Unit-variance noise with correlation time ``tau_s`` (exponential moving kernel)."""
    length = max(1, math.ceil(4 * tau_s / interval_s))
    kernel = np.exp(-np.arange(length) * interval_s / tau_s)
    kernel /= math.sqrt(float(np.sum(kernel**2)))
    eps = rng.standard_normal(n + length - 1)
    return np.convolve(eps, kernel, mode="valid")[:n]


def _span_mask(tod: np.ndarray, start: float, end: float) -> np.ndarray:
    return (tod >= start) & (tod < end)


def _silting_ref(k: _Kitchen, day_ordinal: int, model: KitchenModel) -> float:
    """A silting purifier's C_ref at intensity 1 on a local day (``date.toordinal()``): a straight climb
    from ``silting_ref_start_mg_m3`` on the cleaning day to ``silting_ref_end_mg_m3`` on the cycle's last."""
    cycle = max(1, model.silting_cycle_days)
    d = (day_ordinal - k.silting_cleaned_ordinal) % cycle
    start, end = model.silting_ref_start_mg_m3, model.silting_ref_end_mg_m3
    return start + (end - start) * d / (cycle - 1) if cycle > 1 else start


def _day_plan(
    k: _Kitchen, seed: int, day_ordinal: int, weekday: int, n_steps: int, interval_s: int, model: KitchenModel
) -> _DayPlan:
    rng = np.random.default_rng([seed & _SEED_MASK, _seed_key(k.device_id), day_ordinal, 0xDA7])
    tod = np.arange(n_steps) * (interval_s / 60.0)  # minutes after local midnight
    dj = model.daily_jitter_min

    def jit() -> float:
        return float(np.clip(rng.normal(0.0, dj / 2), -dj, dj))

    ls, le = k.lunch_start_min + jit(), k.lunch_end_min + jit()
    ds, de = k.dinner_start_min + jit(), k.dinner_end_min + jit()
    prep = ls - float(rng.uniform(*model.prep_lead_min))
    dprep = ds - float(rng.uniform(*model.dinner_prep_lead_min))
    tail_l, tail_d = float(rng.uniform(*model.tail_min)), float(rng.uniform(*model.tail_min))
    day_factor = float(rng.uniform(*model.day_intensity_factor))
    if weekday >= 5:
        day_factor *= model.weekend_intensity_factor

    # Cooking intensity I(t) in [0, 1]; the fan runs wherever I > 0.
    intensity = np.zeros(n_steps)
    fan_lead = model.fan_lead_min
    intensity[_span_mask(tod, prep - fan_lead, prep)] = 0.05
    m = _span_mask(tod, prep, ls)
    intensity[m] = model.prep_intensity
    edge = model.peak_edge_intensity
    for start, end, tail in ((ls, le, tail_l), (ds, de, tail_d)):
        m = _span_mask(tod, start, end)
        x = (tod[m] - start) / (end - start)
        intensity[m] = edge + (1.0 - edge) * np.sin(np.pi * x) ** 1.5
        m = _span_mask(tod, end, end + tail)
        intensity[m] = 0.3 - 0.25 * (tod[m] - end) / tail
    if k.all_day:
        intensity[_span_mask(tod, le + tail_l, dprep)] = model.all_day_intensity
    m = _span_mask(tod, dprep, ds)
    intensity[m] = np.maximum(intensity[m], model.prep_intensity)
    fan = intensity > 0
    purifier = fan.copy()

    # Noise streams (always drawn, in this order, so behaviours do not shift each other's randomness).
    ref_noise = _smooth_noise(rng, n_steps, interval_s, model.noise_tau_s)
    flow_noise = _smooth_noise(rng, n_steps, interval_s, model.noise_tau_s)
    pm_noise = rng.standard_normal(n_steps)
    nmhc_noise = _smooth_noise(rng, n_steps, interval_s, model.noise_tau_s)
    bg = rng.uniform(*model.background_oil_fume_mg_m3, size=n_steps)
    pm_bg = k.pm_background_mg_m3 * rng.uniform(0.7, 1.3, size=n_steps)
    sigma = model.ref_noise_sigma
    base_ref = k.base_ref_mg_m3
    if k.behaviour == "silting_purifier":
        base_ref = _silting_ref(k, day_ordinal, model)
    c_ref = base_ref * day_factor * intensity * np.exp(sigma * ref_noise - sigma**2 / 2)

    peaks = [(ls, le), (ds, de)]
    sending = np.ones(n_steps, dtype=bool)
    spike = np.ones(n_steps)
    if k.behaviour == "worn_purifier":
        chosen = [rng.random() < model.worn_episode_prob for _ in peaks]
        if not any(chosen):
            chosen[int(rng.integers(len(peaks)))] = True
        ep_noise = _smooth_noise(rng, n_steps, interval_s, model.noise_tau_s)
        for (start, end), on in zip(peaks, chosen, strict=True):
            if not on:
                continue
            dur = min(float(rng.uniform(*model.worn_episode_min)), end - start - 10)
            e0 = float(rng.uniform(start, end - dur))
            level = float(rng.uniform(*model.worn_episode_ref_mg_m3))
            m = _span_mask(tod, e0, e0 + dur)
            ramp = np.clip(np.minimum(tod[m] - e0, e0 + dur - tod[m]) / 4.0, 0.0, 1.0)
            episode = level * (1 + model.worn_episode_noise_rel * ep_noise[m])
            c_ref[m] = np.maximum(c_ref[m], c_ref[m] + ramp * (episode - c_ref[m]))
    elif k.behaviour == "bypass":
        chosen = [rng.random() < model.bypass_prob for _ in peaks]
        if not any(chosen):
            chosen[int(rng.integers(len(peaks)))] = True
        for (start, end), on in zip(peaks, chosen, strict=True):
            if not on:
                continue
            dur = min(float(rng.uniform(*model.bypass_stretch_min)), end - start)
            s0 = float(rng.uniform(start, end - dur))
            level = float(rng.uniform(*model.bypass_ref_mg_m3))
            m = _span_mask(tod, s0, s0 + dur)
            purifier[m] = False
            c_ref[m] = level * (0.75 + 0.25 * intensity[m]) * np.exp(0.1 * ref_noise[m])
    elif k.behaviour == "offline":
        s0 = float(rng.uniform(*model.offline_start_tod_min))
        sending[_span_mask(tod, s0, s0 + float(rng.uniform(*model.offline_min)))] = False
    elif k.behaviour == "flaky_sensor":
        cooking = np.flatnonzero(intensity >= model.prep_intensity)
        pool = cooking if cooking.size else np.arange(n_steps)
        count = min(
            int(rng.integers(model.flaky_spikes_per_day[0], model.flaky_spikes_per_day[1] + 1)), pool.size
        )
        idx = rng.choice(pool, size=count, replace=False)
        spike[idx] = rng.uniform(*model.flaky_spike_factor, size=count)

    ref_flow = k.heads * model.reference_flow_per_head_m3_h
    flow = np.where(fan, ref_flow * k.flow_factor * (1 + model.flow_noise_rel * flow_noise), 0.0)
    measured = np.where(fan, c_ref * ref_flow / np.maximum(flow, 1.0), bg)
    measured = np.maximum(measured * spike, 0.01)
    if k.behaviour == "unplugged_sensor":  # the sensor reads 0.00 for a while each dinner, the fan running
        s0 = k.dinner_start_min + model.unplugged_after_min
        measured[_span_mask(tod, s0, s0 + model.unplugged_min) & fan] = 0.0
    pm_cooking = model.pm_cooking_mg_m3 * intensity + k.pm_per_oil_fume * measured
    pm = np.where(fan, pm_bg + pm_cooking * (1 + 0.08 * pm_noise), pm_bg)
    nmhc = k.nmhc_background_mg_m3 * (1 + 0.05 * nmhc_noise) + np.where(
        fan, k.nmhc_cooking_mg_m3 * intensity * (1 + 0.1 * nmhc_noise) + 0.3 * measured, 0.0
    )
    return _DayPlan(
        sending=sending.tolist(),
        oil_fume=np.round(measured, 3).tolist(),
        pm=np.round(np.maximum(pm, 0.0), 3).tolist() if k.has_pm else [None] * n_steps,
        nmhc=np.round(np.maximum(nmhc, 0.0), 3).tolist() if k.has_nmhc else [None] * n_steps,
        flow=np.round(flow, 1).tolist(),
        fan=fan.tolist(),
        purifier=purifier.tolist(),
    )
