"""The words of the case file (执法案卷): Chinese labels with their English, for the codes the ledger
stores (statuses, outcomes, actions, conditions, notice channels and templates), and the one-line text of
an audit record's fields. Every time here is local in the display zone with its offset
(``2026-12-01T10:30:00+08:00``). Nothing is added that the record does not hold: an unknown code is
shown as it is stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.rules import CHECK_LABELS
from ingest.timeutil import format_display

#: (Chinese, English) of each code, by kind.
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "status": {
        "open": ("待处理", "open"),
        "assigned": ("已指派", "assigned"),
        "inspected": ("已现场检查", "inspected"),
        "rectification_ordered": ("已责令整改", "rectification ordered"),
        "rechecked": ("已复查", "rechecked"),
        "closed": ("已结案", "closed"),
    },
    "outcome": {
        "rectified": ("整改到位", "rectified"),
        "penalized": ("行政处罚", "penalized"),
        "not_punished": ("免予处罚（免罚清单）", "not punished"),
        "dismissed": ("撤销案件", "dismissed"),
        "served": ("已现场送达", "served on site"),
        "not_rectified": ("未整改到位", "not rectified"),
    },
    "action": {
        "open": ("立案", "opened"),
        "assign": ("指派承办人", "assign"),
        "attach": ("上传附件", "attach"),
        "inspect": ("现场检查", "inspect"),
        "order_rectification": ("责令整改", "order rectification"),
        "recheck": ("复查", "recheck"),
        "record_statement": ("记录陈述、申辩", "statement"),
        "close": ("结案", "close"),
        "owner_evidence": ("当事人网上提交整改材料", "owner's evidence"),
        "owner_statement": ("当事人网上陈述、申辩", "owner's statement"),
        "review_submission": ("审核当事人材料", "review of the owner's evidence"),
    },
    "condition": {
        "working": ("正常运行", "working"),
        "not_working": ("未正常运行", "not working"),
        "bypassed": ("被旁路", "bypassed"),
        "absent": ("未安装", "absent"),
        "unknown": ("未查明", "unknown"),
    },
    "dismiss": {
        "device_fault": ("设备故障", "device fault"),
        "invalid_data": ("数据无效", "invalid data"),
        "duplicate": ("重复案件", "duplicate"),
        "other": ("其他", "other"),
    },
    "case_type": {
        "enforcement": ("执法案件", "enforcement"),
        "owner_unreachable": ("无法联系当事人（现场送达）", "owner unreachable"),
        "rectification": ("整改核查", "rectification check"),
    },
    "check": CHECK_LABELS,  # the data-integrity checks (alerts/rules.py: one map for every view)
    "channel": {
        "owner": ("当事人", "owner"),
        "inspector": ("执法人员", "inspector"),
        "mqtt": ("MQTT", "mqtt"),
    },
    "notice_status": {
        "sent": ("已发送", "sent"),
        "failed": ("发送失败", "failed"),
        "pending": ("待发送", "pending"),
        "skipped": ("未发送", "skipped"),
    },
    "template": {
        "education": ("教育劝导告知", "education"),
        "warning": ("告诫通知", "warning"),
        "enforcement": ("移交执法告知", "enforcement"),
        "case": ("执法案件通知", "case"),
        "repeat": ("重复超标提示", "repeat"),
        "owner_unreachable": ("无法送达任务", "owner unreachable"),
        "closed": ("结束告知", "closed"),
        "offline": ("离线告知", "offline"),
        "restored": ("恢复告知", "restored"),
    },
    "form": {"written": ("书面", "written"), "oral": ("口头", "oral")},
    "kind": {
        "exceedance": ("超标排放", "exceedance"),
        "purifier_off": ("净化器未开启", "purifier off"),
        "offline": ("设备离线", "offline"),
        "late_data": ("数据迟到", "late data"),
        "owner_unreachable": ("无法联系当事人", "owner unreachable"),
    },
    "level": {
        "education": ("教育劝导", "education"),
        "warning": ("告诫", "warning"),
        "enforcement": ("执法", "enforcement"),
    },
}

#: Field names of audit records -> (Chinese, English), in the order they are shown.
FIELD_NAMES: dict[str, tuple[str, str]] = {
    "assignee": ("承办人", "assignee"),
    "inspected_at_ms": ("检查时间", "inspected at"),
    "rechecked_at_ms": ("复查时间", "rechecked at"),
    "given_at_ms": ("陈述时间", "given at"),
    "purifier": ("净化器", "purifier"),
    "fan": ("风机", "fan"),
    "rectified": ("是否整改到位", "rectified"),
    "deadline": ("整改期限", "deadline"),
    "requirements": ("整改要求", "requirements"),
    "findings": ("检查情况", "findings"),
    "form": ("形式", "form"),
    "statement": ("陈述、申辩内容", "statement"),
    "outcome": ("结案结果", "outcome"),
    "decision_number": ("行政处罚决定书文号", "decision number"),
    "amount_yuan": ("罚款金额", "amount"),
    "exemption_item": ("适用免罚清单事项", "exemption item"),
    "dismiss_reason": ("撤销原因", "dismiss reason"),
    "attachment_id": ("附件编号", "attachment"),
    "filename": ("文件名", "filename"),
    "sha256": ("SHA-256", "SHA-256"),
    "attachments": ("照片/附件", "attachments"),
}
_FIELD_KIND = {
    "purifier": "condition",
    "fan": "condition",
    "form": "form",
    "outcome": "outcome",
    "dismiss_reason": "dismiss",
}


def label(kind: str, code: Any, cjk: bool = True) -> str:
    """``"中文 english"`` of a stored code (English only without a Chinese font); the code itself when it
    is not known, "–" when empty."""
    if code is None or code == "":
        return "–"
    zh, en = LABELS.get(kind, {}).get(str(code), (str(code), str(code)))
    if not cjk:
        return en
    return zh if zh == en else f"{zh} {en}"


def local(ms: Any, tz: str, empty: str = "–") -> str:
    """Epoch ms as local ISO 8601 with the offset; ``empty`` when there is none."""
    return format_display(int(ms), tz) if isinstance(ms, int | float) and not isinstance(ms, bool) else empty


def yes_no(v: Any, cjk: bool = True) -> str:
    if v is None:
        return "–"
    if cjk:
        return "是 yes" if v else "否 no"
    return "yes" if v else "no"


def yuan(v: Any) -> str:
    return "–" if v is None else f"{float(v):,.2f} 元 yuan"


def field_value(
    key: str, value: Any, tz: str, cjk: bool = True, names: Mapping[str, str] | None = None
) -> str:
    """One field of an audit record as text: times local, codes labelled, photos by file name."""
    if key.endswith("_ms"):
        return local(value, tz)
    if key in _FIELD_KIND:
        return label(_FIELD_KIND[key], value, cjk)
    if key == "rectified":
        return yes_no(value, cjk)
    if key == "amount_yuan":
        return yuan(value)
    if key == "attachments" and isinstance(value, list):
        names = names or {}
        return "; ".join(f"{a} ({names[a]})" if a in names else str(a) for a in value) or "–"
    return "–" if value is None or value == "" else str(value)


def fields_text(
    fields: Mapping[str, Any], tz: str, cjk: bool = True, names: Mapping[str, str] | None = None
) -> str:
    """All fields of an audit record, ``名称: 值`` joined by ``；`` (known fields first, in order, then any
    other stored field as it is)."""
    keys = [k for k in FIELD_NAMES if k in fields] + sorted(k for k in fields if k not in FIELD_NAMES)
    # a presented action carries each time twice (``x_ms`` and ``x``): show the local one once
    keys = [k for k in keys if not (f"{k}_ms" in fields and not k.endswith("_ms"))]
    parts = []
    for k in keys:
        zh, en = FIELD_NAMES.get(k, (k, k))
        parts.append(f"{zh if cjk else en}: {field_value(k, fields[k], tz, cjk, names)}")
    return "；".join(parts) if cjk else "; ".join(parts)
