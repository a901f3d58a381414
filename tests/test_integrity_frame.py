"""alerts/integrity/frame.py: the data-integrity checks over a whole frame give what the alerts service
gives service by service.

The stream here is the real :class:`alerts.integrity.watch.IntegrityWatch` (its ``findings``: the
readings of the service as store rows, suspect_flatline, suspect_flow, suspect_replay against the
device's earlier readings, a CloneIndex, suspect_zero from the ledger's windows), fed the services
:class:`alerts.service_ends.ServiceEnds` hands out, in its order, with the frame's rows as the store and
replay_frame's windows as the ledger. The frame: a few dozen kitchens over two days, lunch and dinner,
noisy like real sensors (correlated lognormal noise, three decimals, a flow with 3 % noise), shuffled,
with duplicate rows (the first wins) and an unregistered device, and one kitchen per fault.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alerts.detection.replay import replay_frame
from alerts.detection.window import DetectorConfig
from alerts.integrity.checks import suspect_flatline
from alerts.integrity.frame import integrity_frame
from alerts.integrity.settings import IntegritySettings
from alerts.integrity.watch import IntegrityWatch
from alerts.model import WindowResult
from alerts.profiles import load_profiles
from alerts.service_ends import ServiceEnds
from ingest.registry import Device, Registry

MIN = 60_000
DAY = 1440
T0 = 1_795_651_200_000 - 8 * 3_600_000  # 2026-12-01 00:00 Asia/Shanghai
HONEST = [f"K{i:02d}" for i in range(30)]
FAULTS = {
    "FLAT": "suspect_flatline",  # day 2 lunch: 70 minutes of 1.234
    "FLAT10": "suspect_flatline",  # 10-minute data, day 1 dinner: 7 readings of 0.876
    "FLOW": "suspect_flow",  # day 1 dinner: the flow halves when the fume is high
    "REPLAY": "suspect_replay",  # day 2 dinner = day 1 dinner + 0.05
    "CLONE-A": "suspect_clone",  # day 1 lunch of CLONE-B is CLONE-A's (another restaurant)
    "CLONE-B": "suspect_clone",
    "ZERO": "suspect_zero",  # day 2 dinner: 40 minutes of 0.000 with the fan on
}
TWINS = ("TWIN-1", "TWIN-2")  # one restaurant, one logger: equal series, not a clone


def registry() -> Registry:
    devs = []
    for i, d in enumerate(HONEST + list(FAULTS) + list(TWINS)):
        rest = "R-TWIN" if d in TWINS else ("R-K00" if d == "K01" else f"R-{d}")  # K00, K01 share one
        devs.append(Device(rest, d, f"D{i % 3}", d, 1 + i % 7, interval_s=600 if d == "FLAT10" else None))
    return Registry(devs)


def kitchen(rng: np.random.Generator, heads: int, step_min: int = 1) -> dict[str, np.ndarray]:
    """Two days of one kitchen: fan on for lunch and dinner (times vary by day), concentration with
    correlated lognormal noise, three decimals; flow for the stove heads with 3 % noise."""
    m = np.arange(0, 2 * DAY, step_min)
    fan = np.zeros(len(m), dtype=bool)
    intensity = np.zeros(len(m))
    for day in range(2):
        for a, b in ((600, 840), (1000, 1270)):
            s, e = day * DAY + a + int(rng.integers(-20, 15)), day * DAY + b + int(rng.integers(-15, 25))
            on = (m >= s) & (m < e)
            fan |= on
            intensity[on] = 0.4 + 0.6 * np.sin(np.pi * (m[on] - s) / (e - s)) ** 1.5
    noise = np.zeros(len(m))
    phi = np.exp(-step_min / 5)
    eps = rng.standard_normal(len(m))
    for i in range(1, len(m)):
        noise[i] = phi * noise[i - 1] + np.sqrt(1 - phi**2) * eps[i]
    base = rng.uniform(0.3, 1.2)
    oil = np.round(base * intensity * np.exp(0.12 * noise - 0.0072), 3)
    oil[~fan] = np.round(rng.uniform(0, 0.03, int((~fan).sum())), 3)
    oil[rng.random(len(m)) < 0.005] = np.nan
    q = heads * 2000 * rng.uniform(0.7, 1.3) * (1 + 0.03 * rng.standard_normal(len(m)))
    return {"m": m, "oil": oil, "fan": fan, "flow": np.where(fan, np.round(q, 1), 0.0)}


def frame(seed: int, reg: Registry) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ks = {d.device_id: kitchen(rng, d.stove_heads, 10 if d.device_id == "FLAT10" else 1) for d in reg}
    ks["GHOST"] = {k: v.copy() for k, v in ks["K05"].items()}  # not registered: never judged
    f = ks["FLAT"]
    at = (f["m"] >= DAY + 660) & (f["m"] < DAY + 730)
    f["oil"][at], f["fan"][at] = 1.234, True
    f = ks["FLAT10"]
    at = (f["m"] >= 1080) & (f["m"] < 1150)
    f["oil"][at], f["fan"][at] = 0.876, True
    f = ks["FLOW"]
    dinner = (f["m"] >= 990) & (f["m"] < 1290) & f["fan"]
    f["oil"][dinner] = np.round(f["oil"][dinner] * np.where(np.arange(dinner.sum()) % 4 == 0, 2.5, 1.0), 3)
    high = dinner & (f["oil"] > np.nanquantile(f["oil"][dinner], 0.7))
    f["flow"][high] = np.round(f["flow"][high] * 0.5, 1)
    f = ks["REPLAY"]
    d1, d2 = (f["m"] >= 990) & (f["m"] < 1290), (f["m"] >= DAY + 990) & (f["m"] < DAY + 1290)
    f["fan"][d2], f["flow"][d2] = f["fan"][d1], f["flow"][d1]
    f["oil"][d2] = np.where(f["fan"][d1], np.round(f["oil"][d1] + 0.05, 3), f["oil"][d1])
    for src, dst, a, b in (("CLONE-A", "CLONE-B", 600, 840), ("TWIN-1", "TWIN-2", 990, 1290)):
        s, c = ks[src], ks[dst]
        at = (s["m"] >= a) & (s["m"] < b)
        c["oil"][at], c["fan"][at] = s["oil"][at], s["fan"][at]
    f = ks["ZERO"]
    at = (f["m"] >= DAY + 1080) & (f["m"] < DAY + 1120)
    f["oil"][at], f["fan"][at] = 0.0, True
    parts = []
    for dev, k in ks.items():
        oil = k["oil"]
        parts.append(
            pd.DataFrame(
                {
                    "time_ms": T0 + k["m"] * MIN,
                    "device_id": dev,
                    "oil_fume_mg_m3": oil,
                    "oil_fume_ref_mg_m3": oil,
                    "flow_m3_h": k["flow"],
                    "fan_on": k["fan"],
                    "purifier_on": True,
                }
            )
        )
    df = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed, ignore_index=True)
    dup = df.sample(40, random_state=seed + 1).assign(oil_fume_mg_m3=9.999, oil_fume_ref_mg_m3=9.999)
    return pd.concat([df, dup], ignore_index=True)  # duplicates after their originals: the first wins


class FrameLedger:
    """What IntegrityWatch reads from the ledger (list_windows), from replay_frame's windows."""

    def __init__(self, windows: pd.DataFrame) -> None:
        self.by_device: dict[str, list[WindowResult]] = {}
        for r in windows[windows["pollutant"] == "oil_fume"].sort_values("start_ms").itertuples():
            w = WindowResult(
                str(r.device_id), int(r.start_ms), int(r.end_ms), int(r.samples), int(r.expected),
                bool(r.valid), str(r.invalid_reason), None if pd.isna(r.mean_mg_m3) else float(r.mean_mg_m3),
                None if pd.isna(r.max_mg_m3) else float(r.max_mg_m3), bool(r.exceeds),
            )  # fmt: skip
            self.by_device.setdefault(w.device_id, []).append(w)

    def list_windows(self, device_id, pollutant, since_ms, until_ms):
        return [w for w in self.by_device.get(device_id, []) if since_ms <= w.start_ms < until_ms]


