"""Render a built :class:`~alerts.reports.build.Report` as csv, xlsx, html, pdf or json bytes.

- ``csv``: ONE table per file, UTF-8 with BOM (Excel then shows Chinese names correctly), CRLF lines,
  header = the machine keys of :data:`~alerts.reports.build.EVENT_COLUMNS` /
  :data:`~alerts.reports.build.SUMMARY_COLUMNS` (stable for scripts; the same keys as json). ``table``
  picks the table: ``events`` (default) or ``summary``. Times are RFC 3339 in the display time zone
  (``2026-11-26T12:00:00+08:00``), rates are fractions (0.953), an open event has an empty end.
  ``fumewatch report --format csv --out X.csv`` writes both: ``X.csv`` (events) and ``X.summary.csv``.
- ``xlsx``: sheets ``超标事件 Exceedances``, ``汇总 Summary`` and ``报告说明 About``; bilingual styled header,
  frozen header row, auto-filter, column widths, number formats, times as Excel dates in the display
  time zone.
- ``html``: one self-contained file (inline CSS, charts as base64 PNG ``data:`` URIs), bilingual headings.
- ``pdf``: matplotlib ``PdfPages``: cover (period, filters, totals), summary pages, event pages (at most
  ``pdf_max_event_rows``), chart pages.
- ``json``: ``{"since", "until", "display_tz", "district", "restaurant", "generated", "totals",
  "events": [...], "summary": [...]}`` with the csv keys (plus ``start_ms``/``end_ms``); NaN -> null.
"""

from __future__ import annotations

import csv
import html
import io
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from alerts.model import EVENT_KINDS
from alerts.reports.build import (
    EVENT_COLUMNS,
    KIND_LABELS,
    LEVEL_LABELS,
    STATE_LABELS,
    SUMMARY_COLUMNS,
    Column,
    Report,
)
from alerts.reports.config import ReportSettings
from ingest.timeutil import format_local

FORMATS = ("csv", "xlsx", "html", "pdf", "json")
TABLES = ("events", "summary")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "json": "application/json",
}
TITLE_ZH, TITLE_EN = "餐饮油烟超标报告", "Cooking-fume exceedance report"
SHEET_EVENTS, SHEET_SUMMARY, SHEET_ABOUT = "超标事件 Exceedances", "汇总 Summary", "报告说明 About"

_LABELS = {"kind": KIND_LABELS, "level": LEVEL_LABELS, "state": STATE_LABELS}

DEFINITIONS = (
    (
        "达标率 = 有效达标窗口数 / 有效窗口数（油烟，窗口开始于报告时段内）",
        "Compliance rate = compliant valid windows / valid windows (oil fume, windows starting in the "
        "period)",
    ),
    (
        "数据完整率 = 实收数据条数 / 应收数据条数（时段内全部窗口；无任何窗口时为 0）",
        "Data completeness = samples / expected samples over all windows in the period (0 when there is "
        "none)",
    ),
    (
        "净化器未开启、设备离线时长：相应事件截取到报告时段内的分钟数",
        "Purifier-off and offline minutes: those events clipped to the period",
    ),
    (
        "峰值：超标事件中最高的窗口均值（GB 18483-2001 基准风量折算）",
        "Peak: highest window mean of the event (GB 18483-2001 reference-volume conversion)",
    ),
    (
        "已发通知数：通知台账中状态为已发送的记录（所有渠道）",
        "Notices sent: notice-ledger rows with status sent (every channel)",
    ),
)


def render(
    report: Report, fmt: str, *, table: str = "events", settings: ReportSettings | None = None
) -> bytes:
    """The report as ``fmt`` (one of :data:`FORMATS`). ``table`` applies to csv only."""
    settings = settings or ReportSettings()
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; use events or summary")
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
    return f"{stem}{'.summary' if fmt == 'csv' and table == 'summary' else ''}.{fmt}"


# ---------------------------------------------------------------------------------------------------------
# Machine formats: csv, json
# ---------------------------------------------------------------------------------------------------------

_ROUND = {"mg": 4, "min": 1, "rate": 4, "pct": 1}


