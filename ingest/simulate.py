"""Reproducible simulator of restaurant kitchens and their cooking-fume monitors.

It writes a device registry (:func:`make_registry`, :func:`write_registry`), generates what each monitor
would measure (:func:`generate`, time-major: every device at t, then t + interval) and publishes it over
MQTT in the wire contract of docs/protocol.md (:func:`run_simulation`), optionally with bad input mixed
in so the dead-letter path has something to do. Same seed, same registry, same series, same faults.

The kitchen model (every number is a field of :class:`KitchenModel`; names carry units)
---------------------------------------------------------------------------------------
Time of day is local kitchen time (``KITCHEN_TZ``, Asia/Shanghai). Habits are drawn per restaurant
(seeded by seed and device id) and the series per local day (seeded by the date too), so a device's
series does not depend on the other devices or on the window asked for:

* Service: prep from ``lunch_start - U(prep_lead_min)`` (intensity ``prep_intensity``), lunch peak
  ~11:00-13:30 and dinner peak ~17:00-20:30 (restaurant habit ``habit_jitter_min`` plus daily jitter
  ``daily_jitter_min``), a short dinner prep before dinner, a tail after each peak. The cooking
  intensity I(t) rises from ``peak_edge_intensity`` at the edges of a peak to 1 in its middle.
  About ``all_day_share`` of the kitchens keep cooking lightly through the afternoon.
* Fan on from ``fan_lead_min`` before prep to the end of each tail, off otherwise. Exhaust flow while on
  Q = stove_heads x 2000 m3/h x U(flow_factor) with ``flow_noise_rel`` noise; 0.0 when off.
* Concentration is modelled as the GB 18483-2001 reference value C_ref = C * Q / (n * 2000) and the
  reported (measured) value is C = C_ref * n * 2000 / Q, so more air dilutes the reading but not C_ref.
  Normal kitchens: C_ref = U(normal_ref_mg_m3) x day factor x I(t) x lognormal noise -> 0.3-1.2 mg/m3
  at peaks, below the 2.0 mg/m3 limit. Fan off: the sensor reads a background of
  ``background_oil_fume_mg_m3`` (0.02-0.1 mg/m3).
* pm follows the measured oil fume and the intensity (``pm_per_oil_fume``, ``pm_cooking_mg_m3``:
  0.5-3 mg/m3 while cooking), nmhc follows the cooking intensity (``nmhc_cooking_mg_m3``: 2-8 mg/m3);
  a few monitors carry no pm or no nmhc sensor (None).
* Behaviours (:func:`behaviours`, shares of the restaurants, deterministic by seed):
  ``worn_purifier`` (``worn_purifier_share``, at least one when n >= 3): C_ref ``worn_ref_mg_m3`` at
  peaks and, in at least one peak a day, an episode of ``worn_episode_min`` minutes at
  ``worn_episode_ref_mg_m3`` (over the 2.0 limit). ``bypass`` (``bypass_share``): the purifier is
  switched off while the fan runs for ``bypass_stretch_min`` minutes in most peaks, C_ref
  ``bypass_ref_mg_m3``. ``offline`` (``offline_share``): the monitor sends nothing for
  ``offline_min`` minutes starting within ``offline_start_tod_min`` every day. ``flaky_sensor``
  (``flaky_share``): single-minute spikes (``flaky_spikes_per_day`` of x``flaky_spike_factor``); with
  fault injection its NaN / negative values are sent as extra messages. The rest are ``normal``.

Fault injection (``inject_faults=True``): about ``faults_per_device_day`` extra messages per device and
simulated day (at least one of each kind): garbage bytes, invalid JSON, NaN, negative values, a reading
from the unknown device ``FW-UNKNOWN-9``, a timestamp 2 days in the future, and for HJ 212 a frame with a
wrong CRC and a truncated frame. Fault messages are extras: every valid reading is still sent.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson

from ingest.config import DEFAULT_FACTORS, MqttSettings
from ingest.hj212 import CN_MINUTE, build_data_frame
from ingest.registry import Device, Registry
from ingest.timeutil import ms_to_utc, now_ms, zone

__all__ = [
    "BEHAVIOURS",
    "DEFAULT_MODEL",
    "FAULT_KINDS_HJ212",
    "FAULT_KINDS_JSON",
    "KITCHEN_TZ",
    "UNKNOWN_DEVICE_ID",
    "KitchenModel",
    "SimReading",
    "SimStats",
    "behaviours",
    "count_readings",
    "encode_hj212",
    "encode_json",
    "encode_json_batch",
    "generate",
    "make_registry",
    "run_simulation",
    "write_registry",
]

KITCHEN_TZ = "Asia/Shanghai"
UNKNOWN_DEVICE_ID = "FW-UNKNOWN-9"
BEHAVIOURS = ("normal", "worn_purifier", "bypass", "offline", "flaky_sensor")
FAULT_KINDS_JSON = ("garbage", "invalid_json", "nan", "negative", "unknown_device", "clock_skew")
FAULT_KINDS_HJ212 = ("garbage", "bad_crc", "truncated", "nan", "negative", "unknown_device", "clock_skew")
WIRE_ORDER = ("oil_fume", "pm", "nmhc", "flow", "fan", "purifier")


@dataclass(frozen=True)
class KitchenModel:
    """Knobs of the kitchen model. Ranges are (low, high) for uniform draws."""

    # GB 18483-2001 reference exhaust volume per stove head.
    reference_flow_per_head_m3_h: float = 2000.0
    # Registry
    large_kitchen_share: float = 0.08  # kitchens with 8-12 stove heads
    db11_profile_share: float = 0.08  # restaurants registered with the Beijing DB11/1488 profile
    no_pm_sensor_share: float = 0.05
    no_nmhc_sensor_share: float = 0.10
    # Behaviour shares (fractions of the restaurants)
    worn_purifier_share: float = 0.08
    bypass_share: float = 0.02
    offline_share: float = 0.02
    flaky_share: float = 0.02
    # Service hours, minutes after local midnight
    lunch_start_tod_min: float = 11 * 60
    lunch_end_tod_min: float = 13 * 60 + 30
    dinner_start_tod_min: float = 17 * 60
    dinner_end_tod_min: float = 20 * 60 + 30
    habit_jitter_min: float = 25.0  # per restaurant, clipped normal with sd = jitter / 2
    daily_jitter_min: float = 10.0  # per day, clipped normal with sd = jitter / 2
    prep_lead_min: tuple[float, float] = (45.0, 90.0)
    dinner_prep_lead_min: tuple[float, float] = (20.0, 40.0)
    tail_min: tuple[float, float] = (8.0, 20.0)
    fan_lead_min: float = 5.0
    all_day_share: float = 0.15
    all_day_intensity: float = 0.15
    prep_intensity: float = 0.3
    peak_edge_intensity: float = 0.45
    weekend_intensity_factor: float = 1.08
    day_intensity_factor: tuple[float, float] = (0.9, 1.1)
    # Exhaust
    flow_factor: tuple[float, float] = (0.7, 1.3)
    flow_noise_rel: float = 0.03
    # Concentrations (C_ref at intensity 1 unless said otherwise), mg/m3
    normal_ref_mg_m3: tuple[float, float] = (0.55, 0.95)
    ref_noise_sigma: float = 0.12  # lognormal sigma of the reference concentration
    noise_tau_s: float = 300.0  # correlation time of sensor and process noise
    background_oil_fume_mg_m3: tuple[float, float] = (0.02, 0.1)
    worn_ref_mg_m3: tuple[float, float] = (1.0, 1.5)
    worn_episode_ref_mg_m3: tuple[float, float] = (2.6, 3.8)
    worn_episode_min: tuple[float, float] = (50.0, 110.0)
    worn_episode_prob: float = 0.55  # per peak; at least one peak a day has an episode
    worn_episode_noise_rel: float = 0.05
    bypass_ref_mg_m3: tuple[float, float] = (5.0, 7.5)
    bypass_stretch_min: tuple[float, float] = (60.0, 150.0)
    bypass_prob: float = 0.75  # per peak; at least one peak a day is bypassed
    offline_start_tod_min: tuple[float, float] = (10 * 60.0, 16 * 60.0)
    offline_min: tuple[float, float] = (180.0, 300.0)
    flaky_spikes_per_day: tuple[int, int] = (3, 8)
    flaky_spike_factor: tuple[float, float] = (4.0, 10.0)
    # Co-pollutants
    pm_background_mg_m3: tuple[float, float] = (0.02, 0.12)
    pm_per_oil_fume: tuple[float, float] = (1.2, 2.0)  # mg/m3 pm per mg/m3 measured oil fume
    pm_cooking_mg_m3: float = 0.4  # added at intensity 1 (combustion, steam droplets)
    nmhc_background_mg_m3: tuple[float, float] = (0.8, 1.4)
    nmhc_cooking_mg_m3: tuple[float, float] = (3.0, 5.0)  # added at intensity 1
    # Fault injection
    faults_per_device_day: float = 0.8
    fault_offset_s: int = 30  # fault messages carry t + 30 s, so they never collide with a valid reading
    clock_skew_s: int = 2 * 86400


DEFAULT_MODEL = KitchenModel()


# =========================================================================================================
# Registry
# =========================================================================================================

_DISTRICTS = {
    # district -> (streets, weight)
    "朝阳区": ("建国路 朝阳北路 望京西路 三里屯路 工体北路 劲松南路 双井东路 安立路".split(), 5),
    "海淀区": ("中关村大街 学院路 成府路 知春路 万泉河路 西三环北路 花园路".split(), 4),
    "东城区": ("东直门内大街 王府井大街 东四北大街 和平里东街 崇文门外大街 交道口南大街".split(), 3),
    "西城区": ("西单北大街 德胜门内大街 西直门外大街 广安门内大街 新街口外大街 鼓楼西大街".split(), 3),
    "丰台区": ("丰台北路 方庄路 马家堡东路 南三环西路 芳城园路 角门路".split(), 3),
    "石景山区": ("石景山路 鲁谷路 古城大街 八角东街 苹果园路".split(), 2),
}
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙马胡朱郭何林高罗郑梁谢宋唐韩冯邓曹彭"
_GIVEN = "伟 芳 娜 敏 静 强 磊 军 洋 勇 艳 杰 涛 明 超 丽 秀英 建国 桂英 志强 海燕 建华 国平 春梅 红霞 德胜 玉兰 文斌".split()
_SMALL_DISHES = (
    "牛肉面 炸酱面 饺子馆 包子铺 麻辣烫 黄焖鸡 卤肉饭 肠粉 馄饨 煎饼 盖浇饭 米线 烧饼 豆花".split()
)
_CHAIN_DISHES = (
    "兰州拉面 重庆小面 沙县小吃 武汉热干面 西安肉夹馍 延边冷面 新疆大盘鸡 桂林米粉 柳州螺蛳粉 天津煎饼果子"
).split()
_FLAVORS = "川味 湘味 粤香 蜀香 东北 西北 京味 徽州 江南 潮汕 云南 客家 鲁味".split()
_MEDIUM_DISHES = "烧腊 酸菜鱼 火锅 烧烤 砂锅粥 羊蝎子 涮肉 串串香 小龙虾 家常菜".split()
_MEDIUM_KINDS = "小厨 人家 菜馆 小馆 餐厅 私房菜 土菜馆 大排档".split()
_LARGE_KINDS = "酒楼 饭庄 食府 大酒店 酒家 宴会厅".split()
_LARGE_PREFIX = "金 福 聚 鸿 全 丰 华 百 同 盛 德 顺".split()
_LARGE_SECOND = "满楼 源 德 运 聚 和 兴 泰 宾 福".split()


def make_registry(n_restaurants: int, seed: int = 1, *, model: KitchenModel = DEFAULT_MODEL) -> Registry:
    """A registry of ``n_restaurants`` restaurants in Beijing, one monitor each, deterministic by seed.

    Restaurant ids ``R0001``..., device ids ``FW-R0001-1``; ``hj212_pw`` 123456; ``owner_notify`` empty;
    ``profile`` ``db11-1488`` for a few (``model.db11_profile_share``), empty for the rest.
    """
    if n_restaurants < 0:
        raise ValueError("n_restaurants must be >= 0")
    rng = random.Random(f"fumewatch-registry:{seed}")
    districts = list(_DISTRICTS)
    weights = [_DISTRICTS[d][1] for d in districts]
    used_names: set[str] = set()
    devices = []
    for i in range(1, n_restaurants + 1):
        rid = f"R{i:04d}"
        if rng.random() < model.large_kitchen_share:
            heads = rng.randint(8, 12)
        else:
            heads = rng.choices([1, 2, 3, 4, 5, 6], weights=[12, 22, 22, 18, 12, 6])[0]
        surname = rng.choice(_SURNAMES)
        owner = surname + rng.choice(_GIVEN)
        district = rng.choices(districts, weights=weights)[0]
        street = rng.choice(_DISTRICTS[district][0])
        address = f"北京市{district}{street}{rng.randint(1, 299)}号"
        if rng.random() < 0.3:
            address += f"{rng.randint(1, 3)}层"
        name = _restaurant_name(rng, heads, surname)
        if name in used_names:
            name = f"{name}（{street}店）"
        k = 2
        while name in used_names:  # very unlikely: same name on the same street
            name = f"{name}{k}"
            k += 1
        used_names.add(name)
        profile = "db11-1488" if rng.random() < model.db11_profile_share else ""
        devices.append(
            Device(
                restaurant_id=rid,
                name=name,
                district=district,
                device_id=f"FW-{rid}-1",
                stove_heads=heads,
                address=address,
                owner_name=owner,
                owner_notify="",
                profile=profile,
                hj212_pw="123456",
            )
        )
    return Registry(devices)


def _restaurant_name(rng: random.Random, heads: int, surname: str) -> str:
    if heads <= 2:
        pattern = rng.randrange(3)
        if pattern == 0:
            return f"老{surname}{rng.choice(_SMALL_DISHES)}"
        if pattern == 1:
            return f"{surname}记{rng.choice(_SMALL_DISHES)}"
        return rng.choice(_CHAIN_DISHES)
    if heads <= 6:
        pattern = rng.randrange(3)
        if pattern == 0:
            return f"{rng.choice(_FLAVORS)}{rng.choice(_MEDIUM_KINDS)}"
        if pattern == 1:
            return f"{rng.choice(_FLAVORS)}{rng.choice(_MEDIUM_DISHES)}"
        return f"{surname}记{rng.choice(_MEDIUM_DISHES)}"
    return f"{rng.choice(_LARGE_PREFIX)}{rng.choice(_LARGE_SECOND)}{rng.choice(_LARGE_KINDS)}"


def write_registry(
    path: str | os.PathLike[str], n_restaurants: int, seed: int = 1, *, model: KitchenModel = DEFAULT_MODEL
) -> Registry:
    """:func:`make_registry` and write it as the registry CSV at ``path`` (parent dirs created)."""
    reg = make_registry(n_restaurants, seed, model=model)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    reg.write_csv(p)
    return reg


# =========================================================================================================
# Behaviours and the per-day kitchen model
# =========================================================================================================


def _share_count(n: int, share: float, minimum_n: int) -> int:
    if n < minimum_n:
        return 0
    return max(1, int(n * share + 0.5))


def behaviours(registry: Registry, seed: int, *, model: KitchenModel = DEFAULT_MODEL) -> dict[str, str]:
    """device_id -> "normal" | "worn_purifier" | "bypass" | "offline" | "flaky_sensor".

    Counts scale with n: round(n x share); at least one worn_purifier when n >= 3 and at least one of
    each other behaviour when n >= 10. With 50 devices: 4 worn_purifier, 1 bypass, 1 offline, 1 flaky.
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
    ]
    out = {d.device_id: "normal" for d in registry}
    pos = 0
    for name, count in plan:
        for dev in ids[pos : pos + count]:
            out[dev] = name
        pos += count
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


