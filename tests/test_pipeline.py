"""Pipeline: JSON and HJ 212 messages -> validated, enriched Readings or DeadLetters with reasons. No servers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from ingest import hj212
from ingest.config import Settings
from ingest.model import DeadLetter, Reading
from ingest.pipeline import Outcome, Pipeline
from ingest.registry import Registry

REGISTRY_CSV = """restaurant_id,name,district,device_id,stove_heads,hj212_pw
r1,Noodle House,Xuhui,dev1,2,
r2,Banquet Hall,Pudong,dev2,8,
r3,Hotpot,Jingan,hj1,4,
r4,Locked Kitchen,Jingan,hj2,4,s3cret
"""

# 2026-05-09 12:00 in Shanghai (the readings' time) and the receiver clock 5 s later.
T0_MS = int(datetime(2026, 5, 9, 4, 0, 0, tzinfo=UTC).timestamp() * 1000)
RECEIVED_MS = T0_MS + 5_000
T0_LOCAL = datetime(2026, 5, 9, 12, 0, 0)  # Asia/Shanghai wall clock of T0 (HJ 212 DataTime)
DAY_MS = 86_400_000

ALL_FACTORS = {"a34041": 1.2, "a34000": 3.4, "a24088": 5.6, "a00000": 6000, "fan01": 1, "pur01": 0}


def make_pipeline(**settings: Any) -> Pipeline:
    return Pipeline(Settings(**settings), Registry.parse(REGISTRY_CSV))


@pytest.fixture
def pipe() -> Pipeline:
    return make_pipeline()


def check_dead(d: DeadLetter, topic: str, reason: str, excerpt_bytes: int = 256) -> None:
    """Every dead letter carries its topic, a reason, a message saying why and a bounded excerpt."""
    assert d.reason == reason, d
    assert d.topic == topic[:256]
    assert isinstance(d.detail.get("message"), str) and d.detail["message"].strip()
    assert d.received_ms == RECEIVED_MS
    # The excerpt holds at most excerpt_bytes bytes of the payload; undecodable bytes appear as \xNN.
    assert len(d.payload_excerpt.encode("utf-8")) - 3 * d.payload_excerpt.count("\\x") <= excerpt_bytes


def only_dead(out: Outcome, topic: str, reason: str, **kw: Any) -> DeadLetter:
    assert out.readings == [] and out.ignored == 0
    assert len(out.dead) == 1, out.dead
    check_dead(out.dead[0], topic, reason, **kw)
    return out.dead[0]


def only_reading(out: Outcome) -> Reading:
    assert out.dead == [], out.dead
    assert len(out.readings) == 1
    return out.readings[0]


def send_json(p: Pipeline, doc: Any, device: str = "dev1", raw: bytes | None = None) -> tuple[str, Outcome]:
    topic = f"fume/v1/{device}/reading"
    payload = raw if raw is not None else orjson.dumps(doc)
    return topic, p.handle(topic, payload, RECEIVED_MS)


def send_hj(p: Pipeline, text: str | bytes, device: str = "hj1") -> tuple[str, Outcome]:
    topic = f"fume/v1/{device}/hj212"
    payload = text.encode("ascii") if isinstance(text, str) else text
    return topic, p.handle(topic, payload, RECEIVED_MS)


def reading(**kw: Any) -> dict[str, Any]:
    return {"ts": T0_MS, "oil_fume": 1.2, **kw}


def data_frame(mn: str = "hj1", cn: str = hj212.CN_MINUTE, values: dict | None = None, **kw: Any) -> str:
    return hj212.build_data_frame(
        mn=mn, data_time_local=T0_LOCAL, values=ALL_FACTORS if values is None else values, cn=cn, **kw
    )


# ========================================================================================= JSON


def test_json_one_object(pipe: Pipeline) -> None:
    _, out = send_json(pipe, reading(pm=0.5, nmhc=3.0, fan=True, purifier=False, firmware="1.2.3"))
    r = only_reading(out)
    assert r.time_ms == T0_MS
    assert (r.device_id, r.restaurant_id, r.district, r.source, r.interval_s) == (
        "dev1",
        "r1",
        "Xuhui",
        "json",
        0,
    )
    assert (r.oil_fume_mg_m3, r.pm_mg_m3, r.nmhc_mg_m3, r.flow_m3_h) == (1.2, 0.5, 3.0, None)
    assert (r.fan_on, r.purifier_on) == (True, False)


def test_json_batch_with_one_bad_item(pipe: Pipeline) -> None:
    items = [reading(oil_fume=1.0), reading(oil_fume=-1.0), reading(ts=T0_MS + 60_000, oil_fume=1.5)]
    topic, out = send_json(pipe, items)
    assert [r.oil_fume_mg_m3 for r in out.readings] == [1.0, 1.5]
    assert [r.time_ms for r in out.readings] == [T0_MS, T0_MS + 60_000]
    assert len(out.dead) == 1
    d = out.dead[0]
    check_dead(d, topic, "negative")
    assert d.detail["index"] == 1
    assert d.device_id == "dev1"
    assert orjson.loads(d.payload_excerpt) == items[1]  # the excerpt is the bad item, not the whole batch


def test_json_ts_offset_and_epoch_ms_agree(pipe: Pipeline) -> None:
    _, out = send_json(
        pipe,
        [
            reading(ts="2026-05-09T12:00:00+08:00"),
            reading(ts=T0_MS),
            reading(ts="2026-05-09T04:00:00Z"),
            reading(ts="2026-05-09T04:00:00.000+00:00"),
        ],
    )
    assert out.dead == []
    assert [r.time_ms for r in out.readings] == [T0_MS] * 4


def test_json_ts_float_ms_and_fraction(pipe: Pipeline) -> None:
    _, out = send_json(pipe, [reading(ts=float(T0_MS) + 250.7), reading(ts="2026-05-09T12:00:00.250+08:00")])
    assert [r.time_ms for r in out.readings] == [T0_MS + 250, T0_MS + 250]


@pytest.mark.parametrize("ts", ["2026-05-09T12:00:00", "2026-05-09 12:00:00", "2026-05-09"])
def test_json_naive_ts_rejected(pipe: Pipeline, ts: str) -> None:
    topic, out = send_json(pipe, reading(ts=ts))
    d = only_dead(out, topic, "bad_ts")
    assert "offset" in d.detail["message"]


@pytest.mark.parametrize("ts", ["yesterday", "", True, [T0_MS], {"ms": T0_MS}])
def test_json_unusable_ts_rejected(pipe: Pipeline, ts: Any) -> None:
    topic, out = send_json(pipe, reading(ts=ts))
    only_dead(out, topic, "bad_ts")


def test_json_missing_ts(pipe: Pipeline) -> None:
    topic, out = send_json(pipe, {"oil_fume": 1.0})
    only_dead(out, topic, "missing_ts")


def test_json_missing_oil_fume(pipe: Pipeline) -> None:
    topic, out = send_json(pipe, {"ts": T0_MS, "pm": 1.0})
    only_dead(out, topic, "missing_field")
    topic, out = send_json(pipe, {"ts": T0_MS, "oil_fume": None})
    only_dead(out, topic, "missing_field")


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1e400"])
def test_json_nonfinite_tokens_are_not_finite(pipe: Pipeline, token: bytes) -> None:
    raw = b'{"ts": %d, "oil_fume": %s}' % (T0_MS, token)
    topic, out = send_json(pipe, None, raw=raw)
    d = only_dead(out, topic, "not_finite")
    assert d.payload_excerpt.startswith('{"ts"')


def test_json_batch_with_nonfinite_items_keeps_the_neighbours(pipe: Pipeline) -> None:
    """One NaN and one 1e400 in an array of 10: the 8 others are readings, each bad item its own dead
    letter with its index (orjson refuses the whole text; the lenient parse judges item by item)."""
    items = [b'{"ts": %d, "oil_fume": %d.5}' % (T0_MS - i * 60_000, i) for i in range(10)]
    items[3] = b'{"ts": %d, "oil_fume": NaN}' % (T0_MS - 3 * 60_000)
    items[7] = b'{"ts": %d, "oil_fume": 1e400, "pm": 1}' % (T0_MS - 7 * 60_000)
    topic, out = send_json(pipe, None, raw=b"[" + b",".join(items) + b"]")
    assert [r.time_ms for r in out.readings] == [T0_MS - i * 60_000 for i in (0, 1, 2, 4, 5, 6, 8, 9)]
    assert [r.oil_fume_mg_m3 for r in out.readings] == [0.5, 1.5, 2.5, 4.5, 5.5, 6.5, 8.5, 9.5]
    assert [(d.reason, d.detail["index"]) for d in out.dead] == [("not_finite", 3), ("not_finite", 7)]
    for d in out.dead:
        check_dead(d, topic, "not_finite")
    assert "NaN" in out.dead[0].payload_excerpt and "Infinity" in out.dead[1].payload_excerpt


def test_json_lenient_parse_refuses_what_is_still_not_json(pipe: Pipeline) -> None:
    for raw in (b'[{"ts": 1, "oil_fume": NaN}', b'{"oil_fume": nan}', b"[NaN, \xff]", b"[" * 5000):
        topic, out = send_json(pipe, None, raw=raw)
        only_dead(out, topic, "invalid_json")


def test_json_oversize_string_refuses_only_its_item(pipe: Pipeline) -> None:
    items = [reading(ts=T0_MS - i * 60_000) for i in range(3)]
    items[1]["device_id"] = "x" * 200_000
    topic, out = send_json(pipe, items)
    assert [r.time_ms for r in out.readings] == [T0_MS, T0_MS - 120_000]
    d = out.dead[0]
    assert len(out.dead) == 1 and d.reason == "device_mismatch" and d.detail["index"] == 1
    check_dead(d, topic, "device_mismatch")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1.2", "", [1.2], {"v": 1.2}])
def test_json_number_as_other_type(pipe: Pipeline, value: Any) -> None:
    topic, out = send_json(pipe, reading(oil_fume=value))
    only_dead(out, topic, "not_a_number")


@pytest.mark.parametrize("field", ["oil_fume", "pm", "nmhc", "flow"])
def test_json_bool_for_a_number(pipe: Pipeline, field: str) -> None:
    topic, out = send_json(pipe, reading(**{field: True}))
    only_dead(out, topic, "not_a_number")


@pytest.mark.parametrize("field", ["oil_fume", "pm", "nmhc", "flow"])
def test_json_negative(pipe: Pipeline, field: str) -> None:
    topic, out = send_json(pipe, reading(**{field: -0.5}))
    d = only_dead(out, topic, "negative")
    assert field in d.detail["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("oil_fume", 200.5), ("pm", 501), ("nmhc", 1e6), ("flow", 500_001), ("oil_fume", 1e300)],
)
def test_json_absurd_value(pipe: Pipeline, field: str, value: float) -> None:
    topic, out = send_json(pipe, reading(**{field: value}))
    only_dead(out, topic, "implausible")


def test_json_huge_integer_is_rejected_not_raised(pipe: Pipeline) -> None:
    raw = b'{"ts": %d, "oil_fume": %s}' % (T0_MS, b"9" * 300)
    topic, out = send_json(pipe, None, raw=raw)
    # orjson reads a huge integer as a float (9.99e299) -> beyond the plausible range.
    only_dead(out, topic, "implausible")


def test_json_limits_are_settings() -> None:
    p = make_pipeline(validation={"oil_fume_max_mg_m3": 10.0})
    topic, out = send_json(p, reading(oil_fume=10.5))
    only_dead(out, topic, "implausible")
    assert only_reading(send_json(p, reading(oil_fume=10.0))[1]).oil_fume_mg_m3 == 10.0


def test_json_zero_is_valid(pipe: Pipeline) -> None:
    r = only_reading(send_json(pipe, reading(oil_fume=0, flow=0))[1])
    assert (r.oil_fume_mg_m3, r.flow_m3_h, r.oil_fume_ref_mg_m3) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), (1, True), (0, False), (1.0, True), (None, None)]
)
def test_json_switches(pipe: Pipeline, value: Any, expected: bool | None) -> None:
    r = only_reading(send_json(pipe, reading(fan=value, purifier=value))[1])
    assert r.fan_on is expected
    assert r.purifier_on is expected


@pytest.mark.parametrize("value", [2, -1, 0.5, "on", "1", "true", [1], {}])
@pytest.mark.parametrize("field", ["fan", "purifier"])
def test_json_bad_switch(pipe: Pipeline, field: str, value: Any) -> None:
    topic, out = send_json(pipe, reading(**{field: value}))
    only_dead(out, topic, "bad_switch")


def test_json_unknown_device(pipe: Pipeline) -> None:
    topic, out = send_json(pipe, reading(), device="ghost")
    d = only_dead(out, topic, "unknown_device")
    assert d.device_id == "ghost"


def test_json_spoofed_device_id(pipe: Pipeline) -> None:
    topic, out = send_json(pipe, [reading(device_id="dev2"), reading(device_id="dev1"), reading(device_id=2)])
    assert [r.device_id for r in out.readings] == ["dev1"]
    assert [d.reason for d in out.dead] == ["device_mismatch", "device_mismatch"]
    assert [d.detail["index"] for d in out.dead] == [0, 2]
    for d in out.dead:
        check_dead(d, topic, "device_mismatch")
    assert "dev2" in out.dead[0].detail["message"]


@pytest.mark.parametrize(
    "topic",
    [
        "fume/v1/dev1/reading/extra",
        "fume/v1/dev1",
        "fume/v2/dev1/reading",
        "other/v1/dev1/reading",
        "/fume/v1/dev1/reading",
        "fume/v1/dev1/status",
        "fume/v1/dev1/Reading",
        "fume/v1//reading",
        "fume/dev1/reading",
        "",
        "fume/v1/dev1/reading/",
    ],
)
def test_bad_topic(pipe: Pipeline, topic: str) -> None:
    out = pipe.handle(topic, orjson.dumps(reading()), RECEIVED_MS)
    only_dead(out, topic, "bad_topic")


def test_topic_prefix_is_a_setting() -> None:
    p = make_pipeline(mqtt={"topic_prefix": "city/sh/fume"})
    out = p.handle("city/sh/fume/dev1/reading", orjson.dumps(reading()), RECEIVED_MS)
    assert only_reading(out).device_id == "dev1"
    out = p.handle("fume/v1/dev1/reading", orjson.dumps(reading()), RECEIVED_MS)
    only_dead(out, "fume/v1/dev1/reading", "bad_topic")


def test_future_timestamp_beyond_skew(pipe: Pipeline) -> None:
    ok_ms = RECEIVED_MS + 300_000
    topic, out = send_json(pipe, [reading(ts=ok_ms), reading(ts=ok_ms + 1)])
    assert [r.time_ms for r in out.readings] == [ok_ms]
    assert len(out.dead) == 1
    check_dead(out.dead[0], topic, "future_ts")


def test_timestamp_next_year(pipe: Pipeline) -> None:
    topic, out = send_json(pipe, reading(ts="2027-05-09T12:00:00+08:00"))
    only_dead(out, topic, "future_ts")


@pytest.mark.parametrize("ts", [0, -1, "1970-01-01T00:00:00Z", "1970-01-01T08:00:00+08:00"])
def test_timestamp_1970(pipe: Pipeline, ts: Any) -> None:
    topic, out = send_json(pipe, reading(ts=ts))
    only_dead(out, topic, "too_old")


def test_milliseconds_sent_as_seconds(pipe: Pipeline) -> None:
    topic, out = send_json(pipe, [reading(ts=T0_MS // 1000), reading(ts=T0_MS / 1000)])
    assert out.readings == []
    assert [d.reason for d in out.dead] == ["too_old", "too_old"]


def test_max_age_is_a_setting(pipe: Pipeline) -> None:
    assert only_reading(send_json(pipe, reading(ts=RECEIVED_MS - 399 * DAY_MS))[1])
    p = make_pipeline(validation={"max_age_days": 1})
    topic, out = send_json(p, reading(ts=RECEIVED_MS - 2 * DAY_MS))
    only_dead(out, topic, "too_old")


def test_payload_too_large(pipe: Pipeline) -> None:
    raw = orjson.dumps(reading(note="x" * (256 * 1024)))
    topic, out = send_json(pipe, None, raw=raw)
    only_dead(out, topic, "payload_too_large")
    assert len(out.dead[0].payload_excerpt) == 256


def test_payload_too_large_checked_before_device_and_json() -> None:
    p = make_pipeline(ingest={"max_payload_bytes": 100})
    topic, out = send_json(p, None, device="ghost", raw=b"{" * 101)
    only_dead(out, topic, "payload_too_large")
    assert only_reading(send_json(p, reading())[1])


def test_array_longer_than_max_batch_rejected_before_parsing() -> None:
    p = make_pipeline(ingest={"max_batch_readings": 5})
    # Far more objects than allowed (over 8x, the bound that tolerates nested objects), then garbage:
    # refused for its length, so the parser never saw it.
    raw = b"[" + b",".join([orjson.dumps(reading())] * 41) + b", this is not json"
    topic, out = send_json(p, None, raw=raw)
    only_dead(out, topic, "batch_too_large")
    # Just over the limit: parsed, then refused by the exact count.
    topic, out = send_json(p, [reading(ts=T0_MS + i) for i in range(6)])
    only_dead(out, topic, "batch_too_large")
    # Exactly at the limit is fine.
    _, out = send_json(p, [reading(ts=T0_MS + i) for i in range(5)])
    assert len(out.readings) == 5 and out.dead == []


def test_array_of_scalars_longer_than_max_batch() -> None:
    p = make_pipeline(ingest={"max_batch_readings": 5})
    topic, out = send_json(p, [1] * 6)
    only_dead(out, topic, "batch_too_large")


def test_huge_array_with_default_limit(pipe: Pipeline) -> None:
    topic, out = send_json(pipe, [reading(ts=T0_MS + i) for i in range(1001)])
    only_dead(out, topic, "batch_too_large")
    _, out = send_json(pipe, [reading(ts=T0_MS + i) for i in range(1000)])
    assert len(out.readings) == 1000 and out.dead == []


def test_empty_array(pipe: Pipeline) -> None:
    topic, out = send_json(pipe, [])
    only_dead(out, topic, "empty_batch")


@pytest.mark.parametrize("doc", [1, "reading", None, True, [1, "x", None, [reading()]]])
def test_not_an_object(pipe: Pipeline, doc: Any) -> None:
    topic, out = send_json(pipe, doc)
    n = len(doc) if isinstance(doc, list) else 1
    assert out.readings == []
    assert [d.reason for d in out.dead] == ["not_an_object"] * n
    for d in out.dead:
        check_dead(d, topic, "not_an_object")


@pytest.mark.parametrize("depth", [2000, 100_000])
def test_deeply_nested_json_beyond_parser_limit(pipe: Pipeline, depth: int) -> None:
    topic, out = send_json(pipe, None, raw=b"[" * depth + b"]" * depth)
    only_dead(out, topic, "batch_too_large" if depth > 256 * 1024 else "invalid_json")


@pytest.mark.parametrize("field", ["oil_fume", "device_id", "fan", "ts"])
def test_deeply_nested_value_inside_a_reading(pipe: Pipeline, field: str) -> None:
    # ~1000 levels: orjson accepts it (limit 1024) but str() of it hits Python's recursion limit.
    nested = b"[" * 1020 + b"]" * 1020
    raw = b'{"ts": %d, "oil_fume": 1.0, "%s": %s}' % (T0_MS, field.encode(), nested)
    topic, out = send_json(pipe, None, raw=raw)
    reason = {"oil_fume": "not_a_number", "device_id": "device_mismatch", "fan": "bad_switch", "ts": "bad_ts"}
    d = only_dead(out, topic, reason[field])
    assert len(d.detail["message"]) < 200


def test_deeply_nested_unknown_field_is_ignored(pipe: Pipeline) -> None:
    raw = b'{"ts": %d, "oil_fume": 1.0, "meta": %s}' % (T0_MS, b"[" * 1000 + b"]" * 1000)
    assert only_reading(send_json(pipe, None, raw=raw)[1]).oil_fume_mg_m3 == 1.0


@pytest.mark.parametrize(
    "raw", [b'{"ts": 1, "oil_fume": 1.0, "note": "\xff\xfe"}', b"\xc3\x28", b'{"oil_fume": "\xed\xa0\x80"}']
)
def test_invalid_utf8(pipe: Pipeline, raw: bytes) -> None:
    topic, out = send_json(pipe, None, raw=raw)
    d = only_dead(out, topic, "invalid_json")
    assert "\\x" in d.payload_excerpt


def test_dead_letter_excerpt_is_bounded() -> None:
    p = make_pipeline(ingest={"dead_letter_excerpt_bytes": 32})
    topic, out = send_json(p, None, raw=b"\xff" * 500)
    d = only_dead(out, topic, "invalid_json", excerpt_bytes=32)
    assert d.payload_excerpt == "\\xff" * 32
    topic, out = send_json(p, [reading(oil_fume=-1, note="油烟" * 50)])
    d = only_dead(out, topic, "negative", excerpt_bytes=32)
    assert len(d.payload_excerpt.encode()) <= 32 + 3 * 3


# ========================================================================================= GB 18483 reference


def test_reference_conversion_with_flow(pipe: Pipeline) -> None:
    r = only_reading(send_json(pipe, reading(oil_fume=1.5, flow=3000))[1])  # dev1: 2 stove heads
    assert r.ref_converted is True
    assert r.oil_fume_ref_mg_m3 == pytest.approx(1.5 * 3000 / (2 * 2000))
    assert r.flow_m3_h == 3000


def test_reference_without_flow_is_the_measured_value(pipe: Pipeline) -> None:
    r = only_reading(send_json(pipe, reading(oil_fume=1.7))[1])
    assert r.ref_converted is False
    assert r.oil_fume_ref_mg_m3 == 1.7
    assert r.flow_m3_h is None


def test_reference_conversion_changes_the_verdict(pipe: Pipeline) -> None:
    limit = 2.0  # GB 18483-2001
    # Few heads, high flow: measured 1.5 looks compliant, but diluted by 2x the reference air -> 3.0.
    diluted = only_reading(send_json(pipe, reading(oil_fume=1.5, flow=8000), device="dev1")[1])
    assert diluted.oil_fume_mg_m3 < limit < diluted.oil_fume_ref_mg_m3
    assert diluted.oil_fume_ref_mg_m3 == pytest.approx(3.0)
    # Low flow: measured 3.0 is over the limit, but at a quarter of the reference volume -> 0.75.
    low = only_reading(send_json(pipe, reading(oil_fume=3.0, flow=1000), device="dev1")[1])
    assert low.oil_fume_ref_mg_m3 < limit < low.oil_fume_mg_m3
    assert low.oil_fume_ref_mg_m3 == pytest.approx(0.75)
    # Same measurement and flow, many heads (8): complies.
    big = only_reading(send_json(pipe, reading(oil_fume=3.0, flow=8000), device="dev2")[1])
    assert big.oil_fume_ref_mg_m3 == pytest.approx(1.5)
    assert big.restaurant_id == "r2" and big.district == "Pudong"


def test_reference_flow_is_a_setting() -> None:
    p = make_pipeline(gb18483={"reference_flow_per_head_m3_h": 1000})
    r = only_reading(send_json(p, reading(oil_fume=1.0, flow=4000))[1])
    assert r.oil_fume_ref_mg_m3 == pytest.approx(2.0)


# ========================================================================================= HJ 212


def test_hj212_minute_frame_to_reading(pipe: Pipeline) -> None:
    _, out = send_hj(pipe, data_frame())
    r = only_reading(out)
    # DataTime 20260509120000 is Beijing time -> 04:00 UTC.
    assert r.time_ms == T0_MS == int(datetime(2026, 5, 9, 4, tzinfo=UTC).timestamp() * 1000)
    assert (r.device_id, r.restaurant_id, r.district, r.source, r.interval_s) == (
        "hj1",
        "r3",
        "Jingan",
        "hj212",
        0,
    )
    assert (r.oil_fume_mg_m3, r.pm_mg_m3, r.nmhc_mg_m3, r.flow_m3_h) == (1.2, 3.4, 5.6, 6000.0)
    assert (r.fan_on, r.purifier_on) == (True, False)
    assert r.ref_converted is True
    assert r.oil_fume_ref_mg_m3 == pytest.approx(1.2 * 6000 / (4 * 2000))


def test_hj212_factor_mapping_is_a_setting() -> None:
    """[hj212.factors] is a site-wide alias list on top of the device's dialect: its code wins when a frame
    carries both, the dialect's value is kept aside, and the dialect's codes still work alone."""
    p = make_pipeline(hj212={"factors": {"B03": "oil_fume", "Q01": "flow"}})
    r = only_reading(send_hj(p, data_frame(values={"a34041": 99, "B03": 0.8, "Q01": 4000}))[1])
    assert (r.oil_fume_mg_m3, r.flow_m3_h, r.pm_mg_m3) == (0.8, 4000.0, None)
    assert r.extra == {"a34041-Avg": "99.0"}
    r = only_reading(send_hj(p, data_frame(values={"a34041": 1.0}))[1])
    assert r.oil_fume_mg_m3 == 1.0


def test_hj212_scale_is_a_setting() -> None:
    p = make_pipeline(hj212={"scale": {"a00000": 3600}})  # vendor sends m3/s
    r = only_reading(send_hj(p, data_frame(values={"a34041": 1.0, "a00000": 1.5}))[1])
    assert r.flow_m3_h == pytest.approx(5400)


def test_hj212_timezone_is_a_setting() -> None:
    p = make_pipeline(hj212={"timezone": "Asia/Tokyo"})
    r = only_reading(send_hj(p, data_frame())[1])
    assert r.time_ms == T0_MS - 3_600_000
    assert r.time_ms == int(datetime(2026, 5, 9, 3, tzinfo=UTC).timestamp() * 1000)


def test_hj212_hourly_frame(pipe: Pipeline) -> None:
    r = only_reading(send_hj(pipe, data_frame(cn=hj212.CN_HOURLY))[1])
    assert r.interval_s == 3600
    assert r.oil_fume_mg_m3 == 1.2


def test_hj212_realtime_frame_uses_rtd(pipe: Pipeline) -> None:
    r = only_reading(send_hj(pipe, data_frame(cn=hj212.CN_REALTIME))[1])
    assert r.interval_s == 0
    assert r.oil_fume_mg_m3 == 1.2
    # A 2011 frame carrying only Avg values has no real-time oil fume value.
    seg = "QN=20260509120000000;ST=22;CN=2011;PW=123456;MN=hj1;Flag=5;CP=&&DataTime=20260509120000;a34041-Avg=1.2&&"
    topic, out = send_hj(pipe, hj212.encode_frame(seg))
    only_dead(out, topic, "missing_field")


@pytest.mark.parametrize("cn", ["1062", "9014", hj212.CN_DAILY])
def test_hj212_non_data_cn_is_ignored(pipe: Pipeline, cn: str) -> None:
    seg = f"QN=20260509120000000;ST=32;CN={cn};PW=123456;MN=hj1;Flag=5;CP=&&RtdInterval=30&&"
    _, out = send_hj(pipe, hj212.encode_frame(seg))
    assert out.readings == [] and out.dead == []
    assert out.ignored == 1


def test_hj212_mn_mismatch(pipe: Pipeline) -> None:
    topic, out = send_hj(pipe, data_frame(mn="dev1"))
    d = only_dead(out, topic, "mn_mismatch")
    assert d.device_id == "hj1" and d.detail["index"] == 0
    # Also for a command frame: a spoofed MN is never just acknowledged.
    seg = "QN=20260509120000000;ST=32;CN=1062;PW=123456;MN=dev1;Flag=5;CP=&&RtdInterval=30&&"
    only_dead(send_hj(pipe, hj212.encode_frame(seg))[1], topic, "mn_mismatch")


def test_hj212_password(pipe: Pipeline) -> None:
    topic, out = send_hj(pipe, data_frame(mn="hj2", pw="123456"), device="hj2")
    d = only_dead(out, topic, "bad_pw")
    assert "s3cret" not in d.detail["message"]
    assert only_reading(send_hj(pipe, data_frame(mn="hj2", pw="s3cret"), device="hj2")[1]).device_id == "hj2"
    # No password in the registry: any PW is accepted.
    assert only_reading(send_hj(pipe, data_frame(pw="whatever"))[1])


def test_hj212_wrong_crc(pipe: Pipeline) -> None:
    frame = data_frame()
    bad = frame[:-6] + ("0000" if frame[-6:-2] != "0000" else "FFFF") + "\r\n"
    topic, out = send_hj(pipe, bad)
    only_dead(out, topic, "hj212_bad_crc")


def test_hj212_tampered_value_fails_crc(pipe: Pipeline) -> None:
    topic, out = send_hj(pipe, data_frame().replace("a34041-Avg=1.2", "a34041-Avg=0.2"))
    only_dead(out, topic, "hj212_bad_crc")


@pytest.mark.parametrize("cut", [-4, -10, 40, 5])
def test_hj212_truncated(pipe: Pipeline, cut: int) -> None:
    topic, out = send_hj(pipe, data_frame()[:cut])
    d = only_dead(out, topic, "hj212_truncated" if cut != 5 else "hj212_bad_length")
    assert d.detail["message"]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f[2:], "hj212_no_header"),
        (lambda f: f[:-2] + "\n", "hj212_no_crlf"),
        (lambda f: "##12x4" + f[6:], "hj212_bad_length"),
        (lambda f: f[:2] + f"{int(f[2:6]) - 1:04d}" + f[6:], "hj212_length_mismatch"),
    ],
)
def test_hj212_framing_errors(pipe: Pipeline, mutate: Any, reason: str) -> None:
    topic, out = send_hj(pipe, mutate(data_frame()))
    only_dead(out, topic, reason)


@pytest.mark.parametrize("flag", ["C", "D", "F", "M", "S", "B", "?"])
def test_hj212_oil_fume_flagged_invalid(pipe: Pipeline, flag: str) -> None:
    """Fault, maintenance, calibration, stopped...: the reading is kept with its flag, not judged."""
    r = only_reading(send_hj(pipe, data_frame(flags={"a34041": flag}))[1])
    assert r.oil_fume_mg_m3 == 1.2 and r.flags["oil_fume"] == flag
    assert r.excluded == f"flag_{flag}"


def test_hj212_oil_fume_flagged_over_limit_is_a_measurement(pipe: Pipeline) -> None:
    r = only_reading(send_hj(pipe, data_frame(flags={"a34041": "T"}))[1])
    assert r.oil_fume_mg_m3 == 1.2 and r.lower_bound and not r.excluded


def test_hj212_other_factor_flagged_fault_is_dropped(pipe: Pipeline) -> None:
    r = only_reading(send_hj(pipe, data_frame(flags={"a34000": "D", "a00000": "C"}))[1])
    assert r.oil_fume_mg_m3 == 1.2
    assert r.pm_mg_m3 is None
    assert r.flow_m3_h is None and r.ref_converted is False
    assert r.nmhc_mg_m3 == 5.6
    # kept aside with their flags, not lost
    assert r.flags["pm"] == "D" and r.flags["flow"] == "C"
    assert r.extra["a34000-Avg"] == "3.4" and r.extra["a00000-Avg"] == "6000"


def test_hj212_unmapped_factor_ignored(pipe: Pipeline) -> None:
    r = only_reading(send_hj(pipe, data_frame(values={"a34041": 1.0, "w01018": 12.5}))[1])
    assert r.oil_fume_mg_m3 == 1.0


def test_hj212_several_frames_one_bad(pipe: Pipeline) -> None:
    good1 = data_frame()
    bad = data_frame(mn="intruder")
    hourly = data_frame(cn=hj212.CN_HOURLY)
    command = hj212.encode_frame(
        "QN=20260509120000000;ST=32;CN=1062;PW=123456;MN=hj1;Flag=5;CP=&&RtdInterval=30&&"
    )
    truncated = data_frame()[:50]
    topic, out = send_hj(pipe, good1 + bad + hourly + command + truncated)
    assert [r.interval_s for r in out.readings] == [0, 3600]
    assert out.ignored == 1
    assert [(d.reason, d.detail["index"]) for d in out.dead] == [("mn_mismatch", 1), ("hj212_truncated", 4)]
    for d in out.dead:
        check_dead(d, topic, d.reason)
    assert out.dead[0].payload_excerpt == bad[:256]  # the excerpt is (the start of) the bad frame only
    assert out.dead[1].payload_excerpt == truncated


def test_hj212_junk_before_first_frame(pipe: Pipeline) -> None:
    topic, out = send_hj(pipe, "hello" + data_frame())
    assert len(out.readings) == 1
    assert [d.reason for d in out.dead] == ["hj212_no_header"]
    check_dead(out.dead[0], topic, "hj212_no_header")


def test_hj212_not_a_frame_at_all(pipe: Pipeline) -> None:
    topic, out = send_hj(pipe, orjson.dumps(reading()))
    only_dead(out, topic, "hj212_no_header")


@pytest.mark.parametrize("payload", [b"", b"   \r\n"])
def test_hj212_empty(pipe: Pipeline, payload: bytes) -> None:
    topic, out = send_hj(pipe, payload)
    only_dead(out, topic, "empty")


def test_hj212_non_ascii_payload(pipe: Pipeline) -> None:
    """Non-ASCII text before the first frame is its own bad frame; the frame after it is kept."""
    for junk, shown in (("油烟".encode(), "油烟"), (b"\xff", "\\xff")):
        topic, out = send_hj(pipe, junk + data_frame().encode())
        assert len(out.readings) == 1 and len(out.dead) == 1
        d = out.dead[0]
        check_dead(d, topic, "bad_encoding")
        assert d.detail["index"] == 0 and d.payload_excerpt == shown


def test_hj212_one_gbk_frame_refuses_only_itself(pipe: Pipeline) -> None:
    """Three frames in one message, the middle one GBK-encoded (a vendor's Chinese note): 2 readings."""
    good = [data_frame(qn_time_local=T0_LOCAL), data_frame(values={"a34041": 2.5})]
    seg = (
        "QN=20260509120000000;ST=22;CN=2051;PW=123456;MN=hj1;Flag=5;CP=&&DataTime=20260509120000;备注=油烟&&"
    )
    gbk = seg.encode("gbk")
    bad = b"##%04d" % len(gbk) + gbk + b"%04X\r\n" % hj212.crc16(gbk)
    topic, out = send_hj(pipe, good[0].encode() + bad + good[1].encode())
    assert [r.oil_fume_mg_m3 for r in out.readings] == [1.2, 2.5]
    assert len(out.dead) == 1
    d = out.dead[0]
    check_dead(d, topic, "bad_encoding")
    assert d.detail["index"] == 1 and d.payload_excerpt.startswith("##") and "\\x" in d.payload_excerpt


def test_hj212_unknown_device(pipe: Pipeline) -> None:
    topic, out = send_hj(pipe, data_frame(mn="ghost"), device="ghost")
    only_dead(out, topic, "unknown_device")


@pytest.mark.parametrize(
    ("data_time", "reason"),
    [
        (None, "missing_ts"),
        ("2026-05-09", "bad_ts"),
        ("20261309120000", "bad_ts"),
        ("now", "bad_ts"),
        ("1778299200", "bad_ts"),  # epoch seconds: strptime alone would read year 1778
        ("2026591200", "bad_ts"),  # unpadded fields
        ("202605091200", "bad_ts"),  # no seconds
    ],
)
def test_hj212_bad_data_time(pipe: Pipeline, data_time: str | None, reason: str) -> None:
    cp = "a34041-Avg=1.2,a34041-Flag=N" if data_time is None else f"DataTime={data_time};a34041-Avg=1.2"
    seg = f"QN=20260509120000000;ST=22;CN=2051;PW=123456;MN=hj1;Flag=5;CP=&&{cp}&&"
    topic, out = send_hj(pipe, hj212.encode_frame(seg))
    only_dead(out, topic, reason)


@pytest.mark.parametrize(
    ("value", "reason"),
    [("abc", "not_a_number"), ("", "not_a_number"), ("NaN", "not_finite"), ("inf", "not_finite"),
     ("-1", "negative"), ("1e9", "implausible")],
)  # fmt: skip
def test_hj212_bad_values(pipe: Pipeline, value: str, reason: str) -> None:
    seg = (
        "QN=20260509120000000;ST=22;CN=2051;PW=123456;MN=hj1;Flag=5;"
        f"CP=&&DataTime=20260509120000;a34041-Avg={value},a34041-Flag=N&&"
    )
    topic, out = send_hj(pipe, hj212.encode_frame(seg))
    only_dead(out, topic, reason)


@pytest.mark.parametrize(("value", "reason"), [(2, "bad_switch"), (0.5, "bad_switch")])
def test_hj212_bad_switch(pipe: Pipeline, value: float, reason: str) -> None:
    topic, out = send_hj(pipe, data_frame(values={"a34041": 1.0, "fan01": value}))
    only_dead(out, topic, reason)


def test_hj212_time_checks(pipe: Pipeline) -> None:
    topic, out = send_hj(
        pipe, hj212.build_data_frame(mn="hj1", data_time_local=datetime(2027, 5, 9), values={"a34041": 1})
    )
    only_dead(out, topic, "future_ts")
    topic, out = send_hj(
        pipe, hj212.build_data_frame(mn="hj1", data_time_local=datetime(1970, 1, 1, 8), values={"a34041": 1})
    )
    only_dead(out, topic, "too_old")


def test_hj212_garbage_full_of_headers_is_one_dead_letter(pipe: Pipeline) -> None:
    """A message of garbage with 444 "##" in it: one dead letter with the count, not 444 (issue 13)."""
    garbage = b"".join(b"##%04dxx\x00junk" % i for i in range(444))
    topic, out = send_hj(pipe, garbage)
    [d] = out.dead
    assert d.detail["fragments"] == 444 and d.detail["refused"] == 444
    assert sum(d.detail["by_reason"].values()) == 444 and d.reason.startswith("hj212_")
    assert "444 of 444 frames refused" in d.detail["message"]
    # a good frame with a dozen broken fragments: the reading is kept, the fragments are one letter
    topic, out = send_hj(pipe, data_frame().encode() + b"##00" * 12)
    assert len(out.readings) == 1 and len(out.dead) == 1 and out.dead[0].detail["refused"] == 12
