"""The vectorised replay gives exactly what the streaming detector gives (fed in time order + flush)."""

from __future__ import annotations

import math
import random
import time
from dataclasses import astuple

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alerts.detection.detector import Detector
from alerts.detection.replay import WINDOW_COLUMNS, replay_frame
from alerts.detection.window import DetectorConfig
from alerts.model import EXCEEDANCE, PURIFIER_OFF, Event, WindowResult
from alerts.profiles import Profiles, load_profiles
from ingest.model import Reading
from ingest.registry import Device, Registry

T0 = 1_795_000_000_000 - 1_795_000_000_000 % 3_600_000
REGISTRY = Registry.parse(
    "restaurant_id,name,district,device_id,stove_heads,profile\n"
    "R1,a,D1,k1,2,\n"
    "R2,b,D2,bj1,4,db11-1488\n"
    "R3,c,D1,sd1,7,db37-597\n"
    "R4,d,D3,sh1,3,db31-844\n"
)
DEVICES = ["k1", "bj1", "sd1", "sh1", "ghost"]  # ghost: not registered
#: The same registry with reporting intervals: sd1 pinned to 10-minute data, sh1 to 1-minute data.
REGISTRY_PINNED = Registry.parse(
    "restaurant_id,name,district,device_id,stove_heads,profile,interval_s\n"
    "R1,a,D1,k1,2,,\n"
    "R2,b,D2,bj1,4,db11-1488,\n"
    "R3,c,D1,sd1,7,db37-597,600\n"
    "R4,d,D3,sh1,3,db31-844,60\n"
)
PROFILES = load_profiles()
REPLAY_KINDS = (EXCEEDANCE, PURIFIER_OFF)


def _none(x: object) -> object:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return None
    return bool(x) if isinstance(x, bool | np.bool_) else x


def stream(df: pd.DataFrame, registry: Registry, profiles: Profiles, config: DetectorConfig):
    """Feed ``df`` in time order (stable) through the streaming detector, then flush."""
    det = Detector(registry, profiles, config)
    final: dict[str, Event] = {}
    order = np.argsort(df["time_ms"].to_numpy(), kind="stable")
    cols = list(df.columns)
    for row in df.iloc[order].itertuples(index=False, name=None):
        r = dict(zip(cols, row, strict=True))
        oil = float(r["oil_fume_ref_mg_m3"])
        converted = _none(r.get("ref_converted", True))
        reading = Reading(
            int(r["time_ms"]),
            str(r["device_id"]),
            "",
            "",
            oil,
            oil,
            converted is not False,
            pm_mg_m3=_none(r.get("pm_mg_m3")),
            nmhc_mg_m3=_none(r.get("nmhc_mg_m3")),
            fan_on=_none(r.get("fan_on")),
            purifier_on=_none(r.get("purifier_on")),
            flags={"oil_fume": "T"} if _none(r.get("lower_bound")) else None,
            excluded=_none(r.get("excluded")) or "",
        )
        for tr in det.process(reading):
            final[tr.event.event_id] = tr.event
    for tr in det.flush():
        final[tr.event.event_id] = tr.event
    for ev in det.open_events():
        final[ev.event_id] = ev
    events = sorted(
        (e for e in final.values() if e.kind in REPLAY_KINDS), key=lambda e: (e.start_ms, e.event_id)
    )
    return events, det.drain_windows(), det


def window_rows(windows: list[WindowResult] | pd.DataFrame) -> list[tuple]:
    if isinstance(windows, pd.DataFrame):
        df = windows.astype({"device_id": str, "invalid_reason": str})
        rows = [tuple(r) for r in df[list(WINDOW_COLUMNS)].itertuples(index=False, name=None)]
    else:
        rows = [astuple(w) for w in windows]
    # the replay's NaN mean/max of a window without samples is the stream's None
    norm = [tuple(_none(x.item() if isinstance(x, np.generic) else x) for x in r) for r in rows]
    return sorted(norm, key=lambda r: (r[0], r[10], r[1]))


