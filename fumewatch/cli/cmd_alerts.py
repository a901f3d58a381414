"""Subcommands of the alerts package: ``alerts``, ``run``, ``events``, ``cases``, ``tasks``, ``notices``,
``profiles``."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

import orjson

from alerts.enforcement.notify.render import TEMPLATE_NAMES
from alerts.model import EVENT_CSV_COLUMNS, EVENT_KINDS
from fumewatch.cli.common import (
    CLIError,
    add_common,
    add_utc,
    check_owner_links,
    existing_state,
    install_signal_handlers,
    load_registry,
    open_ingest,
    output_tz,
    period_args,
    present_times,
    reach_broker,
    settings_from,
    write_rows,
)
from fumewatch.db import prepare_for_service
from fumewatch.services import start_metrics
from fumewatch.settings import AppSettings
from ingest import logs
from ingest.store import beside_state_db
from ingest.timeutil import format_display, now_ms

log = logging.getLogger("fumewatch.alerts.cli")


def _app_settings(args: argparse.Namespace, **extra: dict) -> AppSettings:
    overrides: dict = {}
    alerts = {
        key: value for key in ("client_id", "partition") if (value := getattr(args, key, None)) is not None
    }
    if alerts:
        overrides["alerts"] = alerts
    s = settings_from(args, AppSettings, **overrides, **extra)
    check_owner_links(s)
    return s  # type: ignore[return-value]


def _open(settings: AppSettings, *, need_store: bool):
    from alerts.ledger import Ledger
    from ingest.store import open_store

    registry = load_registry(settings)
    prepare_for_service(settings.ingest.state)
    ledger = Ledger(settings.ingest.state)
    # Writable: with InfluxDB the alerts service also writes windows and events for the dashboards.
    store = open_store(settings.ingest.store, settings, readings=False) if need_store else None
    return registry, ledger, store


def cmd_alerts(args: argparse.Namespace) -> int:
    from alerts.partition import Partition, PartitionError
    from fumewatch.services import run_alerts_worker

    s = _app_settings(args)
    logs.setup(s.logging.level, s.logging.format)
    part = Partition.parse(s.alerts.partition) if s.alerts.partition else None
    if part is not None:
        # a buffer file has one drain: each partition's rows for the dashboards get their own
        base = Path(s.influx.buffer_file or beside_state_db(s.ingest.state, "influx-buffer.db"))
        s.influx.buffer_file = str(base.with_name(f"{base.stem}-alerts-{part.slug}{base.suffix}"))
    reach_broker(s, args.connect_timeout)
    load_registry(s)  # a missing or broken registry fails now, not after a standby's wait
    prepare_for_service(s.ingest.state)
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        return run_alerts_worker(s, lambda: _open(s, need_store=True), stop, part)
    except PartitionError as exc:
        raise CLIError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    """Ingest and alerts in one process: readings reach the detector once they are stored. With
    ``[gateway] listen`` the HJ 212 gateway too, on a thread of its own: it publishes each frame through
    the broker, as ``fumewatch hj212-gateway`` does, and stops first on SIGTERM."""
    from alerts.ledger import Ledger
    from alerts.service import AlertsService
    from fumewatch.cli.cmd_gateway import start_gateway
    from ingest.service import IngestService

    s = _app_settings(args)
    logs.setup(s.logging.level, s.logging.format)
    registry, store, state = open_ingest(s, args.connect_timeout)
    ledger = Ledger(s.ingest.state)
    alerts = AlertsService(s, registry, ledger, store=store, subscribe=False)
    ingest = IngestService(s, registry, store, state, on_readings=alerts.feed, clock=alerts.clock)
    stop = threading.Event()
    install_signal_handlers(stop)
    gateway = None
    metrics = None
    try:
        if s.gateway.listen:
            gateway = start_gateway(s, registry, s.gateway.listen, s.ingest.state)
            threading.Thread(target=_stop_on, args=(stop, gateway), name="gateway-stop", daemon=True).start()
        alerts.start()
        metrics = start_metrics(s, ingest=ingest, alerts=alerts, gateway=gateway)
        ingest.run_forever(stop)
    finally:
        if gateway is not None:
            gateway.stop()
        if metrics is not None:
            metrics.stop()
        alerts.stop()
        store.close()
        state.close()
    return 0


def _stop_on(stop: threading.Event, gateway) -> None:
    """SIGTERM: the gateway stops taking frames at once, while ingest still drains what it has."""
    stop.wait()
    gateway.stop()


def cmd_events(args: argparse.Namespace) -> int:
    """Events; times in the display zone with offset, or UTC with ``--utc`` (JSON adds ``start_ms``/
    ``end_ms`` and the evidence and judgement, whose ``*_ms`` times get their text twins too)."""
    from alerts.ledger import Ledger

    s = settings_from(args)
    tz = output_tz(args, s)
    since_ms, until_ms = period_args(args, s.display_tz)
    with Ledger(existing_state(s)) as ledger:
        events = ledger.list_events(
            since_ms=since_ms,
            until_ms=until_ms,
            restaurant_id=args.restaurant,
            district=args.district,
            kind=args.kind,
        )
    rows = []
    for e in events:
        d = {
            "kind": e.kind,
            "restaurant_id": e.restaurant_id,
            "device_id": e.device_id,
            "start": "",
            "end": "",
            "peak_mg_m3": None if e.peak_mg_m3 is None else round(e.peak_mg_m3, 3),
            "mean_mg_m3": None if e.mean_mg_m3 is None else round(e.mean_mg_m3, 3),
            "limit_mg_m3": e.limit_mg_m3,
            "profile": e.profile,
            "rule": e.rule,
            "level": e.level,
            "start_ms": e.start_ms,
            "end_ms": e.end_ms,
        }
        if args.format == "json":
            d.update(
                event_id=e.event_id,
                pollutant=e.pollutant,
                district=e.district,
                state=e.state,
                evidence=e.evidence,
                judgement=e.judgement,
            )
        rows.append(present_times(d, tz))
    write_rows(rows, list(EVENT_CSV_COLUMNS), args.format)
    return 0


CASE_COLUMNS = (
    "case_id",
    "case_type",
    "restaurant_id",
    "district",
    "status",
    "assignee",
    "outcome",
    "deadline",
    "overdue",
    "version",
    "start",
    "end",
    "event_id",
)


def cmd_cases(args: argparse.Namespace) -> int:
    """Cases; ``start``/``end`` in the display zone with offset (or UTC with ``--utc``). JSON is the whole
    record, every ``*_ms`` time in it (evidence windows, receipts) with its text twin."""
    from alerts.ledger import Ledger

    s = settings_from(args)
    tz = output_tz(args, s)
    since_ms, until_ms = period_args(args, s.display_tz)
    with Ledger(existing_state(s)) as ledger:
        cases = ledger.list_cases(
            since_ms=since_ms,
            until_ms=until_ms,
            restaurant_id=args.restaurant,
            district=args.district,
            status=args.status,
            case_type=args.type,
            assignee=args.assignee,
        )
    now = now_ms()
    for c in cases:
        c["overdue"] = bool(
            c.get("deadline_ms") and c["status"] == "rectification_ordered" and c["deadline_ms"] < now
        )
        present_times(c, tz)
        if c.get("end_ms") is None:
            c["end"] = ""
        if not c.get("deadline_ms"):
            c["deadline"] = ""
    if args.format == "json":
        print(orjson.dumps(cases, option=orjson.OPT_INDENT_2).decode())
        return 0
    write_rows(({c: case.get(c) for c in CASE_COLUMNS} for case in cases), CASE_COLUMNS, "csv")
    return 0


#: ``fumewatch notices --level``: the notice's template (alerts/enforcement/templates): education, warning,
#: enforcement (owner) and case (inspectors), repeat (inside a correction period), owner_unreachable (an
#: inspectors' task), closed (an episode ended), offline and restored; ``purifier_off`` for notices of
#: releases before episodes.
NOTICE_LEVELS = (*TEMPLATE_NAMES, "purifier_off")
NOTICE_COLUMNS = (
    "time",
    "level",
    "restaurant_id",
    "channel",
    "target",
    "status",
    "attempts",
    "key",
    "error",
)


def notice_level(action: str, kind: str | None, level: str | None, template: str = "") -> str:
    """The level shown for a notice (see :data:`NOTICE_LEVELS`): its template, else (rows written before
    templates were recorded per step) the ladder level, ``closed`` or the event kind."""
    if template:
        return template
    if action == "closed":
        return "closed"
    if kind and kind != "exceedance":
        return kind
    return level or kind or action


TASK_COLUMNS = ("created", "kind", "restaurant_id", "district", "status", "level", "episode_id", "task_id")


def cmd_tasks(args: argparse.Namespace) -> int:
    """Inspectors' tasks that are not cases (``owner_unreachable``: serve a notice on site)."""
    from alerts.ledger import Ledger

    s = settings_from(args)
    tz = output_tz(args, s)
    with Ledger(existing_state(s)) as ledger:
        tasks = ledger.list_tasks(restaurant_id=args.restaurant, district=args.district, status=args.status)
    for t in tasks:
        present_times(t, tz)
    if args.format == "json":
        print(orjson.dumps(tasks, option=orjson.OPT_INDENT_2).decode())
        return 0
    write_rows(({c: t.get(c, "") for c in TASK_COLUMNS} for t in tasks), TASK_COLUMNS, "csv")
    return 0


