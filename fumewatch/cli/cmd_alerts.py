"""Subcommands of the alerts package: ``alerts``, ``run``, ``events``, ``cases``, ``notices``, ``profiles``."""

from __future__ import annotations

import argparse
import logging
import threading

import orjson

from alerts.model import EVENT_CSV_COLUMNS
from fumewatch.cli.common import (
    add_common,
    install_signal_handlers,
    settings_from,
    time_arg,
    write_rows,
)
from fumewatch.db import prepare_for_service
from fumewatch.services import start_metrics
from fumewatch.settings import AppSettings
from ingest import logs
from ingest.timeutil import format_local, format_utc

log = logging.getLogger("fumewatch.alerts.cli")


def _app_settings(args: argparse.Namespace, **extra: dict) -> AppSettings:
    overrides: dict = {}
    if getattr(args, "client_id", None):
        overrides["alerts"] = {"client_id": args.client_id}
    return settings_from(args, AppSettings, **overrides, **extra)  # type: ignore[return-value]


def _open(settings: AppSettings, *, need_store: bool):
    from alerts.ledger import Ledger
    from ingest.registry import Registry
    from ingest.store import open_store

    prepare_for_service(settings.ingest.state)
    registry = Registry.load(settings.ingest.registry)
    ledger = Ledger(settings.ingest.state)
    # Writable: with InfluxDB the alerts service also writes windows and events for the dashboards.
    store = open_store(settings.ingest.store, settings) if need_store else None
    return registry, ledger, store


