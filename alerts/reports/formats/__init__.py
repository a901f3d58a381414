"""Render a built :class:`~alerts.reports.model.Report` as csv, xlsx, html, pdf or json bytes.

- ``csv``: ONE table per file, UTF-8 with BOM (Excel then shows Chinese names correctly), CRLF lines,
  header = the machine keys of :data:`~alerts.reports.model.EVENT_COLUMNS` /
  :data:`~alerts.reports.model.SUMMARY_COLUMNS` (stable for scripts; the same keys as json). ``table``
  picks the table: ``events`` (default), ``summary``, ``reminders`` (the maintenance reminders and their
  outcomes, :data:`~alerts.reports.reminders.REMINDER_COLUMNS`), ``integrity`` (the data-integrity
  findings, :data:`~alerts.reports.integrity.INTEGRITY_COLUMNS`) or a case table (``cases``, ``case_events``,
  ``case_windows``, ``case_receipts``, :data:`~alerts.reports.cases.CASE_TABLES`). Times are RFC 3339 in the display time zone
  (``2026-11-26T12:00:00+08:00``), rates are fractions (0.953), an open event has an empty end.
  ``fumewatch report --format csv --out X.csv`` writes both: ``X.csv`` (events) and ``X.summary.csv``.
- ``xlsx``: sheets ``超标事件 Exceedances``, ``汇总 Summary``, ``清洗提醒 Reminders``,
  ``数据可信性存疑 Integrity``, the case sheets and
  ``报告说明 About``; bilingual styled header,
  frozen header row, auto-filter, column widths, number formats, times as Excel dates in the display
  time zone.
- ``html``: one self-contained file (inline CSS, charts as base64 PNG ``data:`` URIs), bilingual headings.
- ``pdf``: matplotlib ``PdfPages``: cover (period, filters, totals), summary pages, event pages (at most
  ``pdf_max_event_rows``), chart pages, case pages (:mod:`~alerts.reports.formats.pdf_cases`).
- ``json``: ``{"since", "until", "display_tz", "district", "restaurant", "generated", "totals",
  "events": [...], "summary": [...], "reminders": [...], "integrity": [...], "cases", "case_events", "case_windows", "case_receipts"}`` with the csv keys (plus ``start_ms``/``end_ms``); NaN -> null.

One module per format family, all on :mod:`~alerts.reports.formats.common` (titles, definitions, cell
text): ``machine`` (csv, json), ``xlsx``, ``html``, ``pdf``. This package dispatches (:func:`render`) and
names the download (:func:`filename`).
"""

from __future__ import annotations

from alerts.reports.cases import CASE_TABLES
from alerts.reports.config import ReportSettings
from alerts.reports.formats.common import DEFINITIONS, TITLE_EN, TITLE_ZH, display_cells
from alerts.reports.formats.html import render_html
from alerts.reports.formats.machine import iso_local, machine_frame, render_csv, render_json, report_dict
from alerts.reports.formats.pdf import render_pdf
from alerts.reports.formats.xlsx import (
    SHEET_ABOUT,
    SHEET_CASES,
    SHEET_EVENTS,
    SHEET_INTEGRITY,
    SHEET_SUMMARY,
    render_xlsx,
)
from alerts.reports.model import Report
from ingest.timeutil import format_local

FORMATS = ("csv", "xlsx", "html", "pdf", "json")
TABLES = ("events", "summary", "reminders", "integrity", *CASE_TABLES)
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "json": "application/json",
}


def render(
    report: Report, fmt: str, *, table: str = "events", settings: ReportSettings | None = None
) -> bytes:
    """The report as ``fmt`` (one of :data:`FORMATS`). ``table`` applies to csv only."""
    settings = settings or ReportSettings()
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
    if fmt == "csv":
        return render_csv(report, table)
    if fmt == "json":
        return render_json(report)
    if fmt == "xlsx":
        return render_xlsx(report)
    if fmt == "html":
        return render_html(report, settings)
    return render_pdf(report, settings)


def filename(report: Report, fmt: str, table: str = "events") -> str:
    """A download file name such as ``exceedances_20261101-20261201_朝阳区.xlsx``."""
    since = format_local(report.since_ms, report.display_tz, "%Y%m%d")
    until = format_local(report.until_ms, report.display_tz, "%Y%m%d")
    parts = [f"exceedances_{since}-{until}"]
    for extra in (report.district, report.restaurant_id):
        if extra:
            parts.append("".join(ch for ch in extra if ch.isalnum() or ch in "-_"))
    stem = "_".join(p for p in parts if p)
    return f"{stem}{f'.{table}' if fmt == 'csv' and table != 'events' else ''}.{fmt}"


__all__ = [
    "DEFINITIONS",
    "FORMATS",
    "MEDIA_TYPES",
    "SHEET_ABOUT",
    "SHEET_CASES",
    "SHEET_EVENTS",
    "SHEET_INTEGRITY",
    "SHEET_SUMMARY",
    "TABLES",
    "TITLE_EN",
    "TITLE_ZH",
    "display_cells",
    "filename",
    "iso_local",
    "machine_frame",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "render_pdf",
    "render_xlsx",
    "report_dict",
]
