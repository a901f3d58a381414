"""Alembic environment of the state database (configured in code by :func:`fumewatch.db.alembic_config`).

The connection comes from ``config.attributes["connection"]`` (the caller's transaction: SQLite
``BEGIN IMMEDIATE``, PostgreSQL with an advisory lock, see :func:`fumewatch.db.upgrade`); without one, a
``state`` attribute (path or URL) is opened here. Both MetaData objects are the target: ingest's
``dead_letters`` and ``device_stats``, and the alerts ledger's tables.
"""

from __future__ import annotations

from alembic import context

from alerts.ledger.schema import metadata as ledger_metadata
from ingest.db import make_engine
from ingest.state_schema import metadata as ingest_metadata

target_metadata = [ingest_metadata, ledger_metadata]


def _run(connection) -> None:  # noqa: ANN001 - sqlalchemy Connection
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: autogenerate batch operations
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.attributes["state"])
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `fumewatch db upgrade --state ...`")
run_migrations_online()
