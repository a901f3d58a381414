"""Tests of the kitchen simulator (ingest/simulate/): registry, behaviours, realism, encodings, and a
real publish run through Mosquitto."""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
import pytest

from ingest import simulate as sim
from ingest.config import DEFAULT_FACTORS
from ingest.hj212 import HJ212Error, crc16, parse_frame, split_frames
from ingest.registry import Registry
from ingest.timeutil import parse_time

START_MS = parse_time("2026-11-26T00:00:00+08:00")  # local midnight, a Thursday
START_ORDINAL = date(2026, 11, 26).toordinal()
DAY_MS = 86_400_000
LIMIT_MG_M3 = 2.0  # GB 18483-2001 maximum oil-fume concentration
REF_FLOW_PER_HEAD_M3_H = 2000.0  # GB 18483-2001 reference exhaust volume per stove head
CJK = re.compile(r"[\u4e00-\u9fff]")


def longest_run(mask: pd.Series | np.ndarray) -> int:
    """Length of the longest run of True values."""
    best = cur = 0
    for v in np.asarray(mask, dtype=bool):
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return best


# =========================================================================================================
# Registry
# =========================================================================================================


def test_registry_is_deterministic_and_reads_real() -> None:
    reg = sim.make_registry(50, seed=1)
    again = sim.make_registry(50, seed=1)
    other = sim.make_registry(50, seed=2)
    devices = list(reg)
    assert devices == list(again)
    assert [d.name for d in devices] != [d.name for d in other]

    assert len(reg) == 50
    assert [d.restaurant_id for d in devices] == [f"R{i:04d}" for i in range(1, 51)]
    assert all(d.device_id == f"FW-{d.restaurant_id}-1" for d in devices)
    assert len({d.name for d in devices}) == 50
    assert all(CJK.search(d.name) and CJK.search(d.owner_name) for d in devices)
    assert {d.district for d in devices} <= {"朝阳区", "海淀区", "东城区", "西城区", "丰台区", "石景山区"}
    assert len({d.district for d in devices}) >= 4
    assert all(d.address.startswith(f"北京市{d.district}") for d in devices)
    assert all(d.hj212_pw == "123456" and d.owner_notify == "" for d in devices)
    profiles = Counter(d.profile for d in devices)
    assert set(profiles) <= {"", "db11-1488"}
    assert 0 < profiles["db11-1488"] <= 10

    big = list(sim.make_registry(300, seed=3))
    heads = Counter(d.stove_heads for d in big)
    assert sum(heads[h] for h in range(1, 7)) / len(big) >= 0.85
    assert sum(heads[h] for h in range(8, 13)) >= 5
    assert set(heads) <= set(range(1, 7)) | set(range(8, 13))


def test_write_registry_round_trips(tmp_path) -> None:
    path = tmp_path / "sub" / "registry.csv"
    written = sim.write_registry(path, 12, seed=4)
    loaded = Registry.load(path)
    assert list(loaded) == list(written)


def test_registry_places_kitchens_around_their_district_centre() -> None:
    """WGS-84 positions around each district's centre (Chaoyang ~39.92 N 116.44 E), deterministic by seed,
    from their own random stream: the other columns of a seeded registry are what they were before."""
    reg = list(sim.make_registry(300, seed=1))
    assert reg == list(sim.make_registry(300, seed=1))
    assert [(d.lat, d.lon) for d in reg] != [(d.lat, d.lon) for d in sim.make_registry(300, seed=2)]
    # the first names of seed 1 are the ones deploy/registry.csv was made with before positions existed
    assert [d.name for d in reg[:3]] == ["沙县小吃", "湘味小厨", "武汉热干面"]
    assert all(39.6 < d.lat < 40.2 and 116.0 < d.lon < 116.8 for d in reg)  # Beijing's urban districts
    by_district = pd.DataFrame([asdict(d) for d in reg]).groupby("district")
    centre = by_district[["lat", "lon"]].mean()
    assert centre.loc["朝阳区", "lat"] == pytest.approx(39.92, abs=0.01)
    assert centre.loc["朝阳区", "lon"] == pytest.approx(116.44, abs=0.01)
    assert (
        centre.loc["海淀区", "lon"] < centre.loc["东城区", "lon"] < centre.loc["朝阳区", "lon"]
    )  # west to east
    spread = by_district["lat"].std()
    assert spread["东城区"] < spread["朝阳区"]  # a small central district is more compact
    assert (
        sim.make_registry(5, seed=9).get("FW-R0003-1").lat
        == sim.make_registry(40, seed=9).get("FW-R0003-1").lat
    )  # a position depends on (seed, restaurant) only


