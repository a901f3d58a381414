"""``fumewatch devices``: what ingest saw of each registry device, for the operator connecting a vendor.

A new vendor's monitors fail in ways no single reading shows: frames that never parse, a CRC computed
another way, factor codes our dialect does not know, a flag on every value, a clock or an interval that
is not what the contract says, or a device id nobody put in the registry. This command answers per
device from the ingest service's counters (``device_stats`` in the state database, kept by
``ingest.device_stats``), counted by the hour over the last ``--since-hours``; ``--unregistered`` lists
the device ids that published but are not in the registry, from their ``unknown_device`` dead letters.
The ``integrity`` column counts each device's data-integrity findings of the period by check, from the
alerts ledger in the same database; ``--integrity DEVICE`` lists one device's findings
(:mod:`fumewatch.cli.devices_integrity`). The ``gateway`` column is the device's connection to the HJ 212
gateway, as the gateway last wrote it (:mod:`fumewatch.cli.devices_gateway`). It only reads: the state
database and the registry must exist.
"""

from __future__ import annotations

import argparse
import sys

from fumewatch.cli import devices_gateway as gateway
from fumewatch.cli import devices_integrity as integrity
from fumewatch.cli.common import (
    CLIError,
    add_common,
    add_utc,
    existing_state,
    load_registry,
    output_tz,
    present_times,
    settings_from,
    write_rows,
)
from ingest.device_stats import BAD_CRC, HOUR_MS
from ingest.dialects import DEFAULT_DIALECT
from ingest.timeutil import format_display, now_ms

#: Columns of ``--format table`` (a terminal's width) and of CSV (everything, one value per cell).
TABLE_COLUMNS = (
    "device_id",
    "restaurant",
    "dialect",
    "last_seen",
    "last_received",
    "interval",
    "readings",
    "flags",
    "unknown_codes",
    "crc_failures",
    "dead_letters",
    "integrity",
    "gateway",
)
CSV_COLUMNS = (
    "device_id",
    "restaurant_id",
    "restaurant",
    "dialect",
    "last_seen",
    "last_received",
    "interval",
    "readings",
    "flags",
    "unknown_codes",
    "crc_failures",
    "crc_variants",
    "notes",
    "dead_letters",
    "dead_letter_reasons",
    "integrity",
    *gateway.CSV_FIELDS,
)
UNREGISTERED_COLUMNS = ("device_id", "topic", "count", "first_seen", "last_seen")
#: Entries of a map shown in a table cell; CSV and JSON have them all.
TABLE_ENTRIES = 4


