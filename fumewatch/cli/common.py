"""What every subcommand shares: user errors, common flags, settings from flags, time arguments, output.

Precedence of settings: defaults < ``--config`` TOML < command-line flags < FUMEWATCH_* environment.
"""

from __future__ import annotations

import argparse
import csv
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Sequence

import orjson

from ingest.config import Settings, load_settings
from ingest.timeutil import parse_time

log = logging.getLogger("fumewatch.cli")


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


# ---------------------------------------------------------------------- shared options
def add_common(
    p: argparse.ArgumentParser,
    *,
    broker: bool = False,
    store: bool = False,
    registry: bool = False,
    state: bool = False,
) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (see config/fumewatch.sample.toml)")
    if broker:
        p.add_argument("--broker", metavar="URL", help="mqtt://[user:pass@]host:port or mqtts://...")
    if store:
        p.add_argument(
            "--store", metavar="S", help="path ending in .db (embedded SQLite) or http(s):// InfluxDB URL"
        )
    if registry:
        p.add_argument("--registry", metavar="CSV", help="device registry CSV")
    if state:
        p.add_argument(
            "--state",
            metavar="PATH|URL",
            help="state database: SQLite path, or postgresql://user@host/db (password from "
            "FUMEWATCH_STATE_PASSWORD or PGPASSWORD); dead letters, events, notices",
        )


def settings_from(args: argparse.Namespace, cls: type[Settings] | None = None, **extra: dict) -> Settings:
    overrides = {
        "mqtt": {
            "broker": getattr(args, "broker", None),
            "client_id": getattr(args, "client_id", None),
            "shared_group": getattr(args, "shared_group", None),
        },
        "ingest": {
            "store": getattr(args, "store", None),
            "registry": getattr(args, "registry", None),
            "state": getattr(args, "state", None),
        },
    }
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    try:
        return load_settings(getattr(args, "config", None), overrides, cls)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"invalid configuration: {exc}") from None


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum, frame) -> None:
        log.info("event=signal signal=%s (stopping cleanly)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def time_arg(value: str | None, tz: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value, tz)
    except ValueError:
        raise CLIError(
            f"cannot read time {value!r}: use RFC 3339 (2026-11-26T12:00:00+08:00), a date, or epoch ms"
        ) from None


def write_rows(rows: Iterable[dict], columns: Sequence[str], fmt: str, out=None) -> int:
    out = out or sys.stdout
    n = 0
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        for row in rows:
            w.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
            n += 1
    else:
        items = list(rows)
        n = len(items)
        out.write(orjson.dumps(items, option=orjson.OPT_INDENT_2).decode() + "\n")
    return n
