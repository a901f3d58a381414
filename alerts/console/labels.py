"""zh-CN labels of the console: statuses, outcomes, actions, conditions, and how a time is shown.

Only names are translated here; the rules themselves stay in :mod:`alerts.casework.lifecycle`. A value
without a label is shown as it is stored, so a new state never disappears from a page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ingest.timeutil import format_display, zone

STATUS = {
    "open": "待指派",
    "assigned": "已指派",
    "inspected": "已现场检查",
    "rectification_ordered": "责令整改中",
    "rechecked": "已复查",
    "closed": "已结案",
}
OUTCOME = {
    "rectified": "已整改",
    "penalized": "行政处罚",
    "not_punished": "免予处罚",
    "dismissed": "撤销案件",
    "served": "已现场送达",
    "not_rectified": "未整改到位",
}
ACTION = {
    "open": "立案",
    "assign": "指派",
    "inspect": "现场检查",
    "order_rectification": "责令整改",
    "recheck": "复查",
    "record_statement": "记录陈述申辩",
    "close": "结案",
    "attach": "上传附件",
    "review_submission": "审核业主整改材料",
    "owner_evidence": "业主在线提交整改材料",
    "owner_statement": "业主在线陈述申辩",
}
CONDITION = {
    "working": "正常运行",
    "not_working": "未运行",
    "bypassed": "被旁路（未经净化）",
    "absent": "未安装",
    "unknown": "无法确认",
}
CASE_TYPE = {
    "enforcement": "执法案件",
    "owner_unreachable": "现场送达任务（未联系上业主）",
    "rectification": "整改核查（业主在线提交）",
}
LEVEL = {"education": "劝导", "warning": "告诫", "enforcement": "执法"}
DISMISS_REASON = {
    "device_fault": "设备故障",
    "invalid_data": "数据无效",
    "duplicate": "重复案件",
    "other": "其他原因",
}
INVALID_REASON = {"incomplete": "样本不足", "fan_off": "风机未运行"}
TEMPLATE = {
    "education": "劝导通知",
    "warning": "告诫通知",
    "enforcement": "执法通知",
    "case": "立案通知",
    "closed": "事件结束通知",
    "offline": "设备离线通知",
    "owner_unreachable": "现场送达任务",
    "repeat": "整改期内再次发生",
    "restored": "恢复正常通知",
    "receipt": "业主提交回执",
    "maintenance_reminder": "清洗提醒",
    "data_integrity": "数据可信性核查",
    "opened": "事件通知",
}
ACTOR = {"system": "系统", "owner": "业主（专属页面）"}
#: notes fumewatch itself writes into a trail (alerts.ledger: the opening of a case)
SYSTEM_NOTE = {
    "enforcement step of the ladder": "处罚阶梯升至执法，系统自动立案",
    "owner not reached": "通知未能送达业主，系统生成现场送达任务",
    "the owner's submission through the owner page: review it (整改核查)": "业主通过专属页面提交材料，系统生成整改核查",
}
STATEMENT_FORM = {"written": "书面", "oral": "口头", "online": "网上提交（业主专属页面）"}
NOTICE_STATUS = {"pending": "待发送", "sent": "已发送", "failed": "发送失败", "skipped": "未发送"}
CHANNEL = {"owner": "业主", "inspector": "执法人员"}
EVENT_KIND = {
    "exceedance": "超标排放",
    "purifier_off": "净化器未开启",
    "offline": "设备离线",
    "late_data": "数据迟报",
    "owner_unreachable": "通知未送达业主",
    "maintenance_reminder": "清洗提醒（非违法）",
    "data_integrity": "数据可信性存疑（待核查）",
    "owner_submission": "业主在线提交",
}
EVENT_STATE = {"open": "进行中", "closed": "已结束"}
POLLUTANT = {"oil_fume": "油烟", "particulate": "颗粒物", "nmhc": "非甲烷总烃"}
FIELD = {
    "assignee": "承办人",
    "inspected_at": "检查时间",
    "findings": "检查情况",
    "purifier": "净化器",
    "fan": "风机",
    "attachments": "附件",
    "deadline": "整改期限",
    "requirements": "整改要求",
    "rechecked_at": "复查时间",
    "rectified": "是否整改到位",
    "statement": "陈述申辩内容",
    "form": "形式",
    "given_at": "陈述时间",
    "outcome": "结案结论",
    "decision_number": "处罚决定书文号",
    "amount_yuan": "罚款金额（元）",
    "exemption_item": "免罚清单事项",
    "dismiss_reason": "撤销原因",
    "attachment_id": "附件编号",
    "filename": "文件名",
    "sha256": "SHA-256",
    "submission_id": "提交编号",
    "link_id": "链接编号",
    "source": "来源",
    "submitted_at": "提交时间",
    "note": "说明",
    "sent": "原始文件（SHA-256、字节数）",
}
#: field -> its value labels, for the audit trail
VALUE_LABELS: dict[str, dict[str, str]] = {
    "purifier": CONDITION,
    "fan": CONDITION,
    "outcome": OUTCOME,
    "dismiss_reason": DISMISS_REASON,
    "form": STATEMENT_FORM,
    "source": {"owner_page": "业主专属页面"},
}


def label(table: dict[str, str], value: Any) -> str:
    if value is None or value == "":
        return ""
    return table.get(str(value), str(value))


def field_value(name: str, value: Any) -> str:
    """An audit-trail field as a person reads it."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    if isinstance(value, dict):  # the original files of an owner's upload: attachment -> sha256, bytes
        return "；".join(
            f"{k}: {v.get('sha256', '')[:16]}… {v.get('bytes', '')} B" if isinstance(v, dict) else f"{k}: {v}"
            for k, v in value.items()
        )
    if name in VALUE_LABELS:
        return label(VALUE_LABELS[name], value)
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        return local_text(value)
    return "" if value is None else str(value)


