"""HJ 212-2017 frame codec: CRC, the worked example of DESIGN.md, round trips and every rejection reason."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import hj212
from ingest.hj212 import HJ212Error, build_data_frame, crc16, encode_frame, parse_frame, split_frames

# The worked example from the standard, quoted in DESIGN.md (a command frame, CN=1062).
EXAMPLE_SEGMENT = (
    "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"
)
EXAMPLE = f"##0101{EXAMPLE_SEGMENT}1C80\r\n"

MN = "dev-hj-01"
T_LOCAL = datetime(2026, 5, 9, 12, 30, 0)


def _reason(frame: str) -> str:
    with pytest.raises(HJ212Error) as info:
        parse_frame(frame)
    assert info.value.message, "every rejection says why"
    return info.value.reason


def _data_frame(cn: str = hj212.CN_MINUTE, **kw) -> str:
    values = kw.pop("values", {"a34041": 1.25, "a00000": 6000, "fan01": 1})
    return build_data_frame(mn=MN, data_time_local=T_LOCAL, values=values, cn=cn, **kw)


# ------------------------------------------------------------------------------------------ CRC + example


def test_crc_of_worked_example_is_1c80() -> None:
    assert len(EXAMPLE_SEGMENT.encode("ascii")) == 101
    assert crc16(EXAMPLE_SEGMENT.encode("ascii")) == 0x1C80


def test_crc_is_not_crc16_modbus() -> None:
    # CRC-16/MODBUS of "123456789" is 0x4B37; the HJ 212 register update gives something else.
    assert crc16(b"123456789") != 0x4B37


def test_worked_example_parses() -> None:
    frame = parse_frame(EXAMPLE)
    assert frame.cn == "1062"
    assert frame.qn == "20160801085857223"
    assert frame.st == "32"
    assert frame.pw == "100000"
    assert frame.mn == "010000A8900016F000169DC0"
    assert frame.flag == "5"
    assert frame.cp == {"RtdInterval": "30"}
    assert frame.factors == {}
    assert frame.raw == EXAMPLE


def test_encode_frame_reproduces_worked_example() -> None:
    assert encode_frame(EXAMPLE_SEGMENT) == EXAMPLE


def test_encode_frame_refuses_oversize_segment() -> None:
    with pytest.raises(HJ212Error) as info:
        encode_frame("x" * (hj212.MAX_DATA_LEN + 1))
    assert info.value.reason == "too_long"


# ------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    ("cn", "kind"), [(hj212.CN_REALTIME, "Rtd"), (hj212.CN_MINUTE, "Avg"), (hj212.CN_HOURLY, "Avg")]
)
def test_build_data_frame_round_trips(cn: str, kind: str) -> None:
    text = _data_frame(cn, flags={"a00000": "T"})
    assert text.startswith("##") and text.endswith("\r\n")
    frame = parse_frame(text)
    assert frame.cn == cn
    assert frame.mn == MN
    assert frame.pw == "123456"
    assert frame.data_time == "20260509123000"
    assert frame.qn == "20260509123000000"
    assert frame.factors == {
        "a34041": {kind: "1.25", "Flag": "N"},
        "a00000": {kind: "6000", "Flag": "T"},
        "fan01": {kind: "1", "Flag": "N"},
    }
    # The length field is the data segment's byte count.
    assert int(text[2:6]) == len(text) - 6 - 4 - 2


def test_build_data_frame_refuses_command_cn() -> None:
    with pytest.raises(HJ212Error) as info:
        build_data_frame(mn=MN, data_time_local=T_LOCAL, values={"a34041": 1.0}, cn="1062")
    assert info.value.reason == "bad_cn"


def test_build_data_frame_formats_values() -> None:
    frame = parse_frame(_data_frame(values={"a": True, "b": 0.1 + 0.2, "c": 7, "d": 2.0}))
    assert {code: parts["Avg"] for code, parts in frame.factors.items()} == {
        "a": "1",
        "b": "0.3",
        "c": "7",
        "d": "2",
    }


# ------------------------------------------------------------------------------------------ rejections


def test_corrupted_crc() -> None:
    assert _reason(EXAMPLE.replace("1C80\r\n", "1C81\r\n")) == "bad_crc"


def test_crc_field_not_hex() -> None:
    assert _reason(EXAMPLE.replace("1C80\r\n", "1CZ0\r\n")) == "bad_crc"


@pytest.mark.parametrize("crc", [" 1C8", "+1C8", "0x1C", "1_C8"])
def test_crc_field_must_be_four_hex_digits(crc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Make the computed CRC equal what int(crc, 16) would read, so only the field's strictness can refuse it.
    monkeypatch.setattr(hj212, "crc16", lambda data: int(crc, 16))
    assert _reason(f"##0101{EXAMPLE_SEGMENT}{crc}\r\n") == "bad_crc"
    assert parse_frame(f"##0101{EXAMPLE_SEGMENT}{int(crc, 16):04X}\r\n").cn == "1062"


def test_lowercase_crc_accepted() -> None:
    assert parse_frame(EXAMPLE.replace("1C80", "1c80")).cn == "1062"


@pytest.mark.parametrize(
    "length", ["01a1", "010", "-101", " 101", "\u00b2\u00b2\u00b2\u00b2", "\u0661\u0660\u0661\u0661"]
)
def test_length_field_not_four_decimal_digits(length: str) -> None:
    assert _reason(EXAMPLE.replace("##0101", f"##{length}")) == "bad_length"


def test_length_declares_less_than_carried() -> None:
    assert _reason(EXAMPLE.replace("##0101", "##0100")) == "length_mismatch"


def test_length_declares_more_than_carried_is_truncated() -> None:
    assert _reason(EXAMPLE.replace("##0101", "##0102")) == "truncated"


@pytest.mark.parametrize("cut", [10, 60, 100, len(EXAMPLE) - 4])
def test_truncated_frame(cut: int) -> None:
    assert _reason(EXAMPLE[:cut]) == "truncated"


def test_truncated_frame_with_crlf() -> None:
    assert _reason(EXAMPLE[:80] + "\r\n") == "truncated"


@pytest.mark.parametrize("frame", [EXAMPLE[2:], "#" + EXAMPLE[2:], "  " + EXAMPLE, "", "QN=1"])
def test_missing_header(frame: str) -> None:
    assert _reason(frame) == "no_header"


def test_lf_only_ending() -> None:
    assert _reason(EXAMPLE[:-2] + "\n") == "no_crlf"


def test_cr_only_ending_is_a_length_mismatch() -> None:
    assert _reason(EXAMPLE[:-2] + "\r") == "length_mismatch"


def test_non_ascii() -> None:
    seg = EXAMPLE_SEGMENT.replace("MN=010000A8900016F000169DC0", "MN=油烟监测仪")
    frame = f"##{len(seg.encode()):04d}{seg}{crc16(seg.encode()):04X}\r\n"
    assert _reason(frame) == "bad_segment"


def test_missing_cp() -> None:
    seg = "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5"
    assert _reason(encode_frame(seg)) == "missing_field"


def test_cp_not_closed() -> None:
    assert _reason(encode_frame(EXAMPLE_SEGMENT[:-2])) == "bad_segment"


@pytest.mark.parametrize("key", ["QN", "ST", "CN", "MN"])
def test_missing_required_header_field(key: str) -> None:
    parts = [p for p in EXAMPLE_SEGMENT.split(";") if not p.startswith(f"{key}=")]
    assert _reason(encode_frame(";".join(parts))) == "missing_field"


def test_missing_pw_and_flag_are_tolerated() -> None:
    seg = "QN=20160801085857223;ST=32;CN=1062;MN=X;CP=&&RtdInterval=30&&"
    frame = parse_frame(encode_frame(seg))
    assert (frame.pw, frame.flag, frame.mn) == ("", "", "X")


def test_header_item_without_equals() -> None:
    assert _reason(encode_frame("QN=1;ST=32;CN=1062;junk;MN=X;CP=&&&&")) == "bad_segment"


def test_cp_item_without_equals() -> None:
    assert (
        _reason(encode_frame("QN=1;ST=32;CN=2051;MN=X;CP=&&DataTime=20260509123000;a34041&&"))
        == "bad_segment"
    )


# ------------------------------------------------------------------------------------------ split_frames


def test_split_frames_back_to_back() -> None:
    a = _data_frame(hj212.CN_MINUTE)
    b = _data_frame(hj212.CN_HOURLY)
    assert split_frames(a + EXAMPLE + b) == [a, EXAMPLE, b]
    assert [parse_frame(f).cn for f in split_frames(a + EXAMPLE + b)] == ["2051", "1062", "2061"]


def test_split_frames_junk_before_first_header_is_its_own_chunk() -> None:
    chunks = split_frames("garbage\x00 here" + EXAMPLE + EXAMPLE)
    assert chunks == ["garbage\x00 here", EXAMPLE, EXAMPLE]
    assert _reason(chunks[0]) == "no_header"


def test_split_frames_whitespace_only_prefix_is_dropped() -> None:
    assert split_frames(" \r\n" + EXAMPLE) == [EXAMPLE]


def test_split_frames_without_header_and_empty() -> None:
    assert split_frames("no frame at all") == ["no frame at all"]
    assert split_frames("") == []
    assert split_frames(" \r\n\t") == []


def test_split_frames_trailing_junk_stays_with_last_frame() -> None:
    chunks = split_frames(EXAMPLE + "tail")
    assert chunks == [EXAMPLE + "tail"]
    assert _reason(chunks[0]) == "length_mismatch"


@given(st.binary(max_size=600))
def test_table_crc_equals_the_standards_bit_by_bit_crc(data: bytes) -> None:
    assert hj212.crc16(data) == hj212.crc16_reference(data)
