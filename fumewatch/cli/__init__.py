"""The ``fumewatch`` command: one parser, the subcommands of each ``cmd_*`` module.

Each ``fumewatch.cli.cmd_*`` module has a ``register(subparsers)`` that adds its subcommands; the command
functions import the heavy parts (services, pandas, FastAPI) only when they run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fumewatch.cli import (
    cmd_acl,
    cmd_alerts,
    cmd_api,
    cmd_case,
    cmd_dashboards,
    cmd_db,
    cmd_devices,
    cmd_dialects,
    cmd_gateway,
    cmd_ingest,
    cmd_owner_link,
    cmd_report,
)
from fumewatch.cli.common import CLIError, add_common, settings_from, time_arg, write_rows
from ingest import logs

__all__ = ["CLIError", "add_common", "build_parser", "main", "settings_from", "time_arg", "write_rows"]

#: Modules whose ``register(subparsers)`` adds subcommands, in the order ``fumewatch --help`` lists them.
COMMAND_MODULES = (
    cmd_ingest,
    cmd_gateway,
    cmd_dialects,
    cmd_devices,
    cmd_alerts,
    cmd_case,
    cmd_report,
    cmd_api,
    cmd_acl,
    cmd_dashboards,
    cmd_db,
    cmd_owner_link,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fumewatch",
        description="Streaming compliance monitoring of restaurant cooking fume (GB 18483-2001, HJ 212-2017).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for mod in COMMAND_MODULES:
        mod.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from ingest.registry import RegistryError
    from ingest.store.influx import InfluxQLError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logs.setup("WARNING")
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"fumewatch {args.command}: {logs.redact(str(exc))}", file=sys.stderr)  # no secrets
        return 2
    except (RegistryError, InfluxQLError, FileNotFoundError, ValueError) as exc:
        print(f"fumewatch {args.command}: {logs.redact(str(exc))}", file=sys.stderr)  # no secrets
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
