"""The HJ 212 gateway's connections (issue 17, ``fumewatch devices``' gateway column).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

- ``gateway_connections``: one row per data logger (MN) that connected to an HJ 212 gateway: its peer
  address, when the connection began, frames accepted and answered, refused frames by reason (JSON text),
  the last error, the last frame's time, when it ended (NULL while connected), when the gateway last wrote
  the row, and which gateway wrote it. Written by ``fumewatch hj212-gateway`` (and ``fumewatch run`` with
  ``[gateway] listen``), read by ``fumewatch devices``. Databases from before start empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Ms = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as ingest.state_schema.Ms


def upgrade() -> None:
    if "gateway_connections" in set(sa.inspect(op.get_bind()).get_table_names()):
        return  # StateDB() made it (it creates ingest's missing tables in an unversioned database)
    op.create_table(
        "gateway_connections",
        sa.Column("mn", sa.Text(), primary_key=True),
        sa.Column("instance", sa.Text(), nullable=False, server_default=""),
        sa.Column("peer", sa.Text(), nullable=False, server_default=""),
        sa.Column("connected_since_ms", Ms, nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("acks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("refused", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.Column("last_frame_ms", Ms, nullable=True),
        sa.Column("disconnected_ms", Ms, nullable=True),
        sa.Column("updated_ms", Ms, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_connections")
