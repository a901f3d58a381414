"""Per-device counters (issue 13, ``fumewatch devices``): the accumulator on hand-made Readings with HJ 212
flags, unknown factor entries and pipeline notes; its bounds; the ``device_stats`` rows on SQLite and
PostgreSQL (two writers adding to one row, retention); the /metrics families; and the real
``fumewatch devices`` command, its formats and its mistakes. Over a real broker: test_devices_e2e.py."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from servers import run_fumewatch

from fumewatch.cli.common import text_width
from ingest import device_stats as ds
from ingest.config import DeadLetterSettings
from ingest.device_stats import HOUR_MS, OTHER, DeviceStats, median_gap_s
from ingest.metrics import device_metrics
from ingest.model import DeadLetter, Reading
from ingest.state import StateDB
from ingest.timeutil import now_ms, parse_time

MINUTE = 60_000
T0 = parse_time("2026-11-20T02:00:00Z")  # 10:00 in Asia/Shanghai, an hour boundary
REGISTRY_CSV = (
    "restaurant_id,name,district,device_id,stove_heads,hj212_pw,dialect,interval_s\n"
    "R1,老王牛肉面,朝阳区,DEV-1,2,,,\n"
    "R2,川味小厨,海淀区,DEV-2,4,,modbus-crc,600\n"
    "R3,静安面馆,静安区,DEV-3,2,,,\n"
)
KNOWN = {"DEV-1", "DEV-2", "DEV-3"}


def observe(stats, readings, notes, received):
    """``stats.observe`` with the notes the pipeline adds: each reading's unknown codes, once per reading (the
    codes of its ``extra`` keys, as ingest/dialects/decode.py reports them)."""
    derived = [
        (r.device_id, "unknown_code", code)
        for r in readings
        for code in dict.fromkeys(k.split("-", 1)[0] for k in (r.extra or {}))
    ]
    stats.observe(readings, [*notes, *derived], received)


def reading(t: int, device: str = "DEV-1", flags=None, extra=None, interval_s: int = 0) -> Reading:
    r = Reading(t, device, "R1", "朝阳区", 1.0, 1.0, False, source="hj212", interval_s=interval_s)
    r.flags, r.extra = flags, extra
    return r


def dead(ms: int, device: str, reason: str, **detail) -> DeadLetter:
    return DeadLetter(
        ms, f"fume/v1/{device}/hj212", reason, "##0101QN=...", device, {"message": "m", **detail}
    )


# ---------------------------------------------------------------- the accumulator
def test_counts_flags_unknown_codes_notes_and_the_interval_per_device_and_hour() -> None:
    st = DeviceStats(KNOWN.__contains__)
    received = T0 + 30 * MINUTE
    flags = {"oil_fume": "T", "pm": "N", "flow": "N"}
    extra = {"a99001-Rtd": "3.2", "a99001-Flag": "N", "b02-Avg": "7"}
    # a monitor's buffer arrives out of order, with a repeat: the interval is still its 60 s
    times = [T0 + i * MINUTE for i in (0, 1, 3, 2, 4, 4, 5)]
    observe(st, [reading(t, flags=flags, extra=extra) for t in times], [], received)
    notes = [
        ("DEV-1", "crc_variant", "modbus_swapped"),
        ("DEV-1", "crc_variant", "modbus_swapped"),
        ("DEV-1", "subpacket_held", "20261120100000001"),
        ("DEV-1", "subpacket_done", "20261120100000001"),
        ("DEV-1", "dialect_guess", "x"),  # a kind this code does not know yet: counted all the same
        ("GHOST", "crc_variant", "modbus_swapped"),  # not in the registry: not counted per device
    ]
    observe(st, [], notes, received + 1000)
    observe(st, [reading(T0 + HOUR_MS, "DEV-2", interval_s=3600)], [], received + HOUR_MS)  # next hour
    taken = st.take()
    assert sorted(taken) == [("DEV-1", T0), ("DEV-2", T0 + HOUR_MS)]
    b = taken[("DEV-1", T0)]
    assert (b.readings, b.last_reading_ms, b.interval_s) == (7, T0 + 5 * MINUTE, 60)
    assert (b.first_received_ms, b.last_received_ms) == (received, received + 1000)
    assert b.flags == {"T": 7, "N": 14}
    assert b.unknown_codes == {"a99001": 7, "b02": 7}  # once per reading, whatever the entry kind
    assert b.notes == {"crc_variant": 2, "subpacket_held": 1, "subpacket_done": 1, "dialect_guess": 1}
    assert b.crc_variants == {"modbus_swapped": 2}
    assert taken[("DEV-2", T0 + HOUR_MS)].interval_s == 3600  # hourly averages only
    assert st.take() == {}  # taken once
    t = st.totals()
    assert t["unknown_codes"] == {("DEV-1", "a99001"): 7, ("DEV-1", "b02"): 7}
    assert t["flags"] == {"T": 7, "N": 14}
    assert t["crc_variants"] == {"modbus_swapped": 2}
    assert t["notes"]["subpacket_held"] == 1 and t["notes"]["dialect_guess"] == 1


def test_dead_letters_count_by_reason_and_crc_failures_by_frame() -> None:
    st = DeviceStats(KNOWN.__contains__)
    counted = st.count_dead(
        [
            dead(T0, "DEV-2", "hj212_bad_crc"),
            dead(T0 + 1, "DEV-2", "hj212_fragments", fragments=5, refused=5,
                 by_reason={"hj212_bad_crc": 3, "hj212_bad_length": 2}),
            dead(T0 + 2, "DEV-2", "hj212_bad_crc", fragments=4, refused=4, by_reason={"hj212_bad_crc": 4}),
            dead(T0 + 3, "DEV-2", "bad_ts"),
            dead(T0 + 4, "GHOST-9", "unknown_device"),  # listed by --unregistered, not here
            dead(T0 + 5, "", "bad_topic"),
        ]
    )  # fmt: skip
    assert list(counted) == [("DEV-2", T0)]
    b = counted[("DEV-2", T0)]
    assert b.crc_failures == 1 + 3 + 4
    assert b.dead_letters == {"hj212_bad_crc": 2, "hj212_fragments": 1, "bad_ts": 1}
    assert st.take() == {}  # written with the dead letters, not left pending


def test_untrusted_input_is_bounded() -> None:
    long_id = "D" * 1000
    st = DeviceStats(lambda d: d in KNOWN or d == long_id[: ds.MAX_ID_CHARS])
    extra = {f"x{i:03d}-Rtd": "1" for i in range(ds.MAX_CODES + 11)}
    flags = {f"f{i}": f"Z{i}" for i in range(ds.MAX_KEYS + 5)}
    observe(st, [reading(T0, flags=flags, extra=extra)], [], T0)
    observe(st, [reading(T0, long_id)], [], T0)
    b = st.take()[("DEV-1", T0)]
    assert len(b.unknown_codes) == ds.MAX_CODES + 1 and b.unknown_codes[OTHER] == 11
    assert len(b.flags) == ds.MAX_KEYS + 1 and b.flags[OTHER] == 5
    # the metric series: at most MAX_UNKNOWN_SERIES (device, code) pairs, then ("other", "other")
    many = DeviceStats(lambda d: True)
    for i in range(ds.MAX_UNKNOWN_SERIES + 10):
        observe(many, [reading(T0, f"D{i}", extra={"a99001-Rtd": "1"})], [], T0)
    series = many.totals()["unknown_codes"]
    assert len(series) == ds.MAX_UNKNOWN_SERIES + 1 and series[(OTHER, OTHER)] == 10
    # remembered reading times per device stay bounded
    one = DeviceStats(KNOWN.__contains__)
    for k in range(20):
        observe(one, [reading(T0 + (k * 100 + i) * MINUTE) for i in range(100)], [], T0)
    assert len(one._recent["DEV-1"]) == ds.RECENT_TIMES and one.interval_s("DEV-1") == 60


def test_restore_adds_what_came_since_and_a_long_outage_is_bounded(monkeypatch) -> None:
    st = DeviceStats(KNOWN.__contains__)
    observe(st, [reading(T0, flags={"oil_fume": "T"})], [], T0)
    taken = st.take()  # the state database fails to take them ...
    observe(st, [reading(T0 + MINUTE, flags={"oil_fume": "T"})], [], T0 + MINUTE)
    st.restore(taken)  # ... they wait with what came since
    b = st.take()[("DEV-1", T0)]
    assert (b.readings, b.flags, b.last_reading_ms) == (2, {"T": 2}, T0 + MINUTE)
    monkeypatch.setattr(ds, "MAX_PENDING", 3)
    st.restore({("DEV-1", T0 + h * HOUR_MS): ds.Bucket(T0, T0) for h in range(5)})
    assert st.pending == 3 and st.dropped_buckets == 2 and st.totals()["dropped_buckets"] == 2


def test_median_gap() -> None:
    assert median_gap_s([]) is None and median_gap_s([T0]) is None
    assert median_gap_s([T0, T0 + 600_000, T0 + 1_200_000, T0 + 1_260_000]) == 600
    assert median_gap_s([T0, T0 + 100]) == 1  # sub-second: at least 1 s


def test_metrics_families_say_what_they_cap() -> None:
    st = DeviceStats(KNOWN.__contains__)
    observe(
        st,
        [reading(T0, flags={"oil_fume": "T"}, extra={"a99001-Rtd": "1"})],
        [("DEV-1", "crc_variant", "modbus_swapped"), ("DEV-1", "subpacket_held", "q")],
        T0,
    )

    class Collector:
        def collect(self):
            yield from device_metrics(st.totals())

    registry = CollectorRegistry()
    registry.register(Collector())
    text = generate_latest(registry).decode()
    assert 'fumewatch_hj212_unknown_codes_total{code="a99001",device="DEV-1"} 1.0' in text
    assert 'fumewatch_hj212_flags_total{flag="T"} 1.0' in text
    assert 'fumewatch_hj212_crc_variant_total{variant="modbus_swapped"} 1.0' in text
    assert 'fumewatch_hj212_subpackets_total{kind="held"} 1.0' in text
    assert 'fumewatch_hj212_subpackets_total{kind="done"} 0.0' in text
    assert 'fumewatch_ingest_notes_total{kind="subpacket_held"} 1.0' in text
    assert "fumewatch_device_stats_dropped_total 0.0" in text
    assert "at most 1000 device/code series: beyond, device=other,code=other" in text


# ---------------------------------------------------------------- device_stats rows, both backends
def test_rows_add_up_across_writers_and_retention_deletes_them(state_url: str) -> None:
    now = now_ms()
    a, b = StateDB(state_url), StateDB(state_url)  # two ingest workers (--shared-group)
    try:
        sa, sb = DeviceStats(KNOWN.__contains__), DeviceStats(KNOWN.__contains__)
        a.track_devices(sa)
        b.track_devices(sb)
        observe(sa, [reading(now - 2 * MINUTE, flags={"oil_fume": "T"}, extra={"a99001-Rtd": "1"})], [], now)
        observe(sb, [reading(now - MINUTE, flags={"oil_fume": "N"}, extra={"a99001-Rtd": "1"})], [], now + 5)
        assert a.flush_device_stats() == 1 and b.flush_device_stats() == 1
        # a dead letter and its counts in one transaction (the caps hold the letter back, not the count)
        b.limits = DeadLetterSettings(max_per_device_per_minute=1)
        b.add_dead_letters([dead(now + 10 + i, "DEV-1", "hj212_bad_crc") for i in range(3)])
        assert len(b.dead_letters(reason="hj212_bad_crc")) == 1
        [s] = a.device_summaries(now - 24 * HOUR_MS).values()
        p = s.period
        assert (s.device_id, s.last_reading_ms, s.last_received_ms) == ("DEV-1", now - MINUTE, now + 12)
        assert (p.readings, p.flags, p.unknown_codes) == (2, {"T": 1, "N": 1}, {"a99001": 2})
        assert (p.crc_failures, p.dead_letters) == (3, {"hj212_bad_crc": 3})
        # an old hour: outside the period, still the last seen; retention deletes it with the letters
        old = DeviceStats(KNOWN.__contains__)
        a.track_devices(old)
        observe(old, [reading(now - 40 * 86_400_000, "DEV-3")], [], now - 40 * 86_400_000)
        a.flush_device_stats()
        got = a.device_summaries(now - 24 * HOUR_MS)
        assert got["DEV-3"].period is None and got["DEV-3"].last_reading_ms == now - 40 * 86_400_000
        a.limits = DeadLetterSettings(retention_days=30, purge_batch_rows=1)
        a.purge_expired(now)
        assert set(a.device_summaries(0)) == {"DEV-1"} and a.device_stats_purged == 1
    finally:
        a.close()
        b.close()


def test_close_writes_what_is_pending(tmp_path: Path) -> None:
    st = StateDB(tmp_path / "state.db")
    acc = DeviceStats(KNOWN.__contains__)
    st.track_devices(acc)
    observe(acc, [reading(T0)], [], T0)
    st.close()
    st = StateDB(tmp_path / "state.db")
    try:
        assert st.device_summaries(T0)["DEV-1"].period.readings == 1
    finally:
        st.close()


# ---------------------------------------------------------------- fumewatch devices
@pytest.fixture
def devices_dir(tmp_path: Path, state_url: str) -> tuple[Path, str]:
    """A registry and a state database (SQLite or PostgreSQL) holding a day of counters."""
    (tmp_path / "registry.csv").write_text(REGISTRY_CSV, encoding="utf-8")
    now = now_ms()
    st = StateDB(state_url, DeadLetterSettings(max_per_device_per_minute=2))
    acc = DeviceStats(KNOWN.__contains__)
    st.track_devices(acc)
    t = now - now % MINUTE - 10 * MINUTE
    observe(
        acc,
        [reading(t + i * MINUTE, flags={"oil_fume": "T"}, extra={"a99001-Rtd": "3"}) for i in range(5)],
        [("DEV-1", "crc_variant", "modbus_swapped")],
        now - 1000,
    )
    st.add_dead_letters([dead(now - 500, "DEV-2", "hj212_bad_crc"), dead(now - 400, "DEV-2", "bad_ts")])
    ghost = [dead(now - 300 + i, "GHOST-9", "unknown_device") for i in range(4)]  # 2 held back by the cap
    st.add_dead_letters(ghost + [dead(now - 200, "ODD-1", "unknown_device")])
    st.add_dead_letters([dead(now - 100, "DEV-3", "unknown_device")])  # registered since: not listed
    st.close()
    return tmp_path, state_url


def _args(d: tuple[Path, str], *more: str) -> list[str]:
    return ["devices", "--state", d[1], "--registry", str(d[0] / "registry.csv"), *more]


def test_devices_lists_every_registry_device(devices_dir) -> None:
    tmp, _ = devices_dir
    r = run_fumewatch(tmp, *_args(devices_dir, "--format", "csv"))
    assert r.returncode == 0, r.stderr
    rows = {row["device_id"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert list(rows) == ["DEV-1", "DEV-2", "DEV-3"]
    one, two, three = rows["DEV-1"], rows["DEV-2"], rows["DEV-3"]
    assert (one["restaurant"], one["dialect"], two["dialect"]) == ("老王牛肉面", "hj212-2017", "modbus-crc")
    assert one["last_seen"].endswith("+08:00") and one["last_received"].endswith("+08:00")
    assert one["interval"] == "60 s (observed)" and two["interval"] == "600 s"
    assert (one["readings"], one["flags"], one["unknown_codes"]) == ("5", "T 5", "a99001 5")
    assert one["crc_variants"] == "modbus_swapped 1" and one["notes"] == "crc_variant 1"
    assert (two["last_seen"], two["crc_failures"], two["dead_letters"]) == ("never", "1", "2")
    assert two["dead_letter_reasons"] == "bad_ts 1, hj212_bad_crc 1"
    # DEV-3 was added to the registry after its first messages: what it sent then is its dead letters
    assert (three["last_seen"], three["readings"], three["dead_letter_reasons"]) == (
        "never",
        "0",
        "unknown_device 1",
    )
    assert three["last_received"].endswith("+08:00")
    j = {
        x["device_id"]: x
        for x in json.loads(run_fumewatch(tmp, *_args(devices_dir, "--format", "json")).stdout)
    }
    assert j["DEV-1"]["flags"] == {"T": 5} and j["DEV-1"]["observed_interval_s"] == 60
    assert j["DEV-1"]["last_seen"].endswith("+08:00") and isinstance(j["DEV-1"]["last_seen_ms"], int)
    assert j["DEV-2"]["dead_letter_reasons"] == {"hj212_bad_crc": 1, "bad_ts": 1}
    assert j["DEV-2"]["last_seen"] == "never" and j["DEV-2"]["last_seen_ms"] is None
    table = run_fumewatch(tmp, *_args(devices_dir)).stdout.splitlines()
    assert "counts since" in table[0] and table[0].count("+08:00") == 1
    assert table[1].split() == ["device_id", "restaurant", "dialect", "last_seen", "last_received", "interval",
                                "readings", "flags", "unknown_codes", "crc_failures", "dead_letters", "integrity",
                                "gateway"]  # fmt: skip
    assert table[3].startswith("DEV-2") and "2 (bad_ts 1, hj212_bad_crc 1)" in table[3]
    # the columns line up although restaurant names are Chinese (two terminal columns a character)
    assert text_width(table[2][: table[2].index("hj212-2017")]) == text_width(
        table[3][: table[3].index("modbus-crc")]
    )
    utc = json.loads(run_fumewatch(tmp, *_args(devices_dir, "--format", "json", "--utc")).stdout)
    assert utc[0]["last_seen"].endswith("+00:00")


def test_devices_unregistered_lists_unknown_ids_most_first(devices_dir) -> None:
    tmp, _ = devices_dir
    r = run_fumewatch(tmp, *_args(devices_dir, "--unregistered", "--format", "json"))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert [(u["device_id"], u["count"], u["held_back"]) for u in got] == [("GHOST-9", 4, 2), ("ODD-1", 1, 0)]
    assert got[0]["topic"] == "fume/v1/GHOST-9/hj212"
    assert got[0]["first_seen"].endswith("+08:00") and got[0]["last_seen"].endswith("+08:00")
    table = run_fumewatch(tmp, *_args(devices_dir, "--unregistered")).stdout.splitlines()
    assert table[1].split() == ["device_id", "topic", "count", "first_seen", "last_seen"]
    assert table[2].split()[:3] == ["GHOST-9", "fume/v1/GHOST-9/hj212", "4"]
    r = run_fumewatch(tmp, *_args(devices_dir, "--unregistered", "--format", "csv"))
    assert [row["device_id"] for row in csv.DictReader(io.StringIO(r.stdout))] == ["GHOST-9", "ODD-1"]


# ---------------------------------------------------------------- fumewatch devices: data integrity
def add_findings(state: str) -> int:
    """Data-integrity findings (``data_integrity`` events, as alerts/integrity/watch.py writes them) in the
    alerts ledger of ``state``; returns the "now" they are relative to."""
    from alerts.ledger import Ledger
    from alerts.model import Event

    now = now_ms()

    def finding(check: str, device: str, rest: str, ago_h: float, minutes: float, **detail) -> Event:
        start = now - int(ago_h * HOUR_MS)
        svc = start - 30 * MINUTE
        return Event(
            event_id=f"integrity:{check}:{device}:{svc}",
            kind="data_integrity",
            restaurant_id=rest,
            device_id=device,
            district="朝阳区",
            start_ms=start,
            end_ms=start + int(minutes * MINUTE),
            pollutant="oil_fume",
            state="closed",
            rule=check,
            judgement={"check": check, "minutes": minutes, "service_start_ms": svc,
                       "service_end_ms": svc + 4 * HOUR_MS, **detail},
        )  # fmt: skip

    history = [{"service_start_ms": now - d * 86_400_000, "service_end_ms": now - d * 86_400_000 + HOUR_MS,
                "valid_windows": 20, "zero_min": 0.0, "mean_mg_m3": 0.8} for d in (3, 2)]  # fmt: skip
    led = Ledger(state)
    try:
        for e in (
            finding("suspect_zero", "DEV-1", "R1", 2, 40.0, zero_windows=4, valid_windows=12,
                    zero_limit_mg_m3=0.0, min_minutes=30.0, history=history),
            finding("suspect_flatline", "DEV-1", "R1", 5, 70.0, value_mg_m3=1.234, readings=7),
            finding("suspect_zero", "DEV-1", "R1", 30, 50.0, zero_windows=5, valid_windows=10,
                    zero_limit_mg_m3=0.0, history=history),  # a day before: outside the default 24 h
            finding("suspect_replay", "DEV-2", "R2", 1, 60.0, shift_mg_m3=0.1, readings=60),
            finding("suspect_zero", "GHOST-9", "R9", 3, 30.0, zero_windows=3, history=[]),  # not registered
        ):  # fmt: skip
            led.upsert_event(e)
    finally:
        led.close()
    return now


def test_devices_integrity_column_counts_findings_by_check(devices_dir) -> None:
    tmp, state = devices_dir
    add_findings(state)
    r = run_fumewatch(tmp, *_args(devices_dir, "--format", "csv"))
    assert r.returncode == 0 and "ledger" not in r.stderr, r.stderr
    rows = {row["device_id"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert rows["DEV-1"]["integrity"] == "suspect_flatline 1, suspect_zero 1"
    assert (rows["DEV-2"]["integrity"], rows["DEV-3"]["integrity"]) == ("suspect_replay 1", "")
    r = run_fumewatch(tmp, *_args(devices_dir, "--format", "csv", "--since-hours", "48"))
    rows = {row["device_id"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert rows["DEV-1"]["integrity"] == "suspect_zero 2, suspect_flatline 1"
    j = {
        x["device_id"]: x
        for x in json.loads(run_fumewatch(tmp, *_args(devices_dir, "--format", "json")).stdout)
    }
    assert (
        j["DEV-1"]["integrity"] == {"suspect_zero": 1, "suspect_flatline": 1}
        and j["DEV-3"]["integrity"] == {}
    )
    table = run_fumewatch(tmp, *_args(devices_dir)).stdout.splitlines()
    assert table[1].split()[-2:] == ["integrity", "gateway"] and "not offences" in table[0]
    assert table[2].startswith("DEV-1") and table[2].endswith("suspect_flatline 1, suspect_zero 1")


def test_devices_integrity_lists_one_devices_findings_newest_first(devices_dir) -> None:
    tmp, state = devices_dir
    now = add_findings(state)
    r = run_fumewatch(tmp, *_args(devices_dir, "--integrity", "DEV-1", "--format", "json"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    got = json.loads(r.stdout)
    assert [(f["check"], f["label"]) for f in got] == [
        ("suspect_zero", "疑似零值"),
        ("suspect_flatline", "疑似恒值"),
        ("suspect_zero", "疑似零值"),
    ]  # newest first, all recorded
    zero, flat, old = got
    assert zero["time_ms"] == now - 2 * HOUR_MS and zero["time"].endswith("+08:00")
    assert parse_time(zero["time"]) == zero["time_ms"] and zero["end"].endswith("+08:00")
    assert zero["minutes"] == 40.0 and zero["event_id"].startswith("integrity:suspect_zero:DEV-1:")
    assert (
        zero["evidence"]
        == "零值 40 分钟（4 个有效窗口 ≤ 0.00 mg/m³）；此前 2 个营业时段最多 0 分钟，均值 0.800 mg/m³"
    )
    assert zero["evidence_en"].startswith("40 min at zero (4 valid windows")
    assert zero["judgement"]["history"][0]["service_start"].endswith("+08:00")  # nested times too
    assert (
        flat["evidence"] == "恒值 1.234 mg/m³ 持续 70 分钟（7 条数据）"
        and flat["label_en"] == "suspect flatline"
    )
    # csv: one value a cell; --since-hours limits the history; --utc as the other listings
    r = run_fumewatch(
        tmp, *_args(devices_dir, "--integrity", "DEV-1", "--format", "csv", "--since-hours", "24")
    )
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["time", "end", "check", "label", "label_en", "minutes", "event_id", "evidence",
                             "evidence_en"]  # fmt: skip
    assert [x["check"] for x in rows] == ["suspect_zero", "suspect_flatline"]
    assert rows[1]["evidence"].startswith("恒值 1.234") and rows[0]["time"].endswith("+08:00")
    utc = json.loads(run_fumewatch(tmp, *_args(devices_dir, "--integrity", "DEV-1", "--format", "json",
                                               "--utc")).stdout)  # fmt: skip
    assert utc[0]["time"].endswith("+00:00") and parse_time(utc[0]["time"]) == now - 2 * HOUR_MS
    # table: what is listed and what findings are, then the rows (a check without its own text still shows)
    table = run_fumewatch(tmp, *_args(devices_dir, "--integrity", "DEV-2")).stdout.splitlines()
    assert table[0].startswith("1 data-integrity finding of DEV-2 (川味小厨), all recorded, newest first.")
    assert "not offences" in table[0]
    assert table[1].split() == ["time", "check", "label", "minutes", "event_id", "evidence"]
    assert "suspect_replay  疑似数据回放" in table[2] and table[2].endswith(
        "60 分钟（60 条）与本设备 ? 起的数据相同，整体相差 +0.100 mg/m³"
    )
    # a device not in the registry: said on stderr, its findings listed all the same
    r = run_fumewatch(tmp, *_args(devices_dir, "--integrity", "GHOST-9", "--format", "json"))
    assert r.returncode == 0 and "GHOST-9 is not in the registry" in r.stderr
    assert [f["check"] for f in json.loads(r.stdout)] == ["suspect_zero"]
    r = run_fumewatch(tmp, *_args(devices_dir, "--integrity", "DEV-3", "--format", "json"))
    assert (r.returncode, json.loads(r.stdout), r.stderr) == (0, [], "")


def test_devices_without_an_alerts_ledger_leave_integrity_empty_and_say_so_once(tmp_path: Path) -> None:
    """A state database only ingest ever wrote (no ledger tables): the command works, says once on stderr
    that there is no ledger, and creates nothing."""
    from sqlalchemy import create_engine, inspect

    (tmp_path / "registry.csv").write_text(REGISTRY_CSV, encoding="utf-8")
    StateDB(tmp_path / "state.db").close()
    args = ["devices", "--state", "state.db", "--registry", "registry.csv"]
    r = run_fumewatch(tmp_path, *args, "--format", "csv")
    assert r.returncode == 0, r.stderr
    [line] = r.stderr.splitlines()
    assert line.startswith("fumewatch devices: state database state.db has no alerts ledger"), line
    assert {row["integrity"] for row in csv.DictReader(io.StringIO(r.stdout))} == {""}
    j = json.loads(run_fumewatch(tmp_path, *args, "--format", "json").stdout)
    assert [x["integrity"] for x in j] == [None, None, None]
    r = run_fumewatch(tmp_path, *args, "--integrity", "DEV-1", "--format", "json")
    assert (r.returncode, json.loads(r.stdout)) == (0, []) and len(r.stderr.splitlines()) == 1
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert "events" not in inspect(engine).get_table_names()  # the command only read
    finally:
        engine.dispose()


def test_devices_mistakes_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "registry.csv").write_text(REGISTRY_CSV, encoding="utf-8")
    for argv, needle in (
        (["--state", "nope.db", "--registry", "registry.csv"], "state database nope.db does not exist"),
        (["--state", "nope.db", "--registry", "none.csv"], "registry none.csv does not exist"),
        (["--state", "nope.db", "--registry", "registry.csv", "--since-hours", "0"], "--since-hours 0"),
    ):
        r = run_fumewatch(tmp_path, "devices", *argv)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        [line] = r.stderr.splitlines()
        assert line.startswith("fumewatch devices: ") and needle in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry.csv"]  # created nothing
