"""The report's service section (优服务): the maintenance reminders sent in the period and what followed
each (:mod:`alerts.maintenance.outcomes`, up to the report's end or its generation, whichever is earlier).

Reminders are also events (kind ``maintenance_reminder``, labelled as service, not an offence, in the
events table and counted in the summary's ``maintenance_reminder_events``); this table adds the outcome:
back under the reminder's threshold, went on to exceed, still above, or pending.
"""

from __future__ import annotations

import pandas as pd

from alerts.detection.hours import BusinessHours
from alerts.ledger import Ledger
from alerts.maintenance.outcomes import outcomes
from alerts.reports.model import Column
from ingest.registry import Registry

REMINDER_COLUMNS: tuple[Column, ...] = (
    Column("restaurant_id", "餐饮单位编号", "Restaurant ID", "text"),
    Column("name", "单位名称", "Name", "text"),
    Column("district", "所属区", "District", "text"),
    Column("device_id", "监测设备", "Device", "text"),
    Column("time", "提醒时间", "Reminded", "time"),
    Column("basis", "提醒依据", "Basis", "basis"),
    Column("mean_mg_m3", "近期均值(mg/m³)", "Recent mean (mg/m³)", "mg"),
    Column("threshold_mg_m3", "提醒阈值(mg/m³)", "Threshold (mg/m³)", "mg"),
    Column("limit_mg_m3", "限值(mg/m³)", "Limit (mg/m³)", "mg"),
    Column("delivered", "已送达负责人", "Delivered to the owner", "yesno"),
    Column("services_after", "此后有效时段数", "Valid services since", "int"),
    Column("mean_after_mg_m3", "此后均值(mg/m³)", "Mean since (mg/m³)", "mg"),
    Column("outcome", "结果", "Outcome", "outcome"),
    Column("event_id", "事件编号", "Event ID", "text"),
)

OUTCOME_LABELS = {
    "pending": ("待观察（此后有效时段不足）", "pending (too few services since)"),
    "back_under": ("已回落（不再接近限值）", "back under (no longer near the limit)"),
    "exceeded": ("此后仍发生超标", "went on to exceed"),
    "still_above": ("仍接近限值或仍在上升", "still near the limit or rising"),
}
BASIS_LABELS = {"level": ("接近限值", "near the limit"), "trend": ("上升趋势", "rising trend")}


def reminders_frame(
    ledger: Ledger,
    registry: Registry,
    hours: BusinessHours,
    since_ms: int,
    until_ms: int,
    horizon_ms: int,
    tz: str,
    *,
    restaurant_id: str | None = None,
    district: str | None = None,
) -> pd.DataFrame:
    found = outcomes(
        ledger,
        hours,
        since_ms,
        until_ms,
        horizon_ms=horizon_ms,
        restaurant_id=restaurant_id,
        district=district,
    )
    sent = {
        n.event_id
        for n in ledger.notices_for_events(o.event.event_id for o in found)
        if n.channel == "owner" and n.status == "sent"
    }
    names = {d.restaurant_id: d.name for d in registry}
    rows = [
        {
            "restaurant_id": o.event.restaurant_id,
            "name": names.get(o.event.restaurant_id, ""),
            "district": o.event.district,
            "device_id": o.event.device_id,
            "time_ms": o.event.start_ms,
            "basis": o.event.judgement.get("basis", ""),
            "mean_mg_m3": o.event.mean_mg_m3,
            "threshold_mg_m3": o.threshold_mg_m3,
            "limit_mg_m3": o.event.limit_mg_m3,
            "delivered": "yes" if o.event.event_id in sent else "no",
            "services_after": o.services_after,
            "mean_after_mg_m3": o.mean_after_mg_m3,
            "outcome": o.outcome,
            "event_id": o.event.event_id,
        }
        for o in found
    ]
    df = pd.DataFrame(rows, columns=[c.key for c in REMINDER_COLUMNS if c.key != "time"] + ["time_ms"])
    df["time"] = pd.to_datetime(df["time_ms"].astype("int64"), unit="ms", utc=True).dt.tz_convert(tz)
    for key in ("mean_mg_m3", "threshold_mg_m3", "limit_mg_m3", "mean_after_mg_m3"):
        df[key] = df[key].astype("float64")
    df["services_after"] = df["services_after"].astype("int64")
    return df
