"""Notices: who holds a pending claim (``claimed_by``), and an index for the per-restaurant listings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

``claimed_by`` ("host:pid", "" = nobody) lets the exactly-once gate tell a notice another live process is
sending now from one left pending by a crash (docs/ledger.md). Rows written before it get "" (nobody),
so the resend after a crash works as before. ``notices_by_restaurant`` serves ``fumewatch notices
--restaurant/--since``. Idempotent (a database made by ``Ledger()`` without migrations has both already).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    if "claimed_by" not in {c["name"] for c in insp.get_columns("notices")}:
        op.add_column("notices", sa.Column("claimed_by", sa.Text(), nullable=False, server_default=""))
    op.create_index("notices_by_restaurant", "notices", ["restaurant_id", "created_ms"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("notices_by_restaurant", table_name="notices", if_exists=True)
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("claimed_by")
