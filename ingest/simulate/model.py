"""Knobs of the kitchen simulator (:class:`KitchenModel`) and the constants of its wire traffic.

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
  fault injection its NaN / negative values are sent as extra messages. ``silting_purifier``
  (``silting_share``): the purifier is cleaned every ``silting_cycle_days`` days and silts up in
  between; on day d of the cycle (d = 0 the cleaning day) the kitchen's C_ref at intensity 1 is
  ``silting_ref_start_mg_m3`` + (``silting_ref_end_mg_m3`` - start) x d / (cycle - 1) instead of its
  U(normal_ref_mg_m3) draw (day factor, intensity and noise as for normal kitchens; no episodes, no
  bypass). Its GB 18483 service values climb from about 0.6-0.9 mg/m3 after a cleaning to about
  1.4-1.95 mg/m3 in the cycle's last days, close to the limit but mostly under it (a busy weekend
  late in the cycle can just top it). d = (local date's ``date.toordinal()`` -
  ``silting_cleaned_ordinal``) mod cycle; when that knob is None each such kitchen gets a fixed
  cleaning day from its own stream (seed and device id). ``unplugged_sensor`` (``unplugged_share``,
  a data-integrity fault): every dinner, from ``unplugged_after_min`` after the kitchen's habitual
  dinner start, the oil-fume sensor reads 0.00 for ``unplugged_min`` minutes while the fan runs (pm,
  nmhc, flow and the fan as usual), which alerts/integrity flags as ``suspect_zero`` against its normal
  lunch. The rest are ``normal``.
"""

from __future__ import annotations

from dataclasses import dataclass

KITCHEN_TZ = "Asia/Shanghai"
UNKNOWN_DEVICE_ID = "FW-UNKNOWN-9"
BEHAVIOURS = (
    "normal",
    "worn_purifier",
    "bypass",
    "offline",
    "flaky_sensor",
    "silting_purifier",
    "unplugged_sensor",
)
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
    silting_share: float = 0.02
    # unplugged_sensor (a data-integrity fault, alerts/integrity suspect_zero): every dinner, from
    # unplugged_after_min after its habitual start, the sensor reads 0.00 for unplugged_min minutes while
    # the fan runs; assigned after silting_purifier, so no other kitchen changes
    unplugged_share: float = 0.02
    unplugged_after_min: float = 30.0
    unplugged_min: float = 60.0
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
    silting_cycle_days: int = 14  # the purifier is cleaned every 14 days
    silting_ref_start_mg_m3: float = 0.65  # C_ref at intensity 1 on the cleaning day (day 0 of the cycle)
    silting_ref_end_mg_m3: float = 1.75  # ... on the last day of the cycle (day cycle - 1)
    # date.toordinal() of a local day the purifier was cleaned; None: a fixed day per (seed, device)
    silting_cleaned_ordinal: int | None = None
    # (device_id, behaviour) pairs overriding the drawn behaviours: a few devices of a registry simulated
    # on their own keep the behaviour they have in the whole one (the demo's history, fumewatch/demo).
    behaviour_of: tuple[tuple[str, str], ...] = ()
    # Data-integrity faults to inject, one kitchen each (ingest/simulate/inject.py, --inject).
    inject: tuple[str, ...] = ()
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
