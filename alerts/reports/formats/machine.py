"""Machine formats: csv (one table per file) and json, with the same keys."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd

from alerts.reports.cases import CASE_TABLES, case_tables
from alerts.reports.integrity import INTEGRITY_COLUMNS
from alerts.reports.model import EVENT_COLUMNS, SUMMARY_COLUMNS, Column, Report
from alerts.reports.reminders import REMINDER_COLUMNS

_ROUND = {"mg": 4, "min": 1, "rate": 4, "pct": 1, "flow": 1}


def _iso(s: pd.Series) -> pd.Series:
    out = s.dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"([+-]\d\d)(\d\d)$", r"\1:\2", regex=True)
    return out.where(s.notna(), None)


def machine_frame(df: pd.DataFrame, columns: Sequence[Column], extra: Sequence[str] = ()) -> pd.DataFrame:
    """The table with the csv/json representation of every column (RFC 3339 times, rounded floats)."""
    out = pd.DataFrame(index=df.index)
    for c in columns:
        s = df[c.key]
        if c.kind == "time":
            out[c.key] = _iso(s)
        elif c.kind == "num":  # nullable counts: ints where whole, None where not recorded
            vals = [None if pd.isna(v) else int(v) if float(v).is_integer() else float(v) for v in s]
            out[c.key] = pd.Series(vals, index=df.index, dtype=object)
        elif c.kind in _ROUND:
            out[c.key] = s.astype("float64").round(_ROUND[c.kind])
        else:
            out[c.key] = s
    for key in extra:
        out[key] = df[key]
    return out


def render_csv(report: Report, table: str = "events") -> bytes:
    if table in CASE_TABLES:
        df, cols = case_tables(report.cases, report.display_tz)[table], CASE_TABLES[table]
    elif table == "reminders":
        df, cols = _reminders(report), REMINDER_COLUMNS
    elif table == "integrity":
        df, cols = _integrity(report), INTEGRITY_COLUMNS
    else:
        df, cols = (report.events, EVENT_COLUMNS) if table == "events" else (report.summary, SUMMARY_COLUMNS)
    m = machine_frame(df, cols)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c.key for c in cols])
    for row in m.itertuples(index=False, name=None):
        w.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    obj = df.astype(object)
    return obj.where(df.notna(), None).to_dict("records")


def iso_local(ms: int, tz: str) -> str:
    """RFC 3339 in the display time zone: ``2026-11-26T12:00:00+08:00``."""
    from ingest.timeutil import ms_to_utc, zone

    return ms_to_utc(ms).astimezone(zone(tz)).isoformat(timespec="seconds")


def report_dict(report: Report) -> dict[str, Any]:
    """The json document (also what the API returns for ``format=json``)."""
    tz = report.display_tz
    ev = machine_frame(report.events, EVENT_COLUMNS, extra=("start_ms", "end_ms"))
    return {
        "since": iso_local(report.since_ms, tz),
        "until": iso_local(report.until_ms, tz),
        "since_ms": report.since_ms,
        "until_ms": report.until_ms,
        "display_tz": tz,
        "district": report.district,
        "restaurant": report.restaurant_id,
        "generated": iso_local(report.generated_ms, tz),
        "totals": report.totals(),
        "notes": list(report.notes),
        "events": _records(ev),
        "summary": _records(machine_frame(report.summary, SUMMARY_COLUMNS)),
        "reminders": _records(machine_frame(_reminders(report), REMINDER_COLUMNS, extra=("time_ms",))),
        "integrity": _records(
            machine_frame(_integrity(report), INTEGRITY_COLUMNS, extra=("start_ms", "end_ms", "judgement"))
        ),
        **_case_records(report),
    }


def _reminders(report: Report) -> pd.DataFrame:
    if report.reminders is not None:
        return report.reminders
    empty = pd.DataFrame({c.key: [] for c in REMINDER_COLUMNS} | {"time_ms": []})
    empty["time"] = pd.to_datetime(empty["time_ms"], unit="ms", utc=True)
    return empty


def _integrity(report: Report) -> pd.DataFrame:
    if report.integrity is not None:
        return report.integrity
    empty = pd.DataFrame(
        {c.key: [] for c in INTEGRITY_COLUMNS} | {"start_ms": [], "end_ms": [], "judgement": []}
    )
    for key in ("start", "end"):
        empty[key] = pd.to_datetime(empty[f"{key}_ms"], unit="ms", utc=True)
    return empty


def _case_records(report: Report) -> dict[str, list[dict[str, Any]]]:
    """The case tables (``cases``, ``case_events``, ``case_windows``, ``case_receipts``) with their times
    as epoch ms too."""
    out = {}
    for name, df in case_tables(report.cases, report.display_tz).items():
        extra = [k for k in df.columns if k.endswith("_ms")]
        out[name] = _records(machine_frame(df, CASE_TABLES[name], extra=extra))
    return out


def render_json(report: Report) -> bytes:
    return orjson.dumps(report_dict(report), option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
