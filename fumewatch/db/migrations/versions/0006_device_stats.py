"""Per-device ingest counters (issue 13, ``fumewatch devices``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

- ``device_stats``: one row per registry device and UTC hour of receipt (``bucket_ms``): readings, first
  and last received, newest reading time, observed reporting interval, and the small maps (HJ 212 data
  flags, unknown factor codes, pipeline notes, CRC variants, dead letters by reason) as JSON text, plus
  the frames refused for their CRC. Ingest adds to it as it flushes; retention deletes it with the dead
  letters. Databases from before start with an empty table: their devices show "never" until ingest
  hears from them again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Ms = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as ingest.state_schema.Ms


def upgrade() -> None:
    if "device_stats" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "device_stats",
            sa.Column("device_id", sa.Text(), primary_key=True),
            sa.Column("bucket_ms", Ms, primary_key=True, autoincrement=False),
            sa.Column("readings", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("first_received_ms", Ms, nullable=False),
            sa.Column("last_received_ms", Ms, nullable=False),
            sa.Column("last_reading_ms", Ms, nullable=True),
            sa.Column("interval_s", sa.Integer(), nullable=True),
            sa.Column("flags", sa.Text(), nullable=False, server_default="{}"),
            sa.Column("unknown_codes", sa.Text(), nullable=False, server_default="{}"),
            sa.Column("notes", sa.Text(), nullable=False, server_default="{}"),
            sa.Column("crc_variants", sa.Text(), nullable=False, server_default="{}"),
            sa.Column("crc_failures", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("dead_letters", sa.Text(), nullable=False, server_default="{}"),
        )
    op.create_index("device_stats_bucket", "device_stats", ["bucket_ms"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("device_stats_bucket", table_name="device_stats", if_exists=True)
    op.drop_table("device_stats")
