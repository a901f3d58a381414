"""xlsx (openpyxl): the exceedance and summary sheets, the maintenance reminders, the data-integrity
findings, the case sheets and an About sheet."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pandas as pd

from alerts.findings import NOTE as INTEGRITY_NOTE
from alerts.model import EVENT_KINDS
from alerts.reports.cases import CASE_TABLES, case_tables
from alerts.reports.formats.common import (
    _LABELS,
    DEFINITIONS,
    TITLE_EN,
    TITLE_ZH,
    _label,
    _period_text,
    _width,
    local_text,
    service_kpis,
    zone_text,
)
from alerts.reports.integrity import INTEGRITY_COLUMNS
from alerts.reports.model import EVENT_COLUMNS, KIND_LABELS, SUMMARY_COLUMNS, Column, Report
from alerts.reports.reminders import REMINDER_COLUMNS

SHEET_EVENTS, SHEET_SUMMARY, SHEET_ABOUT = "超标事件 Exceedances", "汇总 Summary", "报告说明 About"
SHEET_REMINDERS = "清洗提醒 Reminders"
SHEET_INTEGRITY = "数据可信性存疑 Integrity"
#: The case sheets, one per flat case table (:data:`~alerts.reports.cases.CASE_TABLES`).
SHEET_CASES = {
    "cases": "执法案件 Cases",
    "case_events": "案件事件 Case events",
    "case_windows": "案件窗口 Case windows",
    "case_receipts": "通知回执 Receipts",
}


_XLSX_FORMATS = {
    "time": "yyyy-mm-dd hh:mm",
    "int": "0",
    "min": "0.0",
    "mg": "0.000",
    "rate": "0.0%",
    "pct": "0",
    "flow": "0",
    "num": "General",
}


def _xlsx_values(df: pd.DataFrame, col: Column) -> list[Any]:
    s = df[col.key]
    if col.kind == "time":
        naive = s.dt.tz_localize(None)
        return [None if pd.isna(v) else v.to_pydatetime() for v in naive]
    if col.kind == "int":
        return [int(v) for v in s.tolist()]
    if col.kind in ("mg", "min", "rate", "pct", "flow"):
        return [None if v is None or v != v else float(v) for v in s.tolist()]
    if col.kind == "num":
        return [
            None if v is None or v != v else (int(v) if float(v).is_integer() else float(v))
            for v in s.tolist()
        ]
    if col.kind in _LABELS:
        return [_label(col.kind, str(v)) for v in s.tolist()]
    return ["" if v is None else str(v) for v in s.tolist()]


def _xlsx_sheet(ws, df: pd.DataFrame, columns: Sequence[Column], zone: str, note: str = "") -> None:
    """One table; Excel date-times carry no offset, so the time headings name the zone and its offset
    (``zone``, :func:`~alerts.reports.formats.common.zone_text`). ``note``: a first row saying what the
    rows are (the header is then row 2)."""
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    head_font = Font(bold=True, color="FFFFFF")
    head_fill = PatternFill("solid", fgColor="1F4E78")
    head_align = Alignment(horizontal="center", vertical="center", wrap_text=True)
    thin = Side(style="thin", color="9BB7D4")
    headers = [f"{c.zh}\n{c.en}" + (f" ({zone})" if c.kind == "time" else "") for c in columns]
    h = 1
    if note:
        ws.append([note])
        ws["A1"].font = Font(bold=True, color="8A5A00")
        h = 2
    ws.append(headers)
    for cell in ws[h]:
        cell.font, cell.fill, cell.alignment = head_font, head_fill, head_align
        cell.border = Border(bottom=thin)
    ws.row_dimensions[h].height = 34
    cols = [_xlsx_values(df, c) for c in columns]
    for row in zip(*cols, strict=True):
        ws.append(row)
    n = len(df)
    for j, c in enumerate(columns, start=1):
        fmt = _XLSX_FORMATS.get(c.kind)
        if fmt and n:
            for (cell,) in ws.iter_rows(min_row=h + 1, max_row=n + h, min_col=j, max_col=j):
                cell.number_format = fmt
        sample = cols[j - 1][:300]
        if c.kind == "time":
            content = 16
        else:
            content = max(
                (
                    _width(v if isinstance(v, str) else f"{v:.3f}" if isinstance(v, float) else str(v))
                    for v in sample
                ),
                default=0,
            )
        head = max(_width(x) for x in headers[j - 1].split("\n"))
        ws.column_dimensions[get_column_letter(j)].width = min(max(content, head, 6) + 2, 48)
    ws.freeze_panes = f"A{h + 1}"
    last = get_column_letter(len(columns))
    ws.auto_filter.ref = f"A{h}:{last}{n + h}"
    ws.print_title_rows = f"{h}:{h}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def render_xlsx(report: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET_EVENTS
    _xlsx_sheet(ws, report.events, EVENT_COLUMNS, zone_text(report))
    _xlsx_sheet(wb.create_sheet(SHEET_SUMMARY), report.summary, SUMMARY_COLUMNS, zone_text(report))
    if report.reminders is not None:
        _xlsx_sheet(wb.create_sheet(SHEET_REMINDERS), report.reminders, REMINDER_COLUMNS, zone_text(report))
    if report.integrity is not None:
        _xlsx_sheet(
            wb.create_sheet(SHEET_INTEGRITY),
            report.integrity,
            INTEGRITY_COLUMNS,
            zone_text(report),
            note=" ".join(INTEGRITY_NOTE),
        )
    for name, df in case_tables(report.cases, report.display_tz).items():
        _xlsx_sheet(wb.create_sheet(SHEET_CASES[name]), df, CASE_TABLES[name], zone_text(report))
    about = wb.create_sheet(SHEET_ABOUT)
    t = report.totals()
    rows: list[tuple[str, Any]] = [
        (f"{TITLE_ZH} {TITLE_EN}", ""),
        ("时段 Period", _period_text(report)),
        ("区 District", report.district or "全部 all"),
        ("餐饮单位 Restaurant", report.restaurant_id or "全部 all"),
        ("生成时间 Generated", local_text(report.generated_ms, report.display_tz, "%Y-%m-%d %H:%M:%S")),
        ("餐饮单位数 Restaurants", t["restaurants"]),
        *((f"{KIND_LABELS[k][0]}事件 {KIND_LABELS[k][1]} events", t["events"][k]) for k in EVENT_KINDS),
        ("总体达标率 Overall compliance rate", t["compliance_rate"]),
        ("总体数据完整率 Overall data completeness", t["completeness"]),
        ("执法案件 Enforcement cases", t["cases"] or "本时段无执法案件 no enforcement cases in this period"),
        *((f"{zh} {en}", v) for zh, en, v in service_kpis(report)),
        ("", ""),
        *((zh, en) for zh, en in DEFINITIONS),
        *(("注 Note", note) for note in report.notes),
    ]
    for r in rows:
        about.append(list(r))
        if r[0].startswith(("总体达标率", "总体数据完整率")):
            about.cell(about.max_row, 2).number_format = "0.0%"
    about["A1"].font = Font(bold=True, size=14)
    about.column_dimensions["A"].width = 60
    about.column_dimensions["B"].width = 90
    for row in about.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top", horizontal="left")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
