"""html: one self-contained file (inline CSS, charts as base64 PNG ``data:`` URIs)."""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from alerts.findings import NOTE as INTEGRITY_NOTE
from alerts.model import EVENT_KINDS
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
from alerts.reports.formats.html_cases import CASE_CSS, cases_html
from alerts.reports.integrity import HTML_COLUMNS as INTEGRITY_COLUMNS
from alerts.reports.model import EVENT_COLUMNS, KIND_LABELS, SUMMARY_COLUMNS, Column, Report
from alerts.reports.reminders import REMINDER_COLUMNS

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
td.wrap{white-space:normal;min-width:24em}td.wrap .en{display:block}
p.note{background:#fff8e1;border-left:4px solid #e0a800;padding:6px 10px;margin:6px 0 10px}
@media print{th{position:static}.chart{break-inside:avoid}}
"""


def _html_table(df: pd.DataFrame, columns: Sequence[Column], *, rate_alert: float = 0.9) -> str:
    if df.empty:
        return '<p class="empty">无数据 No rows</p>'
    esc = html.escape
    head = "".join(f"<th>{esc(c.zh)}<span class=en>{esc(c.en)}</span></th>" for c in columns)
    cells = [display_cells(df, c) for c in columns]
    # the evidence kind: the Chinese text with its English below it (``<key>_en``)
    english = {c.key: df[f"{c.key}_en"].tolist() for c in columns if c.kind == "evidence"}
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
            if c.key in english:
                en = english[c.key][i]
                tds.append(f'<td class="wrap">{esc(cells[j][i])}<span class=en>{esc(en or "")}</span></td>')
                continue
            tds.append(
                f'<td class="{cls}">{esc(cells[j][i])}</td>' if cls else f"<td>{esc(cells[j][i])}</td>"
            )
        tr = '<tr class="enforcement">' if levels is not None and levels[i] == "enforcement" else "<tr>"
        out.append(tr + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _integrity_html(report: Report) -> str:
    """The section 数据可信性存疑（待核查）: what the findings are (not offences), then one row per finding."""
    df = report.integrity
    zh, en = INTEGRITY_NOTE
    return "\n".join(
        [
            "<section><h2>数据可信性存疑（待核查） <span class=en>Data integrity in doubt (for inspection)</span></h2>",
            f"<p class=note>{html.escape(zh)}<br><span class=en>{html.escape(en)}</span></p>",
            _html_table(df, INTEGRITY_COLUMNS)
            if df is not None and len(df)
            else "<p>本时段无数据可信性存疑记录 <span class=en>No data-integrity findings in this period</span></p>",
            "</section>",
        ]
    )


def render_html(report: Report, settings: ReportSettings) -> bytes:
    from alerts.reports.charts import chart_data_uri, find_cjk_font

    esc = html.escape
    tz = report.display_tz
    t = report.totals()
    meta = [
        ("时段 Period", _period_text(report)),
        ("区 District", report.district or "全部 all"),
        ("餐饮单位 Restaurant", report.restaurant_id or "全部 all"),
        ("生成时间 Generated", local_text(report.generated_ms, tz, "%Y-%m-%d %H:%M:%S")),
    ]
    kpis = [
        ("餐饮单位", "restaurants", str(t["restaurants"])),
        ("总体达标率", "compliance rate", _pct(t["compliance_rate"])),
        ("数据完整率", "data completeness", _pct(t["completeness"])),
        ("执法案件", "enforcement cases", str(t["cases"])),
        *((KIND_LABELS[k][0], f"{KIND_LABELS[k][1]} events", str(t["events"][k])) for k in EVENT_KINDS),
        *service_kpis(report),
    ]
    parts = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{TITLE_ZH} {esc(_period_text(report))}</title><style>{_CSS}{CASE_CSS}</style></head><body>",
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
        "<section><h2>优服务：清洗提醒 <span class=en>Service before penalty: maintenance reminders</span></h2>",
        _html_table(report.reminders, REMINDER_COLUMNS)
        if report.reminders is not None and len(report.reminders)
        else "<p>本时段未发送清洗提醒 <span class=en>No maintenance reminders in this period</span></p>",
        "</section>",
        _integrity_html(report),
        cases_html(report, _html_table),
    ]
    if report.charts:
        fonts = find_cjk_font(settings.font_file)
        parts.append("<section><h2>浓度与限值 <span class=en>Concentration vs limit</span></h2>")
        for c in report.charts:
            alt = f"{c.restaurant_id} {c.name} {local_text(c.start_ms, tz)}"
            parts.append(
                f'<figure class=chart><img alt="{esc(alt)}" src="{chart_data_uri(c, tz, fonts)}"></figure>'
            )
        parts.append("</section>")
    parts.append("<section class=notes><h2>说明 <span class=en>Notes</span></h2><ul>")
    parts += [f"<li>{esc(zh)}<br><span class=en>{esc(en)}</span></li>" for zh, en in DEFINITIONS]
    parts += [f"<li>{esc(n)}</li>" for n in report.notes]
    parts.append("</ul></section></body></html>")
    return "\n".join(parts).encode("utf-8")