def streaming(df: pd.DataFrame, reg: Registry, settings: IntegritySettings, cfg: DetectorConfig, windows):
    """The alerts service's findings: every service ServiceEnds hands out, through IntegrityWatch."""
    stored = df.drop_duplicates(["device_id", "time_ms"], keep="first").sort_values("time_ms", kind="stable")
    rows: dict[str, list[dict]] = {}
    for r in stored.itertuples(index=False):
        v = None if pd.isna(r.oil_fume_mg_m3) else float(r.oil_fume_mg_m3)
        rows.setdefault(str(r.device_id), []).append(
            {"time_ms": int(r.time_ms), "oil_fume_mg_m3": v, "flow_m3_h": float(r.flow_m3_h), "fan_on": bool(r.fan_on)}
        )  # fmt: skip
    times = {d: [r["time_ms"] for r in rs] for d, rs in rows.items()}

    def readings_of(device_id: str, since_ms: int, until_ms: int) -> list[dict]:
        t = times.get(device_id, [])
        return rows[device_id][bisect_left(t, since_ms) : bisect_left(t, until_ms)] if t else []

    ledger = FrameLedger(windows)
    watch = IntegrityWatch(ledger, reg, settings, cfg, readings_of=readings_of)  # type: ignore[arg-type]
    ends = ServiceEnds(cfg)
    ends.observe(sorted((w for ws in ledger.by_device.values() for w in ws), key=lambda w: w.start_ms))
    out = []
    for dev, start, end in ends.due(2**62):
        if reg.get(dev) is not None:
            out.extend(watch.findings(dev, start, end))
    return out


