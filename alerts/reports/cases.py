"""The enforcement cases of a report: the case records of the ledger (``cases`` table, built by
:func:`alerts.enforcement.ladder.build_case` and refreshed by
:func:`alerts.enforcement.notify.case_file.refresh_case`) overlapping the period, read in the report's
snapshot, as one view per case and as four flat tables for csv/json/xlsx.

A view (:func:`case_view`) holds the case header (step, level, status, period, deadline, owner delivery,
earlier steps), its events (rule and source, limit, C, Q, n, C_ref, fan/purifier states and the deciding
windows) and its receipts (every notice of the step's episodes). A case stored before the case file
existed has no ``step``/``episodes``/``receipts``: its own windows stand in for the events, and
``missing`` names what was not recorded; nothing is made up. Targets are masked and errors scrubbed once
more here (:func:`alerts.ledger.masking.mask_target` is idempotent). The receipts are read from the
notices table when the report is built (:func:`alerts.reports.snapshot._read_cases`), since the stored
record dates from its last refresh; the owner delivery follows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from alerts.ledger.masking import mask_target, scrub
from alerts.reports.model import Column
from ingest.registry import Registry

#: What an older case record may lack: (code, Chinese, English).
MISSING_TEXT = {
    "step": ("处置环节（期限、送达）", "ladder step (deadline, owner delivery)"),
    "episodes": ("各次超标过程及其事件", "episodes and their events"),
    "measures": ("实测浓度 C、风量 Q、灶头数 n、风机/净化器状态", "C, Q, n and fan/purifier states"),
    "receipts": ("通知回执", "notice receipts"),
    "history": ("此前处置环节", "earlier steps"),
}

CASE_COLUMNS: tuple[Column, ...] = (
    Column("case_id", "案件编号", "Case ID", "text"),
    Column("restaurant_id", "餐饮单位编号", "Restaurant ID", "text"),
    Column("name", "单位名称", "Name", "text"),
    Column("district", "所属区", "District", "text"),
    Column("level", "处置等级", "Escalation level", "level"),
    Column("step", "第几次", "Step", "num"),
    Column("status", "案件状态", "Case status", "text"),
    Column("start", "开始时间", "Start", "time"),
    Column("end", "结束时间", "End", "time"),
    Column("rule", "判定规则", "Rule", "rule"),
    Column("limit_mg_m3", "限值(mg/m³)", "Limit (mg/m³)", "mg"),
    Column("deadline", "整改期限", "Deadline", "time"),
    Column("owner_delivered", "告知已送达当事人", "Owner notice delivered", "yesno"),
    Column("events", "事件数", "Events", "int"),
    Column("windows", "窗口数", "Windows", "int"),
    Column("receipts", "通知回执数", "Receipts", "int"),
    Column("history", "此前处置", "Earlier steps", "text"),
    Column("missing", "未记录", "Not recorded", "text"),
)
CASE_EVENT_COLUMNS: tuple[Column, ...] = (
    Column("case_id", "案件编号", "Case ID", "text"),
    Column("episode_id", "超标过程", "Episode", "text"),
    Column("event_id", "事件编号", "Event ID", "text"),
    Column("kind", "事件类型", "Kind", "kind"),
    Column("pollutant", "污染物", "Pollutant", "pollutant"),
    Column("rule", "判定规则", "Rule", "rule"),
    Column("rule_source", "规则依据", "Rule source", "text"),
    Column("start", "开始时间", "Start", "time"),
    Column("end", "结束时间", "End", "time"),
    Column("limit_mg_m3", "限值(mg/m³)", "Limit (mg/m³)", "mg"),
    Column("peak_mg_m3", "峰值(窗口均值, mg/m³)", "Peak window mean (mg/m³)", "mg"),
    Column("mean_mg_m3", "均值(mg/m³)", "Mean (mg/m³)", "mg"),
    Column("c_mg_m3", "实测浓度 C(mg/m³)", "Measured C (mg/m³)", "mg"),
    Column("q_m3_h", "实测风量 Q(m³/h)", "Measured flow Q (m³/h)", "flow"),
    Column("n_heads", "基准灶头数 n", "Stove heads n", "num"),
    Column("c_ref_mg_m3", "基准风量折算浓度(mg/m³)", "Reference concentration C_ref (mg/m³)", "mg"),
    Column("c_ref_note", "折算说明", "Conversion note", "text"),
    Column("readings", "数据条数", "Readings", "num"),
    Column("unconverted", "未折算条数", "Unconverted readings", "num"),
    Column("fan_on", "风机开", "Fan on", "num"),
    Column("fan_off", "风机关", "Fan off", "num"),
    Column("fan_unknown", "风机未知", "Fan unknown", "num"),
    Column("purifier_on", "净化器开", "Purifier on", "num"),
    Column("purifier_off", "净化器关", "Purifier off", "num"),
    Column("purifier_unknown", "净化器未知", "Purifier unknown", "num"),
)
CASE_WINDOW_COLUMNS: tuple[Column, ...] = (
    Column("case_id", "案件编号", "Case ID", "text"),
    Column("event_id", "事件编号", "Event ID", "text"),
    Column("device_id", "监测设备", "Device", "text"),
    Column("start", "窗口开始", "Window start", "time"),
    Column("end", "窗口结束", "Window end", "time"),
    Column("mean_mg_m3", "均值(mg/m³)", "Mean (mg/m³)", "mg"),
    Column("max_mg_m3", "最大值(mg/m³)", "Max (mg/m³)", "mg"),
    Column("samples", "实收条数", "Samples", "num"),
    Column("expected", "应收条数", "Expected", "num"),
    Column("valid", "有效", "Valid", "yesno"),
    Column("invalid_reason", "无效原因", "Invalid reason", "text"),
    Column("exceeds", "超标", "Exceeds", "yesno"),
    Column("in_group", "属超标判定组", "In an exceeding group", "yesno"),
    Column("unconverted", "未折算条数", "Unconverted", "num"),
)
CASE_RECEIPT_COLUMNS: tuple[Column, ...] = (
    Column("case_id", "案件编号", "Case ID", "text"),
    Column("time", "时间", "Time", "time"),
    Column("event_id", "事件编号", "Event ID", "text"),
    Column("action", "动作", "Action", "text"),
    Column("channel", "渠道", "Channel", "text"),
    Column("target", "接收方(已脱敏)", "Target (masked)", "text"),
    Column("template", "通知模板", "Template", "text"),
    Column("status", "送达状态", "Status", "text"),
    Column("attempts", "尝试次数", "Attempts", "num"),
    Column("error", "错误", "Error", "text"),
)
#: The flat case tables: csv ``table=`` name -> columns.
CASE_TABLES: dict[str, tuple[Column, ...]] = {
    "cases": CASE_COLUMNS,
    "case_events": CASE_EVENT_COLUMNS,
    "case_windows": CASE_WINDOW_COLUMNS,
    "case_receipts": CASE_RECEIPT_COLUMNS,
}


def _yesno(v: Any) -> str:
    return "" if v is None else ("yes" if v else "no")


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _in_group(w: Mapping[str, Any], groups: list[Mapping[str, Any]]) -> bool | None:
    if not groups or w.get("start_ms") is None:
        return None
    return any(
        g.get("exceeds") and g["start_ms"] <= w["start_ms"] and w.get("end_ms", w["start_ms"]) <= g["end_ms"]
        for g in groups
        if g.get("start_ms") is not None and g.get("end_ms") is not None
    )


def _window(w: Mapping[str, Any], groups: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "device_id": w.get("device_id", ""),
        "start_ms": w.get("start_ms"),
        "end_ms": w.get("end_ms"),
        "mean_mg_m3": w.get("mean_mg_m3"),
        "max_mg_m3": w.get("max_mg_m3"),
        "samples": _int(w.get("samples")),
        "expected": _int(w.get("expected")),
        "valid": w.get("valid"),
        "invalid_reason": w.get("invalid_reason") or "",
        "exceeds": w.get("exceeds"),
        "in_group": _in_group(w, groups),
        "unconverted": _int(w.get("unconverted")) or 0,
    }


def _event(e: Mapping[str, Any], episode_id: str) -> dict[str, Any]:
    groups = list((e.get("judgement") or {}).get("groups") or [])
    return {
        "episode_id": episode_id,
        "event_id": e.get("event_id", ""),
        "kind": e.get("kind", ""),
        "pollutant": e.get("pollutant") or "",
        "rule": e.get("rule") or "",
        "rule_title": e.get("rule_title") or "",
        "rule_source": e.get("rule_source") or "",
        "state": e.get("state") or "",
        "start_ms": e.get("start_ms"),
        "end_ms": e.get("end_ms"),
        "limit_mg_m3": e.get("limit_mg_m3"),
        "peak_mg_m3": e.get("peak_mg_m3"),
        "mean_mg_m3": e.get("mean_mg_m3"),
        "measures": e.get("measures"),  # None: not recorded
        "groups": len(groups),
        "windows": [_window(w, groups) for w in e.get("windows") or []],
    }


def case_view(record: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """One case record as the report shows it (see the module docstring); ``names``: restaurant -> name."""
    step = record.get("step") or None
    missing: list[str] = []
    if not step:
        missing.append("step")
    events: list[dict[str, Any]] = []
    for p in record.get("episodes") or []:
        events += [_event(e, p.get("episode_id", "")) for e in p.get("events") or []]
    if not events:
        missing.append("episodes")
        ev = record.get("evidence") or {}
        lead = {**record, "windows": ev.get("windows") or [], "judgement": ev.get("judgement") or {}}
        lead.pop("measures", None)
        events = [_event(lead, "")]
    if any(e["measures"] is None for e in events):
        missing.append("measures")
    receipts = [
        {
            "time_ms": r.get("updated_ms") or r.get("created_ms"),
            "event_id": r.get("event_id", ""),
            "action": r.get("action", ""),
            "channel": r.get("channel", ""),
            "target": mask_target(str(r.get("target") or "")),
            "template": r.get("template") or "",
            "status": r.get("status", ""),
            "attempts": _int(r.get("attempts")),
            "error": scrub(str(r.get("error") or "")),
        }
        for r in record.get("receipts") or []
    ]
    if not receipts and not step:  # a case from before the receipts were kept
        missing.append("receipts")
    if "history" not in record or (not record.get("history") and not step):
        missing.append("history")
    delivery = dict((step or {}).get("owner_delivery") or {})
    owner = [r for r in receipts if (r["channel"], r["action"], r["status"]) == ("owner", "opened", "sent")]
    if step and owner:  # the stored delivery dates from the case's last refresh; the receipts are current
        delivery.update(delivered=True, delivered_ms=min(r["time_ms"] for r in owner))
    rid = record.get("restaurant_id", "")
    return {
        "case_id": record.get("case_id", ""),
        "restaurant_id": rid,
        "name": names.get(rid, ""),
        "district": record.get("district", ""),
        "status": record.get("status", ""),
        "level": (step or {}).get("level") or record.get("level", ""),
        "step": (step or {}).get("step", record.get("occurrence")),
        "episode_id": (step or {}).get("episode_id", ""),
        "start_ms": record.get("start_ms"),
        "end_ms": record.get("end_ms"),
        "rule": record.get("rule") or "",
        "limit_mg_m3": record.get("limit_mg_m3"),
        "deadline_ms": (step or {}).get("deadline_ms"),
        "owner_delivered": delivery.get("delivered") if step else None,
        "owner_delivered_ms": delivery.get("delivered_ms"),
        "history": [
            {
                "level": h.get("level", ""),
                "step": h.get("step"),
                "start_ms": h.get("start_ms"),
                "delivered": h.get("delivered"),
                "delivered_ms": h.get("delivered_ms"),
            }
            for h in record.get("history") or []
        ],
        "events": events,
        "receipts": sorted(receipts, key=lambda r: (r["time_ms"] or 0, r["channel"])),
        "missing": missing,
    }


def case_views(records: Iterable[Mapping[str, Any]], registry: Registry) -> list[dict[str, Any]]:
    names = {d.restaurant_id: d.name for d in registry}
    return [case_view(r, names) for r in records]


def missing_text(codes: Iterable[str], *, cjk: bool = True) -> str:
    parts = [MISSING_TEXT[c][0] + " " + MISSING_TEXT[c][1] if cjk else MISSING_TEXT[c][1] for c in codes]
    return "; ".join(parts)


def _history_text(case: Mapping[str, Any], tz: str) -> str:
    from alerts.reports.timetext import local_text

    out = []
    for h in case["history"]:
        when = local_text(h["start_ms"], tz) if h["start_ms"] is not None else "?"
        got = "delivered" if h["delivered"] else "not delivered"
        out.append(f"{h['level']} {when} {got}")
    return "; ".join(out)


def _measure(m: Mapping[str, Any] | None, *path: str) -> Any:
    v: Any = m
    for p in path:
        if not isinstance(v, Mapping):
            return None
        v = v.get(p)
    return v


def c_ref_note(e: Mapping[str, Any], cjk: bool = True) -> str:
    """Why C_ref is blank (or leaves readings out), bilingual (English only without ``cjk``); '' when
    there is nothing to say."""
    m = e["measures"]
    if m is None:
        zh, en = "未记录", "not recorded"
    elif not m.get("readings"):
        zh, en = "无实测数据", f"no readings ({m.get('source', '')})"
    elif m.get("c_ref_mg_m3") is None and not m.get("q_m3_h"):
        zh, en = "风量未知，未折算", "flow unknown, not converted"
    elif m.get("unconverted"):
        zh, en = (
            f"{m['unconverted']} 条无风量未折算",
            f"{m['unconverted']} readings without flow not converted",
        )
    else:
        return ""
    return f"{zh} {en}" if cjk else en


def _times(df: pd.DataFrame, tz: str, pairs: Mapping[str, str]) -> pd.DataFrame:
    for out, src in pairs.items():
        ms = pd.to_numeric(df[src], errors="coerce") if len(df) else pd.Series(dtype="float64")
        df[out] = pd.to_datetime(ms, unit="ms", utc=True).dt.tz_convert(tz)
    return df


def _frame(rows: list[dict[str, Any]], columns: tuple[Column, ...], tz: str, times: dict[str, str]):
    keys = [c.key for c in columns if c.key not in times] + list(times.values())
    df = pd.DataFrame(rows, columns=list(dict.fromkeys(keys)))
    return _times(df, tz, times)


def case_tables(cases: list[dict[str, Any]], tz: str) -> dict[str, pd.DataFrame]:
    """The four flat tables (keys of :data:`CASE_TABLES`); times timezone-aware in ``tz``."""
    heads, evs, wins, recs = [], [], [], []
    for c in cases:
        heads.append(
            {
                **{k: c[k] for k in ("case_id", "restaurant_id", "name", "district", "level", "status")},
                **{k: c[k] for k in ("step", "rule", "limit_mg_m3", "start_ms", "end_ms", "deadline_ms")},
                "owner_delivered": _yesno(c["owner_delivered"]),
                "events": len(c["events"]),
                "windows": sum(len(e["windows"]) for e in c["events"]),
                "receipts": len(c["receipts"]),
                "history": _history_text(c, tz),
                "missing": missing_text(c["missing"]),
            }
        )
        for e in c["events"]:
            m = e["measures"]
            row = {k: e[k] for k in ("episode_id", "event_id", "kind", "pollutant", "rule", "rule_source")}
            row.update({k: e[k] for k in ("start_ms", "end_ms", "limit_mg_m3", "peak_mg_m3", "mean_mg_m3")})
            row.update({k: _measure(m, k) for k in ("c_mg_m3", "q_m3_h", "n_heads", "c_ref_mg_m3")})
            row.update(readings=_measure(m, "readings"), unconverted=_measure(m, "unconverted"))
            for dev in ("fan", "purifier"):
                row.update({f"{dev}_{s}": _measure(m, dev, s) for s in ("on", "off", "unknown")})
            evs.append({"case_id": c["case_id"], **row, "c_ref_note": c_ref_note(e)})
            for w in e["windows"]:
                wins.append(
                    {
                        "case_id": c["case_id"],
                        "event_id": e["event_id"],
                        **w,
                        **{k: _yesno(w[k]) for k in ("valid", "exceeds", "in_group")},
                    }
                )
        recs += [{"case_id": c["case_id"], **r} for r in c["receipts"]]
    span = {"start": "start_ms", "end": "end_ms"}
    return {
        "cases": _frame(heads, CASE_COLUMNS, tz, {**span, "deadline": "deadline_ms"}),
        "case_events": _frame(evs, CASE_EVENT_COLUMNS, tz, span),
        "case_windows": _frame(wins, CASE_WINDOW_COLUMNS, tz, span),
        "case_receipts": _frame(recs, CASE_RECEIPT_COLUMNS, tz, {"time": "time_ms"}),
    }
