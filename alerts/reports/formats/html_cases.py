"""html: the enforcement-case section (one block per case: header, each event's facts and deciding
windows, the receipts)."""

from __future__ import annotations

import html

from alerts.reports.cases import case_tables
from alerts.reports.formats.case_text import (
    NO_CASES,
    RECEIPT_COLUMNS,
    WINDOW_COLUMNS,
    case_header,
    event_facts,
)
from alerts.reports.model import Report

CASE_CSS = """
.case{border:1px solid #c9d6e3;border-radius:6px;padding:6px 14px 12px;margin:14px 0;break-inside:avoid-page}
.case h3{font-size:15px;margin:8px 0 4px}.case h4{font-size:13px;margin:12px 0 4px;color:#1f4e78}
.missing{color:#8a5a00}
"""


def _dl(rows) -> str:
    esc = html.escape
    items = "".join(
        f"<dt>{esc(zh)} <span class=en>{esc(en)}</span></dt><dd>{esc(v)}</dd>" for zh, en, v in rows
    )
    return f"<dl class=meta>{items}</dl>"


def cases_html(report: Report, table) -> str:  # noqa: ANN001 - html._html_table
    """The section; ``table`` renders a DataFrame with bilingual columns."""
    esc = html.escape
    tz = report.display_tz
    parts = ["<section class=cases><h2>执法案件 <span class=en>Enforcement cases</span></h2>"]
    if not report.cases:
        parts.append(f'<p class="empty">{NO_CASES[0]} {NO_CASES[1]}</p></section>')
        return "\n".join(parts)
    tables = case_tables(report.cases, tz)
    wins, recs = tables["case_windows"], tables["case_receipts"]
    for case in report.cases:
        cid = case["case_id"]
        parts.append(f"<article class=case><h3>案件 <span class=en>Case</span> {esc(cid)}</h3>")
        rows = case_header(case, tz)
        parts.append(_dl([r for r in rows if r[0] != "未记录"]))
        parts += [
            f"<p class=missing>{esc(zh)} {esc(en)}: {esc(v)}</p>" for zh, en, v in rows if zh == "未记录"
        ]
        for e in case["events"]:
            parts.append(f"<h4>事件 <span class=en>Event</span> {esc(e['event_id'])}</h4>")
            parts.append(_dl(event_facts(e, tz)))
            parts.append("<p>判定窗口 <span class=en>Deciding windows</span></p>")
            w = wins[(wins["case_id"] == cid) & (wins["event_id"] == e["event_id"])]
            parts.append(table(w, WINDOW_COLUMNS))
        parts.append("<h4>通知回执 <span class=en>Notice receipts</span></h4>")
        if "receipts" in case["missing"]:
            parts.append('<p class="empty">未记录 not recorded</p>')
        else:
            parts.append(table(recs[recs["case_id"] == cid], RECEIPT_COLUMNS))
        parts.append("</article>")
    parts.append("</section>")
    return "\n".join(parts)
