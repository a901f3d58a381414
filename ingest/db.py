"""Where the state database lives: an SQLite path or a ``postgresql://`` URL, opened as an SQLAlchemy engine.

``--state`` (``[ingest] state``) is either a file path (embedded SQLite, the default) or
``postgresql://user@host[:port]/db`` (also ``postgresql+psycopg://``; psycopg 3 is the driver). A password
never appears in the URL: it comes from ``FUMEWATCH_STATE_PASSWORD`` or libpq's ``PGPASSWORD`` (a URL with
one is refused, so it cannot leak into a config file, a process list or a log line).

SQLite connections are set up as the ledger needs them: WAL (readers in other processes see the last
committed snapshot while a writer works), ``synchronous=FULL`` (a committed notice record survives power
loss), a busy timeout (a second writer waits instead of failing) and no implicit transactions: writers say
``BEGIN IMMEDIATE`` themselves (see :func:`begin_write`), readers never take the write lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

PASSWORD_ENV = ("FUMEWATCH_STATE_PASSWORD", "PGPASSWORD")
_PG_SCHEMES = ("postgresql", "postgresql+psycopg")


class StateURLError(ValueError):
    """A ``--state`` value that cannot be used (printed as one line by the command line)."""


def is_url(state: str | Path) -> bool:
    return "://" in str(state)


def is_sqlite(state: str | Path) -> bool:
    return not is_url(state)


def state_url(state: str | Path) -> URL:
    """The SQLAlchemy URL for ``state`` (a path or a postgresql URL), without any password."""
    text = str(state)
    if not is_url(text):
        return URL.create("sqlite+pysqlite", database=text if text == ":memory:" else str(Path(text)))
    try:
        url = make_url(text)
    except ArgumentError:
        raise StateURLError(f"cannot read state database URL {display(text)!r}") from None
    if url.drivername not in _PG_SCHEMES:
        raise StateURLError(
            f"state database {url.drivername}:// is not supported: give a file path (SQLite) "
            "or postgresql://user@host/db"
        )
    if url.password is not None:
        raise StateURLError(
            "the state database URL must not contain a password: set FUMEWATCH_STATE_PASSWORD "
            "(or PGPASSWORD) in the environment instead"
        )
    if not url.database:
        raise StateURLError(f"state database URL {display(text)!r} names no database (…/DBNAME)")
    return url.set(drivername="postgresql+psycopg")


def display(state: str | Path) -> str:
    """``state`` as it may be printed or logged: a URL's password (should one slip in) shown as ``***``."""
    text = str(state)
    if not is_url(text):
        return text
    try:
        return make_url(text).render_as_string(hide_password=True).replace("+psycopg", "")
    except ArgumentError:
        return text.split("://", 1)[0] + "://***"


def make_engine(state: str | Path, busy_timeout_s: float = 30.0, *, create_dir: bool = True) -> Engine:
    """An engine for the state database ``state``; an SQLite file's folder is created when missing."""
    url = state_url(state)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout_s, create_dir)
    password = next((os.environ[k] for k in PASSWORD_ENV if os.environ.get(k)), None)
    if password is not None:
        url = url.set(password=password)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        connect_args={"connect_timeout": max(1, int(busy_timeout_s)), "application_name": "fumewatch"},
    )


def _sqlite_engine(url: URL, busy_timeout_s: float, create_dir: bool) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory and create_dir:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False, "isolation_level": None},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _setup(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI objects
        dbapi_conn.isolation_level = None  # no implicit BEGIN: see begin_write
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    return engine


def begin_write(conn: Connection) -> None:
    """Start a write transaction on ``conn``: ``BEGIN IMMEDIATE`` on SQLite (take the write lock now, so
    two writers queue instead of one failing at commit); on PostgreSQL the transaction SQLAlchemy began."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