def local_text(value: Any, tz: str = "Asia/Shanghai") -> str:
    """``2026-11-20 10:00:00 +08:00`` from epoch ms or an RFC 3339 string (offset kept, never dropped)."""
    if value is None or value == "":
        return ""
    iso = format_display(int(value), tz) if isinstance(value, int | float) else str(value)
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(tz))
    off = dt.strftime("%z")
    return dt.strftime("%Y-%m-%d %H:%M:%S") + f" {off[:3]}:{off[3:]}"


def iso(value: Any, tz: str = "Asia/Shanghai") -> str:
    """RFC 3339 with offset (for ``<time datetime=...>``)."""
    if value is None or value == "":
        return ""
    return format_display(int(value), tz) if isinstance(value, int | float) else str(value)


def short_time(value: Any, tz: str = "Asia/Shanghai") -> str:
    """``11-20 10:00`` for chart axes."""
    if value is None:
        return ""
    return datetime.fromtimestamp(int(value) / 1000, zone(tz)).strftime("%m-%d %H:%M")


def local_input(ms: int, tz: str) -> str:
    """A ``datetime-local`` input value (``2026-11-20T10:00``) in the display zone."""
    return datetime.fromtimestamp(ms / 1000, zone(tz)).strftime("%Y-%m-%dT%H:%M")


def local_date(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, zone(tz)).strftime("%Y-%m-%d")


def offset_text(tz: str) -> str:
    off = datetime.now(zone(tz)).strftime("%z")
    return f"UTC{off[:3]}:{off[3:]}"


_FIELD_ORDER = {k: i for i, k in enumerate(FIELD)}


def trail_fields(fields: dict[str, Any]) -> list[tuple[str, Any]]:
    """The fields of an audit record a person reads (the local-time strings, not their epoch ms twins),
    in the order of the forms."""
    shown = [(k, v) for k, v in fields.items() if not k.endswith("_ms")]
    return sorted(shown, key=lambda kv: (_FIELD_ORDER.get(kv[0], len(_FIELD_ORDER)), kv[0]))


def span(start: Any, end: Any, tz: str = "Asia/Shanghai") -> str:
    """``2026-11-20 10:00:00–10:10:00 +08:00`` (one day, one offset) or two full times."""
    if end is None or end == "":
        return local_text(start, tz)
    a, b = local_text(start, tz), local_text(end, tz)
    if a[:10] == b[:10] and a[-6:] == b[-6:]:
        return f"{a[:-7]}–{b[11:]}"
    return f"{a} 至 {b}"


def number(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)
