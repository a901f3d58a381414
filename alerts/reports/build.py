"""Build an exceedance report: the events table, the per-restaurant summary and the chart data.

Everything comes from the alerts state database (``events``, ``notices``, ``windows``) and the registry,
read in one SQLite read transaction (a consistent snapshot while the alerts service keeps writing). Raw
readings are read only around the charted events (``store.query`` for one device and a few hours each).
The windows are aggregated in SQLite (``GROUP BY device_id`` over the primary key), never row by row in
Python: a month of 1,000 restaurants is 4.3 million 10-minute windows.

Definitions (per restaurant, over the report period ``[since, until)``):

- windows: the oil-fume windows of the restaurant's devices whose start lies in the period;
- compliance rate = compliant valid windows / valid windows (blank when there is no valid window);
- data completeness = samples received / samples expected, summed over those windows; a restaurant with
  no window at all in the period has completeness 0 (expected = its devices x the period's windows x the
  samples expected per window);
- purifier-off and offline minutes: the ``purifier_off`` / ``offline`` events clipped to the period (an
  open event counts up to the report time or the period end, whichever is earlier);
- events per kind: events overlapping the period (same rule as :meth:`alerts.ledger.Ledger.list_events`:
  ``start < until`` and ``end >= since`` or still open);
- notices sent: notice-ledger rows with status ``sent`` for those events (every channel and transition).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alerts.detection.window import DetectorConfig
from alerts.ledger import _EVENT_COLUMNS, SENT, Ledger
from alerts.model import EVENT_KINDS, EXCEEDANCE, LEVELS, OFFLINE, PURIFIER_OFF
from alerts.profiles import DEFAULT_PROFILE, Profile, ProfileError, Profiles, load_profiles
from ingest.registry import Device, Registry
from ingest.store.base import Store
from ingest.timeutil import now_ms, zone


class ReportError(ValueError):
    """Bad report parameters (period, time zone, unknown district or restaurant); the message says which."""


@dataclass(frozen=True, slots=True)
class Column:
    """One report column: machine key (CSV/JSON), Chinese and English headings, and its value kind."""

    key: str
    zh: str
    en: str
    kind: str  # text | time | int | min | mg | rate | pct | kind | level | state


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("restaurant_id", "餐饮单位编号", "Restaurant ID", "text"),
    Column("name", "单位名称", "Name", "text"),
    Column("district", "所属区", "District", "text"),
    Column("device_id", "监测设备", "Device", "text"),
    Column("kind", "事件类型", "Kind", "kind"),
    Column("pollutant", "污染物", "Pollutant", "text"),
    Column("start", "开始时间", "Start", "time"),
    Column("end", "结束时间", "End", "time"),
    Column("duration_min", "持续时长(分钟)", "Duration (min)", "min"),
    Column("peak_mg_m3", "峰值(窗口均值, mg/m³)", "Peak window mean (mg/m³)", "mg"),
    Column("mean_mg_m3", "均值(mg/m³)", "Mean (mg/m³)", "mg"),
    Column("limit_mg_m3", "限值(mg/m³)", "Limit (mg/m³)", "mg"),
    Column("profile", "执行标准", "Profile", "text"),
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
    Column("samples", "实收数据条数", "Samples", "int"),
    Column("expected_samples", "应收数据条数", "Expected samples", "int"),
    Column("completeness", "数据完整率", "Data completeness", "rate"),
    Column("purifier_off_min", "净化器未开启(分钟)", "Purifier off (min)", "min"),
    Column("offline_min", "设备离线(分钟)", "Offline (min)", "min"),
    Column("exceedance_events", "超标事件数", "Exceedance events", "int"),
    Column("purifier_off_events", "净化器未开启事件数", "Purifier-off events", "int"),
    Column("offline_events", "离线事件数", "Offline events", "int"),
    Column("late_data_events", "数据迟到事件数", "Late-data events", "int"),
    Column("highest_level", "最高处置等级", "Highest level", "level"),
    Column("notices_sent", "已发通知数", "Notices sent", "int"),
)

#: Display labels (Chinese, English) of event kinds, ladder levels and event states.
KIND_LABELS = {
    "exceedance": ("超标排放", "exceedance"),
    "purifier_off": ("净化器未开启", "purifier off"),
    "offline": ("设备离线", "offline"),
    "late_data": ("数据迟到", "late data"),
}
LEVEL_LABELS = {
    "education": ("教育劝导", "education"),
    "warning": ("告诫", "warning"),
    "enforcement": ("执法", "enforcement"),
}
STATE_LABELS = {"open": ("进行中", "open"), "closed": ("已结束", "closed")}

#: Reading field charted for each pollutant (oil fume is judged on the GB 18483-2001 reference value).
READING_FIELD = {"oil_fume": "oil_fume_ref_mg_m3", "pm": "pm_mg_m3", "nmhc": "nmhc_mg_m3"}

#: The events table's columns, less the evidence JSON (not needed for the tables).
_EVENT_SQL_COLUMNS = tuple(c for c in _EVENT_COLUMNS if c != "evidence")
_WINDOW_TOTALS = (
    "windows",
    "samples",
    "expected_samples",
    "valid_windows",
    "compliant_windows",
    "exceeding_windows",
)
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
        }


# ---------------------------------------------------------------------------------------------------------
# State database access (one read snapshot)
# ---------------------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        return self.conn.execute(sql, tuple(args)).fetchall()


@contextmanager
def _snapshot(ledger: Ledger) -> Iterator[_Reader]:
    """A read-only connection to the ledger's file inside one read transaction (a consistent snapshot).

    An in-memory ledger (tests) is read through its own connection under its lock.
    """
    if ledger.path == ":memory:":
        with ledger._lock:  # noqa: SLF001 - same package; an in-memory database has no second connection
            yield _Reader(ledger._conn)  # noqa: SLF001
        return
    conn = sqlite3.connect(ledger.path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only=1")
        conn.execute("BEGIN")
        yield _Reader(conn)
        conn.execute("COMMIT")
    finally:
        conn.close()


def check_filters(
    ledger: Ledger, registry: Registry, district: str | None, restaurant_id: str | None
) -> None:
    """Raise :class:`ReportError` when ``district`` or ``restaurant_id`` is known neither to the registry
    nor to the events of the state database (a typo must not give an empty report that looks clean)."""
    with _snapshot(ledger) as db:
        if district is not None and not any(d.district == district for d in registry):
            if not db.rows("SELECT 1 FROM events WHERE district = ? LIMIT 1", (district,)):
                known = sorted({d.district for d in registry})
                shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
                raise ReportError(f"unknown district {district!r}; known: {shown}")
        if restaurant_id is not None and not any(d.restaurant_id == restaurant_id for d in registry):
            if not db.rows("SELECT 1 FROM events WHERE restaurant_id = ? LIMIT 1", (restaurant_id,)):
                raise ReportError(
                    f"unknown restaurant {restaurant_id!r} (not in the registry nor in any event)"
                )


def _read_events(db: _Reader, since_ms: int, until_ms: int, restaurant_id: str | None, district: str | None):
    # The overlap rule of Ledger.list_events, in this snapshot and without parsing every evidence list.
    where = "(end_ms IS NULL OR end_ms >= ?) AND start_ms < ?"
    args: list[Any] = [since_ms, until_ms]
    for col, val in (("restaurant_id", restaurant_id), ("district", district)):
        if val is not None:
            where += f" AND {col} = ?"
            args.append(val)
    events = db.rows(
        f"SELECT {', '.join(_EVENT_SQL_COLUMNS)} FROM events WHERE {where} ORDER BY start_ms, event_id", args
    )
    where_n = (
        "(e.end_ms IS NULL OR e.end_ms >= ?) AND e.start_ms < ?"
        + (" AND e.restaurant_id = ?" if restaurant_id is not None else "")
        + (" AND e.district = ?" if district is not None else "")
    )
    notices = db.rows(
        "SELECT n.event_id, COUNT(*) FROM notices n JOIN events e ON e.event_id = n.event_id "
        f"WHERE n.status = ? AND {where_n} GROUP BY n.event_id",
        [SENT, *args],
    )
    return events, dict(notices)


def _window_devices(db: _Reader) -> list[str]:
    """Every device id in the windows table: a skip-scan over the primary key (one seek per device)."""
    out: list[str] = []
    row = db.rows("SELECT MIN(device_id) FROM windows")
    while row and row[0][0] is not None:
        out.append(row[0][0])
        row = db.rows("SELECT MIN(device_id) FROM windows WHERE device_id > ?", (out[-1],))
    return out


def _window_totals(db: _Reader, device_ids: list[str], since_ms: int, until_ms: int) -> pd.DataFrame:
    """Per device: windows, samples, expected, valid, compliant, exceeding (oil-fume windows in the period).

    One aggregate query; each device's rows are one primary-key range (device, pollutant, start).
    """
    cols = ["device_id", *_WINDOW_TOTALS]
    if not device_ids:
        return pd.DataFrame(columns=cols)
    sql = (
        "SELECT device_id, COUNT(*), SUM(samples), SUM(expected), SUM(valid), "
        "SUM(CASE WHEN valid AND NOT exceeds THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN valid AND exceeds THEN 1 ELSE 0 END) "
        "FROM windows WHERE device_id IN ({ids}) AND pollutant = ? AND start_ms >= ? AND start_ms < ? "
        "GROUP BY device_id"
    )
    try:  # one query, the id list as one JSON parameter (no limit on the number of SQL variables)
        rows = db.rows(
            sql.format(ids="SELECT value FROM json_each(?)"),
            (json.dumps(device_ids), _JUDGED_POLLUTANT, since_ms, until_ms),
        )
    except sqlite3.OperationalError:  # an SQLite built without JSON1: chunks of bound parameters
        rows = []
        for i in range(0, len(device_ids), 500):
            chunk = device_ids[i : i + 500]
            rows += db.rows(
                sql.format(ids=", ".join("?" * len(chunk))), (*chunk, _JUDGED_POLLUTANT, since_ms, until_ms)
            )
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------------------
# build_report
# ---------------------------------------------------------------------------------------------------------


def build_report(
    ledger: Ledger,
    registry: Registry,
    since_ms: int,
    until_ms: int,
    *,
    district: str | None = None,
    restaurant_id: str | None = None,
    store: Store | None = None,
    profiles: Profiles | None = None,
    display_tz: str = "Asia/Shanghai",
    max_charts: int = 20,
    chart_margin_min: float = 60.0,
    detector: DetectorConfig | None = None,
    now: int | None = None,
) -> Report:
    """Build the report for ``[since_ms, until_ms)``, optionally for one district and/or one restaurant.

    ``store`` (optional) supplies the readings around the charted events; without it the charts show the
    event's window evidence. ``max_charts``: chart the exceedance events with the highest peak (0: none).
    ``detector`` gives the window length and samples expected per window (for restaurants without any
    window); ``profiles`` the limits and purifier efficiencies (packaged profiles when None).
    ``now`` (epoch ms, default the clock) ends open events.
    """
    if since_ms >= until_ms:
        raise ReportError("since must be before until")
    try:
        zone(display_tz)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError
        raise ReportError(f"unknown time zone {display_tz!r}") from exc
    detector = detector or DetectorConfig()
    profiles = profiles if profiles is not None else load_profiles()
    generated = now_ms() if now is None else now
    open_end = max(since_ms, min(until_ms, generated))
    notes: list[str] = []

    devices = [
        d
        for d in registry
        if (district is None or d.district == district)
        and (restaurant_id is None or d.restaurant_id == restaurant_id)
    ]
    with _snapshot(ledger) as db:
        event_rows, notice_counts = _read_events(db, since_ms, until_ms, restaurant_id, district)
        events = _events_frame(event_rows, notice_counts, registry, display_tz, open_end)
        # Devices whose windows count: the registry's (filtered), plus devices named by the events (a device
        # removed from the registry keeps its history); without filters every device with windows.
        ev_devices = dict(
            zip(
                events["device_id"],
                zip(events["restaurant_id"], events["district"], strict=True),
                strict=True,
            )
        )
        wanted = [d.device_id for d in devices] + [x for x in ev_devices if x not in registry]
        if district is None and restaurant_id is None:
            wanted += [x for x in _window_devices(db) if x not in registry and x not in ev_devices]
        wanted = list(dict.fromkeys(wanted))
        totals = _window_totals(db, wanted, since_ms, until_ms)

    # device -> restaurant: the registry, else the events; windows of devices known to neither are left out
    dev_rest = {d.device_id: d.restaurant_id for d in registry}
    dev_rest.update({dev: rest for dev, (rest, _) in ev_devices.items() if dev not in dev_rest})
    orphan = totals[~totals["device_id"].isin(list(dev_rest))]
    if len(orphan):
        notes.append(
            f"{int(orphan['windows'].sum())} windows of {len(orphan)} device(s) not in the registry were "
            f"left out: {', '.join(sorted(orphan['device_id'].astype(str))[:10])}"
        )
    totals = totals[totals["device_id"].isin(list(dev_rest))].copy()
    totals["restaurant_id"] = totals["device_id"].map(dev_rest)

    summary = _summary_frame(
        devices, registry, events, totals, ev_devices, profiles, detector, since_ms, until_ms, open_end
    )
    charts = (
        _charts(ledger, events, registry, store, max_charts, chart_margin_min, open_end, notes)
        if max_charts
        else []
    )
    return Report(
        since_ms=since_ms,
        until_ms=until_ms,
        display_tz=display_tz,
        district=district,
        restaurant_id=restaurant_id,
        generated_ms=generated,
        events=events,
        summary=summary,
        charts=charts,
        notes=notes,
    )


def _to_local(ms: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(ms, unit="ms", utc=True).dt.tz_convert(tz)


def _events_frame(
    rows: list[tuple], notices: dict[str, int], registry: Registry, tz: str, open_end: int
) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(_EVENT_SQL_COLUMNS))
    df["start_ms"] = df["start_ms"].astype("int64")
    df["end_ms"] = df["end_ms"].astype("Int64")
    for col in ("peak_mg_m3", "mean_mg_m3", "limit_mg_m3"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    names = {d.restaurant_id: d.name for d in registry}
    df["name"] = df["restaurant_id"].map(names).fillna("").astype(str)
    df["start"] = _to_local(df["start_ms"], tz)
    df["end"] = _to_local(df["end_ms"].astype("float64"), tz)
    effective_end = df["end_ms"].astype("float64").fillna(float(open_end))
    df["duration_min"] = ((effective_end - df["start_ms"]).clip(lower=0) / 60_000).astype("float64")
    df["notices_sent"] = df["event_id"].map(notices).fillna(0).astype("int64")
    return df[[c.key for c in EVENT_COLUMNS] + ["start_ms", "end_ms"]].reset_index(drop=True)


def _clipped_minutes(
    events: pd.DataFrame, kind: str, since_ms: int, until_ms: int, open_end: int
) -> pd.Series:
    ev = events[events["kind"] == kind]
    if ev.empty:
        return pd.Series(dtype="float64")
    start = ev["start_ms"].astype("float64").clip(lower=since_ms)
    end = ev["end_ms"].astype("float64").fillna(float(open_end)).clip(upper=until_ms)
    minutes = ((end - start).clip(lower=0) / 60_000).astype("float64")
    return minutes.groupby(ev["restaurant_id"]).sum()


def _profile_facts(dev: Device | None, profiles: Profiles, default: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "profile": "",
        "size_class": "",
        "limit_mg_m3": np.nan,
        "purifier_min_efficiency_pct": np.nan,
    }
    if dev is None:
        return out
    name = dev.profile.strip() or default
    out["profile"] = name
    try:
        prof: Profile = profiles.get(name)
        sc = prof.size_class(dev.stove_heads)
    except ProfileError:
        return out
    lim = prof.limit(_JUDGED_POLLUTANT, sc)
    out.update(
        size_class=sc,
        limit_mg_m3=np.nan if lim is None else lim,
        purifier_min_efficiency_pct=prof.purifier_min_efficiency_pct.get(sc, np.nan),
    )
    return out


def _summary_frame(
    devices: list[Device],
    registry: Registry,
    events: pd.DataFrame,
    totals: pd.DataFrame,
    ev_devices: dict[str, tuple[str, str]],
    profiles: Profiles,
    detector: DetectorConfig,
    since_ms: int,
    until_ms: int,
    open_end: int,
) -> pd.DataFrame:
    by_rest: dict[str, list[Device]] = {}
    for d in devices:
        by_rest.setdefault(d.restaurant_id, []).append(d)
    all_by_rest = registry.restaurants()
    base: list[dict[str, Any]] = []
    for rid, devs in by_rest.items():
        first = devs[0]
        base.append(
            {
                "restaurant_id": rid,
                "name": first.name,
                "district": first.district,
                "devices": len(devs),
                **_profile_facts(first, profiles, detector.default_profile or DEFAULT_PROFILE),
            }
        )
    # restaurants known only from events or windows (removed from the registry)
    extra_rest: dict[str, str] = {}
    for rest, dist in ev_devices.values():
        if rest not in by_rest and rest not in all_by_rest:
            extra_rest.setdefault(rest, dist)
    for rid in totals["restaurant_id"].unique() if len(totals) else ():
        if rid not in by_rest and rid not in all_by_rest:
            extra_rest.setdefault(rid, "")
    for rid, dist in extra_rest.items():
        n_dev = len({dev for dev, (r, _) in ev_devices.items() if r == rid}) or 1
        base.append(
            {
                "restaurant_id": rid,
                "name": "",
                "district": dist,
                "devices": n_dev,
                **_profile_facts(None, profiles, ""),
            }
        )

    s = pd.DataFrame(
        base,
        columns=[
            "restaurant_id",
            "name",
            "district",
            "devices",
            "profile",
            "size_class",
            "limit_mg_m3",
            "purifier_min_efficiency_pct",
        ],
    )
    s = s.set_index("restaurant_id")

    agg = totals.groupby("restaurant_id")[list(_WINDOW_TOTALS)].sum() if len(totals) else None
    for col in _WINDOW_TOTALS:
        s[col] = (
            agg[col].reindex(s.index) if agg is not None else pd.Series(index=s.index, dtype="float64")
        ).fillna(0)
        s[col] = s[col].astype("int64")
    # no window at all in the period: expected = devices x windows of the period x samples per window
    period_windows = math.ceil((until_ms - since_ms) / detector.window_ms)
    none = s["windows"] == 0
    s.loc[none, "expected_samples"] = (
        s.loc[none, "devices"] * period_windows * detector.expected_samples
    ).astype("int64")
    s["compliance_rate"] = (s["compliant_windows"] / s["valid_windows"].where(s["valid_windows"] > 0)).astype(
        "float64"
    )
    s["completeness"] = (
        (s["samples"] / s["expected_samples"].where(s["expected_samples"] > 0)).fillna(0.0).astype("float64")
    )

    s["purifier_off_min"] = (
        _clipped_minutes(events, PURIFIER_OFF, since_ms, until_ms, open_end).reindex(s.index).fillna(0.0)
    )
    s["offline_min"] = (
        _clipped_minutes(events, OFFLINE, since_ms, until_ms, open_end).reindex(s.index).fillna(0.0)
    )
    counts = (
        events.groupby(["restaurant_id", "kind"]).size().unstack(fill_value=0)
        if len(events)
        else pd.DataFrame()
    )
    for kind in EVENT_KINDS:
        col = f"{kind}_events"
        s[col] = (
            (counts[kind].reindex(s.index) if kind in counts else pd.Series(index=s.index, dtype="float64"))
            .fillna(0)
            .astype("int64")
        )
    rank = {lvl: i for i, lvl in enumerate(LEVELS, start=1)}
    exc = events[events["kind"] == EXCEEDANCE]
    if len(exc):
        best = exc["level"].map(rank).fillna(0).groupby(exc["restaurant_id"]).max()
        s["highest_level"] = (
            best.reindex(s.index).fillna(0).astype(int).map({0: "", **{i: lvl for lvl, i in rank.items()}})
        )
    else:
        s["highest_level"] = ""
    s["highest_level"] = s["highest_level"].astype(str)
    s["notices_sent"] = (
        events.groupby("restaurant_id")["notices_sent"].sum().reindex(s.index).fillna(0).astype("int64")
        if len(events)
        else 0
    )
    s = s.reset_index()
    for col in ("restaurant_id", "name", "district", "profile", "size_class"):
        s[col] = s[col].fillna("").astype(str)
    s = s.sort_values(["district", "restaurant_id"], kind="stable").reset_index(drop=True)
    return s[[c.key for c in SUMMARY_COLUMNS]]


# ---------------------------------------------------------------------------------------------------------
# Charts: data only (drawing is in alerts.reports.charts)
# ---------------------------------------------------------------------------------------------------------


def _charts(
    ledger: Ledger,
    events: pd.DataFrame,
    registry: Registry,
    store: Store | None,
    max_charts: int,
    margin_min: float,
    open_end: int,
    notes: list[str],
) -> list[ChartData]:
    exc = events[(events["kind"] == EXCEEDANCE) & events["peak_mg_m3"].notna()]
    if exc.empty:
        return []
    top = exc.sort_values(["peak_mg_m3", "start_ms"], ascending=[False, True], kind="stable").head(max_charts)
    if len(exc) > len(top):
        notes.append(f"charts show the {len(top)} exceedance events with the highest peak (of {len(exc)})")
    margin_ms = int(margin_min * 60_000)
    out: list[ChartData] = []
    store_failed = 0
    for row in top.itertuples(index=False):  # at most max_charts rows
        end = int(row.end_ms) if not pd.isna(row.end_ms) else max(open_end, int(row.start_ms))
        meta = dict(
            event_id=row.event_id,
            restaurant_id=row.restaurant_id,
            name=row.name,
            district=row.district,
            device_id=row.device_id,
            pollutant=row.pollutant or _JUDGED_POLLUTANT,
            start_ms=int(row.start_ms),
            end_ms=end,
            open=pd.isna(row.end_ms),
            limit_mg_m3=None if pd.isna(row.limit_mg_m3) else float(row.limit_mg_m3),
            peak_mg_m3=float(row.peak_mg_m3),
        )
        chart = None
        if store is not None:
            try:
                readings = store.query(
                    device_id=row.device_id, since_ms=int(row.start_ms) - margin_ms, until_ms=end + margin_ms
                )
            except Exception:  # a store outage must not lose the report: fall back to the evidence
                readings = []
                store_failed += 1
            fieldname = READING_FIELD.get(meta["pollutant"], "oil_fume_ref_mg_m3")
            pts = [(r["time_ms"], r.get(fieldname)) for r in readings if r.get(fieldname) is not None]
            if pts:
                t, v = zip(*pts, strict=True)
                chart = ChartData(
                    **meta,
                    source="readings",
                    times_ms=np.asarray(t, dtype="int64"),
                    values=np.asarray(v, dtype="float64"),
                )
        if chart is None:
            ev = ledger.get_event(row.event_id)
            windows = [
                w for w in (ev.evidence if ev else []) if "start_ms" in w and w.get("mean_mg_m3") is not None
            ]
            chart = ChartData(
                **meta,
                source="evidence",
                times_ms=np.asarray([w["start_ms"] for w in windows], dtype="int64"),
                values=np.asarray([w["mean_mg_m3"] for w in windows], dtype="float64"),
                ends_ms=np.asarray([w.get("end_ms", w["start_ms"]) for w in windows], dtype="int64"),
                max_values=np.asarray(
                    [np.nan if w.get("max_mg_m3") is None else w["max_mg_m3"] for w in windows],
                    dtype="float64",
                ),
            )
        out.append(chart)
    if store_failed:
        notes.append(
            f"the reading store failed for {store_failed} chart(s); they show the event's windows instead"
        )
    return out