def cmd_notices(args: argparse.Namespace) -> int:
    """Notices with their created time (display zone, offset) and level; filters on all of them.
    ``fumewatch notices retry``: put failed notices back to pending for the alerts service to resend."""
    from alerts.ledger import Ledger

    s = settings_from(args)
    if args.action == "retry":
        with Ledger(existing_state(s)) as ledger:
            n = ledger.retry_failed_notices(key=args.key, restaurant_id=args.restaurant)
        print(
            f"{n} failed notice(s) put back to pending: the alerts service resends them within "
            f"[notify] drain_interval_s ({s.notify.drain_interval_s:g} s), or at its next start"
        )
        return 0
    tz = output_tz(args, s)
    since_ms, until_ms = period_args(args, s.display_tz)
    action = "closed" if args.level == "closed" else None
    rows = []
    with Ledger(existing_state(s)) as ledger:
        recs = ledger.list_notices(
            status=args.status,
            since_ms=since_ms,
            until_ms=until_ms,
            restaurant_id=args.restaurant,
            action=action,
        )
        events: dict[str, tuple[str | None, str | None]] = {}
        for r in recs:
            kind, level = r.payload.get("kind"), r.payload.get("level")
            if not kind or (kind == "exceedance" and not level):
                # an older or foreign notice row without the event in its payload: ask the event
                if r.event_id not in events:
                    e = ledger.get_event(r.event_id)
                    events[r.event_id] = (e.kind, e.level) if e else (None, None)
                kind, level = events[r.event_id]
            row = {c: getattr(r, c, "") for c in NOTICE_COLUMNS}
            row["time"] = format_display(r.created_ms, tz) if r.created_ms else ""
            row["level"] = notice_level(r.action, kind, level, str(r.payload.get("template") or ""))
            if args.level is not None and row["level"] != args.level:
                continue
            if args.format == "json":
                row.update(
                    event_id=r.event_id,
                    action=r.action,
                    kind=kind,
                    device_id=r.device_id,
                    created_ms=r.created_ms,
                    updated_ms=r.updated_ms,
                )
                present_times(row, tz)
            rows.append(row)
    write_rows(rows, NOTICE_COLUMNS, args.format)
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from alerts.profiles import load_profiles

    profiles = load_profiles(args.file)
    for name in profiles:
        p = profiles.get(name)
        limits = ", ".join(f"{pol} {p.limit(pol, None) or '-'}" for pol in p.pollutants) or "-"
        flag = "" if p.verified else "  [secondary source: check against the official text]"
        print(f"{name:12s} {p.standard:28s} {limits}{flag}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("alerts", help="run the alerts service (MQTT -> detector -> events -> notices)")
    add_common(sp, broker=True, store=True, registry=True, state=True, connect_timeout=True)
    sp.add_argument("--client-id", help="MQTT client id of the alerts session")
    sp.add_argument(
        "--partition",
        metavar="K/N",
        help="own partition K of N (devices by hash of their id); one worker per partition acts, "
        "more wait as standbys ([alerts] partition; docs/scaling.md)",
    )
    sp.set_defaults(func=cmd_alerts)

    sp = sub.add_parser("run", help="run ingest and alerts together in one process")
    add_common(sp, broker=True, store=True, registry=True, state=True, connect_timeout=True)
    sp.set_defaults(func=cmd_run)

    for name, func, helptext in (
        ("events", cmd_events, "list exceedance and other events"),
        ("cases", cmd_cases, "list enforcement cases for inspectors"),
    ):
        sp = sub.add_parser(name, help=helptext)
        add_common(sp, state=True)
        sp.add_argument("--since", metavar="T", help="RFC 3339, a date (display time zone) or epoch ms")
        sp.add_argument("--until", metavar="T", help="end of the period (exclusive)")
        sp.add_argument("--restaurant", metavar="R")
        sp.add_argument("--district", metavar="D")
        if name == "events":
            sp.add_argument("--kind", choices=EVENT_KINDS)
        else:
            from alerts.casework.lifecycle import STATUSES

            sp.add_argument("--status", choices=STATUSES)
            sp.add_argument("--type", choices=("enforcement", "owner_unreachable"), help="case type")
            sp.add_argument("--assignee", metavar="NAME")
        sp.add_argument("--format", choices=("csv", "json"), default="csv")
        add_utc(sp)
        sp.set_defaults(func=func)

    sp = sub.add_parser(
        "notices", help="list notices sent, failed or skipped; `notices retry` resends failed ones"
    )
    sp.add_argument(
        "action", nargs="?", choices=("list", "retry"), default="list", help="list (default) or retry failed"
    )
    add_common(sp, state=True)
    sp.add_argument("--key", metavar="K", help="retry: only the notices of this transition key")
    sp.add_argument("--since", metavar="T", help="created at or after T (RFC 3339, a date, or epoch ms)")
    sp.add_argument("--until", metavar="T", help="created before T")
    sp.add_argument("--restaurant", metavar="R")
    sp.add_argument("--level", choices=NOTICE_LEVELS, help="ladder level, closed, or the event kind")
    sp.add_argument("--status", choices=("pending", "sent", "failed", "skipped"))
    sp.add_argument("--format", choices=("csv", "json"), default="csv")
    add_utc(sp)
    sp.set_defaults(func=cmd_notices)

    sp = sub.add_parser("tasks", help="list inspectors' tasks (owner_unreachable: serve a notice on site)")
    add_common(sp, state=True)
    sp.add_argument("--restaurant", metavar="R")
    sp.add_argument("--district", metavar="D")
    sp.add_argument("--status", choices=("open", "done"))
    sp.add_argument("--format", choices=("csv", "json"), default="csv")
    add_utc(sp)
    sp.set_defaults(func=cmd_tasks)

    sp = sub.add_parser("profiles", help="list the limit profiles and their sources")
    sp.add_argument("--file", help="extra profiles TOML")
    sp.set_defaults(func=cmd_profiles)
