"""What a report is made of: its columns (machine key, Chinese and English headings, value kind), the
display labels, the chart data and the built :class:`Report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alerts.maintenance.outcomes import OUTCOMES
from alerts.model import EVENT_KINDS
from alerts.rules import CHECK_LABELS


class ReportError(ValueError):
    """Bad report parameters (period, time zone, unknown district or restaurant); the message says which."""


@dataclass(frozen=True, slots=True)
class Column:
    """One report column: machine key (CSV/JSON), Chinese and English headings, and its value kind."""

    key: str
    zh: str
    en: str
    kind: str  # text | time | int | num | flow | min | mg | rate | pct | kind | level | state | pollutant
    # | rule | yesno | check (a data-integrity check) | evidence (Chinese text; its English in <key>_en)


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("restaurant_id", "餐饮单位编号", "Restaurant ID", "text"),
    Column("name", "单位名称", "Name", "text"),
    Column("district", "所属区", "District", "text"),
    Column("device_id", "监测设备", "Device", "text"),
    Column("kind", "事件类型", "Kind", "kind"),
    Column("pollutant", "污染物", "Pollutant", "pollutant"),
    Column("start", "开始时间", "Start", "time"),
    Column("end", "结束时间", "End", "time"),
    Column("duration_min", "持续时长(分钟)", "Duration (min)", "min"),
    Column("peak_mg_m3", "峰值(窗口均值, mg/m³)", "Peak window mean (mg/m³)", "mg"),
    Column("mean_mg_m3", "均值(mg/m³)", "Mean (mg/m³)", "mg"),
    Column("limit_mg_m3", "限值(mg/m³)", "Limit (mg/m³)", "mg"),
    Column("profile", "执行标准", "Profile", "text"),
    Column("rule", "判定规则", "Rule", "rule"),
    Column("level", "处置等级", "Escalation level", "level"),
    Column("state", "状态", "State", "state"),
    Column("notices_sent", "已发通知数", "Notices sent", "int"),
    Column("event_id", "事件编号", "Event ID", "text"),
)

SUMMARY_COLUMNS: tuple[Column, ...] = (
    Column("restaurant_id", "餐饮单位编号", "Restaurant ID", "text"),
    Column("name", "单位名称", "Name", "text"),
    Column("district", "所属区", "District", "text"),
    Column("devices", "设备数", "Devices", "int"),
    Column("profile", "执行标准", "Profile", "text"),
    Column("size_class", "规模", "Size class", "text"),
    Column("limit_mg_m3", "油烟限值(mg/m³)", "Oil-fume limit (mg/m³)", "mg"),
    Column("purifier_min_efficiency_pct", "净化设施最低去除效率(%)", "Min. purifier efficiency (%)", "pct"),
    Column("windows", "监测窗口数", "Windows", "int"),
    Column("valid_windows", "有效窗口数", "Valid windows", "int"),
    Column("compliant_windows", "达标窗口数", "Compliant windows", "int"),
    Column("exceeding_windows", "超标窗口数", "Exceeding windows", "int"),
    Column("compliance_rate", "达标率", "Compliance rate", "rate"),
    Column("expected_windows", "应收窗口数(营业时间)", "Expected windows (business hours)", "int"),
    Column("samples", "实收数据条数(营业时间)", "Samples (business hours)", "int"),
    Column("expected_samples", "应收数据条数(营业时间)", "Expected samples (business hours)", "int"),
    Column("completeness", "数据完整率", "Data completeness", "rate"),
    Column("purifier_off_min", "净化器未开启(分钟)", "Purifier off (min)", "min"),
    Column("offline_min", "设备离线(分钟)", "Offline (min)", "min"),
    Column("exceedance_events", "超标事件数", "Exceedance events", "int"),
    Column("purifier_off_events", "净化器未开启事件数", "Purifier-off events", "int"),
    Column("offline_events", "离线事件数", "Offline events", "int"),
    Column("late_data_events", "数据迟到事件数", "Late-data events", "int"),
    Column("maintenance_reminder_events", "清洗提醒数(服务)", "Maintenance reminders (service)", "int"),
    Column("data_integrity_events", "数据可信性存疑数", "Data-integrity findings", "int"),
    Column("highest_level", "最高处置等级", "Highest level", "level"),
    Column("notices_sent", "已发通知数", "Notices sent", "int"),
)

#: Display labels (Chinese, English) of event kinds, ladder levels and event states.
KIND_LABELS = {
    "exceedance": ("超标排放", "exceedance"),
    "purifier_off": ("净化器未开启", "purifier off"),
    "offline": ("设备离线", "offline"),
    "late_data": ("数据迟到", "late data"),
    "maintenance_reminder": ("清洗提醒（非违法）", "maintenance reminder"),
    "data_integrity": ("数据可信性存疑（待核查）", "data integrity in doubt"),
}
LEVEL_LABELS = {
    "education": ("教育劝导", "education"),
    "warning": ("告诫", "warning"),
    "enforcement": ("执法", "enforcement"),
}
STATE_LABELS = {"open": ("进行中", "open"), "closed": ("已结束", "closed")}
POLLUTANT_LABELS = {"oil_fume": ("油烟", "oil fume"), "pm": ("颗粒物", "PM"), "nmhc": ("非甲烷总烃", "NMHC")}
#: Short labels of the judgement rules (:mod:`alerts.rules` has their full titles and sources; the
#: machine formats keep the rule's name). An event from before rules were recorded has none ("").
RULE_LABELS = {
    "gb18483": ("GB 18483 数据处理", "GB 18483 data treatment"),
    "consecutive": ("连续超标筛查", "consecutive windows"),
    "bypass": ("未开净化器", "purifier bypass"),
    "offline": ("营业时间离线", "offline in business hours"),
    "late": ("数据迟到", "late data"),
    "maintenance": ("清洗提醒规则", "maintenance reminder"),
    **CHECK_LABELS,  # the data-integrity checks (alerts/rules.py: one map for every view)
}

#: Reading field charted for each pollutant (oil fume is judged on the GB 18483-2001 reference value).
READING_FIELD = {"oil_fume": "oil_fume_ref_mg_m3", "pm": "pm_mg_m3", "nmhc": "nmhc_mg_m3"}


_JUDGED_POLLUTANT = "oil_fume"


@dataclass(slots=True)
class ChartData:
    """What one chart shows: concentration vs limit around one exceedance event.

    ``source`` is ``readings`` (``times_ms``/``values`` are the stored readings, reference-converted for
    oil fume) or ``evidence`` (the event's exceeding windows: ``times_ms`` are window starts, ``values``
    the window means, ``ends_ms`` the window ends and ``max_values`` the highest reading of each window).
    """

    event_id: str
    restaurant_id: str
    name: str
    district: str
    device_id: str
    pollutant: str
    start_ms: int
    end_ms: int  # the event's end, or the report's effective end for an open event
    open: bool
    limit_mg_m3: float | None
    peak_mg_m3: float | None
    source: str
    times_ms: np.ndarray
    values: np.ndarray
    ends_ms: np.ndarray | None = None
    max_values: np.ndarray | None = None


@dataclass(slots=True)
class Report:
    """A built report. ``events`` and ``summary`` are DataFrames with the keys of :data:`EVENT_COLUMNS`
    and :data:`SUMMARY_COLUMNS` (plus ``start_ms``/``end_ms`` in ``events``); times are timezone-aware
    in ``display_tz``."""

    since_ms: int
    until_ms: int
    display_tz: str
    district: str | None
    restaurant_id: str | None
    generated_ms: int
    events: pd.DataFrame
    summary: pd.DataFrame
    charts: list[ChartData] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The enforcement cases overlapping the period, as :func:`alerts.reports.cases.case_view` shows them.
    cases: list[dict[str, Any]] = field(default_factory=list)
    #: The maintenance reminders sent in the period and their outcomes (alerts/reports/reminders.py);
    #: None when the report was built without them.
    reminders: pd.DataFrame | None = None
    #: The data-integrity findings of the period (alerts/reports/integrity.py); None when the report was
    #: built without them.
    integrity: pd.DataFrame | None = None

    def totals(self) -> dict[str, Any]:
        """Headline numbers: restaurants, events per kind, overall compliance rate and completeness."""
        s = self.summary
        valid = int(s["valid_windows"].sum()) if len(s) else 0
        expected = int(s["expected_samples"].sum()) if len(s) else 0
        kinds = self.events["kind"].value_counts().to_dict() if len(self.events) else {}
        return {
            "restaurants": len(s),
            "events": {k: int(kinds.get(k, 0)) for k in EVENT_KINDS},
            "compliance_rate": (int(s["compliant_windows"].sum()) / valid) if valid else None,
            "completeness": (int(s["samples"].sum()) / expected) if expected else None,
            "restaurants_with_exceedance": int((s["exceedance_events"] > 0).sum()) if len(s) else 0,
            "cases": len(self.cases),
            "service": _service_totals(self.reminders),
            "integrity": _integrity_totals(self.integrity),
        }


def _service_totals(df: pd.DataFrame | None) -> dict[str, int]:
    """Reminders sent and their outcomes; ``known`` = those whose outcome is no longer pending."""
    counts = df["outcome"].value_counts().to_dict() if df is not None and len(df) else {}
    out = {"reminders": 0 if df is None else len(df), **{k: int(counts.get(k, 0)) for k in OUTCOMES}}
    out["known"] = out["reminders"] - out["pending"]
    return out


def _integrity_totals(df: pd.DataFrame | None) -> dict[str, Any]:
    """Data-integrity findings: how many, of how many restaurants, and how many of each check."""
    if df is None or not len(df):
        return {"findings": 0, "restaurants": 0, "checks": {}}
    return {
        "findings": len(df),
        "restaurants": int(df["restaurant_id"].nunique()),
        "checks": {str(k): int(v) for k, v in df["check"].value_counts().sort_index().items()},
    }