def _iso(s: pd.Series) -> pd.Series:
    out = s.dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"([+-]\d\d)(\d\d)$", r"\1:\2", regex=True)
    return out.where(s.notna(), None)


def machine_frame(df: pd.DataFrame, columns: Sequence[Column], extra: Sequence[str] = ()) -> pd.DataFrame:
    """The table with the csv/json representation of every column (RFC 3339 times, rounded floats)."""
    out = pd.DataFrame(index=df.index)
    for c in columns:
        s = df[c.key]
        if c.kind == "time":
            out[c.key] = _iso(s)
        elif c.kind in _ROUND:
            out[c.key] = s.astype("float64").round(_ROUND[c.kind])
        else:
            out[c.key] = s
    for key in extra:
        out[key] = df[key]
    return out


def render_csv(report: Report, table: str = "events") -> bytes:
    df, cols = (report.events, EVENT_COLUMNS) if table == "events" else (report.summary, SUMMARY_COLUMNS)
    m = machine_frame(df, cols)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c.key for c in cols])
    for row in m.itertuples(index=False, name=None):
        w.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    obj = df.astype(object)
    return obj.where(df.notna(), None).to_dict("records")


def iso_local(ms: int, tz: str) -> str:
    """RFC 3339 in the display time zone: ``2026-11-26T12:00:00+08:00``."""
    from ingest.timeutil import ms_to_utc, zone

    return ms_to_utc(ms).astimezone(zone(tz)).isoformat(timespec="seconds")


def report_dict(report: Report) -> dict[str, Any]:
    """The json document (also what the API returns for ``format=json``)."""
    tz = report.display_tz
    ev = machine_frame(report.events, EVENT_COLUMNS, extra=("start_ms", "end_ms"))
    return {
        "since": iso_local(report.since_ms, tz),
        "until": iso_local(report.until_ms, tz),
        "since_ms": report.since_ms,
        "until_ms": report.until_ms,
        "display_tz": tz,
        "district": report.district,
        "restaurant": report.restaurant_id,
        "generated": iso_local(report.generated_ms, tz),
        "totals": report.totals(),
        "notes": list(report.notes),
        "events": _records(ev),
        "summary": _records(machine_frame(report.summary, SUMMARY_COLUMNS)),
    }


