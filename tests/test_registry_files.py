"""Registry files as people make them (issue 13): UTF-8 with and without BOM, GB18030/GBK as Excel in China
saves CSV, Excel's UTF-16 "Unicode text", .xlsx directly; errors name the file, the line and the fix. And
the real `fumewatch ingest` over a real Mosquitto with a GBK and an .xlsx registry."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from ingest.registry import Registry, RegistryError

ROWS = [
    ("restaurant_id", "name", "district", "device_id", "stove_heads", "lat", "lon"),
    ("R1", "老王牛肉面", "朝阳区", "D1", "2", "39.92", "116.44"),
    ("R2", "川味小馆·二店", "海淀区", "D2", "3", "", ""),
]
CSV = "\r\n".join(",".join(r) for r in ROWS) + "\r\n"


def check(reg: Registry) -> None:
    assert [(d.name, d.district, d.stove_heads) for d in reg] == [
        ("老王牛肉面", "朝阳区", 2),
        ("川味小馆·二店", "海淀区", 3),
    ]
    assert reg.get("D1").lat == pytest.approx(39.92)


def write_xlsx(path: Path, rows=ROWS) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for r in rows:
        ws.append(
            [
                int(v)
                if k == "stove_heads" and v.isdigit()
                else (float(v) if k in ("lat", "lon") and v else v or None)
                for k, v in zip(ROWS[0], r, strict=True)
            ]
            if r is not rows[0]
            else list(r)
        )
    wb.save(path)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("utf8.csv", CSV.encode("utf-8")),
        ("bom.csv", CSV.encode("utf-8-sig")),
        ("gbk.csv", CSV.encode("gbk")),
        ("gb18030.csv", CSV.encode("gb18030")),
        ("unicode.txt", CSV.replace(",", "\t").encode("utf-16")),
    ],
)
def test_every_encoding_excel_writes(tmp_path: Path, name: str, data: bytes, caplog) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    with caplog.at_level(logging.INFO, logger="fumewatch.registry"):
        check(Registry.load(p))
    said = [r.getMessage() for r in caplog.records if "registry_encoding" in r.getMessage()]
    assert bool(said) == name.startswith("gb"), said  # GB18030 is said in the log; UTF-8 and UTF-16 are not


def test_xlsx_directly(tmp_path: Path) -> None:
    p = tmp_path / "registry.xlsx"
    write_xlsx(p)
    check(Registry.load(p))


def test_errors_name_the_file_the_line_and_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_bytes(CSV.encode("utf-8") + b"R3,\xff\xfe\xfd\xfc\x80,x,D3,1\r\n")
    with pytest.raises(RegistryError, match=r"broken.csv:4: neither UTF-8 nor GB18030/GBK .*CSV UTF-8"):
        Registry.load(bad)
    cols = tmp_path / "cols.csv"
    cols.write_text("餐厅,名称\nR1,x\n", encoding="utf-8")
    with pytest.raises(
        RegistryError, match=r"cols.csv:1: missing required column\(s\) restaurant_id.*found 餐厅,名称"
    ):
        Registry.load(cols)
    heads = tmp_path / "heads.xlsx"
    write_xlsx(heads, [ROWS[0], ("R1", "店", "区", "D1", "two", "", "")])
    with pytest.raises(RegistryError, match=r"heads.xlsx:2: stove_heads 'two' is not a whole number"):
        Registry.load(heads)
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(RegistryError, match=r"old.xls: .xls .* is not read"):
        Registry.load(xls)
    fake = tmp_path / "fake.xlsx"
    fake.write_text("not a workbook")
    with pytest.raises(RegistryError, match=r"fake.xlsx: not a readable .xlsx workbook"):
        Registry.load(fake)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["gbk", "xlsx"])
def test_ingest_runs_on_a_gbk_or_xlsx_registry(mosquitto, tmp_path: Path, kind: str) -> None:
    from servers import publish_mqtt, wait_for

    from ingest.store import open_store
    from ingest.timeutil import now_ms

    reg = tmp_path / ("registry.csv" if kind == "gbk" else "registry.xlsx")
    if kind == "gbk":
        reg.write_bytes(CSV.encode("gbk"))
    else:
        write_xlsx(reg)
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    base["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    argv = [sys.executable, "-m", "fumewatch", "ingest", "--broker", mosquitto.url, "--registry", str(reg)]
    argv += [
        "--store",
        str(tmp_path / "fume.db"),
        "--state",
        str(tmp_path / "state.db"),
        "--client-id",
        f"reg-{kind}",
    ]
    log = open(tmp_path / "ingest.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env={**base, "FUMEWATCH_INGEST_FLUSH_INTERVAL_S": "0.1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    t = (now_ms() // 60_000 - 5) * 60_000
    try:
        wait_for(
            lambda: (
                "event=broker_connected" in (tmp_path / "ingest.log").read_text() or proc.poll() is not None
            ),
            timeout=30,
            what="ingest connected",
        )
        assert proc.poll() is None, (tmp_path / "ingest.log").read_text()
        time.sleep(1.0)
        publish_mqtt(mosquitto.url, [("fume/v1/D2/reading", orjson.dumps({"ts": t, "oil_fume": 0.8}))])

        def stored() -> list[dict]:
            s = open_store(str(tmp_path / "fume.db"), read_only=True)
            try:
                return s.query(device_id="D2")
            finally:
                s.close()

        wait_for(
            lambda: (tmp_path / "fume.db").exists() and len(stored()) == 1, timeout=30, what="reading stored"
        )
        assert stored()[0]["district"] == "海淀区" and stored()[0]["restaurant_id"] == "R2"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    text = (tmp_path / "ingest.log").read_text()
    assert ("encoding=gb18030" in text) == (kind == "gbk"), text[-2000:]
