"""Build an exceedance report: the events table, the per-restaurant summary and the chart data.

Everything comes from the alerts state database (``events``, ``notices``, ``windows``) and the registry,
read in one SQLite read transaction (a consistent snapshot while the alerts service keeps writing). Raw
readings are read only around the charted events (``store.query`` for one device and a few hours each).
The windows are aggregated in SQLite (``GROUP BY device_id`` over the primary key), never row by row in
Python: a month of 1,000 restaurants is 4.3 million 10-minute windows.

Definitions (per restaurant, over the report period ``[since, until)``):

- windows: the oil-fume windows of the restaurant's devices whose start lies in the period;
- compliance rate = compliant valid windows / valid windows (blank when there is no valid window);
- data completeness = samples received / samples expected over every window of business hours in the
  period (``[alerts] business_hours`` in ``business_tz``; the whole day when none are set): each device is
  expected to fill every epoch-aligned window starting in them (``expected_windows`` = devices x those
  windows), and a window that never arrived counts its device's expected samples with none received
  (:mod:`alerts.reports.expected`): per window, those of the registry's ``interval_s``, else the mean
  ``expected`` of the device's stored windows (the detector's own, learned cadence), else those of
  ``[alerts] expected_interval_s``, so a 10-minute monitor owes 1 sample a window, not 10. Windows
  outside business hours count for the compliance rate, not
  for completeness. Blank when no window is expected (a period outside business hours);
- purifier-off and offline minutes: the ``purifier_off`` / ``offline`` events clipped to the period (an
  open event counts up to the report time or the period end, whichever is earlier);
- events per kind: events overlapping the period (same rule as :meth:`alerts.ledger.Ledger.list_events`:
  ``start < until`` and ``end >= since`` or still open);
- notices sent: notice-ledger rows with status ``sent`` for those events (every channel and transition);
- cases: the enforcement case records overlapping the period (same rule, same filters; the case file of
  :mod:`alerts.reports.cases`);
- reminders (优服务): the maintenance reminders sent in the period and what followed each up to the
  period's end or now (:mod:`alerts.reports.reminders`; read after the snapshot, the reminders are few);
- integrity (数据可信性存疑（待核查）): the ``data_integrity`` findings overlapping the period, with the check's
  label and the evidence in words (:mod:`alerts.reports.integrity`; read after the snapshot, like the
  reminders: screening findings for inspectors, never offences, never on the ladder).

The pieces are sibling modules: :mod:`alerts.reports.model` (columns, labels, :class:`Report`,
:class:`ChartData`), :mod:`alerts.reports.snapshot` (the read transaction and its queries,
:func:`check_filters`), :mod:`alerts.reports.tables` (events and summary DataFrames) and
:mod:`alerts.reports.chart_data`; :func:`build_report` here puts them together, and the names callers use
are importable from here.
"""

from __future__ import annotations

from alerts.detection.hours import BusinessHours
from alerts.detection.window import DetectorConfig
from alerts.ledger import Ledger
from alerts.profiles import Profiles, load_profiles
from alerts.reports.cases import case_views
from alerts.reports.chart_data import _charts
from alerts.reports.expected import business_intervals
from alerts.reports.integrity import integrity_frame
from alerts.reports.model import (
    EVENT_COLUMNS,
    KIND_LABELS,
    LEVEL_LABELS,
    READING_FIELD,
    STATE_LABELS,
    SUMMARY_COLUMNS,
    ChartData,
    Column,
    Report,
    ReportError,
)
from alerts.reports.reminders import reminders_frame
from alerts.reports.snapshot import (
    _read_cases,
    _read_events,
    _snapshot,
    _window_devices,
    _window_totals,
    check_filters,
)
from alerts.reports.tables import _events_frame, _summary_frame
from ingest.registry import Registry
from ingest.store.base import Store
from ingest.timeutil import now_ms, zone


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
    ``detector`` gives the window length and samples expected per window (for devices without a registry
    ``interval_s`` and without any window); ``profiles`` the limits and purifier efficiencies (packaged profiles when None).
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
        business = business_intervals(detector.business_hours, detector.business_tz, since_ms, until_ms)
        totals = _window_totals(db, wanted, since_ms, until_ms, business)
        case_records = _read_cases(db, since_ms, until_ms, restaurant_id, district)

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
        devices,
        registry,
        events,
        totals,
        ev_devices,
        profiles,
        detector,
        since_ms,
        until_ms,
        open_end,
        business,
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
        cases=case_views(case_records, registry),
        reminders=reminders_frame(
            ledger,
            registry,
            BusinessHours(detector.business_hours, detector.business_tz),
            since_ms,
            until_ms,
            open_end,
            display_tz,
            restaurant_id=restaurant_id,
            district=district,
        ),
        integrity=integrity_frame(
            ledger,
            registry,
            since_ms,
            until_ms,
            display_tz,
            restaurant_id=restaurant_id,
            district=district,
        ),
    )


__all__ = [
    "EVENT_COLUMNS",
    "KIND_LABELS",
    "LEVEL_LABELS",
    "READING_FIELD",
    "STATE_LABELS",
    "SUMMARY_COLUMNS",
    "ChartData",
    "Column",
    "Report",
    "ReportError",
    "build_report",
    "check_filters",
]
