"""Ingest's part of the state database schema (SQLAlchemy Core): ``dead_letters``, ``device_stats`` and
the HJ 212 gateway's ``gateway_connections``.

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

#: 0006. What ingest saw of each registry device, per UTC hour of receipt (``bucket_ms``, the hour's
#: start), so ``fumewatch devices`` can say what a device sent in the last N hours without scanning
#: readings. Counters only grow (several ingest workers add to one row, ``ingest/device_stats_db.py``);
#: the small maps are JSON text objects, bounded by ``ingest/device_stats.py`` (codes and flags per row
#: capped, the rest as ``other``). Purged with the dead letters (``[deadletters] retention_days``).
device_stats = Table(
    "device_stats",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("bucket_ms", Ms, primary_key=True, autoincrement=False),
    Column("readings", Integer, nullable=False, server_default="0"),
    Column("first_received_ms", Ms, nullable=False),
    Column("last_received_ms", Ms, nullable=False),
    Column("last_reading_ms", Ms, nullable=True),  # newest reading time (the monitor's clock); None: none
    Column("interval_s", Integer, nullable=True),  # observed median gap between its reading times
    Column("flags", Text, nullable=False, server_default="{}"),  # HJ 212 data flag -> values
    Column("unknown_codes", Text, nullable=False, server_default="{}"),  # factor code -> entries
    Column("notes", Text, nullable=False, server_default="{}"),  # Outcome note kind -> count
    Column("crc_variants", Text, nullable=False, server_default="{}"),  # CRC variant -> frames
    Column("crc_failures", Integer, nullable=False, server_default="0"),  # frames refused hj212_bad_crc
    Column("dead_letters", Text, nullable=False, server_default="{}"),  # reason -> dead letters
    Index("device_stats_bucket", "bucket_ms"),
)

#: 0009. The HJ 212 gateway's connections (ingest/gateway/status.py), one row per data logger (its MN, the
#: registry's device id): the newest connection a gateway holds for it, or its last one with the time it
#: ended (``disconnected_ms``; NULL while connected). Written by the gateway every ``[gateway]
#: status_interval_s`` (``updated_ms``: when; a row not updated for long is a gateway that stopped without
#: saying so), at once when a logger's first frame is accepted and when it disconnects. ``instance``: the
#: gateway that wrote it (host:port); ``refused``: the connection's refused frames by reason (JSON object).
gateway_connections = Table(
    "gateway_connections",
    metadata,
    Column("mn", Text, primary_key=True),
    Column("instance", Text, nullable=False, server_default=""),
    Column("peer", Text, nullable=False, server_default=""),
    Column("connected_since_ms", Ms, nullable=False),
    Column("frames", Integer, nullable=False, server_default="0"),
    Column("acks", Integer, nullable=False, server_default="0"),
    Column("refused", Text, nullable=False, server_default="{}"),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("last_frame_ms", Ms, nullable=True),
    Column("disconnected_ms", Ms, nullable=True),
    Column("updated_ms", Ms, nullable=False),
)