def render_json(report: Report) -> bytes:
    return orjson.dumps(report_dict(report), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


# ---------------------------------------------------------------------------------------------------------
# Human formats: shared cell text
# ---------------------------------------------------------------------------------------------------------


def _label(kind: str, code: str, bilingual: bool = True, cjk: bool = True) -> str:
    zh, en = _LABELS[kind].get(code, (code, code))
    if not code:
        return ""
    if not cjk:
        return en
    return f"{zh} {en}" if bilingual else zh


def display_cells(
    df: pd.DataFrame,
    col: Column,
    *,
    time_fmt: str = "%Y-%m-%d %H:%M",
    bilingual: bool = True,
    cjk: bool = True,
) -> list[str]:
    """One column as display strings (html/pdf)."""
    s = df[col.key]
    if col.kind == "time":
        return s.dt.strftime(time_fmt).where(s.notna(), "").astype(str).tolist()
    vals = s.tolist()
    if col.kind == "int":
        return [str(int(v)) for v in vals]
    if col.kind in ("mg", "min", "rate", "pct"):
        fmt = {"mg": "{:.3f}", "min": "{:.1f}", "rate": "{:.1%}", "pct": "{:g}"}[col.kind]
        return ["" if v is None or v != v else fmt.format(v) for v in vals]
    if col.kind in _LABELS:
        return [_label(col.kind, str(v), bilingual, cjk) for v in vals]
    return ["" if v is None else str(v) for v in vals]


def _period_text(report: Report) -> str:
    tz = report.display_tz
    return f"{format_local(report.since_ms, tz)} – {format_local(report.until_ms, tz)} ({tz})"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


# ---------------------------------------------------------------------------------------------------------
# xlsx
# ---------------------------------------------------------------------------------------------------------

_XLSX_FORMATS = {
    "time": "yyyy-mm-dd hh:mm",
    "int": "0",
    "min": "0.0",
    "mg": "0.000",
    "rate": "0.0%",
    "pct": "0",
}


def _width(text: str) -> int:
    return sum(2 if ord(ch) >= 0x2E80 else 1 for ch in text)


def _xlsx_values(df: pd.DataFrame, col: Column) -> list[Any]:
    s = df[col.key]
    if col.kind == "time":
        naive = s.dt.tz_localize(None)
        return [None if pd.isna(v) else v.to_pydatetime() for v in naive]
    if col.kind == "int":
        return [int(v) for v in s.tolist()]
    if col.kind in ("mg", "min", "rate", "pct"):
        return [None if v is None or v != v else float(v) for v in s.tolist()]
    if col.kind in _LABELS:
        return [_label(col.kind, str(v)) for v in s.tolist()]
    return ["" if v is None else str(v) for v in s.tolist()]


def _xlsx_sheet(ws, df: pd.DataFrame, columns: Sequence[Column], tz: str) -> None:
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    head_font = Font(bold=True, color="FFFFFF")
    head_fill = PatternFill("solid", fgColor="1F4E78")
    head_align = Alignment(horizontal="center", vertical="center", wrap_text=True)
    thin = Side(style="thin", color="9BB7D4")
    headers = [f"{c.zh}\n{c.en}" + (f" ({tz})" if c.kind == "time" else "") for c in columns]
    ws.append(headers)
    for cell in ws[1]:
        cell.font, cell.fill, cell.alignment = head_font, head_fill, head_align
        cell.border = Border(bottom=thin)
    ws.row_dimensions[1].height = 34
    cols = [_xlsx_values(df, c) for c in columns]
    for row in zip(*cols, strict=True):
        ws.append(row)
    n = len(df)
    for j, c in enumerate(columns, start=1):
        fmt = _XLSX_FORMATS.get(c.kind)
        if fmt and n:
            for (cell,) in ws.iter_rows(min_row=2, max_row=n + 1, min_col=j, max_col=j):
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
    ws.freeze_panes = "A2"
    last = get_column_letter(len(columns))
    ws.auto_filter.ref = f"A1:{last}{n + 1}"
    ws.print_title_rows = "1:1"
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
    _xlsx_sheet(ws, report.events, EVENT_COLUMNS, report.display_tz)
    _xlsx_sheet(wb.create_sheet(SHEET_SUMMARY), report.summary, SUMMARY_COLUMNS, report.display_tz)
    about = wb.create_sheet(SHEET_ABOUT)
    t = report.totals()
    rows: list[tuple[str, Any]] = [
        (f"{TITLE_ZH} {TITLE_EN}", ""),
        ("时段 Period", _period_text(report)),
        ("区 District", report.district or "全部 all"),
        ("餐饮单位 Restaurant", report.restaurant_id or "全部 all"),
        ("生成时间 Generated", format_local(report.generated_ms, report.display_tz, "%Y-%m-%d %H:%M:%S")),
        ("餐饮单位数 Restaurants", t["restaurants"]),
        *((f"{KIND_LABELS[k][0]}事件 {KIND_LABELS[k][1]} events", t["events"][k]) for k in EVENT_KINDS),
        ("总体达标率 Overall compliance rate", t["compliance_rate"]),
        ("总体数据完整率 Overall data completeness", t["completeness"]),
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


# ---------------------------------------------------------------------------------------------------------
# html
# ---------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei",Arial,sans-serif;
margin:24px;color:#1d2733;font-size:13px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:2px solid #1f4e78;
padding-bottom:3px}.en{color:#5b6b7c;font-weight:normal;font-size:.85em}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:8px 0}
dl.meta dt{color:#5b6b7c}
dl.meta dd{margin:0}.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.kpi{border:1px solid #c9d6e3;border-radius:6px;padding:8px 12px;min-width:120px}
.kpi b{display:block;font-size:20px}.kpi span{color:#5b6b7c;font-size:11px}
table{border-collapse:collapse;width:100%;font-size:12px}
th{background:#1f4e78;color:#fff;position:sticky;top:0;
padding:4px 6px;text-align:center;font-weight:600;vertical-align:bottom}th .en{color:#d6e4f0;display:block}
td{padding:3px 6px;border-bottom:1px solid #e3e9ef;white-space:nowrap}
tr:nth-child(even) td{background:#f5f8fb}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.bad{color:#b00020;font-weight:600}
tr.enforcement td{background:#fde8ea}.chart{margin:10px 0 18px}
.chart img{max-width:100%;border:1px solid #e3e9ef}
.notes li{margin:2px 0}.empty{color:#5b6b7c;font-style:italic}
@media print{th{position:static}.chart{break-inside:avoid}}
"""

_NUMERIC = {"int", "min", "mg", "rate", "pct"}


def _html_table(df: pd.DataFrame, columns: Sequence[Column], *, rate_alert: float = 0.9) -> str:
    if df.empty:
        return '<p class="empty">无数据 No rows</p>'
    esc = html.escape
    head = "".join(f"<th>{esc(c.zh)}<span class=en>{esc(c.en)}</span></th>" for c in columns)
    cells = [display_cells(df, c) for c in columns]
    raw = {c.key: df[c.key].tolist() for c in columns if c.kind == "rate"}
    levels = df["level"].tolist() if "level" in df else None
    out = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for i in range(len(df)):
        tds = []
        for j, c in enumerate(columns):
            cls = "num" if c.kind in _NUMERIC else ""
            if c.kind == "rate":
                v = raw[c.key][i]
                if v is not None and v == v and v < rate_alert:
                    cls += " bad"
            tds.append(
                f'<td class="{cls}">{esc(cells[j][i])}</td>' if cls else f"<td>{esc(cells[j][i])}</td>"
            )
        tr = '<tr class="enforcement">' if levels is not None and levels[i] == "enforcement" else "<tr>"
        out.append(tr + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render_html(report: Report, settings: ReportSettings) -> bytes:
    from alerts.reports.charts import chart_data_uri, find_cjk_font

    esc = html.escape
    tz = report.display_tz
    t = report.totals()
    meta = [
        ("时段 Period", _period_text(report)),
        ("区 District", report.district or "全部 all"),
        ("餐饮单位 Restaurant", report.restaurant_id or "全部 all"),
        ("生成时间 Generated", format_local(report.generated_ms, tz, "%Y-%m-%d %H:%M:%S")),
    ]
    kpis = [
        ("餐饮单位", "restaurants", str(t["restaurants"])),
        ("总体达标率", "compliance rate", _pct(t["compliance_rate"])),
        ("数据完整率", "data completeness", _pct(t["completeness"])),
        *((KIND_LABELS[k][0], f"{KIND_LABELS[k][1]} events", str(t["events"][k])) for k in EVENT_KINDS),
    ]
    parts = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{TITLE_ZH} {esc(_period_text(report))}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{TITLE_ZH} <span class=en>{TITLE_EN}</span></h1><dl class=meta>",
        *(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta),
        "</dl></header><section class=kpis>",
        *(f"<div class=kpi><b>{esc(v)}</b><span>{esc(zh)} {esc(en)}</span></div>" for zh, en, v in kpis),
        "</section>",
        "<section><h2>汇总 <span class=en>Summary by restaurant</span></h2>",
        _html_table(report.summary, SUMMARY_COLUMNS),
        "</section><section><h2>超标事件 <span class=en>Exceedance and other events</span></h2>",
        _html_table(report.events, EVENT_COLUMNS),
        "</section>",
    ]
    if report.charts:
        fonts = find_cjk_font(settings.font_file)
        parts.append("<section><h2>浓度与限值 <span class=en>Concentration vs limit</span></h2>")
        for c in report.charts:
            alt = f"{c.restaurant_id} {c.name} {format_local(c.start_ms, tz)}"
            parts.append(
                f'<figure class=chart><img alt="{esc(alt)}" src="{chart_data_uri(c, tz, fonts)}"></figure>'
            )
        parts.append("</section>")
    parts.append("<section class=notes><h2>说明 <span class=en>Notes</span></h2><ul>")
    parts += [f"<li>{esc(zh)}<br><span class=en>{esc(en)}</span></li>" for zh, en in DEFINITIONS]
    parts += [f"<li>{esc(n)}</li>" for n in report.notes]
    parts.append("</ul></section></body></html>")
    return "\n".join(parts).encode("utf-8")


# ---------------------------------------------------------------------------------------------------------
# pdf (matplotlib PdfPages)
# ---------------------------------------------------------------------------------------------------------

_A4_LANDSCAPE = (11.69, 8.27)
_ROWS_PER_PAGE = 38

#: PDF table columns: (key, width in half-width characters, short Chinese heading, short English heading).
_PDF_SUMMARY = (
    ("restaurant_id", 8, "编号", "ID"),
    ("name", 20, "单位名称", "Name"),
    ("district", 8, "所属区", "District"),
    ("valid_windows", 7, "有效窗口", "Valid win."),
    ("compliance_rate", 7, "达标率", "Compliance"),
    ("completeness", 7, "完整率", "Complete"),
    ("purifier_off_min", 9, "净化器未开(分)", "Purif. off min"),
    ("offline_min", 8, "离线(分)", "Offline min"),
    ("exceedance_events", 6, "超标", "Exceed."),
    ("purifier_off_events", 6, "净化器", "Purif."),
    ("offline_events", 6, "离线", "Offline"),
    ("highest_level", 12, "最高等级", "Level"),
    ("notices_sent", 6, "通知", "Notices"),
)
_PDF_EVENTS = (
    ("restaurant_id", 8, "编号", "ID"),
    ("name", 18, "单位名称", "Name"),
    ("district", 8, "所属区", "District"),
    ("kind", 13, "事件类型", "Kind"),
    ("start", 11, "开始", "Start"),
    ("end", 11, "结束", "End"),
    ("duration_min", 7, "时长(分)", "Minutes"),
    ("peak_mg_m3", 7, "峰值", "Peak"),
    ("mean_mg_m3", 7, "均值", "Mean"),
    ("limit_mg_m3", 6, "限值", "Limit"),
    ("level", 12, "处置等级", "Level"),
    ("notices_sent", 6, "通知", "Notices"),
)


def _clip(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    out, w = [], 0
    for ch in text:
        cw = 2 if ord(ch) >= 0x2E80 else 1
        if w + cw > width - 1:
            break
        out.append(ch)
        w += cw
    return "".join(out) + "…"


_PDF_LOCK = threading.Lock()


def _core_text_class():
    """A matplotlib ``Text`` typeset with the PDF core font Helvetica (AFM metrics, not embedded).

    matplotlib's PDF backend lays TrueType text out glyph by glyph in Python (about 0.1 ms per
    character); a core font is written as one string, about 5x faster per table cell. Table cells that are
    pure ASCII (ids, numbers, times) use it, Chinese cells keep the CJK TrueType font. The backend reads
    ``pdf.use14corefonts`` when it draws and measures each text, so it is switched on just for these
    texts; :data:`_PDF_LOCK` keeps two PDF renders in one process from seeing each other's switch.
    """
    import matplotlib as mpl
    from matplotlib.text import Text

    class CoreText(Text):
        def draw(self, renderer) -> None:
            old = mpl.rcParams["pdf.use14corefonts"]
            mpl.rcParams["pdf.use14corefonts"] = True
            try:
                super().draw(renderer)
            finally:
                mpl.rcParams["pdf.use14corefonts"] = old

    return CoreText


def _pdf_page_head(fig, fonts, title: str, report: Report, page: str) -> None:
    fig.text(0.035, 0.955, title, fontproperties=fonts.props(size=12, weight="bold"))
    fig.text(0.965, 0.955, page, ha="right", fontproperties=fonts.props(size=8))
    sub = f"{_period_text(report)} · mg/m³"
    if report.district:
        sub += f" · {fonts.text(report.district)}"
    if report.restaurant_id:
        sub += f" · {report.restaurant_id}"
    fig.text(0.035, 0.93, sub, fontproperties=fonts.props(size=8), color="#5b6b7c")


def _pdf_tables(
    pdf, report: Report, fonts, title: str, df: pd.DataFrame, spec, by_key: dict[str, Column], time_fmt: str
) -> None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    cols = [by_key[k] for k, *_ in spec]
    widths = np.array([w for _, w, *_ in spec], dtype=float)
    x0, x1 = 0.035, 0.965
    xs = x0 + np.concatenate([[0], np.cumsum(widths)[:-1]]) / widths.sum() * (x1 - x0)
    right = x0 + np.cumsum(widths) / widths.sum() * (x1 - x0)
    cells = [
        [
            _clip(fonts.text(v), w)
            for v in display_cells(df, c, time_fmt=time_fmt, bilingual=False, cjk=fonts.cjk)
        ]
        for c, (_, w, *_) in zip(cols, spec, strict=True)
    ]
    n = len(df)
    pages = max(1, math.ceil(n / _ROWS_PER_PAGE))
    top, bottom = 0.855, 0.05
    pitch = (top - bottom) / _ROWS_PER_PAGE
    from matplotlib.font_manager import FontProperties

    fp = fonts.props(size=6.5, single=True)
    hp = fonts.props(size=6.5, weight="bold")
    core_fp = FontProperties(family="Helvetica", weight="medium", size=6.5)
    core_text = _core_text_class()
    for p in range(pages):
        fig = Figure(figsize=_A4_LANDSCAPE)
        _pdf_page_head(fig, fonts, title, report, f"{p + 1}/{pages}")
        fig.patches.append(
            Rectangle(
                (x0 - 0.005, top + 0.003),
                x1 - x0 + 0.01,
                0.06,
                transform=fig.transFigure,
                color="#1f4e78",
                zorder=0,
            )
        )
        for j, (c, (_, _, zh, en)) in enumerate(zip(cols, spec, strict=True)):
            numeric = c.kind in _NUMERIC
            x, ha = (right[j] - 0.006, "right") if numeric else (xs[j] + 0.006, "left")
            label = f"{zh}\n{en}" if fonts.cjk else en
            fig.text(x, top + 0.008, label, ha=ha, va="bottom", color="white", fontproperties=hp, wrap=False)
        lo, hi = p * _ROWS_PER_PAGE, min(n, (p + 1) * _ROWS_PER_PAGE)
        for i in range(lo, hi):
            y = top - (i - lo + 1) * pitch
            if (i - lo) % 2:
                fig.patches.append(
                    Rectangle(
                        (x0 - 0.005, y),
                        x1 - x0 + 0.01,
                        pitch,
                        transform=fig.transFigure,
                        color="#f0f4f8",
                        zorder=0,
                    )
                )
            for j, c in enumerate(cols):
                v = cells[j][i]
                if not v:
                    continue
                numeric = c.kind in _NUMERIC
                x, ha = (right[j] - 0.006, "right") if numeric else (xs[j] + 0.006, "left")
                if v.isascii():
                    fig.add_artist(core_text(x, y + pitch * 0.28, v, ha=ha, fontproperties=core_fp))
                else:
                    fig.text(x, y + pitch * 0.28, v, ha=ha, fontproperties=fp)
        if n == 0:
            fig.text(
                0.5, 0.5, fonts.label("无数据", "no rows"), ha="center", fontproperties=fonts.props(size=11)
            )
        pdf.savefig(fig)


def _pdf_event_rows(report: Report, cap: int) -> tuple[pd.DataFrame, int]:
    ev = report.events
    if len(ev) <= cap:
        return ev, 0
    order = {k: i for i, k in enumerate(EVENT_KINDS)}
    pri = ev["kind"].map(order).fillna(len(order))
    keep = ev.assign(_p=pri).sort_values(["_p", "start_ms", "event_id"], kind="stable").head(cap)
    keep = keep.drop(columns="_p").sort_values(["start_ms", "event_id"], kind="stable")
    return keep, len(ev) - len(keep)


def render_pdf(report: Report, settings: ReportSettings) -> bytes:
    import matplotlib as mpl
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    from alerts.reports.charts import draw_chart, find_cjk_font

    fonts = find_cjk_font(settings.font_file)
    tz = report.display_tz
    t = report.totals()
    events, left_out = _pdf_event_rows(report, settings.pdf_max_event_rows)
    one_year = format_local(report.since_ms, tz, "%Y") == format_local(report.until_ms - 1, tz, "%Y")
    time_fmt = "%m-%d %H:%M" if one_year else "%Y-%m-%d %H:%M"
    buf = io.BytesIO()
    meta = {"Title": f"{TITLE_EN} {_period_text(report)}", "Creator": "fumewatch", "Subject": TITLE_ZH}
    # Type 42 (TrueType) fonts carry a ToUnicode map: Chinese text in the PDF can be searched and copied.
    with _PDF_LOCK, mpl.rc_context({"pdf.fonttype": 42}), PdfPages(buf, metadata=meta) as pdf:
        # -- cover
        fig = Figure(figsize=_A4_LANDSCAPE)
        y = 0.86
        if fonts.cjk:
            fig.text(0.08, y, TITLE_ZH, fontproperties=fonts.props(size=26, weight="bold"))
            y -= 0.06
        fig.text(
            0.08,
            y,
            TITLE_EN,
            fontproperties=fonts.props(size=18 if fonts.cjk else 24, weight="bold"),
            color="#1f4e78",
        )
        y -= 0.08
        lines = [
            (fonts.label("时段", "Period"), _period_text(report)),
            (
                fonts.label("区", "District"),
                fonts.text(report.district) if report.district else fonts.label("全部", "all"),
            ),
            (fonts.label("餐饮单位", "Restaurant"), report.restaurant_id or fonts.label("全部", "all")),
            (
                fonts.label("生成时间", "Generated"),
                format_local(report.generated_ms, tz, "%Y-%m-%d %H:%M:%S"),
            ),
            (fonts.label("餐饮单位数", "Restaurants"), str(t["restaurants"])),
            (fonts.label("总体达标率", "Overall compliance rate"), _pct(t["compliance_rate"])),
            (fonts.label("总体数据完整率", "Overall data completeness"), _pct(t["completeness"])),
            *(
                (fonts.label(KIND_LABELS[k][0] + "事件", KIND_LABELS[k][1] + " events"), str(t["events"][k]))
                for k in EVENT_KINDS
            ),
        ]
        for k, v in lines:
            fig.text(0.08, y, k, fontproperties=fonts.props(size=11), color="#5b6b7c")
            fig.text(0.36, y, v, fontproperties=fonts.props(size=11))
            y -= 0.04
        y -= 0.02
        notes = [zh if fonts.cjk else en for zh, en in DEFINITIONS] + [fonts.text(n) for n in report.notes]
        if left_out:
            notes.append(
                f"PDF 仅列出 {len(events)} 条事件，另有 {left_out} 条见 xlsx/csv/html"
                if fonts.cjk
                else f"This PDF lists {len(events)} events; {left_out} more are in the xlsx/csv/html report"
            )
        if not fonts.cjk:
            notes.append("No CJK font installed (Debian: fonts-noto-cjk): Chinese text is shown as '?'.")
        for n in notes:
            fig.text(0.08, y, "· " + n.strip(), fontproperties=fonts.props(size=8.5), color="#333333")
            y -= 0.028
        pdf.savefig(fig)

        by_key_s = {c.key: c for c in SUMMARY_COLUMNS}
        by_key_e = {c.key: c for c in EVENT_COLUMNS}
        _pdf_tables(
            pdf,
            report,
            fonts,
            fonts.label("汇总", "Summary by restaurant"),
            report.summary,
            _PDF_SUMMARY,
            by_key_s,
            time_fmt,
        )
        _pdf_tables(
            pdf, report, fonts, fonts.label("事件", "Events"), events, _PDF_EVENTS, by_key_e, time_fmt
        )

        charts = report.charts
        for p in range(0, len(charts), 2):
            fig = Figure(figsize=_A4_LANDSCAPE)
            _pdf_page_head(
                fig,
                fonts,
                fonts.label("浓度与限值", "Concentration vs limit"),
                report,
                f"{p // 2 + 1}/{math.ceil(len(charts) / 2)}",
            )
            axes = fig.subplots(
                2, 1, gridspec_kw={"top": 0.88, "bottom": 0.07, "hspace": 0.4, "left": 0.06, "right": 0.97}
            )
            for ax, c in zip(axes, charts[p : p + 2], strict=False):
                draw_chart(ax, c, tz, fonts, compact=True)
            if len(charts[p : p + 2]) == 1:
                axes[1].set_visible(False)
            pdf.savefig(fig)
    return buf.getvalue()