def key(found) -> list[tuple]:
    return sorted(
        (d, f.check, f.start_ms, f.end_ms, round(f.minutes, 1), repr(sorted(f.detail.items())))
        for d, f in found
    )


@pytest.fixture(scope="module")
def reg() -> Registry:
    return registry()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frame_findings_equal_the_streaming_ones(reg: Registry, seed: int) -> None:
    df = frame(seed, reg)
    if seed == 2:  # the benchmark's form: a categorical device column
        df["device_id"] = df["device_id"].astype("category")
    cfg, settings = DetectorConfig(), IntegritySettings()
    _, windows = replay_frame(df, reg, load_profiles(), cfg)
    got = integrity_frame(df, reg, settings, cfg, windows)
    want = streaming(df, reg, settings, cfg, windows)
    assert key(got) == key(want)
    # one finding (clone: one for each device of the pair) per planted fault, none for an honest kitchen
    assert sorted((d, f.check) for d, f in got) == sorted(FAULTS.items())
    flows = [f for d, f in got if f.check == "suspect_flow"]
    assert flows[0].detail["reasons"] == ["flow_drops_when_high"]
    (replay,) = [f for d, f in got if f.check == "suspect_replay"]
    assert replay.detail["shift_mg_m3"] == 0.05 and replay.detail["other_start_ms"] < replay.start_ms
    flat10 = next(f for d, f in got if d == "FLAT10")
    assert flat10.detail["readings"] == 7 and flat10.minutes == 70


def test_what_the_frame_needs_for_each_check(reg: Registry) -> None:
    df = frame(4, reg)
    cfg = DetectorConfig()
    _, windows = replay_frame(df, reg, load_profiles(), cfg)
    checks = {
        f.check for _, f in integrity_frame(df.drop(columns=["flow_m3_h"]), reg, IntegritySettings(), cfg)
    }
    assert checks == {"suspect_flatline", "suspect_replay", "suspect_clone"}  # no windows, no flow column
    assert integrity_frame(df, reg, IntegritySettings(enabled=False), cfg, windows) == []
    # a longer flatline_min, a shorter replay look-back: as the stream
    settings = IntegritySettings(flatline_min=75, replay_lookback_days=0.2, series_min_distinct=30)
    assert key(integrity_frame(df, reg, settings, cfg, windows)) == key(
        streaming(df, reg, settings, cfg, windows)
    )


