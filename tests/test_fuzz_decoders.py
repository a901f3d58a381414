"""Fuzzing both decoders (hypothesis) plus a corpus of real-looking broken messages.

Property: ``Pipeline.handle`` never raises and accounts for everything it is given -- each JSON item and
each HJ 212 frame ends as a reading, a dead letter with a reason, or (HJ 212 command frames) an ignored
count. ``hj212.parse_frame`` raises nothing but ``HJ212Error``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import hj212
from ingest.config import DEFAULT_FACTORS, Settings
from ingest.pipeline import Outcome, Pipeline
from ingest.registry import Registry
from ingest.untrusted import _INVALID, _lenient_json

REGISTRY_CSV = """restaurant_id,name,district,device_id,stove_heads,hj212_pw
r1,Noodle House,Xuhui,dev1,2,
r2,Banquet Hall,Pudong,dev2,8,
r3,Hotpot,Jingan,hj1,4,
r4,Locked Kitchen,Jingan,hj2,4,s3cret
"""
REGISTRY = Registry.parse(REGISTRY_CSV)

T0_MS = int(datetime(2026, 5, 9, 4, 0, 0, tzinfo=UTC).timestamp() * 1000)  # 12:00 Beijing time
RECEIVED_MS = T0_MS + 5_000
T0_LOCAL = datetime(2026, 5, 9, 12, 0, 0)
DAY_MS = 86_400_000

DEFAULT = Pipeline(Settings(), REGISTRY)
SMALL = Pipeline(Settings(ingest={"max_batch_readings": 8, "dead_letter_excerpt_bytes": 16}), REGISTRY)
PIPELINES = st.sampled_from([DEFAULT, SMALL])

JSON_TOPICS = ["fume/v1/dev1/reading", "fume/v1/dev2/reading"]
HJ_TOPIC = "fume/v1/hj1/hj212"
ANY_TOPICS = [*JSON_TOPICS, HJ_TOPIC, "fume/v1/hj2/hj212", "fume/v1/ghost/reading", "fume/v1/dev1", "x/y/z/w"]

CORPUS = Path(__file__).parent / "data" / "broken_frames.txt"

MAX_EXAMPLES = 250
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# ========================================================================================= invariants


def check_outcome(p: Pipeline, topic: str, payload: bytes, out: Outcome) -> None:
    """What must hold for any message: sane readings, complete dead letters, nothing silently lost."""
    s = p.settings
    assert isinstance(out, Outcome)
    total = len(out.readings) + len(out.dead) + out.ignored
    assert total >= 1, "a message vanished without a reading, a dead letter or an acknowledgement"
    device = topic.split("/")[-2] if topic.count("/") >= 2 else ""
    for r in out.readings:
        assert r.device_id == device
        assert REGISTRY.get(device) is not None
        assert RECEIVED_MS - s.validation.max_age_days * DAY_MS <= r.time_ms
        assert r.time_ms <= RECEIVED_MS + s.validation.max_future_skew_s * 1000
        assert math.isfinite(r.oil_fume_mg_m3) and 0 <= r.oil_fume_mg_m3 <= s.validation.oil_fume_max_mg_m3
        assert math.isfinite(r.oil_fume_ref_mg_m3) and r.oil_fume_ref_mg_m3 >= 0
        for v in (r.pm_mg_m3, r.nmhc_mg_m3, r.flow_m3_h):
            assert v is None or (math.isfinite(v) and v >= 0)
        if not r.flow_m3_h:  # unknown or zero flow: not converted (zero would hide any emission)
            assert r.oil_fume_ref_mg_m3 == r.oil_fume_mg_m3 and r.ref_converted is False
        else:
            assert r.ref_converted is True
        assert r.fan_on in (None, True, False) and r.purifier_on in (None, True, False)
    limit = s.ingest.dead_letter_excerpt_bytes
    for d in out.dead:
        assert d.topic == topic[:256]
        assert isinstance(d.reason, str) and re.fullmatch(r"[a-z0-9_]+", d.reason)
        assert isinstance(d.detail.get("message"), str) and d.detail["message"].strip()
        assert d.received_ms == RECEIVED_MS
        # At most `limit` payload bytes; bytes that are not UTF-8 show as \xNN (4 characters each).
        assert len(d.payload_excerpt.encode("utf-8")) - 3 * d.payload_excerpt.count("\\x") <= limit


def whole_message_rejected(out: Outcome) -> bool:
    return len(out.dead) == 1 and "index" not in out.dead[0].detail and not out.readings and not out.ignored


def check_item_indexes(out: Outcome, n: int) -> None:
    indexes = [d.detail["index"] for d in out.dead]
    assert len(set(indexes)) == len(indexes) and all(0 <= i < n for i in indexes)


def check_json_accounting(p: Pipeline, payload: bytes, out: Outcome) -> None:
    """Every item of a parseable JSON message of acceptable size is a reading or an indexed dead letter."""
    s = p.settings.ingest
    if len(payload) > s.max_payload_bytes:
        assert whole_message_rejected(out) and out.dead[0].reason == "payload_too_large"
        return
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        doc = _lenient_json(payload)  # NaN, Infinity and 1e400 items are refused one by one
        if doc is _INVALID:
            assert whole_message_rejected(out)
            assert out.dead[0].reason in {"invalid_json", "batch_too_large"}
            return
    items = doc if isinstance(doc, list) else [doc]
    if not items or len(items) > s.max_batch_readings:
        assert whole_message_rejected(out)
        assert out.dead[0].reason == ("empty_batch" if not items else "batch_too_large")
        return
    if whole_message_rejected(out) and out.dead[0].reason == "batch_too_large":
        # The pre-parse guard counts '{' bytes: nested objects can trip it below the item limit.
        assert payload.count(b"{") > s.max_batch_readings
        return
    assert out.ignored == 0
    assert len(out.readings) + len(out.dead) == len(items)
    check_item_indexes(out, len(items))


def check_hj212_accounting(p: Pipeline, payload: bytes, out: Outcome) -> None:
    """Every frame split from the payload is a reading, an indexed dead letter or an ignored frame."""
    if len(payload) > p.settings.ingest.max_payload_bytes:
        assert whole_message_rejected(out) and out.dead[0].reason == "payload_too_large"
        return
    # Frames are split first and each judged alone: a non-ASCII frame is its own bad_encoding; but many
    # refused frames, or refused frames without a good one, are one dead letter (garbage full of "##").
    frames = hj212.split_frames(payload.decode("ascii", "surrogateescape"))
    if not frames:
        assert whole_message_rejected(out) and out.dead[0].reason == "empty"
        return
    collapsed = [d for d in out.dead if "fragments" in d.detail]
    if collapsed:  # many broken fragments (or no good frame): one dead letter for them, with the count
        [d] = collapsed
        assert d.detail["fragments"] == len(frames)
        others = [x for x in out.dead if x is not d]
        assert len(out.readings) + d.detail["refused"] + len(others) + out.ignored == len(frames)
        assert sum(d.detail["by_reason"].values()) == d.detail["refused"]
        return
    assert len(out.readings) + len(out.dead) + out.ignored == len(frames)
    check_item_indexes(out, len(frames))
    limit = p.settings.ingest.dead_letter_excerpt_bytes
    for d in out.dead:
        raw = frames[d.detail["index"]]
        assert (d.reason == "bad_encoding") == (not raw.isascii())
        excerpt = raw.encode("ascii", "surrogateescape")[:limit].decode("utf-8", "backslashreplace")
        assert d.payload_excerpt == excerpt


def run(p: Pipeline, topic: str, payload: bytes) -> Outcome:
    out = p.handle(topic, payload, RECEIVED_MS)  # must never raise
    check_outcome(p, topic, payload, out)
    kind = topic.rsplit("/", 1)[-1]
    known = (
        REGISTRY.get(topic.split("/")[-2]) if topic.count("/") == 3 and topic.startswith("fume/v1/") else None
    )
    if known is None:
        assert whole_message_rejected(out)
        assert out.dead[0].reason in {"bad_topic", "unknown_device", "payload_too_large"}
    elif kind == "reading":
        check_json_accounting(p, payload, out)
    elif kind == "hj212":
        check_hj212_accounting(p, payload, out)
    return out


def check_parse_frame(text: str) -> None:
    try:
        frame = hj212.parse_frame(text)
    except hj212.HJ212Error as e:
        assert e.reason and e.message
    else:
        assert isinstance(frame, hj212.Frame) and frame.mn is not None


def report(capsys: pytest.CaptureFixture[str], what: str, n: int) -> None:
    with capsys.disabled():
        print(f"\n[fuzz] {what}: {n} cases tried")


# ========================================================================================= strategies

MAX_INT = 10**400
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-MAX_INT, max_value=MAX_INT)
    | st.floats()
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)

offsets = st.sampled_from(["Z", "+08:00", "+00:00", "-05:00", "", "+0800", "+14:00"])
ts_text = st.builds(
    lambda dt, off: dt.strftime("%Y-%m-%dT%H:%M:%S") + off,
    st.datetimes(min_value=datetime(1969, 1, 1), max_value=datetime(2100, 1, 1)),
    offsets,
)
ts_values = st.one_of(
    st.just(T0_MS),
    st.integers(RECEIVED_MS - 500 * DAY_MS, RECEIVED_MS + DAY_MS),
    st.just(T0_MS // 1000),  # milliseconds sent as seconds
    st.floats(0, 2e12),
    ts_text,
    json_values,
)
numbers = st.one_of(
    st.floats(0, 50),
    st.integers(0, 20_000),
    st.floats(),
    st.integers(min_value=-MAX_INT, max_value=MAX_INT),
    st.sampled_from(["NaN", "Infinity", "1.2", -1, 1e308, True]),
    json_values,
)
switches = st.one_of(st.booleans(), st.sampled_from([0, 1, 0.0, 1.0, 2, -1, "on", None]), json_values)
reading_like = st.fixed_dictionaries(
    {},
    optional={
        "ts": ts_values,
        "oil_fume": numbers,
        "pm": numbers,
        "nmhc": numbers,
        "flow": numbers,
        "fan": switches,
        "purifier": switches,
        "device_id": st.sampled_from(["dev1", "dev2", "hj1"]) | json_values,
        "extra": json_values,
    },
)
good_reading = st.fixed_dictionaries(
    {"ts": st.integers(T0_MS - DAY_MS, T0_MS), "oil_fume": st.floats(0, 20)},
    optional={"flow": st.floats(0, 20_000), "fan": st.booleans(), "purifier": st.sampled_from([0, 1])},
)
documents = st.one_of(
    good_reading,
    reading_like,
    st.lists(good_reading | reading_like, max_size=12),
    st.lists(reading_like | json_values, max_size=12),
    json_values,
)


@st.composite
def json_payloads(draw: st.DrawFn) -> bytes:
    doc = draw(documents)
    style = draw(st.sampled_from(["ascii", "utf8", "orjson"]))
    if style == "orjson":
        try:
            return orjson.dumps(doc)
        except TypeError:  # ints beyond 64 bits
            style = "ascii"
    # The standard library writes NaN/Infinity tokens, huge integers and lone surrogates: all hostile.
    text = json.dumps(doc, ensure_ascii=style == "ascii", allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def hj212_frames(draw: st.DrawFn) -> str:
    cn = draw(st.sampled_from(["2011", "2051", "2061", "2031", "1062", "9014"]))
    mn = draw(st.sampled_from(["hj1", "hj1", "hj1", "dev1", "hj2"]))
    pw = draw(st.sampled_from(["123456", "s3cret", ""]))
    if cn not in hj212.DATA_CNS:
        seg = f"QN=20260509120000000;ST=32;CN={cn};PW={pw};MN={mn};Flag=5;CP=&&RtdInterval=30&&"
        return hj212.encode_frame(seg)
    data_time = draw(
        st.just(T0_LOCAL) | st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2030, 1, 1))
    )
    codes = [*DEFAULT_FACTORS, "w01018", "a34041"]
    value = st.floats(0, 30) | st.integers(0, 1) | st.floats() | st.integers(-10, 10**7) | st.booleans()
    values = draw(st.dictionaries(st.sampled_from(codes), value, max_size=7))
    if draw(st.booleans()):
        values["a34041"] = draw(st.floats(0, 5))
    flags = draw(st.dictionaries(st.sampled_from(codes), st.sampled_from(list("NNNTCDFMSBX")), max_size=3))
    return hj212.build_data_frame(mn=mn, data_time_local=data_time, values=values, cn=cn, pw=pw, flags=flags)


junk_text = st.one_of(
    st.sampled_from(["", "", "\r\n", "\n", "##", "#", " ", "AT+SEND\r\n", "&&", ";CP=&&"]),
    st.text(st.characters(codec="ascii"), max_size=12),
    st.text(max_size=4),
)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    data = bytearray("".join(draw(st.lists(hj212_frames(), min_size=1, max_size=3))).encode("ascii"))
    for op in draw(
        st.lists(
            st.sampled_from(["flip", "set", "truncate", "dup", "delete", "insert"]), min_size=1, max_size=3
        )
    ):
        n = len(data)
        i = draw(st.integers(0, max(n - 1, 0)))
        j = draw(st.integers(i, n))
        if op == "flip" and n:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[i] = draw(st.sampled_from(b"#\r\n;=&,-0123456789ABCDEF\x00\xff"))
        elif op == "truncate":
            data = data[:i]
        elif op == "dup":
            data = data[:j] + data[i:j] + data[j:]
        elif op == "delete":
            del data[i:j]
        elif op == "insert":
            data[i:i] = draw(st.binary(max_size=6))
    return bytes(data)


# ========================================================================================= hypothesis


def test_fuzz_arbitrary_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0

    @FUZZ
    @given(p=PIPELINES, topic=st.sampled_from(ANY_TOPICS), payload=st.binary(max_size=600))
    def prop(p: Pipeline, topic: str, payload: bytes) -> None:
        nonlocal tried
        tried += 1
        run(p, topic, payload)

    prop()
    report(capsys, "arbitrary bytes", tried)
    assert tried > 0


def test_fuzz_json_values(capsys: pytest.CaptureFixture[str]) -> None:
    tried, stored = 0, 0

    @FUZZ
    @given(p=PIPELINES, topic=st.sampled_from(JSON_TOPICS), payload=json_payloads())
    def prop(p: Pipeline, topic: str, payload: bytes) -> None:
        nonlocal tried, stored
        tried += 1
        stored += len(run(p, topic, payload).readings)

    prop()
    report(capsys, f"JSON documents ({stored} readings stored)", tried)
    assert stored > 0, "the generator should produce some valid readings too"


def test_fuzz_good_json_batches_are_stored(capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0

    @FUZZ
    @given(items=st.lists(good_reading, min_size=1, max_size=8), p=PIPELINES)
    def prop(items: list[dict[str, Any]], p: Pipeline) -> None:
        nonlocal tried
        tried += 1
        out = run(p, "fume/v1/dev1/reading", orjson.dumps(items))
        assert out.dead == []
        assert [r.time_ms for r in out.readings] == [i["ts"] for i in items]

    prop()
    report(capsys, "good JSON batches", tried)


def test_fuzz_text_around_hj212_frames(capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0

    @FUZZ
    @given(
        p=PIPELINES,
        parts=st.lists(st.tuples(junk_text, hj212_frames()), min_size=1, max_size=4),
        tail=junk_text,
    )
    def prop(p: Pipeline, parts: list[tuple[str, str]], tail: str) -> None:
        nonlocal tried
        tried += 1
        text = "".join(j + f for j, f in parts) + tail
        run(p, HJ_TOPIC, text.encode("utf-8", "surrogatepass"))
        for chunk in hj212.split_frames(text):
            check_parse_frame(chunk)

    prop()
    report(capsys, "text around HJ 212 frames", tried)


def test_fuzz_clean_hj212_frames_all_accounted(capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0

    @FUZZ
    @given(frames=st.lists(hj212_frames(), min_size=1, max_size=5))
    def prop(frames: list[str]) -> None:
        nonlocal tried
        tried += 1
        out = run(DEFAULT, HJ_TOPIC, "".join(frames).encode("ascii"))
        # Well-formed frames never fail framing: only content checks may refuse them.
        assert not [d for d in out.dead if d.reason.startswith("hj212_")]
        assert len(out.readings) + len(out.dead) + out.ignored == len(frames)

    prop()
    report(capsys, "well-formed HJ 212 frames", tried)


def test_fuzz_mutated_hj212_frames(capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0

    @FUZZ
    @given(p=PIPELINES, payload=mutated_frames())
    def prop(p: Pipeline, payload: bytes) -> None:
        nonlocal tried
        tried += 1
        run(p, HJ_TOPIC, payload)
        text = payload.decode("latin-1")
        check_parse_frame(text)
        for chunk in hj212.split_frames(text):
            check_parse_frame(chunk)

    prop()
    report(capsys, "mutated HJ 212 frames", tried)


def test_fuzz_parse_frame_raises_only_hj212error(capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0
    digits = st.text(st.sampled_from("0123456789"), min_size=4, max_size=4)

    @FUZZ
    @given(
        text=st.one_of(
            st.text(),
            st.builds(lambda t: "##" + t, st.text()),
            st.builds(lambda d, t: "##" + d + t, digits, st.text()),
            # Unicode digits: str.isdigit() says yes to '\u00b2' and '\u0661', int() does not always.
            st.builds(
                lambda d, t: "##" + d + t,
                st.text(st.characters(categories=("Nd", "No")), min_size=4, max_size=4),
                st.text(),
            ),
            st.builds(lambda d, t: "##" + d + t + "\r\n", digits, st.text(st.characters(codec="ascii"))),
            st.builds(lambda t: hj212.encode_frame(t), st.text(st.characters(codec="ascii"), max_size=80)),
        )
    )
    def prop(text: str) -> None:
        nonlocal tried
        tried += 1
        check_parse_frame(text)

    prop()
    report(capsys, "parse_frame inputs", tried)


# ========================================================================================= corpus

_REP = re.compile(r"\{\{rep (\d+):(.*?)\}\}")
_ESC = re.compile(rb"\\(x[0-9a-fA-F]{2}|r|n|t|\\)")
_ESC_BYTES = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"\\": b"\\"}


def decode_payload(text: str) -> bytes:
    """Expand {{rep N:TEXT}}, then the backslash escapes \\r \\n \\t \\\\ \\xNN (see the corpus header)."""
    expanded = _REP.sub(lambda m: m.group(2) * int(m.group(1)), text)
    return _ESC.sub(
        lambda m: bytes([int(m.group(1)[1:], 16)]) if m.group(1)[:1] == b"x" else _ESC_BYTES[m.group(1)],
        expanded.encode("utf-8"),
    )


def load_corpus() -> list[tuple[int, str, Counter[str], bytes]]:
    cases = []
    for lineno, line in enumerate(CORPUS.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, expect, *rest = line.split(" ", 2)
        topic = {"json": "fume/v1/dev1/reading", "hj212": HJ_TOPIC}.get(kind, kind)
        want: Counter[str] = Counter()
        for item in expect.split(","):
            name, _, times = item.partition("*")
            want[name] += int(times or 1)
        cases.append((lineno, topic, want, decode_payload(rest[0] if rest else "")))
    return cases


def test_decode_payload_escapes() -> None:
    assert decode_payload(r"a\r\n\x00\xff\\x\t{{rep 3:ab}}") == b"a\r\n\x00\xff\\x\tababab"
    assert decode_payload(r"{{rep 2:\x7d}}") == b"}}"
    assert decode_payload("油") == "油".encode()


def test_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    cases = load_corpus()
    assert len(cases) >= 100
    kinds = Counter(t.rsplit("/", 1)[-1] for _, t, _, _ in cases)
    assert kinds["reading"] >= 40 and kinds["hj212"] >= 40
    wrong = []
    for lineno, topic, want, payload in cases:
        p = DEFAULT
        out = run(p, topic, payload)
        got = Counter({"ok": len(out.readings), "ignored": out.ignored}) + Counter(d.reason for d in out.dead)
        if +got != +want:
            wrong.append(f"line {lineno}: expected {dict(want)}, got {dict(+got)}")
    report(capsys, f"corpus {CORPUS.name}", len(cases))
    assert not wrong, "\n".join(wrong)


def test_memory_stays_bounded_under_hostile_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Decoding and dead-lettering 15,000 hostile messages does not grow memory with the count."""
    import random
    import tracemalloc

    from ingest.state import StateDB

    rng = random.Random(7)
    frame = hj212.build_data_frame(
        mn="hj1", data_time_local=datetime(2026, 5, 9, 12, 0), values={"a34041": 1.2}, pw="123456"
    )
    hostile = [
        b"\xff\xfe\x00garbage",
        b"[" * 5000,
        b'{"ts": 0, "oil_fume": 1}',
        b'{"ts": 1778299200000, "oil_fume": NaN}',
        b'{"ts": 1778299200000, "oil_fume": -1}',
        b"[" + b",".join([b'{"ts": 1778299200000, "oil_fume": 1}'] * 2000) + b"]",
        b"x" * 300_000,
        frame[:-10].encode(),
        frame.replace("1.2", "9.9").encode(),
    ]
    state = StateDB(tmp_path / "state.db")
    p = DEFAULT

    def batch(n: int) -> int:
        dead = []
        for _ in range(n):
            payload = rng.choice(hostile)
            topic = HJ_TOPIC if payload.startswith(b"##") else rng.choice(ANY_TOPICS)
            dead.extend(p.handle(topic, payload, RECEIVED_MS).dead)
            if len(dead) >= 500:
                state.add_dead_letters(dead)
                dead = []
        state.add_dead_letters(dead)
        return n

    tracemalloc.start()
    try:
        batch(3_000)  # warm-up: caches, SQLite page cache
        warm, _ = tracemalloc.get_traced_memory()
        tried = batch(12_000)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        state.close()
    report(capsys, "hostile messages (memory bound)", tried + 3_000)
    assert after - warm < 2_000_000, f"memory grew by {after - warm} bytes over 12,000 hostile messages"
