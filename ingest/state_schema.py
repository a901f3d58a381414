"""Ingest's part of the state database schema (SQLAlchemy Core): the ``dead_letters`` table.

The alerts ledger adds its tables to the same database (``alerts.ledger.schema``); the migrations in
``fumewatch/db/migrations`` version both. Column types are those revision 0001 created: times are epoch
milliseconds (BIGINT; INTEGER on SQLite, whose INTEGER is 64-bit).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, Text

metadata = MetaData()

#: Epoch milliseconds: BIGINT (INTEGER on SQLite, as the tables written before Alembic have it).
Ms = BigInteger().with_variant(Integer(), "sqlite")

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Ms, primary_key=True, autoincrement=True),
    Column("received_ms", Ms, nullable=False),
    Column("topic", Text, nullable=False),
    Column("device_id", Text, nullable=False, server_default=""),
    Column("reason", Text, nullable=False),
    Column("payload_excerpt", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default="{}"),
    Index("dead_letters_received", "received_ms"),
    sqlite_autoincrement=True,
)