def assert_same(
    df: pd.DataFrame, config: DetectorConfig, registry: Registry = REGISTRY
) -> tuple[list[Event], pd.DataFrame]:
    s_events, s_windows, det = stream(df, registry, PROFILES, config)
    r_events, r_windows = replay_frame(df, registry, PROFILES, config)
    assert [e.as_dict() for e in r_events] == [e.as_dict() for e in s_events]
    assert window_rows(r_windows) == window_rows(s_windows)
    assert r_windows.attrs["duplicates"] == det.duplicates
    assert r_windows.attrs["unregistered"] == det.unregistered
    return r_events, r_windows


# -- hypothesis ----------------------------------------------------------------------------------------

LEVELS = [0.4, 0.9, 1.0, 1.3, 2.0, 2.4, 3.5, None]


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, DetectorConfig, Registry]:
    config = DetectorConfig(
        window_s=draw(st.sampled_from([120, 300, 600])),
        expected_interval_s=draw(st.sampled_from([30, 60])),
        min_valid_share=draw(st.sampled_from([0.25, 0.5, 0.75])),
        open_after_windows=draw(st.integers(1, 4)),
        close_after_windows=draw(st.integers(1, 3)),
        purifier_off_min=draw(st.sampled_from([1.0, 3.0, 10.0])),
        purifier_max_gap_s=draw(st.sampled_from([60, 300])),
        max_evidence_windows=draw(st.sampled_from([2, 288])),
        max_gap_s=draw(st.sampled_from([None, None, 0, 600, 1800])),
        rule=draw(st.sampled_from(["consecutive", "gb18483"])),
        # T0 is 19:00 in Shanghai: dinner ends inside the frame; the others cut it more often, one of them
        # off the window boundaries (a window then belongs to the service holding its start)
        business_hours=draw(
            st.sampled_from(["10:00-14:00,16:30-21:30", "19:30-20:10,20:40-21:20", "19:37-20:03,21:01-22:13"])
        ),
    )
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))  # per-row noise (bulk data stays cheap to draw)
    data = []
    for dev in DEVICES:
        # per device and 5-minute slot: a level and a fan/purifier regime, so that events come in runs
        levels = draw(st.lists(st.sampled_from(LEVELS), min_size=40, max_size=40))
        regimes = draw(
            st.lists(st.sampled_from(["ok", "ok", "bypass", "fan_off", "unknown"]), min_size=40, max_size=40)
        )
        spacing = draw(st.sampled_from([1, 2, 2, 20]))  # in 30-second steps: 30 s, 1 min, 10 min
        keep = draw(st.sampled_from([1.0, 0.9, 0.6]))
        unconverted = draw(st.sampled_from([0.0, 0.0, 0.3, 1.0]))  # share of readings without conversion
        excluded = draw(st.sampled_from([0.0, 0.0, 0.2, 0.7]))  # share of readings excluded (calibration...)
        lower = draw(st.sampled_from([0.0, 0.0, 0.3]))  # share of lower bounds (flag T)
        for step in range(draw(st.integers(0, 60)), 400, spacing):
            if rnd.random() > keep:
                continue
            slot = step // 10
            lvl, regime = levels[slot], regimes[slot]
            oil = float("nan") if lvl is None else lvl * rnd.choice([1.0, 1.0, 0.9, 1.1, 1.25])
            fan, pur = {"ok": (True, True), "bypass": (True, False), "fan_off": (False, False)}.get(
                regime, (None, None)
            )
            if rnd.random() < 0.1:
                fan, pur = rnd.choice([True, False, None]), rnd.choice([True, False, None])
            pm = rnd.choice([None, 3.0, 5.0, 6.0, 6.0])
            nmhc = rnd.choice([None, 8.0, 10.0, 12.0, 12.0])
            t = T0 + step * 30_000 + rnd.choice([0, 0, 0, 1000])
            conv = rnd.random() >= unconverted
            low = rnd.random() < lower
            ex = rnd.choice(["flag_C", "flag_M", "rs_2"]) if rnd.random() < excluded else None
            data.append((t, dev, oil, pm, nmhc, fan, pur, conv, low, ex))
            if rnd.random() < 0.05:  # a duplicate (device, time): the first row must win
                data.append(
                    (t, dev, oil * 2, pm, nmhc, not fan, pur, not conv, not low, None if ex else "rs_3")
                )
    rnd.shuffle(data)
    df = pd.DataFrame(
        data,
        columns=[
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
        ],
    )
    df = df.astype({"time_ms": "int64", "pm_mg_m3": "float64", "nmhc_mg_m3": "float64"})
    return df, config, draw(st.sampled_from([REGISTRY, REGISTRY_PINNED]))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(frames())
