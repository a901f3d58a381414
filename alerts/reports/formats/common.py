"""What the report formats share: titles, the definitions printed with every human report, and cell text
for html and pdf (bilingual labels, numbers, widths of Chinese text).
"""

from __future__ import annotations

import pandas as pd

from alerts.reports.model import (
    KIND_LABELS,
    LEVEL_LABELS,
    POLLUTANT_LABELS,
    RULE_LABELS,
    STATE_LABELS,
    Column,
    Report,
)
from alerts.reports.reminders import BASIS_LABELS, OUTCOME_LABELS
from alerts.reports.timetext import local_text, offset_text
from alerts.rules import CHECK_LABELS
from ingest.timeutil import ms_to_utc, zone

TITLE_ZH, TITLE_EN = "餐饮油烟超标报告", "Cooking-fume exceedance report"


_LABELS = {
    "kind": KIND_LABELS,
    "level": LEVEL_LABELS,
    "state": STATE_LABELS,
    "pollutant": POLLUTANT_LABELS,
    "rule": RULE_LABELS,
    "yesno": {"yes": ("是", "yes"), "no": ("否", "no")},
    "outcome": OUTCOME_LABELS,
    "basis": BASIS_LABELS,
    "check": CHECK_LABELS,
}


def zone_text(report: Report) -> str:
    """The display zone with the offset(s) it has in the period: ``Asia/Shanghai, UTC+08:00`` (a zone
    that changes offset in the period lists both, ``Europe/Berlin, UTC+01:00/+02:00``)."""
    tz = report.display_tz
    offsets = dict.fromkeys(
        offset_text(ms_to_utc(t).astimezone(zone(tz))) for t in (report.since_ms, report.until_ms - 1)
    )
    return f"{tz}, UTC{'/'.join(offsets)}"


DEFINITIONS = (
    (
        "清洗提醒是服务，不是违法认定，不计入处置等级；“提醒后回落”= 提醒之后至少 3 个有效营业时段，最近的均值不高于"
        "提醒阈值（限值的 80 %）、也不再上升趋近限值，且此后未超标",
        "Maintenance reminders are service, not offences, and never on the ladder; 'back under' = at "
        "least 3 valid services since the reminder, the latest at or under its threshold (80 % of the "
        "limit) and no longer rising towards the limit, with no exceedance since",
    ),
    (
        "达标率 = 有效达标窗口数 / 有效窗口数（油烟，窗口开始于报告时段内）",
        "Compliance rate = compliant valid windows / valid windows (oil fume, windows starting in the "
        "period)",
    ),
    (
        "数据完整率 = 营业时间内实收数据条数 / 应收数据条数（营业时间内每个窗口都应有数据，未收到的窗口按 0 条计）",
        "Data completeness = samples received / samples expected over every window of business hours in "
        "the period (a window that never arrived counts with none received)",
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
    """One column as display strings (html/pdf); times in the display zone with their offset
    (``2026-11-25 10:00+08:00``)."""
    s = df[col.key]
    if col.kind == "time":
        offset = s.dt.strftime("%z").str.replace(r"(\d\d)$", r":\1", regex=True)
        return (s.dt.strftime(time_fmt) + offset).where(s.notna(), "").astype(str).tolist()
    if col.kind == "evidence" and not cjk and f"{col.key}_en" in df:
        s = df[f"{col.key}_en"]  # without a Chinese font, the English text
    vals = s.tolist()
    if col.kind == "int":
        return [str(int(v)) for v in vals]
    if col.kind in ("mg", "min", "rate", "pct", "num", "flow"):
        fmt = {
            "mg": "{:.3f}",
            "min": "{:.1f}",
            "rate": "{:.1%}",
            "pct": "{:g}",
            "num": "{:g}",
            "flow": "{:.0f}",
        }[col.kind]
        return ["" if v is None or v != v else fmt.format(v) for v in vals]
    if col.kind in _LABELS:
        return [_label(col.kind, str(v), bilingual, cjk) for v in vals]
    return ["" if v is None else str(v) for v in vals]


def _period_text(report: Report) -> str:
    tz = report.display_tz
    return f"{local_text(report.since_ms, tz)} – {local_text(report.until_ms, tz)} ({tz})"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def _width(text: str) -> int:
    return sum(2 if ord(ch) >= 0x2E80 else 1 for ch in text)


_NUMERIC = {"int", "num", "flow", "min", "mg", "rate", "pct"}


def service_kpis(report: Report) -> list[tuple[str, str, str]]:
    """(zh, en, value) of the service figures (优服务): reminders sent and what followed them."""
    sv = report.totals()["service"]
    known = sv["known"]
    share = f" ({sv['back_under'] / known:.0%})" if known else ""
    return [  # the reminders sent are the maintenance_reminder events, counted with the other kinds
        ("提醒后回落", "back under after a reminder", f"{sv['back_under']}/{known}{share}"),
        ("提醒后仍超标", "went on to exceed", str(sv["exceeded"])),
    ]