def counts_text(counts: dict[str, int], limit: int | None = None) -> str:
    """``{"T": 3, "N": 120}`` -> ``"N 120, T 3"`` (most first; ``limit`` entries, then ``+k more``)."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = items if limit is None else items[:limit]
    text = ", ".join(f"{k} {n}" for k, n in shown)
    if len(items) > len(shown):
        text += f", +{len(items) - len(shown)} more"
    return text


def interval_text(registry_s: int | None, observed_s: int | None) -> str:
    """The registry's interval when it has one (with the observed one beside it when they differ), else
    the observed one marked ``(observed)``; empty when neither is known."""
    if registry_s:
        if observed_s and observed_s != registry_s:
            return f"{registry_s} s (observed {observed_s} s)"
        return f"{registry_s} s"
    return f"{observed_s} s (observed)" if observed_s else ""


def _when(ms: int | None, tz: str) -> str:
    return "never" if ms is None else format_display(ms, tz)


def _device_rows(
    registry,
    summaries: dict,
    fmt: str,
    tz: str,
    findings: dict | None,
    links: dict,
    now: int,
    interval_s: float,
) -> list[dict]:
    """``findings``: per device, its data-integrity findings by check (None: no alerts ledger);
    ``links``: per device, its gateway connection's row (``interval_s``: the gateway's status interval)."""
    limit = TABLE_ENTRIES if fmt == "table" else None
    rows = []
    for d in registry:
        s = summaries.get(d.device_id)
        p = s.period if s is not None else None
        dead = dict(p.dead_letters) if p is not None else {}
        row = {
            "device_id": d.device_id,
            "restaurant_id": d.restaurant_id,
            "restaurant": d.name,
            "dialect": d.dialect or DEFAULT_DIALECT,
            "last_seen": _when(s.last_reading_ms if s is not None else None, tz),
            "last_seen_ms": s.last_reading_ms if s is not None else None,
            "last_received": _when(s.last_received_ms if s is not None else None, tz),
            "last_received_ms": s.last_received_ms if s is not None else None,
            "interval": interval_text(d.interval_s, p.interval_s if p is not None else None),
            "interval_s": d.interval_s,
            "observed_interval_s": p.interval_s if p is not None else None,
            "readings": p.readings if p is not None else 0,
            "flags": dict(p.flags) if p is not None else {},
            "unknown_codes": dict(p.unknown_codes) if p is not None else {},
            "crc_failures": p.crc_failures if p is not None else 0,
            "crc_variants": dict(p.crc_variants) if p is not None else {},
            "notes": dict(p.notes) if p is not None else {},
            "dead_letters": sum(dead.values()),
            "dead_letter_reasons": dead,
            "integrity": None if findings is None else findings.get(d.device_id, {}),
            **gateway.fields(links.get(d.device_id), now, interval_s, tz, fmt),
        }
        if fmt != "json":
            row["integrity"] = counts_text(row["integrity"] or {})
            for key in ("flags", "unknown_codes", "crc_variants", "notes"):
                row[key] = counts_text(row[key], limit)
            reasons = counts_text(dead, 3 if fmt == "table" else None)
            row["dead_letter_reasons"] = reasons
            if fmt == "table" and dead:
                row["dead_letters"] = f"{sum(dead.values())} ({reasons})"
        rows.append(row)
    return rows


def cmd_devices(args: argparse.Namespace) -> int:
    """One row per registry device; times in the display zone with offset (or UTC with ``--utc``)."""
    from ingest.state import StateDB

    if args.since_hours is not None and args.since_hours < 1:
        raise CLIError(f"--since-hours {args.since_hours}: give a whole number of hours, 1 or more")
    s = settings_from(args)
    tz = output_tz(args, s)
    registry = load_registry(s)
    state = existing_state(s)
    if args.integrity is not None:
        return _integrity(args, registry, state, tz)
    now = now_ms()
    since = now - (args.since_hours or 24) * HOUR_MS
    st = StateDB(state)
    try:
        if args.unregistered:
            found, unattributed = st.unregistered_devices(since)
        else:
            summaries = st.device_summaries(since)
    finally:
        st.close()
    start = format_display(since - since % HOUR_MS, tz)
    if args.unregistered:
        rows = [
            present_times(
                {
                    "device_id": u.device_id,
                    "topic": " ".join(sorted(u.topics, key=lambda t: -u.topics[t])),
                    "count": u.count,
                    "held_back": u.held_back,
                    "first_seen": "",
                    "first_seen_ms": u.first_ms,
                    "last_seen": "",
                    "last_seen_ms": u.last_ms,
                },
                tz,
            )
            for u in found
            if u.device_id not in registry
        ]
        if args.format == "table":
            print(f"devices not in the registry that published since {start} (unknown_device dead letters)")
        write_rows(rows, UNREGISTERED_COLUMNS, args.format)
        if unattributed:
            print(
                f"fumewatch devices: {unattributed} more unknown_device dead letters since {start} were "
                "held back by the all-devices cap ([deadletters] max_per_minute) without their device id",
                file=sys.stderr,
            )
        return 0
    ledger = integrity.open_ledger(state)
    if ledger is None:
        print(integrity.no_ledger(state), file=sys.stderr)
        findings = None
    else:
        try:
            findings = integrity.counts_by_device(ledger, since - since % HOUR_MS)
        finally:
            ledger.close()
    links = gateway.connections(state)
    rows = _device_rows(
        registry, summaries, args.format, tz, findings, links, now, s.gateway.status_interval_s
    )
    if args.format == "table":
        print(
            f"{len(rows)} registry devices; counts since {start} (by the hour), last seen ever; "
            f"crc_failures = frames refused {BAD_CRC}; integrity = data-integrity findings by check "
            "(for inspectors, not offences: --integrity DEVICE lists them); gateway = the logger's "
            "connection to the HJ 212 gateway"
        )
    write_rows(rows, TABLE_COLUMNS if args.format == "table" else CSV_COLUMNS, args.format)
    return 0


def _integrity(args: argparse.Namespace, registry, state: str, tz: str) -> int:
    """``--integrity DEVICE``: the device's data-integrity findings, newest first (all that are recorded;
    with ``--since-hours`` those overlapping the period, by the hour)."""
    device_id = args.integrity
    dev = registry.get(device_id)
    if dev is None:
        print(
            f"fumewatch devices: {device_id} is not in the registry; listing its findings in the ledger",
            file=sys.stderr,
        )
    since = None
    if args.since_hours is not None:
        since = now_ms() - args.since_hours * HOUR_MS
        since -= since % HOUR_MS
    ledger = integrity.open_ledger(state)
    if ledger is None:
        print(integrity.no_ledger(state), file=sys.stderr)
        rows: list[dict] = []
    else:
        try:
            rows = integrity.finding_rows(
                ledger,
                device_id,
                restaurant_id=dev.restaurant_id if dev else None,
                since_ms=since,
                tz=tz,
            )
        finally:
            ledger.close()
    present_times(rows, tz)
    if args.format == "table":
        since_text = None if since is None else format_display(since, tz)
        print(integrity.heading(device_id, dev.name if dev else "", len(rows), since_text))
    columns = {"table": integrity.TABLE_COLUMNS, "csv": integrity.CSV_COLUMNS}.get(args.format, ())
    write_rows(rows, columns, args.format)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "devices",
        help="per registry device: last seen, interval, HJ 212 flags, unknown codes, CRC failures, "
        "dead letters, data-integrity findings, HJ 212 gateway connection (--unregistered: device ids not in the registry; "
        "--integrity DEVICE: that device's findings)",
    )
    add_common(sp, registry=True, state=True)
    sp.add_argument(
        "--since-hours",
        metavar="N",
        type=int,
        default=None,
        help="count the last N hours, by the hour (default 24; with --integrity: all recorded findings)",
    )
    which = sp.add_mutually_exclusive_group()
    which.add_argument(
        "--unregistered",
        action="store_true",
        help="list the device ids and topics that published but are not in the registry, most first",
    )
    which.add_argument(
        "--integrity",
        metavar="DEVICE_ID",
        help="list the device's data-integrity findings (suspect_zero, suspect_flatline ...), newest "
        "first: time, check, label, minutes, event id, evidence (for inspectors, not offences)",
    )
    sp.add_argument("--format", choices=("table", "csv", "json"), default="table")
    add_utc(sp)
    sp.set_defaults(func=cmd_devices)
