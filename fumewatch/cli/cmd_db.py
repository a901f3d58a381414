"""``fumewatch db upgrade | current``: the state database's schema revision (Alembic, fumewatch.db)."""

from __future__ import annotations

import argparse

from fumewatch.cli.common import add_common, settings_from


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from fumewatch import db

    state = settings_from(args).ingest.state
    before, after = db.upgrade(state)
    from ingest.db import display

    if before == after:
        print(f"state database {display(state)}: already at {after} (head)")
    else:
        print(f"state database {display(state)}: {before or 'none'} -> {after} (head)")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from fumewatch import db

    print(db.describe(settings_from(args).ingest.state))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("db", help="state database schema: upgrade | current")
    dbsub = sp.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = dbsub.add_parser("upgrade", help="migrate the state database to this release's schema")
    add_common(p, state=True)
    p.set_defaults(func=cmd_db_upgrade)
    p = dbsub.add_parser("current", help="print the state database's schema revision (changes nothing)")
    add_common(p, state=True)
    p.set_defaults(func=cmd_db_current)