# =========================================================================================================
# Behaviours
# =========================================================================================================


@pytest.mark.parametrize("seed", [1, 2, 3, 17])
def test_behaviour_counts_for_fifty(seed: int) -> None:
    reg = sim.make_registry(50, seed=seed)
    beh = sim.behaviours(reg, seed)
    assert set(beh) == {d.device_id for d in reg}
    assert Counter(beh.values()) == {
        "normal": 41,
        "worn_purifier": 4,
        "bypass": 1,
        "offline": 1,
        "flaky_sensor": 1,
        "silting_purifier": 1,
        "unplugged_sensor": 1,
    }
    assert beh == sim.behaviours(reg, seed)


def test_behaviours_small_and_varied() -> None:
    assert Counter(sim.behaviours(sim.make_registry(3), 1).values())["worn_purifier"] >= 1
    assert set(sim.behaviours(sim.make_registry(2), 1).values()) == {"normal"}
    reg = sim.make_registry(50)
    assignments = {tuple(sorted(sim.behaviours(reg, s).items())) for s in range(1, 6)}
    assert len(assignments) > 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_silting_purifier_took_one_normal_kitchen_and_changed_nobody_else(seed: int) -> None:
    reg = sim.make_registry(50, seed=seed)
    beh = sim.behaviours(reg, seed)
    # (the unplugged sensor, assigned after it, is left out too: tests below check it the same way)
    without = replace(sim.DEFAULT_MODEL, silting_share=0.0, unplugged_share=0.0)
    before = sim.behaviours(reg, seed, model=without)
    silting = [d for d, b in beh.items() if b in ("silting_purifier", "unplugged_sensor")]
    assert len(silting) == 2 and "silting_purifier" not in before.values()
    assert before[silting[0]] == "normal"
    assert {d: b for d, b in beh.items() if d not in silting} == {
        d: b for d, b in before.items() if d not in silting
    }
    # and the other devices' series are drawn exactly as before
    start = START_MS + 11 * 3_600_000
    now = [r for r in sim.generate(reg, start, 2, seed=seed) if r.device_id not in silting]
    then = [r for r in sim.generate(reg, start, 2, seed=seed, model=without) if r.device_id not in silting]
    assert now == then


def test_silting_purifier_needs_ten_restaurants() -> None:
    for n, expected in ((5, 0), (9, 0), (10, 1), (74, 1), (75, 2)):
        beh = sim.behaviours(sim.make_registry(n, seed=1), 1)
        assert Counter(beh.values())["silting_purifier"] == expected, n


# =========================================================================================================
# Generation: reproducibility
# =========================================================================================================


def test_same_seed_same_series_different_seed_differs() -> None:
    reg = sim.make_registry(10, seed=5)
    a = list(sim.generate(reg, START_MS, 6, seed=5))
    b = list(sim.generate(reg, START_MS, 6, seed=5))
    c = list(sim.generate(reg, START_MS, 6, seed=6))
    assert a == b
    assert [r.oil_fume for r in a] != [r.oil_fume for r in c]
    assert sim.count_readings(reg, START_MS, 6, seed=5) == len(a)


def test_time_major_order_and_window_consistency() -> None:
    reg = sim.make_registry(5, seed=2)
    day = list(sim.generate(reg, START_MS + 10 * 3_600_000, 4, seed=2))
    times = [r.time_ms for r in day]
    assert times == sorted(times)
    ids = [d.device_id for d in reg]
    first_t = [r.device_id for r in day if r.time_ms == times[0]]
    assert first_t == [i for i in ids if i in first_t]
    # A later window on the same grid reproduces the overlapping part exactly.
    late = list(sim.generate(reg, START_MS + 12 * 3_600_000, 2, seed=2))
    assert late == [r for r in day if r.time_ms >= START_MS + 12 * 3_600_000]


# =========================================================================================================
# Generation: realism on one simulated day of 50 restaurants
# =========================================================================================================


