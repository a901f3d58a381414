"""The report's tables as DataFrames: the events table and the per-restaurant summary (definitions in
:mod:`alerts.reports.build`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alerts.detection.window import DetectorConfig
from alerts.model import EVENT_KINDS, EXCEEDANCE, LEVELS, OFFLINE, PURIFIER_OFF
from alerts.profiles import DEFAULT_PROFILE, Profile, ProfileError, Profiles
from alerts.reports.expected import window_starts_in
from alerts.reports.model import _JUDGED_POLLUTANT, EVENT_COLUMNS, SUMMARY_COLUMNS
from alerts.reports.snapshot import _EVENT_SQL_COLUMNS, _WINDOW_TOTALS
from ingest.registry import Device, Registry


def _to_local(ms: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(ms, unit="ms", utc=True).dt.tz_convert(tz)


def _events_frame(
    rows: list[tuple], notices: dict[str, int], registry: Registry, tz: str, open_end: int
) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(_EVENT_SQL_COLUMNS))
    if "rule" not in df:  # a ledger that does not store Event.rule yet: no rule recorded
        df["rule"] = ""
    df["rule"] = df["rule"].fillna("").astype(str)
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


def _missing_samples(
    expected_devs: dict[str, list[str]],
    totals: pd.DataFrame,
    registry: Registry,
    detector: DetectorConfig,
    starts: int,
) -> pd.Series:
    """Per restaurant: the samples its expected devices owed in the ``starts`` business-hours windows
    they never sent. A device owes, per missing window, the samples of its registry ``interval_s``; else
    the mean ``expected`` of its stored business-hours windows (else of all its windows in the period),
    which is what the detector expected of it (learned cadence); else those of ``[alerts]
    expected_interval_s``."""
    cols = ["device_id", "business_windows", "business_expected", "windows", "expected_samples"]
    per_dev = {r[0]: tuple(int(x) for x in r[1:]) for r in totals[cols].itertuples(index=False, name=None)}
    out: dict[str, int] = {}
    for rid, devs in expected_devs.items():
        total = 0
        for dev in devs:
            got, got_expected, windows, expected = per_dev.get(dev, (0, 0, 0, 0))
            if got >= starts:
                continue
            d = registry.get(dev)
            if d is not None and d.interval_s:
                per_window = detector.samples_at(d.interval_s)[0]
            elif got:
                per_window = round(got_expected / got)
            elif windows:
                per_window = round(expected / windows)
            else:
                per_window = detector.expected_samples
            total += (starts - got) * per_window
        out[rid] = total
    return pd.Series(out, dtype="int64")


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
    business: list[tuple[int, int]],
) -> pd.DataFrame:
    """Per restaurant (definitions in :mod:`alerts.reports.build`); ``business``: the business-hours
    intervals of the period (:func:`alerts.reports.expected.business_intervals`)."""
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
    # completeness against every window of business hours, received or not: each device is expected to
    # fill every epoch-aligned window starting in them; a missing window counts the device's expected
    # samples per window (a 10-minute monitor: 1, a 1-minute one: 10)
    starts = window_starts_in(business, detector.window_ms)
    s["expected_windows"] = (s["devices"] * starts).astype("int64")
    expected_devs = {rid: [d.device_id for d in devs] for rid, devs in by_rest.items()}
    for dev, (rest, _) in ev_devices.items():
        if rest in extra_rest:
            expected_devs.setdefault(rest, []).append(dev)
    missing = _missing_samples(expected_devs, totals, registry, detector, starts)
    s["samples"] = s["business_samples"]
    s["expected_samples"] = (s["business_expected"] + missing.reindex(s.index).fillna(0)).astype("int64")
    s["compliance_rate"] = (s["compliant_windows"] / s["valid_windows"].where(s["valid_windows"] > 0)).astype(
        "float64"
    )
    s["completeness"] = (s["samples"] / s["expected_samples"].where(s["expected_samples"] > 0)).astype(
        "float64"
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