def _smooth_noise(rng: np.random.Generator, n: int, interval_s: float, tau_s: float) -> np.ndarray:
    """Unit-variance noise with correlation time ``tau_s`` (exponential moving kernel)."""
    length = max(1, math.ceil(4 * tau_s / interval_s))
    kernel = np.exp(-np.arange(length) * interval_s / tau_s)
    kernel /= math.sqrt(float(np.sum(kernel**2)))
    eps = rng.standard_normal(n + length - 1)
    return np.convolve(eps, kernel, mode="valid")[:n]


def _span_mask(tod: np.ndarray, start: float, end: float) -> np.ndarray:
    return (tod >= start) & (tod < end)


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
    c_ref = k.base_ref_mg_m3 * day_factor * intensity * np.exp(sigma * ref_noise - sigma**2 / 2)

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


# =========================================================================================================
# Generation
# =========================================================================================================


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
        return self.plans, (t_ms - self.day_start_ms) // (self.interval_s * 1000)


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
                yield SimReading(
                    k.device_id, t, p.oil_fume[i], p.pm[i], p.nmhc[i], p.flow[i], p.fan[i], p.purifier[i]
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


# =========================================================================================================
# Encodings (wire contract, docs/protocol.md)
# =========================================================================================================


def _rfc3339(t_ms: int, tz: str) -> str:
    dt = ms_to_utc(t_ms).astimezone(zone(tz))
    return dt.isoformat(timespec="milliseconds" if t_ms % 1000 else "seconds")


def _json_obj(r: SimReading, ts: str | int) -> dict:
    obj: dict = {"ts": ts, "oil_fume": r.oil_fume}
    for name in ("pm", "nmhc", "flow"):
        value = getattr(r, name)
        if value is not None:
            obj[name] = value
    obj["fan"] = r.fan
    obj["purifier"] = r.purifier
    return obj


def encode_json(r: SimReading, *, tz: str = KITCHEN_TZ) -> bytes:
    """One JSON object; ``ts`` is RFC 3339 with the offset of ``tz`` (e.g. 2026-11-26T12:00:00+08:00)."""
    return orjson.dumps(_json_obj(r, _rfc3339(r.time_ms, tz)))


def encode_json_batch(rs: list[SimReading]) -> bytes:
    """A JSON array of objects with ``ts`` as integer epoch milliseconds."""
    return orjson.dumps([_json_obj(r, r.time_ms) for r in rs])


def _invert_factors(factors: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for code, target in factors.items():
        out.setdefault(target, code)
    return out


def encode_hj212(
    r: SimReading,
    *,
    factors: dict[str, str],
    tz: str = "Asia/Shanghai",
    pw: str = "123456",
    cn: str = CN_MINUTE,
) -> bytes:
    """One HJ 212-2017 data frame (CRLF-terminated). ``factors`` is the config map code -> field.

    DataTime is the local time in ``tz``; fan and purifier are sent as 0/1. Fields without a factor code
    in ``factors`` (or None) are left out; oil_fume must be mapped.
    """
    codes = _invert_factors(factors)
    if "oil_fume" not in codes:
        raise ValueError("factors map no code to oil_fume")
    values: dict[str, float | int] = {}
    for name in WIRE_ORDER:
        value = getattr(r, name)
        if name in codes and value is not None:
            values[codes[name]] = int(value) if isinstance(value, bool) else value
    local = ms_to_utc(r.time_ms).astimezone(zone(tz))
    return build_data_frame(mn=r.device_id, data_time_local=local, values=values, cn=cn, pw=pw).encode(
        "ascii"
    )


# =========================================================================================================
# Publishing
# =========================================================================================================


@dataclass
class SimStats:
    """What :func:`run_simulation` sent. ``messages`` counts every MQTT message, faults included;
    ``readings`` counts valid readings; ``faults`` counts fault messages by kind."""

    messages: int
    readings: int
    faults: dict[str, int] = field(default_factory=dict)
    devices: int = 0
    elapsed_s: float = 0.0

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _ProtocolRefused(ConnectionError):
    """The broker does not speak the MQTT version we tried."""


_RC_UNSUPPORTED_PROTOCOL = 0x84  # MQTT 5 reason code; paho maps 3.1.1 CONNACK rc 1 to it as well


class _Publisher:
    """paho-mqtt v2 client that counts acknowledgements and keeps at most ``max_in_flight`` unacknowledged.

    The in-flight window is enforced here, not by paho's ``max_inflight_messages_set``: paho rescans all
    of its outstanding messages on every PUBACK when it has a limit, which costs more than the network at
    1000 in flight (measured here: ~5-6k msg/s with paho's limit at 1000, ~12k msg/s with this window).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool,
        username: str,
        password: str,
        client_id: str,
        qos: int,
        max_in_flight: int = 1000,
        protocol: str = "5",
        connect_timeout_s: float = 10.0,
    ) -> None:
        import paho.mqtt.client as mqtt  # imported here: registry/generation work without paho

        self._qos = qos
        self._window = max(1, max_in_flight)
        self._cond = threading.Condition()
        self._sent = 0
        self._acked = 0
        self._connected = threading.Event()
        self._connect_error = ""
        self.protocol_refused = False
        if protocol == "5":
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        elif protocol == "3.1.1":
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=True,
            )
        else:
            raise ValueError(f"MQTT protocol {protocol!r}: use '5', '3.1.1' or 'auto'")
        c.max_inflight_messages_set(0)  # no paho-side limit: the window below bounds what is in flight
        c.max_queued_messages_set(0)
        if username:
            c.username_pw_set(username, password or None)
        if tls:
            c.tls_set()
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self._client = c
        try:
            c.connect(host, port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to MQTT broker {host}:{port}: {exc}") from exc
        c.loop_start()
        if not self._connected.wait(connect_timeout_s) or self._connect_error:
            c.loop_stop()
            with contextlib.suppress(Exception):
                c.disconnect()
            reason = self._connect_error or f"no CONNACK within {connect_timeout_s:.0f} s"
            error = _ProtocolRefused if self.protocol_refused else ConnectionError
            raise error(f"MQTT broker {host}:{port} refused the connection (MQTT {protocol}): {reason}")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            self._connect_error = str(reason_code)
            self.protocol_refused = reason_code.value == _RC_UNSUPPORTED_PROTOCOL
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not self._connected.is_set():
            # Some brokers (amqtt) drop a connection speaking a protocol they do not know without a CONNACK.
            self._connect_error = f"connection closed before CONNACK ({reason_code})"
            self.protocol_refused = True
            self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        with self._cond:
            self._acked += 1
            if self._sent - self._acked <= self._window // 2:
                self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        with self._cond:
            while self._sent - self._acked >= self._window:
                self._cond.wait(1.0)
            self._sent += 1
        # qos >= 1 messages stay queued in paho across a reconnect, so rc NO_CONN is not a loss.
        self._client.publish(topic, payload, qos=self._qos)

    def wait_all(self, stall_timeout_s: float = 30.0) -> None:
        """Block until every publish is acknowledged; TimeoutError when nothing moves for the timeout."""
        with self._cond:
            last = self._acked
            deadline = time.monotonic() + stall_timeout_s
            while self._acked < self._sent:
                self._cond.wait(0.2)
                if self._acked != last:
                    last, deadline = self._acked, time.monotonic() + stall_timeout_s
                elif time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self._sent - self._acked} of {self._sent} messages not acknowledged "
                        f"after {stall_timeout_s:.0f} s"
                    )

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()


def _fault_message(
    kind: str,
    r: SimReading,
    *,
    fmt: str,
    topic_prefix: str,
    factors: dict[str, str],
    tz: str,
    pw: str,
    rng: random.Random,
    model: KitchenModel,
    nth: int,
) -> tuple[str, bytes]:
    """Topic and payload of one fault message built around reading ``r`` (already moved to t + 30 s)."""
    suffix = "hj212" if fmt == "hj212" else "reading"
    dev = UNKNOWN_DEVICE_ID if kind == "unknown_device" else r.device_id
    topic = f"{topic_prefix}/{dev}/{suffix}"
    if kind == "garbage":
        # 0xFF never occurs in UTF-8, so this can never be mistaken for a valid message.
        return topic, b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randint(8, 64)))
    if kind == "nan":
        r = replace(r, oil_fume=math.nan)
    elif kind == "negative":
        r = replace(r, oil_fume=-round(rng.uniform(0.1, 2.0), 3))
    elif kind == "unknown_device":
        r = replace(r, device_id=UNKNOWN_DEVICE_ID)
    elif kind == "clock_skew":
        # Future relative to the wall clock as well, so a validator's skew check always sees it.
        skewed_s = max(r.time_ms, now_ms()) // 1000 + model.clock_skew_s
        r = replace(r, time_ms=skewed_s * 1000)
    if fmt == "hj212":
        frame = encode_hj212(r, factors=factors, tz=tz, pw=pw)
        if kind == "bad_crc":
            crc = int(frame[-6:-2], 16) ^ (1 + rng.randrange(0xFFFE))
            frame = frame[:-6] + f"{crc:04X}".encode("ascii") + b"\r\n"
        elif kind == "truncated":
            frame = frame[: len(frame) * 3 // 5]
        return topic, frame
    if kind == "nan":
        # JSON has no NaN: alternate the non-standard literal token and a string.
        token = b"NaN" if nth % 2 == 0 else b'"NaN"'
        obj = _json_obj(r, _rfc3339(r.time_ms, tz))
        obj["oil_fume"] = "__NAN__"
        return topic, orjson.dumps(obj).replace(b'"__NAN__"', token)
    payload = encode_json(r, tz=tz)
    if kind == "invalid_json":
        payload = payload[: len(payload) // 2] if nth % 2 == 0 else payload.replace(b",", b";", 2)
    return topic, payload


def run_simulation(
    broker_url: str,
    registry: Registry,
    *,
    start_ms: int,
    hours: float,
    speed: float,
    fmt: str = "json",
    seed: int = 1,
    interval_s: int = 60,
    batch: int = 1,
    inject_faults: bool = False,
    topic_prefix: str = "fume/v1",
    factors: dict[str, str] | None = None,
    tz: str = "Asia/Shanghai",
    progress: Callable[[int, int], None] | None = None,
    qos: int = 1,
    username: str = "",
    password: str = "",
    max_in_flight: int = 1000,
    protocol: str = "auto",
    model: KitchenModel = DEFAULT_MODEL,
    connect_timeout_s: float = 10.0,
) -> SimStats:
    """Publish :func:`generate`'s readings to ``broker_url`` (mqtt://[user:pass@]host:port).

    ``speed`` is simulated seconds per wall second (2000: a day in ~43 s); ``speed <= 0`` sends as fast
    as the broker acknowledges. Pacing follows simulated time per time step. ``fmt`` "json" publishes to
    ``{prefix}/{device}/reading`` (single objects with RFC 3339 ``ts``, or arrays of up to ``batch``
    readings of one device with epoch-ms ``ts``), "hj212" to ``{prefix}/{device}/hj212`` (CN 2051 frames,
    ``batch`` frames concatenated per message). At most ``max_in_flight`` messages are unacknowledged at
    a time; returns once the broker has acknowledged every message (TimeoutError if acknowledgements
    stall for 30 s). ``protocol`` "5" or "3.1.1"; "auto" tries MQTT 5 and falls back to 3.1.1 when the
    broker refuses it (amqtt speaks 3.1.1 only).
    ``progress(done_readings, total_readings)`` is called at most 20 times a second and once at the end.
    """
    if fmt not in ("json", "hj212"):
        raise ValueError(f"fmt {fmt!r}: use 'json' or 'hj212'")
    if batch < 1:
        raise ValueError("batch must be >= 1")
    factors = dict(factors or DEFAULT_FACTORS)
    host, port, tls, user, pw = MqttSettings(
        broker=broker_url, username=username, password=password
    ).endpoint()
    pws = {d.device_id: (d.hj212_pw or "123456") for d in registry}
    total = count_readings(registry, start_ms, hours, seed=seed, interval_s=interval_s, model=model)
    devices = list(registry)

    # Fault schedule: after the reading with index i is published, the faults planned at i follow.
    schedule: dict[int, list[str]] = {}
    fault_counts: dict[str, int] = {}
    frng = random.Random(f"fumewatch-faults:{seed}:{fmt}")
    if inject_faults and total > 0:
        kinds = FAULT_KINDS_HJ212 if fmt == "hj212" else FAULT_KINDS_JSON
        fault_counts = dict.fromkeys(kinds, 0)
        device_days = len(devices) * hours / 24
        n_faults = max(len(kinds), round(model.faults_per_device_day * device_days))
        planned = list(kinds) + [frng.choice(kinds) for _ in range(n_faults - len(kinds))]
        frng.shuffle(planned)
        for kind in planned:
            schedule.setdefault(frng.randrange(total), []).append(kind)
    beh = behaviours(registry, seed, model=model)
    flaky = [d for d, b in beh.items() if b == "flaky_sensor"]

    def topic_for(dev: str) -> str:
        return f"{topic_prefix}/{dev}/{'hj212' if fmt == 'hj212' else 'reading'}"

    def encode_many(rs: list[SimReading]) -> bytes:
        if fmt == "hj212":
            return b"".join(encode_hj212(r, factors=factors, tz=tz, pw=pws[r.device_id]) for r in rs)
        return encode_json(rs[0], tz=tz) if len(rs) == 1 else encode_json_batch(rs)

    client_id = f"fumewatch-sim-{seed}-{os.getpid()}-{random.getrandbits(24):06x}"
    pub = None
    for proto in ("5", "3.1.1") if protocol == "auto" else (protocol,):
        try:
            pub = _Publisher(
                host,
                port,
                tls=tls,
                username=user,
                password=pw,
                client_id=client_id,
                qos=qos,
                max_in_flight=max_in_flight,
                protocol=proto,
                connect_timeout_s=connect_timeout_s,
            )
            break
        except _ProtocolRefused:
            if protocol != "auto" or proto == "3.1.1":
                raise
    assert pub is not None
    messages = 0
    done = 0
    buffers: dict[str, list[SimReading]] = {}
    wall0 = time.monotonic()
    last_progress = 0.0
    step_t = None
    try:
        for r in generate(registry, start_ms, hours, seed=seed, interval_s=interval_s, model=model):
            if speed > 0 and r.time_ms != step_t:
                step_t = r.time_ms
                wait = wall0 + (r.time_ms - start_ms) / 1000 / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            if batch == 1:
                pub.publish(topic_for(r.device_id), encode_many([r]))
                messages += 1
            else:
                buf = buffers.setdefault(r.device_id, [])
                buf.append(r)
                if len(buf) >= batch:
                    pub.publish(topic_for(r.device_id), encode_many(buf))
                    messages += 1
                    buffers[r.device_id] = []
            for kind in schedule.get(done, ()):
                # Invalid values come from the flaky sensor when there is one; other faults from the
                # device that just sent (so an offline device stays silent).
                target = r.device_id
                if kind in ("nan", "negative") and flaky:
                    target = flaky[fault_counts[kind] % len(flaky)]
                base = replace(r, device_id=target, time_ms=r.time_ms + model.fault_offset_s * 1000)
                topic, payload = _fault_message(
                    kind,
                    base,
                    fmt=fmt,
                    topic_prefix=topic_prefix,
                    factors=factors,
                    tz=tz,
                    pw=pws.get(target, "123456"),
                    rng=frng,
                    model=model,
                    nth=fault_counts[kind],
                )
                pub.publish(topic, payload)
                fault_counts[kind] += 1
                messages += 1
            done += 1
            if progress is not None:
                now = time.monotonic()
                if now - last_progress >= 0.05:
                    last_progress = now
                    progress(done, total)
        for dev, buf in buffers.items():
            if buf:
                pub.publish(topic_for(dev), encode_many(buf))
                messages += 1
        pub.wait_all()
    finally:
        pub.close()
    if progress is not None:
        progress(done, total)
    return SimStats(
        messages=messages,
        readings=done,
        faults=fault_counts,
        devices=len(devices),
        elapsed_s=time.monotonic() - wall0,
    )


def default_start_ms(tz: str) -> int:
    """Midnight (display time zone) of yesterday: a full simulated day that is entirely in the past."""
    today = datetime.now(zone(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - timedelta(days=1)).timestamp() * 1000)