@pytest.fixture(scope="module")
def day() -> tuple[pd.DataFrame, dict[str, str], Registry]:
    reg = sim.make_registry(50, seed=1)
    beh = sim.behaviours(reg, 1)
    df = pd.DataFrame([asdict(r) for r in sim.generate(reg, START_MS, 24, seed=1)])
    heads = {d.device_id: d.stove_heads for d in reg}
    df["heads"] = df.device_id.map(heads)
    df["behaviour"] = df.device_id.map(beh)
    # GB 18483-2001 reference concentration, exactly as ingest computes it.
    df["c_ref"] = df.oil_fume * df.flow / (df.heads * REF_FLOW_PER_HEAD_M3_H)
    local = pd.to_datetime(df.time_ms, unit="ms", utc=True).dt.tz_convert("Asia/Shanghai")
    df["hour"] = local.dt.hour + local.dt.minute / 60
    return df, beh, reg


def _peaks(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.fan & (df.hour.between(11.5, 13.0) | df.hour.between(17.5, 20.0))]


def test_values_are_valid_numbers(day) -> None:
    df, _, _ = day
    for col in ("oil_fume", "flow"):
        assert df[col].notna().all() and (df[col] >= 0).all()
    for col in ("pm", "nmhc"):
        vals = df[col].dropna()
        assert len(vals) > 0.8 * len(df) and np.isfinite(vals).all() and (vals >= 0).all()


def test_normal_kitchens_comply_at_peaks(day) -> None:
    df, _, _ = day
    peaks = _peaks(df[df.behaviour == "normal"])
    assert len(peaks) > 43 * 120
    assert (peaks.c_ref < LIMIT_MG_M3).mean() >= 0.99
    assert 0.3 <= peaks.c_ref.median() <= 1.2
    assert peaks.c_ref.quantile(0.05) >= 0.2 and peaks.c_ref.quantile(0.95) <= 1.4
    # co-pollutants while cooking
    assert 0.5 <= peaks.pm.median() <= 3.0
    assert 2.0 <= peaks.nmhc.median() <= 8.0


def test_flow_follows_stove_heads(day) -> None:
    df, _, _ = day
    on = df[df.fan]
    ratio = on.flow / (on.heads * REF_FLOW_PER_HEAD_M3_H)
    assert ratio.between(0.6, 1.45).all()
    per_device = ratio.groupby(on.device_id).median()
    assert per_device.min() < 0.9 and per_device.max() > 1.1  # kitchens differ


def test_worn_purifier_exceeds_for_sustained_stretches(day) -> None:
    df, beh, _ = day
    worn = [d for d, b in beh.items() if b == "worn_purifier"]
    assert len(worn) == 4
    for dev in worn:
        g = df[df.device_id == dev].sort_values("time_ms")
        over = g.c_ref > LIMIT_MG_M3
        assert longest_run(over) >= 30, dev
        assert g[over].hour.between(10.5, 21.5).all()
        assert g[over].purifier.all()  # the purifier runs; it just does not clean enough


def test_fan_off_outside_business_hours(day) -> None:
    df, _, _ = day
    night = df[(df.hour < 8.5) | (df.hour >= 22.0)]
    assert len(night) > 50 * 600
    assert not night.fan.any() and not night.purifier.any()
    assert (night.flow == 0.0).all()
    assert night.oil_fume.between(0.02, 0.1).all()
    # and every kitchen cooks at lunch and at dinner
    for window in ((11.5, 13.0), (17.5, 20.0)):
        cooking = df[df.hour.between(*window) & df.fan].device_id.nunique()
        assert cooking == 50


def test_bypass_runs_fan_without_purifier(day) -> None:
    df, beh, _ = day
    bypass = [d for d, b in beh.items() if b == "bypass"]
    g = df[df.device_id == bypass[0]].sort_values("time_ms")
    off = g.fan & ~g.purifier
    assert longest_run(off) >= 30
    assert g[off].c_ref.median() >= 4.0
    others = df[df.behaviour != "bypass"]
    assert not (others.fan & ~others.purifier).any()


def test_offline_device_has_multi_hour_gap_in_business_hours(day) -> None:
    df, beh, _ = day
    offline = [d for d, b in beh.items() if b == "offline"][0]
    t = np.sort(df[df.device_id == offline].time_ms.to_numpy())
    gaps = np.diff(t)
    i = int(np.argmax(gaps))
    assert gaps[i] >= 2 * 3_600_000
    gap_start_h = (t[i] - START_MS) / 3_600_000
    gap_end_h = (t[i + 1] - START_MS) / 3_600_000
    assert 9.0 <= gap_start_h and gap_end_h <= 22.0
    counts = df.groupby("device_id").size()
    assert (counts.drop(offline) == 1440).all()


