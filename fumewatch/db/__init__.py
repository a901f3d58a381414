"""The state database's schema versions (Alembic, configured in code: no alembic.ini).

- :func:`upgrade`: bring a database to the newest revision (``fumewatch db upgrade``); services run it on
  an embedded SQLite file at start. A database written before Alembic (tables, no ``alembic_version``) is
  adopted: revision 0001 creates only what is missing and records itself, then the later revisions run.
- :func:`check`: what services on PostgreSQL and the read-only commands do instead: refuse, in one line,
  a database that is not at the newest revision (they never create or migrate anything).
- :func:`current_revision` / :func:`head`: ``fumewatch db current``.

Migrations are in ``fumewatch/db/migrations/versions``; docs/ledger.md says how to add one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from alerts.ledger.schema import metadata as ledger_metadata
from ingest.db import begin_write, display, is_sqlite, make_engine
from ingest.state_schema import metadata as ingest_metadata

log = logging.getLogger("fumewatch.db")
# Alembic says "Context impl ..." at INFO on every check; our own event=state_db_* lines say what matters.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock key that serialises concurrent upgrades of one PostgreSQL database.
_UPGRADE_LOCK = 0x66756D65  # "fume"
_KNOWN_TABLES = {*ingest_metadata.tables, *ledger_metadata.tables}


class StateDBError(ValueError):
    """The state database cannot be used as it is (printed as one line by the command line)."""


def alembic_config(connection: Connection | None = None, state: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["state"] = state
    return cfg


def head() -> str:
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert rev is not None
    return rev


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _unversioned_tables(conn: Connection) -> set[str]:
    """Our tables in a database that has no ``alembic_version`` (empty set: none, or it is versioned)."""
    names = set(inspect(conn).get_table_names())
    return set() if "alembic_version" in names else names & _KNOWN_TABLES


def _connect_error(state: str, exc: DBAPIError) -> StateDBError:
    first = (
        str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else type(exc).__name__
    )
    return StateDBError(f"cannot use state database {display(state)}: {first}")


def current_revision(state: str) -> str | None:
    """The revision recorded in ``state`` (None: not versioned). Creates nothing: a missing SQLite file
    is an error."""
    _require_file(state)
    engine = make_engine(state, create_dir=False)
    try:
        with engine.connect() as conn:
            return _revision(conn)
    except DBAPIError as exc:
        raise _connect_error(state, exc) from None
    finally:
        engine.dispose()


def describe(state: str) -> str:
    """One line for ``fumewatch db current``."""
    _require_file(state)
    engine = make_engine(state, create_dir=False)
    try:
        with engine.connect() as conn:
            rev, legacy = _revision(conn), _unversioned_tables(conn)
    except DBAPIError as exc:
        raise _connect_error(state, exc) from None
    finally:
        engine.dispose()
    h = head()
    if rev == h:
        return f"{rev} (head)"
    if rev is not None:
        return f"{rev} (head is {h}: run `fumewatch db upgrade --state {display(state)}`)"
    if legacy:
        return f"none: tables of a release before Alembic; `fumewatch db upgrade` adopts them (head is {h})"
    return f"none: empty database (head is {h})"


def upgrade(state: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate ``state`` to ``revision``; return (revision before, revision after). One transaction:
    SQLite ``BEGIN IMMEDIATE``, PostgreSQL with an advisory lock, so two upgrades at once queue."""
    engine = make_engine(state)
    try:
        with engine.connect() as conn:
            begin_write(conn)
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK})
            before = _revision(conn)
            cfg = alembic_config(conn)
            legacy = _unversioned_tables(conn)
            if before is None and legacy:
                log.info("event=state_db_adopt state=%s tables=%s", display(state), ",".join(sorted(legacy)))
                command.upgrade(cfg, "0001")  # checkfirst: keeps every table and row, records 0001
            command.upgrade(cfg, revision)
            after = _revision(conn)
            conn.commit()
    except DBAPIError as exc:
        raise _connect_error(state, exc) from None
    finally:
        engine.dispose()
    if before != after:
        log.info("event=state_db_upgraded state=%s from=%s to=%s", display(state), before, after)
    return before, after


def _require_file(state: str) -> None:
    if is_sqlite(state) and state != ":memory:" and not Path(state).exists():
        raise StateDBError(f"state database {state} does not exist")


def check(state: str) -> None:
    """Refuse (:class:`StateDBError`) a state database that is not at :func:`head`. Creates nothing.

    An unversioned database whose tables already have the newest layout (made by ``Ledger()`` /
    ``StateDB()`` directly, e.g. by tests and tools) is accepted for reading.
    """
    _require_file(state)
    engine = make_engine(state, create_dir=False)
    h = head()
    fix = f"run `fumewatch db upgrade --state {display(state)}`"
    try:
        with engine.connect() as conn:
            rev = _revision(conn)
            if rev == h:
                return
            if rev is not None:
                raise StateDBError(f"state database at revision {rev}, this release needs {h}: {fix}")
            tables = _unversioned_tables(conn)
            if not tables:
                raise StateDBError(f"state database {display(state)} has no fumewatch schema: {fix}")
            if not _has_head_layout(conn):
                raise StateDBError(
                    f"state database at revision none (written before 0.2), this release needs {h}: {fix}"
                )
    except DBAPIError as exc:
        raise _connect_error(state, exc) from None
    finally:
        engine.dispose()


def _has_head_layout(conn: Connection) -> bool:
    insp = inspect(conn)
    present = set(insp.get_table_names())
    for table in (*ingest_metadata.tables.values(), *ledger_metadata.tables.values()):
        if table.name not in present:
            continue  # created on first use by its owner (only the tables that exist are read)
        cols = {c["name"] for c in insp.get_columns(table.name)}
        if not {c.name for c in table.columns} <= cols:
            return False
    return True


def prepare_for_service(state: str) -> None:
    """At service start: SQLite is upgraded in place (embedded, nobody else to ask); PostgreSQL is
    checked and refused when not current (an operator runs ``fumewatch db upgrade`` explicitly)."""
    if is_sqlite(state):
        upgrade(state)
    else:
        check(state)