def test_replay_equals_stream_hypothesis(case: tuple[pd.DataFrame, DetectorConfig, Registry]) -> None:
    df, config, registry = case
    events, windows = assert_same(df, config, registry)
    for label in sorted({f"{e.kind}:{e.rule}:{e.state}" for e in events}):
        event(f"has {label}")
    if any(
        e.rule == "gb18483" and e.state == "closed" and not e.judgement["groups"][-1]["exceeds"]
        for e in events
    ):
        event("gb18483 closed by a compliant group")
    if any(
        e.rule == "gb18483" and e.state == "closed" and e.judgement["groups"][-1]["exceeds"] for e in events
    ):
        event("gb18483 closed at the service end")
    if any(e.judgement.get("no_judgement") for e in events):
        event("gb18483 group without judgement")
    if len(windows) and windows["unconverted"].any():
        event("unconverted samples")
    if len(windows) and (windows["invalid_reason"] == "excluded").any():
        event("window invalid as excluded")
    if len(windows) and windows["lower_bound"].any():
        event("lower-bound samples")
    if len(windows) and (windows["expected"] < config.expected_samples).any():
        event("a device judged at a slower cadence")


# -- random series, bigger ------------------------------------------------------------------------------


def random_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    devs = rng.choice(DEVICES, n, p=[0.25, 0.25, 0.2, 0.2, 0.1])
    t = T0 + np.sort(rng.integers(0, 8 * 3600, n)) * 1000
    # slowly varying level per device so that runs of windows exceed
    slot = (t - T0) // 1_200_000
    level = rng.choice([0.5, 0.95, 1.4, 2.2, 3.0], (len(DEVICES), int(slot.max()) + 1))
    dev_idx = np.searchsorted(np.array(sorted(DEVICES)), devs)
    oil = level[dev_idx, slot] * rng.choice([0.8, 1.0, 1.1, 1.3], n)
    oil[rng.random(n) < 0.02] = np.nan
    df = pd.DataFrame(
        {
            "time_ms": t,
            "device_id": devs,
            "oil_fume_ref_mg_m3": oil,
            "pm_mg_m3": np.where(rng.random(n) < 0.3, np.nan, rng.choice([4.0, 5.0, 6.0], n)),
            "nmhc_mg_m3": np.where(rng.random(n) < 0.3, np.nan, rng.choice([9.0, 11.0], n)),
            "fan_on": pd.array(rng.choice([True, True, True, True, False, None], n), dtype="boolean"),
            "purifier_on": pd.array(rng.choice([True, True, False, False, None], n), dtype="boolean"),
        }
    )
    dup = df.sample(frac=0.03, random_state=seed)
    return pd.concat([df, dup]).sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)


@pytest.mark.parametrize("rule", ["consecutive", "gb18483"])
@pytest.mark.parametrize("seed", range(12))
def test_replay_equals_stream_random(seed: int, rule: str) -> None:
    rng = np.random.default_rng(1000 + seed)
    config = DetectorConfig(
        rule=rule,
        window_s=int(rng.choice([300, 600])),
        open_after_windows=int(rng.integers(1, 4)),
        close_after_windows=int(rng.integers(1, 3)),
        min_valid_share=float(rng.choice([0.3, 0.75])),
        purifier_off_min=float(rng.choice([2.0, 10.0])),
    )
    events, windows = assert_same(random_frame(seed, int(rng.integers(500, 4000))), config)
    assert len(windows) > 0