def test_honest_kitchens_and_an_empty_frame_give_nothing(reg: Registry) -> None:
    df = frame(5, reg)
    honest = df[df["device_id"].isin(HONEST)]
    cfg = DetectorConfig()
    _, windows = replay_frame(honest, reg, load_profiles(), cfg)
    assert integrity_frame(honest, reg, IntegritySettings(), cfg, windows) == []
    assert integrity_frame(honest.iloc[:0], reg, IntegritySettings(), cfg) == []


def test_the_shortest_match_that_counts() -> None:
    """10-minute data: 10 readings (100 minutes, 10 distinct values, 9 equal steps: the fewest a match
    can have) replayed shifted, and cloned by another restaurant's device."""
    reg = Registry(Device(f"R-{d}", d, "D0", d, 2, interval_s=600) for d in ("S", "C1", "C2"))
    rng = np.random.default_rng(11)
    ks = {d: kitchen(rng, 2, 10) for d in ("S", "C1", "C2")}
    for k in ks.values():
        k["fan"][:] = True
        k["oil"] = np.round(0.5 + 0.5 * rng.random(len(k["m"])), 3)  # every step new
    s = ks["S"]
    src, dst = (s["m"] >= 1000) & (s["m"] < 1100), (s["m"] >= DAY + 1100) & (s["m"] < DAY + 1200)
    s["oil"][dst] = np.round(s["oil"][src] + 0.02, 3)
    src = (ks["C1"]["m"] >= 640) & (ks["C1"]["m"] < 740)
    ks["C2"]["oil"][src] = ks["C1"]["oil"][src]
    df = pd.concat(
        pd.DataFrame({"time_ms": T0 + k["m"] * MIN, "device_id": d, "oil_fume_mg_m3": k["oil"],
                      "oil_fume_ref_mg_m3": k["oil"], "fan_on": k["fan"], "flow_m3_h": k["flow"]})
        for d, k in ks.items()
    )  # fmt: skip
    cfg, settings = DetectorConfig(), IntegritySettings()
    _, windows = replay_frame(df, reg, load_profiles(), cfg)
    got = integrity_frame(df, reg, settings, cfg, windows)
    assert key(got) == key(streaming(df, reg, settings, cfg, windows))
    assert sorted((d, f.check, f.detail["readings"]) for d, f in got) == [
        ("C1", "suspect_clone", 10),
        ("C2", "suspect_clone", 10),
        ("S", "suspect_replay", 10),
    ]


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 2, 3, 5, 6, 10, 11, 12]),  # minutes since the previous reading
            st.sampled_from([0.0, 0.5, 0.7, 1.234]),
            st.sampled_from([True, True, True, False, None]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([10.0, 20.0, 30.0]),
)
@example([(1, 0.5, True)] * 11 + [(1, 0.7, True)] * 11, 10.0)  # two runs as long: the first one
def test_flatline_runs_as_the_stream_judges_them(readings, flatline_min) -> None:
    """Gaps, the fan off or unknown, zeros, ties between runs: the run-length encoding keeps the rules."""
    reg = Registry([Device("R", "n", "D", "F", 2)])
    t, rows = T0 + 600 * MIN, []  # from 10:00, lunch
    for dt, v, fan in readings:
        t += dt * MIN
        rows.append({"time_ms": t, "device_id": "F", "oil_fume_mg_m3": v, "flow_m3_h": 4000.0, "fan_on": fan})
    s = IntegritySettings(flatline_min=flatline_min)
    got = [
        f
        for _, f in integrity_frame(pd.DataFrame(rows), reg, s, DetectorConfig())
        if f.check == "suspect_flatline"
    ]
    lunch = [r for r in rows if r["time_ms"] < T0 + 840 * MIN]
    want = suspect_flatline(lunch, min_minutes=flatline_min, zero_limit=0.0) if lunch else None
    assert got == ([] if want is None else [want])
