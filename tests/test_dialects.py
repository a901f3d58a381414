"""Device dialects (issue 13): the packaged dialects and user files, each dialect's frames through the real
`fumewatch ingest` over a real Mosquitto, data flags, unknown codes kept, the opt-in CRC variant and
sub-packets. Frames are ours, written from the public descriptions in docs/protocol.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest import hj212
from ingest.config import Settings
from ingest.dialects import DEFAULT_DIALECT, DialectError, load_dialects
from ingest.pipeline import Pipeline
from ingest.registry import Registry
from ingest.state import StateDB
from ingest.subpackets import SubpacketAssembler

REPO = Path(__file__).resolve().parent.parent
BEIJING = ZoneInfo("Asia/Shanghai")

REGISTRY = """restaurant_id,name,district,device_id,stove_heads,dialect,interval_s,fan_on_a,purifier_on_a
R1,Std,D,STD,2,,,,
R2,Old,D,OLD,2,hj212-2005,,,
R3,Keys,D,KEYS,2,lampblack,,,
R4,Amps,D,AMPS,2,current-sensing,,,2.0
R5,Num,D,NUM,2,vendor-numeric,600,,
R6,Crc,D,CRC,2,modbus-crc,,,
"""


def local(minutes_ago: int) -> str:
    t = datetime.now(BEIJING).replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    return t.strftime("%Y%m%d%H%M%S")


def frame(mn: str, cp: str, *, cn: str = "2011", qn: bool = True, head: str = "", crc=None) -> bytes:
    seg = (f"QN={local(0)}000;" if qn else "") + f"ST=22;CN={cn};PW=123456;MN={mn};{head}Flag=5;CP=&&{cp}&&"
    if crc is None:
        return hj212.encode_frame(seg).encode()
    return f"##{len(seg):04d}{seg}{crc(seg.encode()):04X}\r\n".encode()


def pipeline(**hj) -> Pipeline:
    return Pipeline(Settings(hj212=hj), Registry.parse(REGISTRY))


def handle(p: Pipeline, mn: str, payload: bytes):
    return p.handle(f"fume/v1/{mn}/hj212", payload, int(time.time() * 1000))


# ---------------------------------------------------------------- the dialect files
def test_packaged_dialects_each_say_what_they_are_and_where_they_come_from() -> None:
    ds = load_dialects()
    assert ds.names()[0] == DEFAULT_DIALECT
    assert {
        "hj212-2017",
        "hj212-2005",
        "lampblack",
        "vendor-numeric",
        "current-sensing",
        "modbus-crc",
    } <= set(ds.names())
    for d in ds:
        assert d.description and len(d.description) <= 110 and d.source
        assert d.factors and "oil_fume" in d.factors.values()
    assert "a34040" in ds.get("hj212-2017").source  # a34041/a34000 are not in the national table


def test_user_dialect_extends_and_replaces(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        'name = "vendor-x"\nextends = "lampblack"\ndescription = "X"\nsource = "our site survey"\n'
        '[factors]\nOILY = "oil_fume"\n[scale]\nFLOW = 3600\n',
        encoding="utf-8",
    )
    ds = load_dialects(tmp_path)
    d = ds.get("vendor-x")
    assert d.factors["OILY"] == "oil_fume" and d.factors["LAMPBLACK"] == "oil_fume"
    assert d.keys["FANSTATUS"] == "fan" and d.scale == {"FLOW": 3600.0} and d.origin.endswith("mine.toml")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('name = "a"\ndescription = "d"\n', "'source' missing"),
        ('name = "a"\ndescription = "d"\nsource = "s"\n[factors]\nX = "smoke"\n', r"factors.X = 'smoke'"),
        ('name = "a"\ndescription = "d"\nsource = "s"\ncrc_variants = ["xor"]\n', "crc_variants"),
        ('name = "a"\ndescription = "d"\nsource = "s"\nextends = "nope"\n', "extends unknown dialect 'nope'"),
        (
            'name = "a"\ndescription = "d"\nsource = "s"\n[states]\nI1 = { target = "fan", encoding = "current" }\n',
            "positive threshold",
        ),
        ('name = "a"\ndescription = "d"\nsource = "s"\ncolour = 1\n', "unknown key"),
    ],
)
def test_a_bad_dialect_file_is_one_line_naming_file_and_key(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
    with pytest.raises(DialectError, match=match) as e:
        load_dialects(tmp_path)
    assert "bad.toml" in str(e.value) and "\n" not in str(e.value)


def test_a_registry_naming_an_unknown_dialect_is_refused_with_the_known_ones() -> None:
    reg = Registry.parse("restaurant_id,name,district,device_id,stove_heads,dialect\nR,N,D,X1,2,vendr\n")
    with pytest.raises(DialectError, match=r"X1 \('vendr'\); known: hj212-2017"):
        Pipeline(Settings(), reg)


def test_fumewatch_dialects_lists_packaged_and_user_dialects(tmp_path: Path) -> None:
    (tmp_path / "d.toml").write_text(
        'name = "site-x"\ndescription = "Ours"\nsource = "s"\n[factors]\nO = "oil_fume"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    env |= {"PYTHONPATH": str(REPO), "FUMEWATCH_HJ212_DIALECTS_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "fumewatch", "dialects"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("hj212-2017 ") and any(x.startswith("site-x") and "d.toml" in x for x in lines)
    show = subprocess.run(
        [sys.executable, "-m", "fumewatch", "dialects", "--show", "lampblack"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "key     FANSTATUS    fan (0/1)" in show.stdout


# ---------------------------------------------------------------- decoding, one dialect at a time
def test_hj212_2005_frames_without_qn_are_accepted_only_under_their_dialect() -> None:
    p = pipeline()
    cp = f"DataTime={local(2)};a34041-Rtd=1.1,a34041-Flag=N"
    [r] = handle(p, "OLD", frame("OLD", cp, qn=False)).readings
    assert r.oil_fume_mg_m3 == 1.1
    out = handle(p, "STD", frame("STD", cp, qn=False))
    assert not out.readings and out.dead[0].reason == "hj212_missing_field"


def test_equipment_state_from_rs_keys_currents_and_numbers() -> None:
    p = pipeline()
    t = local(2)
    [r] = handle(p, "STD", frame("STD", f"DataTime={t};a34041-Rtd=1;SB1-RS=1;SB2-RS=0")).readings
    assert (r.fan_on, r.purifier_on, r.excluded) == (True, False, "")
    [r] = handle(p, "STD", frame("STD", f"DataTime={t};a34041-Rtd=1;SB1-RS=5;SB2-RS=4")).readings
    assert (r.fan_on, r.purifier_on) == (True, True)  # backflush and alarm: running
    [r] = handle(p, "STD", frame("STD", f"DataTime={t};a34041-Rtd=1;SB1-RS=1;SB2-RS=3")).readings
    assert (r.purifier_on, r.excluded, r.flags["purifier_rs"]) == (None, "rs_3", "3")
    out = handle(p, "STD", frame("STD", f"DataTime={t};a34041-Rtd=1;SB1-RS=7"))
    assert out.dead[0].reason == "bad_state"
    [r] = handle(
        p, "KEYS", frame("KEYS", f"DataTime={t};LAMPBLACK-Rtd=2.5;FANSTATUS=1;PURIFYSTATUS=0")
    ).readings
    assert (r.oil_fume_mg_m3, r.fan_on, r.purifier_on) == (2.5, True, False)
    # registry purifier_on_a = 2.0 overrides the dialect's 0.5 A; the fan keeps 0.5 A
    [r] = handle(p, "AMPS", frame("AMPS", f"DataTime={t};a34041-Rtd=1;SB1-Rtd=0.6;SB2-Rtd=1.2")).readings
    assert (r.fan_on, r.purifier_on) == (True, False)
    assert r.extra == {"fan_current_a": "0.6", "purifier_current_a": "1.2"}
    [r] = handle(
        p, "NUM", frame("NUM", f"DataTime={t};006-Avg=3.3;a34004-Avg=0.4;ga0601-Avg=1", cn="2051")
    ).readings
    assert (r.oil_fume_mg_m3, r.pm_mg_m3, r.fan_on) == (3.3, 0.4, True)


def test_flags_unknown_codes_and_stored_quantities_are_kept() -> None:
    p = pipeline()
    cp = (
        f"DataTime={local(2)};a34041-Rtd=9.9,a34041-Flag=T,a34041-ZsRtd=12;a01012-Rtd=85.5;"
        "a99001-Rtd=3.2,a99001-Flag=N;PolId=x7"
    )
    out = handle(p, "STD", frame("STD", cp))
    [r] = out.readings
    assert r.lower_bound and r.excluded == "" and r.oil_fume_mg_m3 == 9.9
    assert r.extra == {
        "a34041-ZsRtd": "12",
        "flue_temp_c": "85.5",
        "a99001-Rtd": "3.2",
        "a99001-Flag": "N",
        "PolId": "x7",
    }
    assert ("STD", "unknown_code", "a99001") in out.notes and ("STD", "unknown_code", "PolId") in out.notes


def test_the_crc_variant_is_opt_in_and_noted() -> None:
    p = pipeline()
    swapped = hj212.CRC_VARIANTS["modbus_swapped"]
    cp = f"DataTime={local(2)};a34041-Rtd=1.0"
    out = handle(p, "CRC", frame("CRC", cp, crc=swapped))
    assert len(out.readings) == 1 and out.notes == [("CRC", "crc_variant", "modbus_swapped")]
    out = handle(p, "STD", frame("STD", cp, crc=swapped))
    assert out.dead[0].reason == "hj212_bad_crc"
    out = handle(p, "CRC", frame("CRC", cp, crc=lambda b: 0x1234))
    assert out.dead[0].reason == "hj212_bad_crc"


def test_modbus_crc_is_the_published_check_value() -> None:
    assert hj212.crc16_modbus(b"123456789") == 0x4B37  # CRC-16/MODBUS check value (CRC catalogue)
    assert hj212.CRC_VARIANTS["modbus_swapped"](b"123456789") == 0x374B


def test_sub_packets_merge_by_qn_and_expire_with_their_parts() -> None:
    p = pipeline(subpacket_timeout_s=1)
    t = local(2)
    one = frame("STD", f"DataTime={t};a34041-Rtd=1.5", head="PNUM=2;PNO=1;")
    two = frame("STD", f"DataTime={t};a00000-Rtd=5000;SB1-RS=1", head="PNUM=2;PNO=2;")
    out = handle(p, "STD", one)
    assert not out.readings and not out.dead and out.notes[0][1] == "subpacket_held"
    [r] = handle(p, "STD", two).readings
    assert (r.oil_fume_mg_m3, r.flow_m3_h, r.fan_on) == (1.5, 5000.0, True)
    # a lone part (its partner lost): a dead letter holding it, once the timeout has passed
    lone = frame("STD", f"DataTime={local(3)};a00000-Rtd=5000", head="PNUM=3;PNO=2;")
    assert not handle(p, "STD", lone).dead
    out = p.expire_subpackets(int(time.time() * 1000) + 1500)
    [d] = out.dead
    assert d.reason == "hj212_subpacket_expired" and d.detail["received"] == [2] and d.detail["pnum"] == 3
    assert "lone sub-packet: 1 of 3 parts" in d.detail["message"] and "a00000-Rtd=5000" in d.payload_excerpt
    bad = frame("STD", f"DataTime={t};a34041-Rtd=1", head="PNUM=2;PNO=3;")
    assert handle(p, "STD", bad).dead[0].reason == "hj212_bad_subpacket"


def test_the_assembler_is_bounded() -> None:
    a = SubpacketAssembler(60_000, max_held=2)
    f = [hj212.parse_frame(frame("STD", "DataTime=20261202120000;a=1", head="PNUM=2;PNO=1;").decode())]
    for i in range(3):
        f[0].qn = f"Q{i}"
        _, what, evicted = a.add("STD", "t", f[0], i)
    assert (
        len(a) == 2 and [e.reason for e in evicted] == ["hj212_subpacket_overflow"] and evicted[0].key == "Q0"
    )


# ---------------------------------------------------------------- the real ingest over a real Mosquitto
def _ingest(mosquitto, tmp_path: Path, **env: str):
    reg = tmp_path / "registry.csv"
    reg.write_text(REGISTRY, encoding="utf-8")
    argv = ["ingest", "--broker", mosquitto.url, "--registry", str(reg), "--client-id", tmp_path.name[-20:]]
    argv += ["--store", str(tmp_path / "fume.db"), "--state", str(tmp_path / "state.db")]
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    base["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "fumewatch", *argv],
        cwd=tmp_path,
        env={**base, "FUMEWATCH_INGEST_FLUSH_INTERVAL_S": "0.1", **env},
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.integration
def test_every_dialect_through_the_real_ingest(mosquitto, tmp_path: Path) -> None:
    import signal

    from servers import publish_mqtt, wait_for

    proc = _ingest(mosquitto, tmp_path, FUMEWATCH_HJ212_SUBPACKET_TIMEOUT_S="1")
    t = local(5)
    msgs = [
        ("OLD", frame("OLD", f"DataTime={t};a34041-Rtd=1.1", qn=False)),
        ("STD", frame("STD", f"DataTime={t};a34041-Rtd=1.2,a34041-Flag=D;SB1-RS=1;SB2-RS=1;a99001-Rtd=3.2")),
        ("STD", frame("STD", f"DataTime={local(4)};a34041-Rtd=9.9,a34041-Flag=T;SB1-RS=2")),
        ("KEYS", frame("KEYS", f"DataTime={t};LAMPBLACK-Rtd=2.5;FANSTATUS=1;PURIFYSTATUS=0")),
        ("AMPS", frame("AMPS", f"DataTime={t};a34041-Rtd=1;SB1-Rtd=3.1;SB2-Rtd=1.2")),
        ("NUM", frame("NUM", f"DataTime={t};006-Avg=3.3;ga2201-Avg=1", cn="2051")),
        ("CRC", frame("CRC", f"DataTime={t};a34041-Rtd=1.4", crc=hj212.CRC_VARIANTS["modbus_swapped"])),
        ("STD", frame("STD", f"DataTime={local(3)};a34041-Rtd=1.5", head="PNUM=2;PNO=1;")),
        ("STD", frame("STD", f"DataTime={local(3)};a00000-Rtd=5000", head="PNUM=2;PNO=2;")),
        (
            "STD",
            frame("STD", f"DataTime={local(2)};a34041-Rtd=1.6", head="PNUM=2;PNO=1;"),
        ),  # its partner lost
    ]
    try:
        wait_for(lambda: (tmp_path / "state.db").exists(), timeout=20, what="ingest started")
        time.sleep(1.0)
        publish_mqtt(mosquitto.url, [(f"fume/v1/{mn}/hj212", body) for mn, body in msgs])
        st = StateDB(tmp_path / "state.db")
        try:
            # the lone part expires on the service's own timer, without any further message
            wait_for(lambda: len(st.dead_letters()) >= 1, timeout=30, what="the expired sub-packet")
            [d] = st.dead_letters()
        finally:
            st.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert d.reason == "hj212_subpacket_expired" and d.device_id == "STD" and "1.6" in d.payload_excerpt
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")} | {"PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "readings",
            "--store",
            str(tmp_path / "fume.db"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    rows = {(r["device_id"], r["time"][11:16]): r for r in json.loads(out.stdout)}
    by_dev: dict[str, list[dict]] = {}
    for r in rows.values():
        by_dev.setdefault(r["device_id"], []).append(r)
    assert sorted(by_dev) == ["AMPS", "CRC", "KEYS", "NUM", "OLD", "STD"]
    assert by_dev["OLD"][0]["oil_fume_mg_m3"] == 1.1
    std = sorted(by_dev["STD"], key=lambda r: r["time_ms"])
    assert [r["excluded"] for r in std] == ["flag_D", "rs_2", ""]
    assert std[0]["extra"] == {"a99001-Rtd": "3.2"} and std[0]["flags"]["oil_fume"] == "D"
    assert std[1]["flags"]["oil_fume"] == "T" and std[1]["oil_fume_mg_m3"] == 9.9
    assert std[2]["flow_m3_h"] == 5000.0 and std[2]["oil_fume_mg_m3"] == 1.5  # two sub-packets, one reading
    assert (by_dev["KEYS"][0]["fan_on"], by_dev["KEYS"][0]["purifier_on"]) == (True, False)
    assert (by_dev["AMPS"][0]["fan_on"], by_dev["AMPS"][0]["purifier_on"]) == (True, False)
    assert (by_dev["NUM"][0]["oil_fume_mg_m3"], by_dev["NUM"][0]["purifier_on"]) == (3.3, True)
    assert by_dev["CRC"][0]["oil_fume_mg_m3"] == 1.4
    assert std[0]["time"].endswith("+08:00")


def test_protocol_doc_has_one_table_per_shipped_dialect_matching_its_file() -> None:
    doc = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    for d in load_dialects():
        head = f"### `{d.name}`"
        assert head in doc, f"docs/protocol.md has no table for {d.name}"
        section = doc[doc.index(head) :].split("\n### ", 1)[0].split("\n## ", 1)[0]
        for code in [*d.factors, *d.states, *d.keys]:
            assert f"| `{code}`" in section, f"{d.name}: {code} missing from its table in docs/protocol.md"


@pytest.mark.integration
def test_flags_extra_and_exclusion_round_trip_through_a_real_influxdb(influx_db, tmp_path: Path) -> None:
    """InfluxDB: `flags` and `excluded` string fields, unknown entries as `x_` string fields (a code sent as a
    number once and as text once cannot cause a field type conflict), read back by the store's query."""
    from test_first_wins import open_influx, settle

    from ingest.model import Reading
    from ingest.timeutil import now_ms

    t = (now_ms() // 60_000 - 10) * 60_000
    a = Reading(t, "D1", "R1", "朝阳区", 9.9, 9.9, False, None, None, None, True, None, "hj212")
    a.flags, a.extra = {"oil_fume": "T"}, {"a99001-Rtd": "3.2", "PolId": "x 7,=a"}
    b = Reading(t + 60_000, "D1", "R1", "朝阳区", 1.0, 1.0, False, None, None, None, None, None, "hj212")
    b.flags, b.extra, b.excluded = {"oil_fume": "C"}, {"a99001-Rtd": "n/a"}, "flag_C"
    plain = Reading(t + 120_000, "D1", "R1", "朝阳区", 0.5, 0.5, False, None, None, None, None, None, "json")
    store = open_influx(influx_db, tmp_path, buffer=False)
    try:
        store.write([(1, [a, b, plain])])
        settle(store, influx_db, 3)
        rows = store.query(device_id="D1")
    finally:
        store.close()
    assert [(r["flags"], r["extra"], r["excluded"]) for r in rows] == [
        ({"oil_fume": "T"}, {"a99001-Rtd": "3.2", "PolId": "x 7,=a"}, ""),
        ({"oil_fume": "C"}, {"a99001-Rtd": "n/a"}, "flag_C"),
        (None, None, ""),
    ]
