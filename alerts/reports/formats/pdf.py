"""pdf (matplotlib ``PdfPages``): cover, summary pages, event pages, the maintenance reminders, the
data-integrity findings, case pages (:mod:`~alerts.reports.formats.pdf_cases`) and chart pages."""

from __future__ import annotations

import io
import math
import threading

import numpy as np
import pandas as pd

from alerts.findings import NOTE as INTEGRITY_NOTE
from alerts.model import EVENT_KINDS
from alerts.reports.charts import CJK_FONT_PACKAGE
from alerts.reports.config import ReportSettings
from alerts.reports.formats.common import (
    _NUMERIC,
    DEFINITIONS,
    TITLE_EN,
    TITLE_ZH,
    _pct,
    _period_text,
    display_cells,
    local_text,
    service_kpis,
)
from alerts.reports.formats.pdf_cases import pdf_cases
from alerts.reports.formats.pdf_text import _A4_LANDSCAPE, _clip, _core_text_class
from alerts.reports.integrity import INTEGRITY_COLUMNS
from alerts.reports.model import EVENT_COLUMNS, KIND_LABELS, SUMMARY_COLUMNS, Column, Report
from alerts.reports.reminders import REMINDER_COLUMNS
from ingest.timeutil import format_local

#: The cover note of a PDF drawn without a Chinese font: the same package as the warning on stderr.
NO_CJK_FONT_NOTE = (
    f"No Chinese font installed (Debian: apt-get install {CJK_FONT_PACKAGE}): Chinese text is shown as '?'."
)
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
    ("name", 16, "单位名称", "Name"),
    ("district", 8, "所属区", "District"),
    ("kind", 12, "事件类型", "Kind"),
    ("pollutant", 8, "污染物", "Pollutant"),
    ("rule", 12, "判定规则", "Rule"),
    ("start", 17, "开始", "Start"),
    ("end", 17, "结束", "End"),
    ("duration_min", 7, "时长(分)", "Minutes"),
    ("peak_mg_m3", 7, "峰值", "Peak"),
    ("mean_mg_m3", 7, "均值", "Mean"),
    ("limit_mg_m3", 6, "限值", "Limit"),
    ("level", 12, "处置等级", "Level"),
    ("notices_sent", 6, "通知", "Notices"),
)
_PDF_REMINDERS = (
    ("restaurant_id", 8, "编号", "ID"),
    ("name", 16, "单位名称", "Name"),
    ("district", 8, "所属区", "District"),
    ("time", 17, "提醒时间", "Reminded"),
    ("basis", 10, "依据", "Basis"),
    ("mean_mg_m3", 8, "近期均值", "Mean"),
    ("threshold_mg_m3", 8, "阈值", "Threshold"),
    ("delivered", 6, "送达", "Deliv."),
    ("mean_after_mg_m3", 8, "此后均值", "Mean since"),
    ("outcome", 18, "结果", "Outcome"),
)
_PDF_INTEGRITY = (
    ("restaurant_id", 8, "编号", "ID"),
    ("name", 14, "单位名称", "Name"),
    ("district", 8, "所属区", "District"),
    ("device_id", 9, "设备", "Device"),
    ("check", 13, "筛查项", "Check"),
    ("start", 17, "开始", "Start"),
    ("end", 17, "结束", "End"),
    ("minutes", 6, "分钟", "Minutes"),
    ("evidence", 108, "依据", "Evidence"),
)

_PDF_LOCK = threading.Lock()


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
    pdf,
    report: Report,
    fonts,
    title: str,
    df: pd.DataFrame,
    spec,
    by_key: dict[str, Column],
    time_fmt: str,
    note: tuple[str, ...] = (),
) -> None:
    """``df`` as table pages; ``note``: up to two lines under the page head of each page (what the rows
    are)."""
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
    top, bottom = (0.815 if note else 0.855), 0.05
    pitch = (top - bottom) / _ROWS_PER_PAGE
    from matplotlib.font_manager import FontProperties

    fp = fonts.props(size=6.5, single=True)
    hp = fonts.props(size=6.5, weight="bold")
    core_fp = FontProperties(family="Helvetica", weight="medium", size=6.5)
    core_text = _core_text_class()
    for p in range(pages):
        fig = Figure(figsize=_A4_LANDSCAPE)
        _pdf_page_head(fig, fonts, title, report, f"{p + 1}/{pages}")
        for k, line in enumerate(note[:2]):
            fig.text(0.035, 0.905 - 0.019 * k, line, fontproperties=fonts.props(size=8), color="#8a5a00")
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
                local_text(report.generated_ms, tz, "%Y-%m-%d %H:%M:%S"),
            ),
            (fonts.label("餐饮单位数", "Restaurants"), str(t["restaurants"])),
            (fonts.label("总体达标率", "Overall compliance rate"), _pct(t["compliance_rate"])),
            (fonts.label("总体数据完整率", "Overall data completeness"), _pct(t["completeness"])),
            (fonts.label("执法案件", "Enforcement cases"), str(t["cases"])),
            *(
                (fonts.label(KIND_LABELS[k][0] + "事件", KIND_LABELS[k][1] + " events"), str(t["events"][k]))
                for k in EVENT_KINDS
            ),
            *((fonts.label(zh, en), v) for zh, en, v in service_kpis(report)),
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
            notes.append(NO_CJK_FONT_NOTE)
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

        if report.reminders is not None and len(report.reminders):
            _pdf_tables(
                pdf,
                report,
                fonts,
                fonts.label("优服务：清洗提醒", "Service before penalty: maintenance reminders"),
                report.reminders,
                _PDF_REMINDERS,
                {c.key: c for c in REMINDER_COLUMNS},
                time_fmt,
            )

        if report.integrity is not None and len(report.integrity):
            _pdf_tables(
                pdf,
                report,
                fonts,
                fonts.label("数据可信性存疑（待核查）", "Data integrity in doubt (for inspection)"),
                report.integrity,
                _PDF_INTEGRITY,
                {c.key: c for c in INTEGRITY_COLUMNS},
                time_fmt,
                note=INTEGRITY_NOTE if fonts.cjk else INTEGRITY_NOTE[1:],
            )

        pdf_cases(pdf, report, fonts, _pdf_page_head)

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