def cmd_alerts(args: argparse.Namespace) -> int:
    from alerts.service import AlertsService

    s = _app_settings(args)
    logs.setup(s.logging.level, s.logging.format)
    registry, ledger, store = _open(s, need_store=True)
    stop = threading.Event()
    install_signal_handlers(stop)
    svc = AlertsService(s, registry, ledger, store=store, subscribe=True)
    metrics = start_metrics(s, alerts=svc)
    try:
        svc.run_forever(stop)
    finally:
        if metrics is not None:
            metrics.stop()
        if store is not None:
            store.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Ingest and alerts in one process: readings reach the detector once they are stored."""
    from alerts.ledger import Ledger
    from alerts.service import AlertsService
    from ingest.registry import Registry
    from ingest.service import IngestService
    from ingest.state import StateDB
    from ingest.store import open_store

    s = _app_settings(args)
    logs.setup(s.logging.level, s.logging.format)
    prepare_for_service(s.ingest.state)
    registry = Registry.load(s.ingest.registry)
    store = open_store(s.ingest.store, s)
    state = StateDB(s.ingest.state)
    ledger = Ledger(s.ingest.state)
    alerts = AlertsService(s, registry, ledger, store=store, subscribe=False)
    ingest = IngestService(s, registry, store, state, on_readings=alerts.feed)
    stop = threading.Event()
    install_signal_handlers(stop)
    alerts.start()
    metrics = start_metrics(s, ingest=ingest, alerts=alerts)
    try:
        ingest.run_forever(stop)
    finally:
        if metrics is not None:
            metrics.stop()
        alerts.stop()
        store.close()
        state.close()
    return 0


def _state_path(args: argparse.Namespace) -> str:
    """The state database of a read-only command: it must exist at this release's revision (creates,
    migrates nothing)."""
    from fumewatch.db import check

    path = settings_from(args).ingest.state
    check(path)
    return path


def cmd_events(args: argparse.Namespace) -> int:
    from alerts.ledger import Ledger

    s = settings_from(args)
    path = _state_path(args)
    tz = s.display_tz
    with Ledger(path) as ledger:
        events = ledger.list_events(
            since_ms=time_arg(args.since, tz),
            until_ms=time_arg(args.until, tz),
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
            "start": format_utc(e.start_ms),
            "end": format_utc(e.end_ms) if e.end_ms else "",
            "peak_mg_m3": None if e.peak_mg_m3 is None else round(e.peak_mg_m3, 3),
            "mean_mg_m3": None if e.mean_mg_m3 is None else round(e.mean_mg_m3, 3),
            "limit_mg_m3": e.limit_mg_m3,
            "profile": e.profile,
            "level": e.level,
        }
        if args.format == "json":
            d.update(
                event_id=e.event_id,
                pollutant=e.pollutant,
                district=e.district,
                state=e.state,
                start_local=format_local(e.start_ms, tz),
                end_local=format_local(e.end_ms, tz) if e.end_ms else None,
            )
        rows.append(d)
    write_rows(rows, list(EVENT_CSV_COLUMNS), args.format)
    return 0


CASE_COLUMNS = ("case_id", "restaurant_id", "district", "status", "start", "end", "event_id")


def cmd_cases(args: argparse.Namespace) -> int:
    from alerts.ledger import Ledger

    s = settings_from(args)
    path = _state_path(args)
    with Ledger(path) as ledger:
        cases = ledger.list_cases(
            since_ms=time_arg(args.since, s.display_tz),
            until_ms=time_arg(args.until, s.display_tz),
            restaurant_id=args.restaurant,
            district=args.district,
        )
    if args.format == "json":
        print(orjson.dumps(cases, option=orjson.OPT_INDENT_2).decode())
        return 0
    rows = [
        {
            "case_id": c.get("case_id"),
            "restaurant_id": c.get("restaurant_id"),
            "district": c.get("district"),
            "status": c.get("status"),
            "start": format_utc(c["start_ms"]) if c.get("start_ms") else "",
            "end": format_utc(c["end_ms"]) if c.get("end_ms") else "",
            "event_id": c.get("event_id"),
        }
        for c in cases
    ]
    write_rows(rows, CASE_COLUMNS, "csv")
    return 0


NOTICE_COLUMNS = ("key", "channel", "target", "status", "attempts", "restaurant_id", "error")


def cmd_notices(args: argparse.Namespace) -> int:
    from alerts.ledger import Ledger

    path = _state_path(args)
    with Ledger(path) as ledger:
        recs = ledger.list_notices(status=args.status) if args.status else ledger.list_notices()
    rows = [{c: getattr(r, c, "") for c in NOTICE_COLUMNS} for r in recs]
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
    add_common(sp, broker=True, store=True, registry=True, state=True)
    sp.add_argument("--client-id", help="MQTT client id of the alerts session")
    sp.set_defaults(func=cmd_alerts)

    sp = sub.add_parser("run", help="run ingest and alerts together in one process")
    add_common(sp, broker=True, store=True, registry=True, state=True)
    sp.set_defaults(func=cmd_run)

    for name, func, helptext in (
        ("events", cmd_events, "list exceedance and other events"),
        ("cases", cmd_cases, "list enforcement cases for inspectors"),
    ):
        sp = sub.add_parser(name, help=helptext)
        add_common(sp, state=True)
        sp.add_argument("--since", metavar="T")
        sp.add_argument("--until", metavar="T")
        sp.add_argument("--restaurant", metavar="R")
        sp.add_argument("--district", metavar="D")
        if name == "events":
            sp.add_argument("--kind", choices=("exceedance", "purifier_off", "offline", "late_data"))
        sp.add_argument("--format", choices=("csv", "json"), default="csv")
        sp.set_defaults(func=func)

    sp = sub.add_parser("notices", help="list notices sent, failed or skipped")
    add_common(sp, state=True)
    sp.add_argument("--status", choices=("pending", "sent", "failed", "skipped"))
    sp.add_argument("--format", choices=("csv", "json"), default="csv")
    sp.set_defaults(func=cmd_notices)

    sp = sub.add_parser("profiles", help="list the limit profiles and their sources")
    sp.add_argument("--file", help="extra profiles TOML")
    sp.set_defaults(func=cmd_profiles)
