"""What every subcommand shares: user errors, common flags, settings from flags, time arguments, output.

Precedence of settings: defaults < ``--config`` TOML < command-line flags < FUMEWATCH_* environment.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import signal
import socket
import sys
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from ingest.config import ConfigError, Settings, load_settings
from ingest.timeutil import format_display, parse_time

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
    connect_timeout: bool = False,
) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (see config/fumewatch.sample.toml)")
    if broker:
        p.add_argument(
            "--broker",
            metavar="URL",
            help="mqtt://[user:pass@]host[:port] (default port 1883), mqtts://... (TLS, 8883); "
            "tcp:// = mqtt://, ssl:// = mqtts://, bare host[:port] = mqtt://",
        )
    if connect_timeout:
        p.add_argument(
            "--connect-timeout",
            metavar="SECONDS",
            type=float,
            help="give up with one line if the broker cannot be reached within SECONDS "
            "(services: only the first connection; later outages are retried)",
        )
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


def check_owner_links(s: Any) -> None:
    """``[owner] public_url`` needs FUMEWATCH_OWNER_LINK_SECRET in every process that sends notices or
    serves the page: refused in one line before anything starts."""
    from alerts.owner.links import OwnerLinkError, OwnerLinks

    try:
        OwnerLinks.from_settings(None, s.owner)
    except OwnerLinkError as exc:
        raise CLIError(str(exc)) from None


def settings_from(args: argparse.Namespace, cls: type[Settings] | None = None, **extra: dict) -> Settings:
    """The settings of ``cls`` (default: the whole application's, every section) from ``args``.

    Every command loads through here, so a mistake in any section of the file or in a FUMEWATCH_*
    variable is refused the same way (one line: source, key, problem) whatever the command.
    """
    if cls is None:
        from fumewatch.settings import AppSettings

        cls = AppSettings
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
    flags = {(sec, key): "--" + key.replace("_", "-") for sec, values in overrides.items() for key in values}
    try:
        return load_settings(getattr(args, "config", None), overrides, cls, flags)
    except (FileNotFoundError, ConfigError) as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"invalid configuration: {exc}") from None


def reach_broker(settings: Settings, timeout_s: float | None) -> None:
    """With ``timeout_s``: wait until the broker accepts a TCP connection, or raise a one-line CLIError.

    Refused connections are retried until the deadline (a broker that is starting up is fine); a name
    that does not resolve fails at once. ``None``: no check (services keep retrying on their own).
    """
    if timeout_s is None:
        return
    if timeout_s <= 0:
        raise CLIError(f"--connect-timeout {timeout_s:g}: give a number of seconds above 0")
    host, port, tls, _, _ = settings.mqtt.endpoint()
    url = f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(0.05, left)):
                return
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            if isinstance(exc, socket.gaierror) or deadline - time.monotonic() <= 0.2:
                raise CLIError(f"cannot reach broker {url} within {timeout_s:g} s: {reason}") from None
            time.sleep(0.2)


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


def tz_arg(value: str) -> str:
    """argparse type for a time-zone flag: an IANA name (Grafana's "browser" and "utc" too)."""
    from ingest.config_check import check_timezone

    if value in ("browser", "utc"):
        return value
    problem = check_timezone(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def period_args(args: argparse.Namespace, tz: str) -> tuple[int | None, int | None]:
    """``--since`` and ``--until`` of ``args`` as epoch ms; refuses a period that ends before it starts."""
    since = time_arg(getattr(args, "since", None), tz)
    until = time_arg(getattr(args, "until", None), tz)
    if since is not None and until is not None and since >= until:
        raise CLIError(
            f"--since {args.since} is not before --until {args.until}: the period would be empty "
            "(--until is exclusive)"
        )
    return since, until


# ---------------------------------------------------------------------- times people read
#: What ``--utc`` prints in: the same RFC 3339 form as the display zone, with ``+00:00``.
UTC_ZONE = "UTC"
_UTC_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def add_utc(p: argparse.ArgumentParser) -> None:
    """The ``--utc`` flag of a listing: output times in UTC (``+00:00``) instead of the display zone."""
    p.add_argument(
        "--utc",
        action="store_true",
        help="print times in UTC (2026-11-20T02:00:00+00:00) instead of the display time zone "
        "(display_tz); input times are read as without it",
    )


def output_tz(args: argparse.Namespace, settings: Settings) -> str:
    """The zone a listing prints its times in: UTC with ``--utc``, else ``display_tz``."""
    return UTC_ZONE if getattr(args, "utc", False) else settings.display_tz


def present_times(obj: Any, tz: str) -> Any:
    """Walk ``obj`` (dicts and lists, as deep as they go) and, for every key ``<name>_ms`` holding an int
    (epoch ms), set ``<name>`` to that time in ``tz`` with its offset (:func:`format_display`), replacing
    any stored text; the ``_ms`` key stays for machines. A stored UTC text without an ``_ms`` twin
    (``"first_start": "2026-11-20T02:00:00Z"``) is rewritten in ``tz`` too, so no bare UTC time reaches
    a person.
    Changes ``obj`` in place and returns it."""
    if isinstance(obj, list):
        for item in obj:
            present_times(item, tz)
    elif isinstance(obj, dict):
        for key, value in list(obj.items()):
            if isinstance(value, dict | list):
                present_times(value, tz)
            elif (
                key.endswith("_ms")
                and len(key) > 3
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                obj[key[:-3]] = format_display(value, tz)
            elif isinstance(value, str) and _UTC_TEXT.match(value):
                obj[key] = format_display(parse_time(value), tz)
    return obj


def existing_path(path: str, what: str, flag: str, setting: str, *, reads_only: bool = True) -> str:
    """``path`` if it exists; a command that only reads must not create an empty database or file."""
    if not Path(path).exists():
        why = "this command only reads: check the path" if reads_only else "check the path"
        raise CLIError(f"{what} {path} does not exist (from {flag} or {setting}); {why}")
    return path


def existing_state(settings: Settings) -> str:
    """The state database of a command that only reads (dead letters, events, cases, notices, reports,
    the API): an SQLite file must exist, and the database must be at this release's revision. Creates and
    migrates nothing (:func:`fumewatch.db.check`)."""
    from fumewatch.db import check
    from ingest.db import is_sqlite

    state = settings.ingest.state
    if is_sqlite(state):
        existing_path(state, "state database", "--state", "[ingest] state")
    check(state)
    return state


def open_read_store(settings: Settings):
    """The readings store of a command that only reads: :func:`ingest.store.open_store` refuses a missing
    SQLite file (it never creates one); here that refusal names the flag and the setting."""
    from ingest.store import open_store

    try:
        return open_store(settings.ingest.store, settings, read_only=True)
    except FileNotFoundError as exc:
        raise CLIError(
            f"{exc} (from --store or [ingest] store); this command only reads: check the path"
        ) from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def load_registry(settings: Settings, path: str | None = None):
    """The device registry (``--registry`` / ``[ingest] registry``), which must exist."""
    from ingest.registry import Registry

    p = path or settings.ingest.registry
    return Registry.load(existing_path(p, "registry", "--registry", "[ingest] registry", reads_only=False))


def text_width(text: str) -> int:
    """Terminal columns of ``text``: wide (CJK) characters take two, combining marks none."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def write_table(rows: Iterable[dict], columns: Sequence[str], out=None) -> int:
    """``rows`` as aligned columns for a terminal (``--format table``), a header first; Chinese names
    line up (:func:`text_width`)."""
    out = out or sys.stdout
    cells = [list(columns)] + [["" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows]
    widths = [max(text_width(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        parts = [v + " " * (w - text_width(v)) for v, w in zip(row, widths, strict=True)]
        out.write("  ".join(parts).rstrip() + "\n")
    return len(cells) - 1


def write_rows(rows: Iterable[dict], columns: Sequence[str], fmt: str, out=None) -> int:
    out = out or sys.stdout
    n = 0
    if fmt == "table":
        return write_table(rows, columns, out)
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


def open_ingest(settings: Settings, connect_timeout: float | None):
    """What ``ingest`` and ``run`` start with: (registry, store, state DB). The registry is loaded and the
    broker reached (when ``--connect-timeout`` is given) before anything is created, then the state
    database is prepared (:func:`fumewatch.db.prepare_for_service`) and the store opened."""
    from fumewatch.db import prepare_for_service
    from ingest.state import StateDB
    from ingest.store import open_store

    registry = load_registry(settings)
    reach_broker(settings, connect_timeout)
    prepare_for_service(settings.ingest.state)
    store = open_store(settings.ingest.store, settings)
    return registry, store, StateDB(settings.ingest.state, settings.deadletters)