def test_flaky_sensor_spikes_single_minutes(day) -> None:
    df, beh, _ = day

    def isolated_spikes(dev: str) -> int:
        g = df[df.device_id == dev].sort_values("time_ms")
        v = g.oil_fume.to_numpy()
        neighbours = np.maximum(np.r_[v[1:], 0], np.r_[0, v[:-1]])
        return int(np.sum((v > 3 * neighbours) & g.fan.to_numpy()))  # not the fan-off background jitter

    flaky = [d for d, b in beh.items() if b == "flaky_sensor"][0]
    assert isolated_spikes(flaky) >= 3
    assert all(isolated_spikes(d) == 0 for d, b in beh.items() if b == "normal")


# =========================================================================================================
# Encodings
# =========================================================================================================


def _reading(**kw) -> sim.SimReading:
    base = dict(
        device_id="FW-R0001-1",
        time_ms=parse_time("2026-11-26T12:00:00+08:00"),
        oil_fume=0.734,
        pm=1.25,
        nmhc=4.5,
        flow=5321.7,
        fan=True,
        purifier=False,
    )
    base.update(kw)
    return sim.SimReading(**base)


def test_encode_json_single_and_batch() -> None:
    r = _reading()
    obj = json.loads(sim.encode_json(r))
    assert obj == {
        "ts": "2026-11-26T12:00:00+08:00",
        "oil_fume": 0.734,
        "pm": 1.25,
        "nmhc": 4.5,
        "flow": 5321.7,
        "fan": True,
        "purifier": False,
    }
    assert parse_time(obj["ts"]) == r.time_ms
    partial = json.loads(sim.encode_json(_reading(pm=None, nmhc=None)))
    assert "pm" not in partial and "nmhc" not in partial and partial["oil_fume"] == 0.734

    rs = [_reading(time_ms=r.time_ms + i * 60_000, oil_fume=0.1 * i) for i in range(3)]
    arr = json.loads(sim.encode_json_batch(rs))
    assert isinstance(arr, list) and len(arr) == 3
    assert [o["ts"] for o in arr] == [x.time_ms for x in rs]
    assert all(isinstance(o["ts"], int) and set(o) >= {"oil_fume", "fan", "purifier"} for o in arr)


def test_encode_hj212_parses_with_valid_crc() -> None:
    r = _reading()
    raw = sim.encode_hj212(r, factors=DEFAULT_FACTORS)
    assert raw.endswith(b"\r\n")
    frame = parse_frame(raw.decode("ascii"))
    seg = raw[6:-6]
    assert int(raw[-6:-2], 16) == crc16(seg) and int(raw[2:6]) == len(seg)
    assert (frame.cn, frame.mn, frame.pw) == ("2051", "FW-R0001-1", "123456")
    assert frame.data_time == "20261126120000"  # Beijing time of 04:00Z
    assert frame.factors["a34041"] == {"Avg": "0.734", "Flag": "N"}
    assert float(frame.factors["a00000"]["Avg"]) == 5321.7
    assert frame.factors["fan01"]["Avg"] == "1" and frame.factors["pur01"]["Avg"] == "0"

    utc = parse_frame(sim.encode_hj212(r, factors=DEFAULT_FACTORS, tz="UTC", cn="2011", pw="x1").decode())
    assert utc.data_time == "20261126040000" and utc.cn == "2011" and utc.pw == "x1"
    assert utc.factors["a34041"]["Rtd"] == "0.734"

    vendor = {"o01": "oil_fume", "q01": "flow", "s01": "fan"}
    f2 = parse_frame(sim.encode_hj212(_reading(pm=None), factors=vendor).decode())
    assert set(f2.factors) == {"o01", "q01", "s01"}
    with pytest.raises(ValueError):
        sim.encode_hj212(r, factors={"a00000": "flow"})


# =========================================================================================================
# Publishing through a real Mosquitto
# =========================================================================================================


class Collector:
    """A paho subscriber that records every message under a topic prefix."""

    def __init__(self, host: str, port: int, prefix: str, protocol: int = mqtt.MQTTv5) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
        )
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_connect = lambda client, *a: client.subscribe(f"{prefix}/#", qos=1)
        c.on_message = self._on_message
        c.connect(host, port)
        c.loop_start()
        assert subscribed.wait(10), "subscription not acknowledged"
        self._client = c

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def wait_for(self, n: int, timeout_s: float = 10.0, settle_s: float = 0.3) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(settle_s)  # anything extra would show up now
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def prefix() -> str:
    return f"simtest{uuid.uuid4().hex[:8]}/v1"