def test_random_series_do_produce_events() -> None:
    """Guard against a vacuous comparison: the generated series contain both event kinds."""
    kinds: set[str] = set()
    for seed in range(6):
        events, _ = replay_frame(
            random_frame(seed, 3000),
            REGISTRY,
            PROFILES,
            DetectorConfig(purifier_off_min=2.0, rule="consecutive"),
        )
        kinds |= {e.kind for e in events}
        kinds |= {f"{e.kind}:{e.pollutant}:{e.state}" for e in events}
    assert {EXCEEDANCE, PURIFIER_OFF, "exceedance:oil_fume:closed", "exceedance:pm:closed"} <= kinds


def test_row_order_and_device_dtype_do_not_matter() -> None:
    df = random_frame(3, 3000)
    config = DetectorConfig(open_after_windows=2, rule="consecutive")
    base_events, base_windows = replay_frame(df, REGISTRY, PROFILES, config)
    # time order, by device, and categorical device ids
    variants = [
        df.sort_values("time_ms", kind="stable"),
        df.sort_values(["device_id", "time_ms"], kind="stable"),
        df.astype({"device_id": "category"}),
        df.astype({"fan_on": object, "purifier_on": object}),
    ]
    for v in variants:
        ev, win = replay_frame(v, REGISTRY, PROFILES, config)
        assert [e.as_dict() for e in ev] == [e.as_dict() for e in base_events]
        assert window_rows(win) == window_rows(base_windows)


def test_minimal_columns_and_empty_frame() -> None:
    df = pd.DataFrame(
        {
            "time_ms": T0 + np.arange(40, dtype=np.int64) * 60_000,
            "device_id": "k1",
            "oil_fume_ref_mg_m3": [3.0] * 40,
        }
    )
    events, windows = replay_frame(df, REGISTRY, PROFILES, DetectorConfig(rule="consecutive"))
    assert [(e.kind, e.start_ms, e.state) for e in events] == [(EXCEEDANCE, T0, "open")]
    assert len(windows) == 4 and windows["valid"].all()
    events, windows = replay_frame(df.iloc[:0], REGISTRY, PROFILES)
    assert events == [] and list(windows.columns) == list(WINDOW_COLUMNS)


def test_replay_twice_is_identical() -> None:
    df = random_frame(5, 3000)
    a, wa = replay_frame(df, REGISTRY, PROFILES)
    b, wb = replay_frame(df, REGISTRY, PROFILES)
    assert [e.as_dict() for e in a] == [e.as_dict() for e in b]
    pd.testing.assert_frame_equal(wa, wb)


# -- throughput smoke (printed, not asserted) ------------------------------------------------------------


def test_replay_throughput_smoke() -> None:
    n_dev, per = 2_000, 500  # 1,000,000 readings, one a minute per device
    rng = np.random.default_rng(0)
    reg = Registry(
        Device(f"R{i}", "n", "D", f"dev{i:05d}", int(rng.integers(1, 10)), profile=["", "db11-1488"][i % 2])
        for i in range(n_dev)
    )
    ids = np.array([f"dev{i:05d}" for i in range(n_dev)], dtype=object)
    codes = np.tile(np.arange(n_dev), per)
    t = (
        T0
        + np.repeat(np.arange(per, dtype=np.int64) * 60_000, n_dev)
        + np.tile(rng.integers(0, 59_000, n_dev), per)
    )
    n = len(t)
    df = pd.DataFrame(
        {
            "time_ms": t,
            "device_id": ids[codes],
            "oil_fume_ref_mg_m3": rng.choice([0.5, 1.5, 2.5], n_dev)[codes] * rng.lognormal(0, 0.3, n),
            "pm_mg_m3": rng.uniform(0, 8, n),
            "nmhc_mg_m3": rng.uniform(0, 14, n),
            "fan_on": rng.random(n) < 0.95,
            "purifier_on": rng.random(n) < 0.98,
        }
    )
    start = time.perf_counter()
    events, windows = replay_frame(df, reg, PROFILES)
    elapsed = time.perf_counter() - start
    print(
        f"\nreplay_frame: {n:,} readings in {elapsed:.2f} s = {n / elapsed:,.0f} readings/s, {len(events)} events"
    )
    # gb18483 devices: oil fume windows only; db11-1488 devices: oil fume, pm and nmhc
    assert len(windows) == (n_dev // 2) * (per // 10) * (1 + 3)
