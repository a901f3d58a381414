"""``fumewatch report``: write an exceedance report (csv, xlsx, html, pdf or json) for a period."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fumewatch.cli.common import (
    CLIError,
    add_common,
    existing_state,
    load_registry,
    open_read_store,
    period_args,
    settings_from,
)
from fumewatch.settings import AppSettings
from ingest.config import IngestSettings

CLI_FORMATS = ("csv", "xlsx", "html", "pdf", "json")
#: The csv files of the enforcement cases next to ``X.csv`` (``X.cases.csv`` ...), when there are cases.
CASE_TABLES = ("cases", "case_events", "case_windows", "case_receipts")


def open_report_store(explicit: str | None, settings: AppSettings):
    """The reading store for charts, or None.

    ``--store`` (or a configured ``[ingest] store``) is used; the built-in default path is used only when
    that file exists, so a report without a store simply charts the events' window evidence.
    """
    spec = settings.ingest.store.strip()
    if explicit is None and spec == IngestSettings().store and not Path(spec).exists():
        return None
    return open_read_store(settings)


def _write(out: str, data: bytes) -> None:
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")  # complete file or none: write, then rename
    try:
        tmp.write_bytes(data)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def summary_path(out: str, table: str = "summary") -> str:
    """Where ``--format csv`` writes another table: ``X.csv`` -> ``X.summary.csv``, ``X.cases.csv`` ..."""
    p = Path(out)
    return str(p.with_name(f"{p.stem}.{table}{p.suffix or '.csv'}"))


def cmd_report(args: argparse.Namespace) -> int:
    from alerts.ledger import Ledger
    from alerts.profiles import ProfileError, load_profiles
    from alerts.reports.build import ReportError, build_report, check_filters
    from alerts.reports.formats import render

    fmt = args.format or Path(args.out).suffix.lstrip(".").lower()
    if fmt not in CLI_FORMATS:
        raise CLIError(f"give --format ({', '.join(CLI_FORMATS)}); cannot tell it from --out {args.out!r}")
    overrides = {"report": {"max_charts": args.max_charts}}
    s: AppSettings = settings_from(args, AppSettings, **overrides)  # type: ignore[assignment]
    tz = s.display_tz
    since, until = period_args(args, tz)
    assert since is not None and until is not None
    existing_state(s)
    registry = load_registry(s)
    try:
        profiles = load_profiles(s.alerts.profiles_file or None)
    except ProfileError as exc:
        raise CLIError(str(exc)) from None
    store = open_report_store(args.store, s) if fmt in ("html", "pdf") else None
    ledger = Ledger(s.ingest.state)
    try:
        check_filters(ledger, registry, args.district, args.restaurant)
        report = build_report(
            ledger,
            registry,
            since,
            until,
            district=args.district,
            restaurant_id=args.restaurant,
            store=store,
            profiles=profiles,
            display_tz=tz,
            max_charts=s.report.max_charts if fmt in ("html", "pdf") else 0,
            chart_margin_min=s.report.chart_margin_min,
            detector=s.alerts.detector_config(),
        )
        data = render(report, fmt, settings=s.report)
        _write(args.out, data)
        written = [args.out]
        if fmt == "csv" and args.out != "-":
            # one table per file: the summary, the maintenance reminders and the data-integrity findings
            # when there are any, and the enforcement cases' tables when there are cases
            extra = (
                ("summary",)
                + (("reminders",) if report.reminders is not None and len(report.reminders) else ())
                + (("integrity",) if report.integrity is not None and len(report.integrity) else ())
                + (CASE_TABLES if report.cases else ())
            )
            for table in extra:
                written.append(summary_path(args.out, table))
                _write(written[-1], render(report, "csv", table=table))
    except ReportError as exc:
        raise CLIError(str(exc)) from None
    finally:
        ledger.close()
        if store is not None:
            store.close()
    if args.out != "-":
        print(
            f"wrote {', '.join(written)}: {len(report.events)} events, {len(report.summary)} restaurants, "
            f"{len(report.charts)} charts",
            file=sys.stderr,
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "report",
        help="exceedance report for inspectors (csv, xlsx, html, pdf, json)",
        description="Events and a per-restaurant summary (compliance rate, data completeness, purifier-off "
        "minutes, events, notices) for a period; html and pdf add charts of the worst exceedances.",
    )
    add_common(sp, store=True, registry=True, state=True)
    sp.add_argument(
        "--since", required=True, metavar="T", help="RFC 3339, a date (display time zone) or epoch ms"
    )
    sp.add_argument("--until", required=True, metavar="T", help="end of the period (exclusive)")
    sp.add_argument("--district", metavar="D", help="only this district (as in the registry)")
    sp.add_argument("--restaurant", metavar="R", help="only this restaurant id")
    sp.add_argument("--format", choices=CLI_FORMATS, help="default: from the --out suffix")
    sp.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="output file ('-' = stdout); csv also writes FILE.summary.csv, FILE.reminders.csv and "
        "FILE.integrity.csv when there are reminders or data-integrity findings and, with cases, "
        "FILE.cases.csv, FILE.case_events.csv, FILE.case_windows.csv, FILE.case_receipts.csv",
    )
    sp.add_argument("--max-charts", type=int, metavar="N", help="html/pdf: chart the N highest exceedances")
    sp.set_defaults(func=cmd_report)