@pytest.mark.integration
def test_run_simulation_delivers_every_reading(mosquitto, prefix) -> None:
    reg = sim.make_registry(3, seed=1)
    expected = Counter(r.device_id for r in sim.generate(reg, START_MS + 11 * 3_600_000, 2, seed=1))
    calls: list[tuple[int, int]] = []
    sub = Collector(mosquitto.host, mosquitto.port, prefix)
    try:
        stats = sim.run_simulation(
            mosquitto.url,
            reg,
            start_ms=START_MS + 11 * 3_600_000,
            hours=2,
            speed=0,
            topic_prefix=prefix,
            progress=lambda done, total: calls.append((done, total)),
        )
        got = sub.wait_for(stats.messages)
    finally:
        sub.close()
    total = sum(expected.values())
    assert (stats.readings, stats.messages, stats.devices, stats.faults) == (total, total, 3, {})
    assert Counter(t for t, _ in got) == {f"{prefix}/{d}/reading": n for d, n in expected.items()}
    assert calls[-1] == (total, total) and all(d <= t for d, t in calls)
    objs = [json.loads(p) for _, p in got]
    assert all(o["ts"].endswith("+08:00") and isinstance(o["fan"], bool) for o in objs)


@pytest.mark.integration
def test_run_simulation_with_faults_adds_extra_messages(mosquitto, prefix) -> None:
    reg = sim.make_registry(3, seed=1)
    start = START_MS + 11 * 3_600_000
    expected = Counter(r.device_id for r in sim.generate(reg, start, 2, seed=1))
    sub = Collector(mosquitto.host, mosquitto.port, prefix)
    try:
        stats = sim.run_simulation(
            mosquitto.url, reg, start_ms=start, hours=2, speed=0, topic_prefix=prefix, inject_faults=True
        )
        got = sub.wait_for(stats.messages)
    finally:
        sub.close()
    assert set(stats.faults) == set(sim.FAULT_KINDS_JSON)
    assert all(n >= 1 for n in stats.faults.values())
    n_faults = sum(stats.faults.values())
    assert stats.messages == stats.readings + n_faults == sum(expected.values()) + n_faults
    assert len(got) == stats.messages
    topics = Counter(t for t, _ in got)
    assert topics[f"{prefix}/{sim.UNKNOWN_DEVICE_ID}/reading"] == stats.faults["unknown_device"]

    # Every valid reading still arrives: the strictly valid messages are exactly the generated readings.
    valid: Counter[str] = Counter()
    for topic, payload in got:
        try:
            obj = json.loads(payload, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError:
            continue
        dev = topic.split("/")[-2]
        ok = (
            dev in expected
            and isinstance(obj.get("oil_fume"), float | int)
            and obj["oil_fume"] >= 0
            and start <= parse_time(obj["ts"]) < start + 2 * 3_600_000
            and parse_time(obj["ts"]) % 60_000 == 0
        )
        valid[dev] += ok
    assert valid == expected


@pytest.mark.integration
def test_run_simulation_hj212_batches(mosquitto, prefix) -> None:
    reg = sim.make_registry(3, seed=2)
    start = START_MS + 17 * 3_600_000
    expected = Counter(r.device_id for r in sim.generate(reg, start, 2, seed=2))
    sub = Collector(mosquitto.host, mosquitto.port, prefix)
    try:
        stats = sim.run_simulation(
            mosquitto.url,
            reg,
            start_ms=start,
            hours=2,
            speed=0,
            fmt="hj212",
            batch=7,
            topic_prefix=prefix,
            seed=2,
            inject_faults=True,
        )
        got = sub.wait_for(stats.messages)
    finally:
        sub.close()
    assert set(stats.faults) == set(sim.FAULT_KINDS_HJ212)
    n_valid_messages = sum(math.ceil(n / 7) for n in expected.values())
    assert stats.messages == n_valid_messages + sum(stats.faults.values()) == len(got)
    good: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for topic, payload in got:
        assert topic.endswith("/hj212")
        for chunk in split_frames(payload.decode("ascii", errors="replace")):
            try:
                frame = parse_frame(chunk)
            except HJ212Error as exc:
                reasons[exc.reason] += 1
                continue
            value = float(frame.factors["a34041"]["Avg"])
            if frame.mn in expected and math.isfinite(value) and value >= 0 and frame.data_time < "20261128":
                good[frame.mn] += 1
    assert good == expected
    assert reasons["bad_crc"] >= 1 and reasons["truncated"] >= 1


@pytest.mark.integration
def test_run_simulation_paces_by_simulated_time(mosquitto, prefix) -> None:
    reg = sim.make_registry(2, seed=1)
    stats = sim.run_simulation(
        mosquitto.url, reg, start_ms=START_MS, hours=0.5, speed=3600, topic_prefix=prefix, batch=5
    )
    # 30 one-minute steps at 3600x: the last step is due 29 simulated minutes = 0.48 s after the start.
    assert stats.readings == 60 and stats.messages == 12
    assert 0.45 <= stats.elapsed_s < 5.0


@pytest.mark.integration
def test_run_simulation_falls_back_to_mqtt311(prefix) -> None:
    """amqtt (the demo's zero-install broker) speaks MQTT 3.1.1 only: protocol="auto" falls back to it."""
    pytest.importorskip("amqtt", reason="amqtt not installed")
    from ingest.broker import EmbeddedBroker

    broker = EmbeddedBroker(prefer="amqtt").start()
    try:
        reg = sim.make_registry(3, seed=1)
        start = START_MS + 12 * 3_600_000
        expected = sim.count_readings(reg, start, 0.5, seed=1)
        sub = Collector("127.0.0.1", broker.port, prefix, protocol=mqtt.MQTTv311)
        try:
            with pytest.raises(ConnectionError):
                sim.run_simulation(broker.url, reg, start_ms=start, hours=0.5, speed=0, protocol="5")
            stats = sim.run_simulation(
                broker.url, reg, start_ms=start, hours=0.5, speed=0, topic_prefix=prefix
            )
            got = sub.wait_for(stats.messages)
        finally:
            sub.close()
    finally:
        broker.stop()
    assert stats.readings == stats.messages == expected == len(got) == 90


# =========================================================================================================
# The silting purifier: two weeks between cleanings
# =========================================================================================================


def _silting_days(seed: int, model: sim.KitchenModel, first_day: int, days: int) -> tuple[str, pd.DataFrame]:
    """The silting device's readings from 09:00 to 22:30 local on ``days`` days from START_MS + first_day,
    with the reference-converted c_ref and the local day index (0 = START_MS's day)."""
    reg = sim.make_registry(50, seed=seed)
    dev = next(d for d, b in sim.behaviours(reg, seed, model=model).items() if b == "silting_purifier")
    rows = []
    for day in range(first_day, first_day + days):
        t0 = START_MS + day * DAY_MS + 9 * 3_600_000
        rows += [asdict(r) for r in sim.generate(reg, t0, 13.5, seed=seed, model=model) if r.device_id == dev]
    df = pd.DataFrame(rows)
    df["c_ref"] = df.oil_fume * df.flow / (reg.get(dev).stove_heads * REF_FLOW_PER_HEAD_M3_H)
    df["day"] = (df.time_ms - START_MS) // DAY_MS
    local = pd.to_datetime(df.time_ms, unit="ms", utc=True).dt.tz_convert("Asia/Shanghai")
    df["hour"] = local.dt.hour + local.dt.minute / 60
    return dev, df


def _service_values(df: pd.DataFrame) -> dict[tuple[int, str], float]:
    """GB 18483 value per (day, service): 10-minute epoch-aligned means of c_ref while the fan runs, windows
    under 1/4 of the service's largest dropped (at least 3 left), the highest mean of 5 consecutive."""
    on = df[df.fan]
    out = {}
    for svc, (h0, h1) in (("lunch", (10.0, 14.5)), ("dinner", (16.5, 21.5))):
        part = on[(on.hour >= h0) & (on.hour < h1)]
        for day, g in part.groupby("day"):
            w = g.groupby(g.time_ms // 600_000).c_ref.mean().sort_index().to_numpy()
            w = w[w >= w.max() / 4]
            assert len(w) >= 3
            out[(int(day), svc)] = max(float(w[i : i + 5].mean()) for i in range(max(1, len(w) - 4)))
    return out


def _daily_peak(df: pd.DataFrame) -> pd.Series:
    """Mean of the 30 highest minute values of c_ref per day."""
    return df.groupby("day").c_ref.apply(lambda c: c.nlargest(30).mean())


@pytest.fixture(scope="module")
def silting_cycle() -> tuple[str, pd.DataFrame]:
    model = replace(sim.DEFAULT_MODEL, silting_cleaned_ordinal=START_ORDINAL)
    return _silting_days(1, model, 0, 15)  # a whole cycle and the first day of the next


def test_silting_purifier_worsens_over_the_cycle_but_stays_under_the_limit(silting_cycle) -> None:
    _, df = silting_cycle
    cycle = df[df.day < 14]
    assert (cycle.purifier == cycle.fan).all()  # no bypass
    assert len(cycle) == 14 * 13.5 * 60  # never offline
    peak = _daily_peak(cycle)
    assert peak.iloc[-3:].mean() >= 1.6 * peak.iloc[:3].mean()
    assert np.corrcoef(peak.rank(), peak.index)[0, 1] >= 0.85  # rises day by day (rank correlation)
    values = _service_values(cycle)
    assert len(values) == 28
    assert max(values.values()) < LIMIT_MG_M3
    assert max(v for (d, _), v in values.items() if d <= 3) <= 1.05
    last = [v for (d, _), v in values.items() if d >= 11]
    assert min(last) >= 1.3 and max(last) >= 1.6
    assert (cycle.c_ref > LIMIT_MG_M3).mean() < 0.02  # the odd noisy minute at most


def test_silting_purifier_is_clean_again_after_its_cleaning(silting_cycle) -> None:
    _, df = silting_cycle
    peak = _daily_peak(df)
    assert peak[14] < 0.7 * peak[13]  # cleaned on day 14 (= day 0 of the next cycle)
    assert peak[14] == pytest.approx(peak[0], rel=0.3)
    values = _service_values(df)
    assert max(values[(14, "lunch")], values[(14, "dinner")]) <= 1.05
    # a cleaning a week later moves the cycle with it: day 7 is the low day then
    later = replace(sim.DEFAULT_MODEL, silting_cleaned_ordinal=START_ORDINAL + 7)
    _, shifted = _silting_days(1, later, 6, 2)
    p = _daily_peak(shifted)
    assert p[7] < 0.7 * p[6]
    assert p[6] == pytest.approx(peak[13], rel=0.3)
    # the phase changes the oil fume (and pm, nmhc with it), not the kitchen's hours or its flow
    cols = ["time_ms", "flow", "fan", "purifier"]
    same_days = df[df.day.isin([6, 7])][cols].reset_index(drop=True)
    assert shifted[cols].reset_index(drop=True).equals(same_days)


def test_silting_purifier_without_a_cleaning_day_gets_a_fixed_one() -> None:
    """silting_cleaned_ordinal None: a cleaning day of the kitchen's own (seed 2: 2026-11-30), as if given."""
    _, df = _silting_days(2, sim.DEFAULT_MODEL, 0, 15)
    drops = _daily_peak(df).diff()
    cleaned = int(drops.idxmin())  # the one big drop in 15 days
    assert drops[cleaned] < -0.3
    assert (drops.drop(cleaned).dropna() > -0.3).all()
    model = replace(sim.DEFAULT_MODEL, silting_cleaned_ordinal=START_ORDINAL + cleaned)
    assert df.equals(_silting_days(2, model, 0, 15)[1])


def test_unplugged_sensor_reads_zero_at_dinner_with_the_fan_on() -> None:
    """One kitchen in 50 (assigned last: nobody else changes) reads 0.00 for an hour of each dinner while
    its fan runs; its lunch is normal."""
    reg = sim.make_registry(50, seed=1)
    without = replace(sim.DEFAULT_MODEL, unplugged_share=0.0)
    beh, before = sim.behaviours(reg, 1), sim.behaviours(reg, 1, model=without)
    assert before[next(d for d, b in beh.items() if b == "unplugged_sensor")] == "normal"
    (dev,) = [d for d, b in beh.items() if b == "unplugged_sensor"]
    assert {d: b for d, b in beh.items() if d != dev} == {d: b for d, b in before.items() if d != dev}
    day = sim.default_start_ms("Asia/Shanghai")
    one = Registry(d for d in reg if d.device_id == dev)
    rs = list(
        sim.generate(
            one, day, 24, seed=1, model=replace(sim.DEFAULT_MODEL, behaviour_of=((dev, "unplugged_sensor"),))
        )
    )
    zeros = [r for r in rs if r.fan and r.oil_fume == 0.0]
    assert len(zeros) == 60
    hours = {datetime.fromtimestamp(r.time_ms / 1000, ZoneInfo("Asia/Shanghai")).hour for r in zeros}
    assert min(hours) >= 16  # at dinner
    assert all(
        r.oil_fume > 0
        for r in rs
        if r.fan and datetime.fromtimestamp(r.time_ms / 1000, ZoneInfo("Asia/Shanghai")).hour < 15
    )


# -- data-integrity faults (--inject, ingest/simulate/inject.py) ---------------------------------------


def test_inject_puts_each_fault_into_its_own_normal_kitchen(tmp_path):
    from ingest.simulate import inject
    from ingest.simulate.model import DEFAULT_MODEL
    from ingest.simulate.series import generate

    reg = sim.write_registry(tmp_path / "reg.csv", 20, seed=3)
    beh = sim.behaviours(reg, 3)
    faults = inject.assign(reg, beh, inject.FAULTS)
    assert sorted(f for f, _ in faults.values()) == sorted(inject.FAULTS)
    assert all(beh[d] == "normal" for d in faults)
    clone, (_, source) = next((d, v) for d, v in faults.items() if v[0] == "clone")
    assert source and beh[source] == "normal" and source not in faults
    by_fault = {f: d for d, (f, _) in faults.items()}
    start = sim.default_start_ms("Asia/Shanghai") - 86_400_000
    model = replace(DEFAULT_MODEL, inject=inject.FAULTS)
    rows: dict[str, list] = {}
    for r in generate(reg, start, 48, seed=3, model=model):
        rows.setdefault(r.device_id, []).append(r)
    honest = {d: [r for r in generate(reg, start, 48, seed=3) if r.device_id == d] for d in faults}
    day = lambda rs, k: [r for r in rs if (r.time_ms - start) // 86_400_000 == k]  # noqa: E731
    # replay: the second day is the first day's fume, shifted by +0.05 (fan on)
    rep = rows[by_fault["replay"]]
    first, second = day(rep, 0), day(rep, 1)
    assert [round(b.oil_fume - a.oil_fume, 3) for a, b in zip(first, second, strict=True) if a.fan] == [
        0.05
    ] * sum(a.fan for a in first)
    # clone: the copy sends its source's values at the same times
    assert [(r.time_ms, r.oil_fume) for r in rows[clone]] == [(r.time_ms, r.oil_fume) for r in rows[source]]
    # flatline: 70 minutes of one value with the fan on; zero: 60 minutes of 0.0 at dinner
    flat = [r.oil_fume for r in day(rows[by_fault["flatline"]], 0) if r.fan]
    assert max(flat.count(v) for v in set(flat)) >= 70
    zero = day(rows[by_fault["zero"]], 0)
    assert sum(1 for r in zero if r.fan and r.oil_fume == 0.0) >= 60
    # clock: stamps step back 10 minutes at every half hour of fan time
    times = [r.time_ms for r in day(rows[by_fault["clock"]], 0)]
    backs = [a - b for a, b in zip(times, times[1:], strict=False) if b < a]
    assert len(backs) >= 6 and all(b == 9 * 60_000 for b in backs)
    # flow: the top quarter of the fume gets 40 % of the honest flow
    fl = day(rows[by_fault["flow"]], 0)
    ho = day(honest[by_fault["flow"]], 0)
    cut = sorted(r.oil_fume for r in fl if r.fan)[int(sum(r.fan for r in fl) * 0.75)]
    for a, b in zip(fl, ho, strict=True):
        if a.fan and a.oil_fume >= cut:
            assert a.flow == pytest.approx(0.4 * b.flow)
        else:
            assert a.flow == b.flow


def test_inject_refuses_an_unknown_fault_or_too_few_kitchens(tmp_path):
    from ingest.simulate import inject

    with pytest.raises(ValueError, match="unknown fault 'bogus'; choose from flatline,zero"):
        inject.parse("zero,bogus")
    assert inject.parse(" flow , zero ") == ("zero", "flow")
    reg = sim.write_registry(tmp_path / "reg.csv", 3, seed=1)
    with pytest.raises(ValueError, match="no normal kitchen left"):
        inject.assign(reg, sim.behaviours(reg, 1), inject.FAULTS)


def test_demo_refuses_an_unknown_fault_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "demo",
            "--data-dir",
            str(tmp_path / "d"),
            "--inject",
            "zero,bogus",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "fumewatch demo: --inject: unknown fault 'bogus'; choose from flatline,zero,replay,clone,clock,flow"
    ]
