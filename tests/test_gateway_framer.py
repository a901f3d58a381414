"""The gateway's framer and answers without a socket (ingest/gateway/framer.py, protocol.py): any split of
a stream of frames gives back the frames; garbage, oversize and never-terminated frames are dropped with
their size and never grow the buffer past the limit; the 9014 and 1012 frames are well-formed."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.gateway import protocol
from ingest.gateway.framer import Framer
from ingest.hj212 import build_data_frame, encode_frame, parse_frame, parse_segment

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 1, 11, 0, tzinfo=TZ)
FRAMES = [
    build_data_frame(
        mn="MN1", data_time_local=T0 + timedelta(minutes=i), values={"a34041": 1 + i / 7}
    ).encode()
    for i in range(6)
]
NOISE = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b""))  # a CRLF would end a "frame"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(FRAMES), NOISE), min_size=1, max_size=6),
    st.lists(st.integers(min_value=1, max_value=80), max_size=30),
)
def test_any_split_of_frames_and_noise_gives_back_the_frames(items, cuts):
    stream = b"".join(noise + f for f, noise in items)
    f = Framer(max_frame_bytes=400)
    pieces, pos = [], 0
    for n in cuts:
        pieces += f.feed(stream[pos : pos + n])
        pos += n
    pieces += f.feed(stream[pos:]) + f.flush()
    assert [p.data for p in pieces if p.kind == "frame"] == [fr for fr, _ in items]
    assert sum(p.size for p in pieces) == len(stream)  # every byte is accounted for
    assert f.buffered == 0


def test_garbage_and_unterminated_frames_never_grow_the_buffer():
    f = Framer(max_frame_bytes=300)
    high = 0
    for chunk in [b"\x00" * 1000, b"##0100" + b"y" * 1000, b"##9999", b"z" * 5000, FRAMES[0]]:
        for i in range(0, len(chunk), 7):
            out = f.feed(chunk[i : i + 7])
            high = max(high, f.buffered)
    assert high <= 300
    assert out and out[-1].kind == "frame" and out[-1].data == FRAMES[0]


def test_answers():
    up = parse_frame(FRAMES[0].decode())
    assert protocol.wants_answer(up) and not protocol.is_response(up)
    r = parse_frame(protocol.data_response(up).decode())
    assert (r.qn, r.st, r.cn, r.pw, r.mn, r.flag, r.cp) == (up.qn, "91", "9014", up.pw, "MN1", "4", {})
    assert not protocol.wants_answer(r) and protocol.is_response(r)
    # an HJ/T 212-2005 sender (version bits 0: Flag=1 asks for an answer) gets the 2005 form
    old = parse_segment(
        "ST=32;CN=2011;PW=123456;MN=MN5;Flag=1;CP=&&DataTime=20261201110000&&", qn_optional=True
    )
    seg = protocol.data_response(old).decode()
    assert "ST=91;CN=9014;PW=123456;MN=MN5;Flag=0;CP=&&QN=;CN=2011&&" in seg
    req = parse_segment("QN=20261201110000000;ST=39;CN=1013;PW=1;MN=MN1;Flag=5;CP=&&&&")
    cmd = parse_frame(protocol.set_time(req, T0).decode())
    assert (cmd.cn, cmd.st, cmd.flag, cmd.cp) == ("1012", "39", "5", {"SystemTime": "20261201110000"})
    assert encode_frame("x").endswith("\r\n")


def test_a_hash_just_before_a_frame_does_not_take_its_header():
    for junk in (b"#", b"\xffab#", b"###", b"##x#"):
        pieces = Framer().feed(junk + FRAMES[0])
        assert [p.data for p in pieces if p.kind == "frame"] == [FRAMES[0]], junk
        assert sum(p.size for p in pieces) == len(junk) + len(FRAMES[0])
