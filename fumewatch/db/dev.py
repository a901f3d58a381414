"""Developer helper: write the next migration by comparing the schema modules with a database at head.

    make migration MSG="notices: add level"
    # = python -m fumewatch.db.dev revision "notices: add level"

Upgrades a throwaway SQLite file to the current head, lets Alembic autogenerate the difference between it
and ``ingest.state_schema`` + ``alerts.ledger.schema``, and writes
``fumewatch/db/migrations/versions/<NNNN>_<slug>.py`` (the next four-digit number). Read and edit what it
wrote (autogenerate misses renames and server-default changes), then run tests/test_migrations.py: it
upgrades on SQLite and PostgreSQL and fails while the migrations and the schema modules differ.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from fumewatch.db import alembic_config, head, upgrade
from ingest.db import make_engine


def revision(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "state.db")
        upgrade(path)
        engine = make_engine(path)
        try:
            with engine.connect() as conn:
                command.revision(
                    alembic_config(conn), message=message, autogenerate=True, rev_id=f"{int(head()) + 1:04d}"
                )
        finally:
            engine.dispose()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "revision" or not argv[2].strip():
        print('usage: python -m fumewatch.db.dev revision "what the migration does"', file=sys.stderr)
        return 2
    revision(argv[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
