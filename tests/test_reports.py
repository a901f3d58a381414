"""Inspector reports: numbers against hand computation, every format, filters, the CLI, empty periods."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from alerts.ledger import Ledger
from alerts.model import EXCEEDANCE, LATE_DATA, OFFLINE, PURIFIER_OFF, Event, WindowResult
from alerts.reports import build_report, render
from alerts.reports.config import ReportSettings
from alerts.reports.formats import SHEET_EVENTS, SHEET_SUMMARY
from ingest.model import Reading
from ingest.registry import Device, Registry
from ingest.store.sqlite import SQLiteStore
from ingest.timeutil import parse_time

TZ = "Asia/Shanghai"
T0 = parse_time("2026-11-25T00:00:00+08:00")  # period: one local day
T1 = T0 + 24 * 3_600_000
H = 3_600_000
M = 60_000
W = 600_000  # 10-minute windows
BH = T0 + 10 * 3_600_000  # 10:00 local: the default business hours are 10:00-14:00 and 16:30-21:30
BH_WINDOWS = (4 * 60 + 5 * 60) // 10  # 54 windows of business hours in a day


def registry() -> Registry:
    return Registry(
        [
            Device("R1", "老王川菜馆", "朝阳区", "D1", 4),
            Device("R2", "<b>小李</b>面馆", "朝阳区", "D2", 2),  # markup in a name must come out escaped
            Device("R3", "海底捞海淀店", "海淀区", "D3", 8, profile="db11-1488"),
            Device("R4", "沉默饺子馆", "海淀区", "D4", 1),  # registered, never sent anything
        ]
    )


def win(
    dev: str, k: int, *, valid=True, exceeds=False, samples=10, reason="", pollutant="oil_fume", start=None
):
    s = BH + k * W if start is None else start  # in business hours unless said otherwise
    mean = 3.0 if exceeds else 1.0
    return WindowResult(dev, s, s + W, samples, 10, valid, reason, mean, mean * 1.2, exceeds, pollutant)


def ev(
    event_id: str, kind: str, rest: str, dev: str, district: str, start: int, end: int | None, **kw
) -> Event:
    return Event(
        event_id=event_id,
        kind=kind,
        restaurant_id=rest,
        device_id=dev,
        district=district,
        start_ms=start,
        end_ms=end,
        state="open" if end is None else "closed",
        **kw,
    )


def evidence(start: int, n: int, mean: float) -> list[dict]:
    return [
        {
            "start_ms": start + i * W,
            "end_ms": start + (i + 1) * W,
            "mean_mg_m3": mean + i * 0.1,
            "max_mg_m3": mean + 1,
            "samples": 10,
        }
        for i in range(n)
    ]


@dataclass
class World:
    state: str  # an SQLite path or a PostgreSQL URL
    ledger: Ledger
    registry: Registry
    store: SQLiteStore
    store_path: Path
    registry_path: Path


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Iterator[World]:
    """The same ledger on SQLite and on PostgreSQL (``state_url``): every report test runs on both."""
    reg = registry()
    reg_path = tmp_path / "registry.csv"
    reg.write_csv(reg_path)
    led = Ledger(state_url)
    # D1: 8 compliant + 2 exceeding valid windows, 1 fan_off, 1 incomplete (5 samples) -> 115 / 120 samples
    wins = [win("D1", k) for k in range(8)]
    wins += [win("D1", 8, exceeds=True), win("D1", 9, exceeds=True)]
    wins += [
        win("D1", 10, valid=False, reason="fan_off"),
        win("D1", 11, valid=False, reason="incomplete", samples=5),
    ]
    wins += [win("D1", 0, start=T0 - W, exceeds=True)]  # before the period: left out
    wins += [win("D1", 0, start=T1, exceeds=True)]  # at `until`: left out
    wins += [win("D1", 3, pollutant="pm", exceeds=True)]  # another pollutant: left out
    wins += [win("D2", k, samples=9) for k in range(6)]  # 54 / 60, all compliant
    wins += [win("D3", k, valid=False, reason="fan_off") for k in range(3)]  # no valid window
    wins += [win("DX", k) for k in range(4)]  # a device in no registry and no event
    led.add_windows(wins)

    oil = dict(pollutant="oil_fume", limit_mg_m3=2.0, profile="gb18483")
    events = [
        ev(
            "e1",
            EXCEEDANCE,
            "R1",
            "D1",
            "朝阳区",
            T0 + 10 * H,
            T0 + 11 * H,
            peak_mg_m3=3.2,
            mean_mg_m3=2.6,
            level="education",
            evidence=evidence(T0 + 10 * H, 6, 2.5),
            rule="gb18483",
            **oil,
        ),
        ev(
            "e2",
            EXCEEDANCE,
            "R1",
            "D1",
            "朝阳区",
            T0 + 18 * H,
            None,
            peak_mg_m3=2.5,
            mean_mg_m3=2.3,
            level="warning",
            evidence=evidence(T0 + 18 * H, 3, 2.2),
            **oil,
        ),
        ev(
            "e3", PURIFIER_OFF, "R1", "D1", "朝阳区", T0 - 30 * M, T0 + 20 * M, rule="bypass"
        ),  # 20 min inside
        ev("e4", PURIFIER_OFF, "R1", "D1", "朝阳区", T1 - 30 * M, None),  # open: 30 min inside
        ev("e5", OFFLINE, "R2", "D2", "朝阳区", T0 + 2 * H, T0 + 3 * H),
        ev(
            "e6",
            EXCEEDANCE,
            "R3",
            "D3",
            "海淀区",
            T0 + 12 * H,
            T0 + 13 * H,
            peak_mg_m3=4.0,
            mean_mg_m3=3.1,
            level="enforcement",
            evidence=evidence(T0 + 12 * H, 6, 3.0),
            pollutant="oil_fume",
            limit_mg_m3=1.0,
            profile="db11-1488",
        ),
        ev(
            "e7",
            EXCEEDANCE,
            "R1",
            "D1",
            "朝阳区",
            T0 - 5 * H,
            T0 - 4 * H,
            peak_mg_m3=9.9,
            level="education",
            **oil,
        ),  # before
        ev("e8", LATE_DATA, "R2", "D2", "朝阳区", T0 + 5 * H, T0 + 5 * H + 10 * M),
    ]
    for e in events:
        led.upsert_event(e)

    def sent(key: str, channel: str, target: str, rest: str) -> None:
        assert led.notice_begin(key, channel, target, {"restaurant_id": rest})
        led.notice_done(key, target, ok=True)

    sent("e1:opened", "owner", "json://owner.example/hook?token=x", "R1")
    sent("e1:opened", "inspector", "mailto://inspector.example", "R1")
    assert led.notice_begin("e1:closed", "owner", "json://owner.example/hook", {"restaurant_id": "R1"})
    led.notice_done(
        "e1:closed", "json://owner.example/hook", ok=False, error="timeout"
    )  # failed: not counted
    sent("e2:opened", "owner", "json://owner.example/hook", "R1")
    led.notice_skip("e2:opened", "mqtt", "mqtt:fume/v1/alerts/R1", "no broker", {"restaurant_id": "R1"})
    for i in range(3):
        sent("e6:opened", "owner", f"json://owner{i}.example", "R3")
    sent("e7:opened", "owner", "json://owner.example", "R1")  # event outside the period

    store_path = tmp_path / "readings.db"
    store = SQLiteStore(str(store_path))
    readings = [
        Reading(
            t,
            "D1",
            "R1",
            "朝阳区",
            3.0 if T0 + 10 * H <= t < T0 + 11 * H else 0.8,
            3.0 if T0 + 10 * H <= t < T0 + 11 * H else 0.8,
            True,
        )
        for t in range(T0 + 9 * H, T0 + 12 * H, M)
    ]
    store.write([("batch", readings)])
    try:
        yield World(state_url, led, reg, store, store_path, reg_path)
    finally:
        store.close()
        led.close()


def build(w: World, **kw):
    kw.setdefault("display_tz", TZ)
    kw.setdefault("now", T1 + 24 * H)  # open events count up to the period end
    return build_report(w.ledger, w.registry, T0, T1, **kw)


def row(df, key: str, value: str) -> dict:
    rows = df[df[key] == value].to_dict("records")
    assert len(rows) == 1, rows
    return rows[0]


# ---------------------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------------------


def test_summary_numbers_match_hand_computation(world: World) -> None:
    rep = build(world, max_charts=0)
    s = rep.summary
    assert list(s["restaurant_id"]) == ["R1", "R2", "R3", "R4"]  # by district, then id; R4 has no data

    r1 = row(s, "restaurant_id", "R1")
    assert (r1["windows"], r1["valid_windows"], r1["compliant_windows"], r1["exceeding_windows"]) == (
        12,
        10,
        8,
        2,
    )
    assert r1["compliance_rate"] == pytest.approx(8 / 10)
    # completeness: every window of business hours is expected, 12 arrived (115 of their 120 samples)
    assert (r1["expected_windows"], r1["samples"]) == (BH_WINDOWS, 115)
    assert r1["expected_samples"] == 120 + (BH_WINDOWS - 12) * 10
    assert r1["completeness"] == pytest.approx(115 / 540)
    assert r1["purifier_off_min"] == pytest.approx(20 + 30)  # both clipped to the period
    assert r1["offline_min"] == 0
    assert (r1["exceedance_events"], r1["purifier_off_events"], r1["offline_events"]) == (2, 2, 0)
    assert r1["highest_level"] == "warning"
    assert r1["notices_sent"] == 2 + 1  # e1: owner + inspector sent (closed failed); e2: owner (mqtt skipped)
    assert (r1["name"], r1["district"], r1["profile"], r1["size_class"]) == (
        "老王川菜馆",
        "朝阳区",
        "gb18483",
        "medium",
    )
    assert (r1["limit_mg_m3"], r1["purifier_min_efficiency_pct"]) == (2.0, 75.0)

    r2 = row(s, "restaurant_id", "R2")
    assert r2["compliance_rate"] == 1.0 and r2["completeness"] == pytest.approx(54 / 540)
    assert (r2["offline_min"], r2["offline_events"], r2["late_data_events"]) == (60.0, 1, 1)
    assert r2["highest_level"] == "" and r2["notices_sent"] == 0

    r3 = row(s, "restaurant_id", "R3")
    assert r3["valid_windows"] == 0 and math.isnan(r3["compliance_rate"])  # no valid window: no rate
    assert r3["completeness"] == pytest.approx(30 / 540)  # fan off, but the data came
    assert (r3["highest_level"], r3["notices_sent"], r3["profile"], r3["limit_mg_m3"]) == (
        "enforcement",
        3,
        "db11-1488",
        1.0,
    )

    r4 = row(s, "restaurant_id", "R4")
    assert (r4["windows"], r4["samples"], r4["completeness"]) == (0, 0, 0.0)
    assert r4["expected_samples"] == BH_WINDOWS * 10  # one device x a day of business-hours windows x 10
    assert math.isnan(r4["compliance_rate"])

    assert any("DX" in n for n in rep.notes)  # unregistered device without events: left out, said so
    t = rep.totals()
    assert t["restaurants"] == 4 and t["events"] == {
        "exceedance": 2 + 1,
        "purifier_off": 2,
        "offline": 1,
        "late_data": 1,
        "maintenance_reminder": 0,
        "data_integrity": 0,
    }
    assert t["compliance_rate"] == pytest.approx((8 + 6) / (10 + 6))


def test_events_table(world: World) -> None:
    ev_ = build(world, max_charts=0).events
    assert list(ev_["event_id"]) == ["e3", "e5", "e8", "e1", "e6", "e2", "e4"]  # by start; e7 ended before
    e1 = row(ev_, "event_id", "e1")
    assert (e1["restaurant_id"], e1["name"], e1["district"], e1["kind"], e1["level"]) == (
        "R1",
        "老王川菜馆",
        "朝阳区",
        "exceedance",
        "education",
    )
    assert (e1["peak_mg_m3"], e1["mean_mg_m3"], e1["limit_mg_m3"], e1["profile"]) == (
        3.2,
        2.6,
        2.0,
        "gb18483",
    )
    assert e1["duration_min"] == 60.0 and e1["notices_sent"] == 2
    assert str(e1["start"]) == "2026-11-25 10:00:00+08:00" and str(e1["end"]) == "2026-11-25 11:00:00+08:00"
    e2 = row(ev_, "event_id", "e2")
    assert e2["state"] == "open" and pd.isna(e2["end"]) and pd.isna(e2["end_ms"])
    assert e2["duration_min"] == 6 * 60  # open: up to the period end
    assert row(ev_, "event_id", "e6")["notices_sent"] == 3


def test_open_event_ends_at_report_time_within_the_period(world: World) -> None:
    rep = build(world, max_charts=0, now=T0 + 20 * H)
    assert row(rep.events, "event_id", "e2")["duration_min"] == 2 * 60
    assert row(rep.summary, "restaurant_id", "R1")["purifier_off_min"] == 20  # e4 starts after "now"


def test_filters(world: World) -> None:
    rep = build(world, district="海淀区", max_charts=0)
    assert list(rep.summary["restaurant_id"]) == ["R3", "R4"]
    assert list(rep.events["event_id"]) == ["e6"]
    rep = build(world, restaurant_id="R2", max_charts=0)
    assert list(rep.summary["restaurant_id"]) == ["R2"]
    assert list(rep.events["event_id"]) == ["e5", "e8"]
    assert not rep.notes  # DX is not part of a filtered report


def test_unknown_filters_are_errors(world: World) -> None:
    from alerts.reports import ReportError, check_filters

    check_filters(world.ledger, world.registry, "海淀区", "R1")
    with pytest.raises(ReportError, match="unknown district '不存在区'"):
        check_filters(world.ledger, world.registry, "不存在区", None)
    with pytest.raises(ReportError, match="unknown restaurant"):
        check_filters(world.ledger, world.registry, None, "R999")
    with pytest.raises(ReportError, match="since must be before until"):
        build_report(world.ledger, world.registry, T1, T0)


def test_charts_from_readings_else_evidence(world: World) -> None:
    rep = build(world, store=world.store, max_charts=2)
    assert [c.event_id for c in rep.charts] == ["e6", "e1"]  # highest peak first
    e6, e1 = rep.charts
    assert e6.source == "evidence" and len(e6.values) == 6 and e6.limit_mg_m3 == 1.0  # no readings for D3
    assert e1.source == "readings" and len(e1.values) == 180  # 1 h before, the event hour, 1 h after
    assert e1.values.max() == 3.0 and e1.times_ms.min() == T0 + 9 * H
    rep = build(world, max_charts=5)  # no store: every chart from its event's windows
    assert [c.source for c in rep.charts] == ["evidence"] * 3


def test_store_failure_falls_back_to_evidence(world: World) -> None:
    class Broken:
        def query(self, **kw):
            raise OSError("store down")

    rep = build(world, store=Broken(), max_charts=1)  # type: ignore[arg-type]
    assert rep.charts[0].source == "evidence"
    assert any("store failed" in n for n in rep.notes)


# ---------------------------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------------------------


def parse_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for Excel
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv(world: World) -> None:
    rep = build(world, max_charts=0)
    events = parse_csv(render(rep, "csv"))
    assert [r["event_id"] for r in events] == list(rep.events["event_id"])
    e1 = next(r for r in events if r["event_id"] == "e1")
    assert (
        e1["name"] == "老王川菜馆"
        and e1["start"] == "2026-11-25T10:00:00+08:00"
        and e1["notices_sent"] == "2"
    )
    assert next(r for r in events if r["event_id"] == "e2")["end"] == ""
    summary = parse_csv(render(rep, "csv", table="summary"))
    r1 = next(r for r in summary if r["restaurant_id"] == "R1")
    assert (r1["compliance_rate"], r1["completeness"], r1["purifier_off_min"]) == ("0.8", "0.213", "50.0")
    assert next(r for r in summary if r["restaurant_id"] == "R3")["compliance_rate"] == ""


def test_xlsx(world: World) -> None:
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(render(build(world, max_charts=0), "xlsx")))
    assert wb.sheetnames[:2] == [SHEET_EVENTS, SHEET_SUMMARY] == ["超标事件 Exceedances", "汇总 Summary"]
    ws = wb[SHEET_EVENTS]
    assert ws["A1"].value.startswith("餐饮单位编号") and "Restaurant ID" in ws["A1"].value
    assert ws.freeze_panes == "A2" and ws["A1"].font.bold
    header = [c.value.split("\n")[0] for c in ws[1]]
    values = {h: ws.cell(5, j + 1) for j, h in enumerate(header)}  # row 5: e1 (after e3, e5, e8)
    assert values["单位名称"].value == "老王川菜馆"
    assert (
        values["开始时间"].value.isoformat() == "2026-11-25T10:00:00"
        and values["开始时间"].number_format == "yyyy-mm-dd hh:mm"
    )
    assert (
        values["事件类型"].value == "超标排放 exceedance" and values["处置等级"].value == "教育劝导 education"
    )
    ss = wb[SHEET_SUMMARY]
    sheader = [c.value.split("\n")[0] for c in ss[1]]
    rate = ss.cell(2, sheader.index("达标率") + 1)
    assert rate.value == pytest.approx(0.8) and rate.number_format == "0.0%"
    assert ss.cell(5, 2).value == "沉默饺子馆" and ss.cell(5, sheader.index("数据完整率") + 1).value == 0


def test_html_is_self_contained_with_charts(world: World) -> None:
    html = render(build(world, store=world.store, max_charts=2), "html").decode("utf-8")
    assert html.count('src="data:image/png;base64,') == 2
    assert "<script" not in html and "http://" not in html and "https://" not in html  # nothing external
    assert "&lt;b&gt;小李&lt;/b&gt;面馆" in html and "<b>小李" not in html  # data is escaped
    assert "超标事件" in html and "Summary by restaurant" in html and "80.0%" in html


@pytest.mark.parametrize("font_file", ["", "none"])
def test_pdf(world: World, font_file: str) -> None:
    data = render(
        build(world, store=world.store, max_charts=3), "pdf", settings=ReportSettings(font_file=font_file)
    )
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type /Page\b(?!s)", data))
    assert pages >= 4  # cover, summary, events, charts


def test_pdf_caps_event_rows(world: World) -> None:
    from alerts.reports.formats.pdf import _pdf_event_rows

    rep = build(world, max_charts=0)
    kept, left_out = _pdf_event_rows(rep, 4)
    assert left_out == 3 and sorted(kept["kind"]) == ["exceedance"] * 3 + ["purifier_off"]
    assert render(rep, "pdf", settings=ReportSettings(pdf_max_event_rows=4)).startswith(b"%PDF")


def test_json(world: World) -> None:
    import orjson

    doc = orjson.loads(render(build(world, max_charts=0), "json"))
    assert {"events", "summary", "totals", "since", "until"} <= set(doc)
    assert (doc["since"], doc["until"]) == ("2026-11-25T00:00:00+08:00", "2026-11-26T00:00:00+08:00")
    e2 = next(e for e in doc["events"] if e["event_id"] == "e2")
    assert e2["end"] is None and e2["end_ms"] is None and e2["level"] == "warning"
    r3 = next(s for s in doc["summary"] if s["restaurant_id"] == "R3")
    assert r3["compliance_rate"] is None and r3["notices_sent"] == 3


def test_empty_period_gives_an_empty_valid_report(world: World) -> None:
    from openpyxl import load_workbook

    rep = build_report(
        world.ledger, world.registry, T0 - 400 * 24 * H, T0 - 399 * 24 * H, display_tz=TZ, store=world.store
    )
    assert rep.events.empty and rep.charts == []
    assert list(rep.summary["completeness"]) == [0.0] * 4
    assert len(parse_csv(render(rep, "csv"))) == 0
    assert len(parse_csv(render(rep, "csv", table="summary"))) == 4
    wb = load_workbook(io.BytesIO(render(rep, "xlsx")))
    assert wb[SHEET_EVENTS].max_row == 1
    assert "无数据" in render(rep, "html").decode()
    assert render(rep, "pdf").startswith(b"%PDF")


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------


def test_cli_report_writes_files(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fumewatch.cli import main

    common = [
        "--state",
        str(world.state),
        "--registry",
        str(world.registry_path),
        "--since",
        "2026-11-25",
        "--until",
        "2026-11-26",
    ]
    out = tmp_path / "out" / "report.xlsx"
    assert main(["report", *common, "--format", "xlsx", "--out", str(out)]) == 0
    assert out.read_bytes()[:2] == b"PK"
    assert main(["report", *common, "--district", "海淀区", "--out", str(tmp_path / "r.csv")]) == 0
    assert [r["event_id"] for r in parse_csv((tmp_path / "r.csv").read_bytes())] == ["e6"]
    assert [r["restaurant_id"] for r in parse_csv((tmp_path / "r.summary.csv").read_bytes())] == ["R3", "R4"]
    html = tmp_path / "r.html"
    assert (
        main(["report", *common, "--store", str(world.store_path), "--max-charts", "1", "--out", str(html)])
        == 0
    )
    assert html.read_text(encoding="utf-8").count("data:image/png;base64,") == 1
    assert "wrote" in capsys.readouterr().err

    assert main(["report", *common, "--district", "火星区", "--out", str(tmp_path / "x.csv")]) == 2
    assert "unknown district" in capsys.readouterr().err
    assert (
        main(
            [
                "report",
                *common[:4],
                "--since",
                "2026-11-26",
                "--until",
                "2026-11-25",
                "--out",
                str(tmp_path / "y.csv"),
            ]
        )
        == 2
    )
    assert main(["report", *common, "--out", str(tmp_path / "z.txt")]) == 2  # no format, none from the suffix
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()


# ---------------------------------------------------------------------------------------------------------
# Without a Chinese font: one warning naming the package the set-up installs, the same in the PDF
# ---------------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_pdf_without_a_chinese_font_warns_once_and_names_the_package(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from matplotlib.figure import Figure

    from alerts.reports.charts import CJK_FONT_PACKAGE, FONT_DIR_ENV, NO_CJK_FONT_WARNING

    assert f"missing+=(fontconfig {CJK_FONT_PACKAGE})" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"apt-get install {CJK_FONT_PACKAGE}" in NO_CJK_FONT_WARNING
    empty = tmp_path / "no-fonts"
    empty.mkdir()
    monkeypatch.setenv(FONT_DIR_ENV, str(empty))  # the font search sees no font at all
    drawn: list[str] = []
    figure_text = Figure.text

    def text(self, x, y, s, *args, **kwargs):  # noqa: ANN001, ANN202
        drawn.append(str(s))
        return figure_text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Figure, "text", text)
    rep = build(world, store=world.store, max_charts=2)
    with caplog.at_level(logging.WARNING, logger="fumewatch.reports"):
        assert render(rep, "pdf").startswith(b"%PDF")
        assert render(rep, "html").count(b"data:image/png;base64,") == 2  # charts: the same search
    assert [r.getMessage() for r in caplog.records if "font" in r.getMessage()] == [NO_CJK_FONT_WARNING]
    assert any(CJK_FONT_PACKAGE in s for s in drawn)  # the note on the PDF's cover
    assert not any("fonts-noto-cjk" in s for s in drawn)
    assert not any("老王" in s for s in drawn)  # names print as '?'


def test_cli_report_without_a_chinese_font_prints_one_warning_line(world: World, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from alerts.reports.charts import FONT_DIR_ENV, NO_CJK_FONT_WARNING

    empty = tmp_path / "no-fonts"
    empty.mkdir()
    out = tmp_path / "r.pdf"
    env = {**os.environ, "PYTHONPATH": str(ROOT), FONT_DIR_ENV: str(empty)}
    args = ["--state", str(world.state), "--registry", str(world.registry_path)]
    args += ["--since", "2026-11-25", "--until", "2026-11-26", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "fumewatch", "report", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(b"%PDF")
    lines = [ln for ln in proc.stderr.splitlines() if "font" in ln.lower()]
    assert len(lines) == 1 and lines[0].endswith(NO_CJK_FONT_WARNING), proc.stderr


# ---------------------------------------------------------------------------------------------------------
# Data completeness counts every window of business hours, also those that never arrived
# ---------------------------------------------------------------------------------------------------------


def _offline_day(state: str) -> tuple[Ledger, Registry]:
    """One device reporting a whole day (full 10-sample windows) except 12:00-15:30 local: 3.5 h offline."""
    led = Ledger(state)
    gap = range(T0 + 12 * H, T0 + 15 * H + 30 * M)
    led.add_windows([win("D1", 0, start=t) for t in range(T0, T1, W) if t not in gap])
    return led, Registry([Device("R1", "老王川菜馆", "朝阳区", "D1", 4)])


@pytest.mark.parametrize(
    ("hours", "expected_windows", "missing"),
    [
        ("00:00-24:00", 144, 21),  # round the clock: 21 of 144 windows missing
        ("10:00-14:00,16:30-21:30", BH_WINDOWS, 12),  # default hours: 12:00-14:00 is 12 missing windows
    ],
)
def test_a_device_offline_for_hours_is_not_complete(state_url: str, hours, expected_windows, missing) -> None:
    from alerts.detection.window import DetectorConfig

    led, reg = _offline_day(state_url)
    try:
        rep = build_report(
            led, reg, T0, T1, display_tz=TZ, max_charts=0, detector=DetectorConfig(business_hours=hours)
        )
    finally:
        led.close()
    r1 = row(rep.summary, "restaurant_id", "R1")
    assert r1["windows"] == 144 - 21  # every stored window still counts for the compliance rate
    assert (r1["expected_windows"], r1["expected_samples"]) == (expected_windows, expected_windows * 10)
    assert r1["samples"] == (expected_windows - missing) * 10
    assert r1["completeness"] == pytest.approx((expected_windows - missing) / expected_windows)
    assert r1["completeness"] < 0.9
    assert rep.totals()["completeness"] == pytest.approx(r1["completeness"])


@pytest.mark.parametrize("pinned", [None, 600])
def test_a_ten_minute_device_is_complete_on_its_own_cadence(state_url: str, pinned: int | None) -> None:
    """A monitor uploading 10-minute averages (one sample a window) is measured against 1 sample per
    window, its registry interval_s or, without it, what the detector expected of it."""
    led = Ledger(state_url)
    gap = range(BH + 2 * H, BH + 2 * H + 30 * M)  # 12:00-12:30 local: 3 windows never sent
    one = [
        WindowResult("D1", t, t + W, 1, 1, True, "", 1.0, 1.0, False)
        for t in range(T0, T1, W)
        if t not in gap
    ]
    led.add_windows(one)
    reg = Registry([Device("R1", "老王川菜馆", "朝阳区", "D1", 4, interval_s=pinned)])
    try:
        rep = build_report(led, reg, T0, T1, display_tz=TZ, max_charts=0)
    finally:
        led.close()
    r1 = row(rep.summary, "restaurant_id", "R1")
    assert (r1["expected_windows"], r1["samples"], r1["expected_samples"]) == (BH_WINDOWS, 51, BH_WINDOWS)
    assert r1["completeness"] == pytest.approx(51 / 54)  # not 51 / 540


def test_cli_report_completeness_follows_the_configured_business_hours(
    state_url: str, tmp_path: Path
) -> None:
    from servers import run_fumewatch

    led, reg = _offline_day(state_url)
    led.close()
    reg.write_csv(tmp_path / "registry.csv")
    (tmp_path / "c.toml").write_text('[alerts]\nbusiness_hours = "00:00-24:00"\n', encoding="utf-8")
    args = ["report", "--config", "c.toml", "--state", state_url, "--registry", "registry.csv"]
    args += ["--since", "2026-11-25", "--until", "2026-11-26", "--out", "r.csv"]
    proc = run_fumewatch(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    [r1] = parse_csv((tmp_path / "r.summary.csv").read_bytes())
    assert (r1["expected_windows"], r1["samples"], r1["expected_samples"]) == ("144", "1230", "1440")
    assert r1["completeness"] == "0.8542"  # 123 / 144: 3.5 h of 24 missing


def test_no_business_hours_in_the_period_gives_no_completeness(world: World) -> None:
    rep = build_report(world.ledger, world.registry, T0 + 2 * H, T0 + 5 * H, display_tz=TZ, max_charts=0)
    assert set(rep.summary["expected_windows"]) == {0}
    assert rep.summary["completeness"].isna().all() and rep.totals()["completeness"] is None


# ---------------------------------------------------------------------------------------------------------
# The events table names the pollutant and the rule; every time a person reads carries its offset
# ---------------------------------------------------------------------------------------------------------


def test_every_format_has_the_pollutant_and_rule_columns(world: World) -> None:
    import orjson
    from openpyxl import load_workbook

    from alerts.reports.formats.pdf import _PDF_EVENTS

    rep = build(world, max_charts=0)
    assert {"pollutant", "rule"} <= set(rep.events.columns)
    events = parse_csv(render(rep, "csv"))
    assert {"pollutant", "rule"} <= set(events[0])
    assert next(r for r in events if r["event_id"] == "e1")["pollutant"] == "oil_fume"
    doc = orjson.loads(render(rep, "json"))
    assert {"pollutant", "rule"} <= set(doc["events"][0])
    ws = load_workbook(io.BytesIO(render(rep, "xlsx")))[SHEET_EVENTS]
    header = [c.value.split("\n")[0] for c in ws[1]]
    assert {"污染物", "判定规则"} <= set(header)
    assert ws.cell(5, header.index("污染物") + 1).value == "油烟 oil fume"  # e1
    html = render(rep, "html").decode()
    assert "判定规则<span class=en>Rule</span>" in html and "污染物<span class=en>Pollutant</span>" in html
    assert {"pollutant", "rule"} <= {k for k, *_ in _PDF_EVENTS}


def test_the_rule_of_each_event_is_shown(world: World) -> None:
    import orjson

    rep = build(world, max_charts=0)
    assert row(rep.events, "event_id", "e1")["rule"] == "gb18483"
    assert next(r for r in parse_csv(render(rep, "csv")) if r["event_id"] == "e3")["rule"] == "bypass"
    assert (
        next(e for e in orjson.loads(render(rep, "json"))["events"] if e["event_id"] == "e1")["rule"]
        == "gb18483"
    )
    assert "GB 18483 数据处理 GB 18483 data treatment" in render(rep, "html").decode()


def test_report_times_are_in_the_display_zone_with_offset(world: World) -> None:
    from openpyxl import load_workbook

    from alerts.reports.formats.common import display_cells
    from alerts.reports.model import EVENT_COLUMNS

    rep = build(world, max_charts=0, now=T0 + 20 * H)
    html = render(rep, "html").decode()
    assert "2026-11-25 00:00+08:00 – 2026-11-26 00:00+08:00 (Asia/Shanghai)" in html  # the period
    assert "2026-11-25 10:00+08:00" in html and "2026-11-25 20:00:00+08:00" in html  # e1's start, generated
    start = next(c for c in EVENT_COLUMNS if c.key == "start")
    assert display_cells(rep.events, start, time_fmt="%m-%d %H:%M")[3] == "11-25 10:00+08:00"  # pdf cells
    wb = load_workbook(io.BytesIO(render(rep, "xlsx")))
    assert "Start (Asia/Shanghai, UTC+08:00)" in [c.value.split("\n")[1] for c in wb[SHEET_EVENTS][1]]
    about = {r[0].value: r[1].value for r in wb["报告说明 About"].iter_rows()}
    assert about["生成时间 Generated"] == "2026-11-25 20:00:00+08:00"
    assert about["时段 Period"].startswith("2026-11-25 00:00+08:00")
    utc = build(world, max_charts=0, display_tz="UTC")
    assert "2026-11-25 02:00+00:00" in render(utc, "html").decode()  # e1 10:00 local is 02:00 UTC


# ---------------------------------------------------------------------------------------------------------
# enforcement cases
# ---------------------------------------------------------------------------------------------------------

NT0 = 1795667400000  # 2026-11-26 12:30 in Asia/Shanghai (tests/test_notify.py's T0)
DAY = 86_400_000
CASE_SINCE = parse_time("2026-12-01T00:00:00+08:00")
CASE_UNTIL = parse_time("2027-01-01T00:00:00+08:00")


def _case_device(owner: str) -> Device:
    return Device(
        "R1", "老王面馆", "朝阳区", "D1", 2, address="朝阳路 1 号", owner_name="王先生", owner_notify=owner
    )


def _case_readings(device_id: str, since_ms: int, until_ms: int) -> list[dict]:
    """27 readings with a flow (converted), 3 without (unconverted); fan on, purifier off/unknown."""
    out = []
    for i in range(30):
        flow = 4500.0 if i < 27 else None
        out.append(
            {
                "ts_ms": since_ms + i * M,
                "oil_fume_mg_m3": 2.6,
                "flow_m3_h": flow,
                "ref_converted": flow is not None,
                "oil_fume_ref_mg_m3": 2.925 if flow else None,
                "fan_on": True,
                "purifier_on": False if i < 20 else None,
            }
        )
    return out


@pytest.fixture
def case_world(state_url: str, webhook) -> Iterator[tuple[Ledger, Registry]]:
    """A real case file: the real Notifier run for education, warning (8 days later) and enforcement
    (16 days later) of one restaurant, notices delivered to a real webhook receiver."""
    pytest.importorskip("apprise", reason="apprise not installed")
    from alerts.enforcement.notify import Notifier, NotifySettings
    from alerts.model import Transition

    led = Ledger(state_url)
    settings = NotifySettings(
        retry_backoff_s=0.01, timeout_s=3, inspector_targets=[webhook.url("/inspector")]
    )
    n = Notifier(settings, led, readings_of=_case_readings)
    dev = _case_device(webhook.url("/owner"))

    def exc(start: int) -> Event:
        return Event(
            event_id=f"exceedance:D1:oil_fume:{start}",
            kind=EXCEEDANCE,
            restaurant_id="R1",
            device_id="D1",
            district="朝阳区",
            start_ms=start,
            pollutant="oil_fume",
            peak_mg_m3=3.456,
            mean_mg_m3=2.714,
            limit_mg_m3=2.0,
            profile="gb18483",
            rule="gb18483",
        )

    for k in (0, 8):
        e = exc(NT0 + k * DAY)
        n.notify(Transition(e, "opened", e.start_ms + 30 * M), dev)
    ev3 = exc(NT0 + 16 * DAY)
    led.add_windows(
        [
            WindowResult(
                "D1", ev3.start_ms + i * W, ev3.start_ms + (i + 1) * W, 10, 10, True, "", m, m + 1, True
            )
            for i, m in enumerate((2.5, 3.0, 2.8))
        ]
    )
    n.notify(Transition(ev3, "opened", ev3.start_ms + 30 * M), dev)
    try:
        yield led, Registry([dev])
    finally:
        led.close()


def _case_report(led: Ledger, reg: Registry, **kw):
    return build_report(led, reg, CASE_SINCE, CASE_UNTIL, display_tz=TZ, now=CASE_UNTIL, max_charts=0, **kw)


def test_case_section_lists_the_case_with_windows_measures_rule_and_receipts(case_world) -> None:
    import orjson
    from openpyxl import load_workbook

    from alerts.reports.formats import SHEET_CASES

    led, reg = case_world
    rep = _case_report(led, reg)
    [case] = rep.cases
    assert case["case_id"].startswith("case-exceedance:D1") and case["level"] == "enforcement"
    assert case["step"] == 3 and case["missing"] == [] and case["name"] == "老王面馆"
    [e] = case["events"]
    assert e["rule"] == "gb18483" and e["rule_source"].startswith("GB 18483-2001")
    assert [w["mean_mg_m3"] for w in e["windows"]] == [2.5, 3.0, 2.8]
    m = e["measures"]
    assert (m["q_m3_h"], m["n_heads"], m["unconverted"]) == (4500.0, 2, 3)
    assert {(r["channel"], r["status"]) for r in case["receipts"]} >= {
        ("owner", "sent"),
        ("inspector", "sent"),
    }
    assert all("token" not in r["target"] and "/owner" not in r["target"] for r in case["receipts"])
    assert case["owner_delivered"] is True  # from the receipts as they are now, not the record's refresh

    html = render(rep, "html").decode()
    for text in (
        "执法案件",
        case["case_id"],
        "2026-12-12 12:30+08:00",  # the case / first window start, local with the offset
        "2026-12-12 12:40+08:00",
        "GB 18483 数据处理",
        "GB 18483-2001",
        "4500 m³/h",
        "基准风量折算浓度",
        "2.925 mg/m³",
        "3 条无风量未折算",
        "风机",
        "开 on 30",
        "通知回执",
        "sent",
        "json://127.0.0.1",
        "教育劝导 education",  # the earlier steps
    ):
        assert text in html, text

    doc = orjson.loads(render(rep, "json"))
    assert doc["totals"]["cases"] == 1 and doc["cases"][0]["case_id"] == case["case_id"]
    assert [w["start"] for w in doc["case_windows"]][0] == "2026-12-12T12:30:00+08:00"
    assert doc["case_windows"][0]["samples"] == 10 and doc["case_windows"][0]["exceeds"] == "yes"
    assert doc["case_events"][0]["q_m3_h"] == 4500.0 and doc["case_events"][0]["n_heads"] == 2
    assert {r["status"] for r in doc["case_receipts"]} >= {"sent"}

    windows = parse_csv(render(rep, "csv", table="case_windows"))
    assert [r["mean_mg_m3"] for r in windows] == ["2.5", "3.0", "2.8"]
    assert windows[0]["start"] == "2026-12-12T12:30:00+08:00" and windows[0]["samples"] == "10"
    receipts = parse_csv(render(rep, "csv", table="case_receipts"))
    assert {r["channel"] for r in receipts} >= {"owner", "inspector"}

    wb = load_workbook(io.BytesIO(render(rep, "xlsx")))
    assert set(SHEET_CASES.values()) <= set(wb.sheetnames)
    ws = wb[SHEET_CASES["case_windows"]]
    assert ws.max_row == 4 and ws["A1"].value.startswith("案件编号")
    head = [c.value.split("\n")[0] for c in ws[1]]
    assert ws.cell(2, head.index("窗口开始") + 1).value.isoformat() == "2026-12-12T12:30:00"
    ce = wb[SHEET_CASES["case_events"]]
    ch = [c.value.split("\n")[0] for c in ce[1]]
    assert ce.cell(2, ch.index("基准灶头数 n") + 1).value == 2

    pdf = render(rep, "pdf")
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type /Page\b(?!s)", pdf)) >= 4


def test_report_without_cases_says_there_are_none(world: World) -> None:
    import orjson
    from openpyxl import load_workbook

    rep = build(world, max_charts=0)
    assert rep.cases == []
    assert "本时段无执法案件 No enforcement cases in this period" in render(rep, "html").decode()
    doc = orjson.loads(render(rep, "json"))
    assert doc["cases"] == [] and doc["case_receipts"] == [] and doc["totals"]["cases"] == 0
    assert parse_csv(render(rep, "csv", table="cases")) == []
    about = {
        r[0].value: r[1].value
        for r in load_workbook(io.BytesIO(render(rep, "xlsx")))["报告说明 About"].iter_rows()
    }
    assert about["执法案件 Enforcement cases"].startswith("本时段无执法案件")
    assert render(rep, "pdf").startswith(b"%PDF")


def test_an_old_case_without_the_case_file_renders_and_says_what_is_missing(world: World) -> None:
    import orjson

    from alerts.enforcement.ladder import build_case

    e6 = world.ledger.get_event("e6")
    record = build_case(e6, occurrence=3, tz=TZ)
    for key in ("step", "episodes", "receipts", "history"):  # a record from before the case file
        record.pop(key)
    world.ledger.upsert_case(record)
    rep = build(world, max_charts=0)
    [case] = rep.cases
    assert case["missing"] == ["step", "episodes", "measures", "receipts", "history"]
    assert len(case["events"][0]["windows"]) == 6  # its own evidence windows stand in
    html = render(rep, "html").decode()
    assert "未记录 Not recorded" in html and "notice receipts" in html and "C, Q, n" in html
    assert "2026-11-25 12:00+08:00" in html
    doc = orjson.loads(render(rep, "json"))
    assert (
        doc["case_events"][0]["c_mg_m3"] is None
        and doc["case_events"][0]["c_ref_note"] == "未记录 not recorded"
    )
    assert render(rep, "pdf", settings=ReportSettings(font_file="none")).startswith(b"%PDF")
    assert render(rep, "xlsx")[:2] == b"PK"
    assert parse_csv(render(rep, "csv", table="cases"))[0]["missing"].startswith("处置环节")


def test_cli_csv_writes_the_case_tables_next_to_the_events(case_world, tmp_path: Path) -> None:
    """``fumewatch report --format csv -o r.csv`` as a user runs it: with cases in the period it also
    writes r.cases.csv, r.case_events.csv, r.case_windows.csv and r.case_receipts.csv."""
    led, reg = case_world
    regfile = tmp_path / "registry.csv"
    reg.write_csv(regfile)
    out = tmp_path / "r.csv"
    from servers import run_fumewatch

    r = run_fumewatch(
        tmp_path,
        "report",
        "--state",
        led.path,
        "--registry",
        str(regfile),
        "--since",
        str(CASE_SINCE),
        "--until",
        str(CASE_UNTIL),
        "--format",
        "csv",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    for table in ("summary", "cases", "case_events", "case_windows", "case_receipts"):
        assert (tmp_path / f"r.{table}.csv").exists(), (table, r.stderr)
    [case] = parse_csv((tmp_path / "r.cases.csv").read_bytes())
    assert case["level"] == "enforcement"
    windows = parse_csv((tmp_path / "r.case_windows.csv").read_bytes())
    assert len(windows) == 3 and all("+08:00" in w["start"] for w in windows)


# ---------------------------------------------------------------------------------------------------------
# data integrity (数据可信性存疑（待核查）): the findings per restaurant in every format
# ---------------------------------------------------------------------------------------------------------

ZERO_EVIDENCE = (
    "零值 40 分钟（4 个有效窗口 ≤ 0.00 mg/m³）；此前 3 个营业时段最多 0 分钟，均值 0.810–0.850 mg/m³"
)
FLAT_EVIDENCE = "恒值 1.234 mg/m³ 持续 70 分钟（7 条数据）"


def finding(
    event_id: str, check: str, rest: str, dev: str, district: str, start: int, minutes: float, **detail
):
    """A ``data_integrity`` event as alerts/integrity/watch.py writes it (closed, judgement with the
    service and the check's numbers)."""
    svc = BH if start < T0 + 15 * H else T0 + 16 * H + 30 * M
    return ev(
        event_id,
        "data_integrity",
        rest,
        dev,
        district,
        start,
        start + int(minutes * M),
        pollutant="oil_fume",
        rule=check,
        judgement={
            "check": check,
            "minutes": minutes,
            "service_start_ms": svc,
            "service_end_ms": svc + 4 * H,
            **detail,
        },
    )


def add_findings(led: Ledger) -> None:
    history = [
        {"service_start_ms": BH - d * 24 * H, "service_end_ms": BH - d * 24 * H + 4 * H, "valid_windows": 20,
         "zero_min": 0.0, "mean_mg_m3": mean}
        for d, mean in ((3, 0.81), (2, 0.85), (1, 0.84))
    ]  # fmt: skip
    for e in (
        finding("integrity:suspect_zero:D1:1", "suspect_zero", "R1", "D1", "朝阳区", BH + H, 40.0,
                zero_windows=4, valid_windows=12, zero_limit_mg_m3=0.0, min_minutes=30.0, history=history),
        finding("integrity:suspect_flatline:D2:1", "suspect_flatline", "R2", "D2", "朝阳区", T0 + 17 * H, 70.0,
                value_mg_m3=1.234, readings=7, min_minutes=60.0),
        # a check this code has no text for yet (docs/integrity.md, "Not done yet"): shown all the same
        finding("integrity:suspect_replay:D2:1", "suspect_replay", "R2", "D2", "朝阳区", T0 + 19 * H, 60.0,
                shift_mg_m3=0.1, readings=60, other_start_ms=BH - 24 * H),
        # before the period: not in this report
        finding("integrity:suspect_zero:D3:1", "suspect_zero", "R3", "D3", "海淀区", T0 - 2 * 24 * H, 50.0),
    ):  # fmt: skip
        led.upsert_event(e)


def test_integrity_section_lists_the_findings_per_restaurant(world: World) -> None:
    add_findings(world.ledger)
    rep = build(world, max_charts=0)
    df = rep.integrity
    assert list(df["event_id"]) == [
        "integrity:suspect_zero:D1:1",
        "integrity:suspect_flatline:D2:1",
        "integrity:suspect_replay:D2:1",
    ]
    zero = row(df, "check", "suspect_zero")
    assert (zero["restaurant_id"], zero["name"], zero["district"], zero["device_id"]) == (
        "R1",
        "老王川菜馆",
        "朝阳区",
        "D1",
    )
    assert zero["start"].isoformat() == "2026-11-25T11:00:00+08:00" and zero["minutes"] == 40.0
    assert zero["end"].isoformat() == "2026-11-25T11:40:00+08:00"
    assert zero["evidence"] == ZERO_EVIDENCE
    assert zero["evidence_en"] == (
        "40 min at zero (4 valid windows ≤ 0.00 mg/m³); the 3 earlier services at most 0 min, "
        "mean 0.810–0.850 mg/m³"
    )
    flat = row(df, "check", "suspect_flatline")
    assert flat["evidence"] == FLAT_EVIDENCE
    assert flat["evidence_en"] == "1.234 mg/m³ unchanged for 70 min (7 readings)"
    replay = row(df, "check", "suspect_replay")
    assert replay["evidence"].startswith("60 分钟（60 条）与本设备 2026-") and replay["minutes"] == 60.0
    assert replay["evidence"].endswith("+08:00 起的数据相同，整体相差 +0.100 mg/m³")
    # the section holds what the summary counts, and findings are never on the ladder
    counts = rep.summary.set_index("restaurant_id")["data_integrity_events"].to_dict()
    assert counts == {"R1": 1, "R2": 2, "R3": 0, "R4": 0}
    assert rep.totals()["integrity"] == {
        "findings": 3,
        "restaurants": 2,
        "checks": {"suspect_flatline": 1, "suspect_replay": 1, "suspect_zero": 1},
    }
    assert row(rep.summary, "restaurant_id", "R2")["highest_level"] in ("", None)
    assert build(world, max_charts=0, district="海淀区").integrity.empty
    assert list(build(world, max_charts=0, restaurant_id="R2").integrity["device_id"]) == ["D2", "D2"]


def test_integrity_section_is_in_every_format(world: World, tmp_path: Path) -> None:
    import orjson
    from openpyxl import load_workbook

    from alerts.reports.formats import SHEET_INTEGRITY

    add_findings(world.ledger)
    rep = build(world, max_charts=0)
    # html: the heading, what findings are, the labels, the evidence in both languages, local times
    html = render(rep, "html").decode()
    section = html[
        html.index("数据可信性存疑（待核查） <span class=en>Data integrity in doubt (for inspection)") :
    ]
    section = section[: section.index("</section>")]
    assert (
        "不是违法认定，不计入处置等级" in section
        and "not offences, and not on the enforcement ladder" in section
    )
    assert "疑似零值 suspect zero" in section and "疑似恒值 suspect flatline" in section
    assert "疑似数据回放 suspect replay" in section  # a check with no evidence text of its own yet
    assert ZERO_EVIDENCE in section and "1.234 mg/m³ unchanged for 70 min (7 readings)" in section
    assert "2026-11-25 11:00+08:00" in section and "2026-11-25 11:40+08:00" in section
    assert "&lt;b&gt;小李&lt;/b&gt;面馆" in section and "<b>小李" not in section
    # csv: one table, the check's code, RFC 3339 with the offset
    rows = parse_csv(render(rep, "csv", table="integrity"))
    assert [r["check"] for r in rows] == ["suspect_zero", "suspect_flatline", "suspect_replay"]
    assert list(rows[0]) == [
        "restaurant_id", "name", "district", "device_id", "check", "start", "end", "minutes", "evidence",
        "evidence_en", "event_id",
    ]  # fmt: skip
    assert (rows[0]["start"], rows[0]["end"], rows[0]["minutes"]) == (
        "2026-11-25T11:00:00+08:00",
        "2026-11-25T11:40:00+08:00",
        "40.0",
    )
    assert rows[1]["evidence"] == FLAT_EVIDENCE
    # json: the rows with epoch ms and the judgement, and the totals
    doc = orjson.loads(render(rep, "json"))
    [z, *_] = doc["integrity"]
    assert z["start"] == "2026-11-25T11:00:00+08:00" and z["start_ms"] == BH + H
    assert z["judgement"]["zero_windows"] == 4 and len(z["judgement"]["history"]) == 3
    assert doc["totals"]["integrity"]["findings"] == 3
    # xlsx: its sheet, the note first, the bilingual header, the label and Excel times in the zone
    ws = load_workbook(io.BytesIO(render(rep, "xlsx")))[SHEET_INTEGRITY]
    assert ws["A1"].value.startswith("以下为数据可信性筛查结果") and "not offences" in ws["A1"].value
    header = [c.value.split("\n")[0] for c in ws[2]]
    assert header[:5] == ["餐饮单位编号", "单位名称", "所属区", "监测设备", "筛查项"]
    assert "Start (Asia/Shanghai, UTC+08:00)" in ws.cell(2, header.index("开始时间") + 1).value
    assert ws.cell(3, header.index("筛查项") + 1).value == "疑似零值 suspect zero"
    assert ws.cell(3, header.index("开始时间") + 1).value.isoformat() == "2026-11-25T11:00:00"
    assert ws.cell(3, header.index("依据") + 1).value == ZERO_EVIDENCE
    assert ws.freeze_panes == "A3" and ws.auto_filter.ref == f"A2:K{2 + 3}"
    # pdf: the section's page (its Chinese text: test_integrity_pdf_page_renders_chinese), also without
    # a Chinese font (English evidence)
    assert render(rep, "pdf").startswith(b"%PDF")
    assert render(rep, "pdf", settings=ReportSettings(font_file="none")).startswith(b"%PDF")


def test_a_report_without_findings_says_so(world: World) -> None:
    from openpyxl import load_workbook

    from alerts.reports.formats import SHEET_INTEGRITY

    rep = build(world, max_charts=0)
    assert rep.integrity.empty and rep.totals()["integrity"]["findings"] == 0
    assert (
        "本时段无数据可信性存疑记录 <span class=en>No data-integrity findings in this period"
        in render(rep, "html").decode()
    )
    assert parse_csv(render(rep, "csv", table="integrity")) == []
    assert load_workbook(io.BytesIO(render(rep, "xlsx")))[SHEET_INTEGRITY].max_row == 2  # note, header
    import orjson

    assert orjson.loads(render(rep, "json"))["integrity"] == []


def _pdf_page_with(pdf: Path, needle: str) -> int:
    """The 1-based page of ``pdf`` whose text (pdftotext) holds ``needle``."""
    import shutil
    import subprocess

    exe = shutil.which("pdftotext")
    if exe is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: the PDF's text is not checked")
    text = subprocess.run(
        [exe, "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True, timeout=60
    ).stdout.decode("utf-8")
    pages = text.split("\f")
    found = [i + 1 for i, p in enumerate(pages) if needle in p]
    assert found, f"{needle!r} on no page"
    return found[0]


def test_integrity_pdf_page_renders_chinese(world: World, tmp_path: Path) -> None:
    """The PDF's integrity page with the Chinese font the set-up installs: its text (label, note, names,
    evidence) is Chinese as typeset (Type 42, so pdftotext reads it back), the font is embedded, and the
    page rendered by pdftoppm has its table drawn (the PNG kept beside the test's files: look at it)."""
    import shutil
    import subprocess

    from matplotlib.image import imread

    from alerts.reports.charts import find_cjk_font

    if not find_cjk_font("").cjk:
        pytest.skip("no Chinese font installed (fonts-wqy-microhei): the PDF draws '?'")
    add_findings(world.ledger)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render(build(world, max_charts=0), "pdf"))
    page = _pdf_page_with(pdf, "Data integrity in doubt (for inspection)")
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-f", str(page), "-l", str(page), "-layout", str(pdf), "-"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout.decode("utf-8")
    for needle in ("不是违法认定", "Screening findings for inspectors", "疑似零值", "疑似恒值", "老王川菜馆",
                   "零值 40 分钟", "恒值 1.234", "11-25 11:00+08:00"):  # fmt: skip
        assert needle in text, (needle, text)
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed: the page is not rendered")
    out = tmp_path / "integrity"
    subprocess.run(
        [exe, "-f", str(page), "-l", str(page), "-r", "110", "-png", "-singlefile", str(pdf), str(out)],
        check=True,
        timeout=120,
    )
    img = imread(out.with_suffix(".png"))
    dark = (img[..., :3].mean(axis=2) < 0.5).mean()
    assert 0.005 < dark < 0.3, dark  # text and the header band, not an empty or a black page
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, timeout=60).stdout
    assert "WenQuanYi" in fonts or "wqy" in fonts.lower(), fonts


def test_cli_csv_writes_the_integrity_table(world: World, tmp_path: Path) -> None:
    from servers import run_fumewatch

    add_findings(world.ledger)
    out = tmp_path / "r.csv"
    r = run_fumewatch(
        tmp_path,
        "report",
        "--state",
        str(world.state),
        "--registry",
        str(world.registry_path),
        "--since",
        "2026-11-25",
        "--until",
        "2026-11-26",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    rows = parse_csv((tmp_path / "r.integrity.csv").read_bytes())
    assert [(x["restaurant_id"], x["check"]) for x in rows] == [
        ("R1", "suspect_zero"),
        ("R2", "suspect_flatline"),
        ("R2", "suspect_replay"),
    ]
    assert "r.integrity.csv" in r.stderr
