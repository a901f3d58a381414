"""The report's data-integrity section (数据可信性存疑（待核查）): the ``data_integrity`` findings of the period,
per restaurant (alerts/integrity, docs/integrity.md).

Findings are events (kind ``data_integrity``, rule = the check); the events table lists them too and the
summary counts them in ``data_integrity_events``. This table, read from the ledger the same way
(:meth:`alerts.ledger.Ledger.list_events`: the events overlapping the period, the same filters), adds the
check's label (:data:`alerts.rules.CHECK_LABELS`) and the evidence in words
(:func:`alerts.findings.evidence_text`). They are screening findings for inspectors, not offences, and
never on the ladder (:data:`alerts.findings.NOTE`, printed at the head of the section).
"""

from __future__ import annotations

import pandas as pd

from alerts.findings import evidence_text
from alerts.ledger import Ledger
from alerts.model import DATA_INTEGRITY
from alerts.reports.model import Column
from ingest.registry import Registry

INTEGRITY_COLUMNS: tuple[Column, ...] = (
    Column("restaurant_id", "餐饮单位编号", "Restaurant ID", "text"),
    Column("name", "单位名称", "Name", "text"),
    Column("district", "所属区", "District", "text"),
    Column("device_id", "监测设备", "Device", "text"),
    Column("check", "筛查项", "Check", "check"),
    Column("start", "开始时间", "Start", "time"),
    Column("end", "结束时间", "End", "time"),
    Column("minutes", "时长(分钟)", "Minutes", "min"),
    Column("evidence", "依据", "Evidence", "evidence"),
    Column("evidence_en", "依据(英文)", "Evidence (English)", "text"),
    Column("event_id", "事件编号", "Event ID", "text"),
)
#: The html table: the evidence cell carries both languages (the ``evidence`` kind).
HTML_COLUMNS = tuple(c for c in INTEGRITY_COLUMNS if c.key != "evidence_en")


def integrity_frame(
    ledger: Ledger,
    registry: Registry,
    since_ms: int,
    until_ms: int,
    tz: str,
    *,
    restaurant_id: str | None = None,
    district: str | None = None,
) -> pd.DataFrame:
    """One row per finding overlapping ``[since_ms, until_ms)``, by restaurant, then start; times in
    ``tz``. Extra columns: ``start_ms``, ``end_ms``, ``judgement`` (the event's, for json)."""
    found = ledger.list_events(
        since_ms=since_ms,
        until_ms=until_ms,
        restaurant_id=restaurant_id,
        district=district,
        kind=DATA_INTEGRITY,
    )
    names = {d.restaurant_id: d.name for d in registry}
    rows = []
    for e in found:
        check = e.rule or str(e.judgement.get("check", ""))
        minutes = e.judgement.get("minutes")
        if not isinstance(minutes, int | float) and e.end_ms is not None:
            minutes = (e.end_ms - e.start_ms) / 60_000
        rows.append(
            {
                "restaurant_id": e.restaurant_id,
                "name": names.get(e.restaurant_id, ""),
                "district": e.district,
                "device_id": e.device_id,
                "check": check,
                "start_ms": e.start_ms,
                "end_ms": e.end_ms,
                "minutes": minutes,
                "evidence": evidence_text(e.judgement, "zh", check, tz),
                "evidence_en": evidence_text(e.judgement, "en", check, tz),
                "event_id": e.event_id,
                "judgement": e.judgement,
            }
        )
    rows.sort(key=lambda r: (r["restaurant_id"], r["start_ms"], r["event_id"]))
    keys = [c.key for c in INTEGRITY_COLUMNS if c.kind != "time"] + ["start_ms", "end_ms", "judgement"]
    df = pd.DataFrame(rows, columns=keys)
    for key in ("start", "end"):  # an open finding (none today: they are closed at once) has no end
        df[f"{key}_ms"] = df[f"{key}_ms"].astype("Int64")
        ms = df[f"{key}_ms"].astype("float64")
        df[key] = pd.to_datetime(ms, unit="ms", utc=True).dt.tz_convert(tz)
    df["minutes"] = df["minutes"].astype("float64")
    return df[[c.key for c in INTEGRITY_COLUMNS] + ["start_ms", "end_ms", "judgement"]]
