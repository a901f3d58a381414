"""The durable outbox of event transitions (issue 11).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Each transition the detector produces is written to ``outbox`` in the transaction that stores its event
and the detector snapshot; the notifier marks it ``done`` once every target of the transition (owners,
inspectors, the MQTT alert) has a notice row. Start-up resumes every pending row. Databases from before get
an empty outbox: their transitions were notified (or caught up) by the release that wrote them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Ms = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as ingest.state_schema.Ms


def upgrade() -> None:
    if "outbox" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "outbox",
            sa.Column("key", sa.Text(), primary_key=True),
            sa.Column("event_id", sa.Text(), nullable=False),
            sa.Column("action", sa.Text(), nullable=False),
            sa.Column("at_ms", Ms, nullable=False),
            sa.Column("event", sa.Text(), nullable=False),
            sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
            sa.Column("error", sa.Text(), nullable=False, server_default=""),
            sa.Column("created_ms", Ms, nullable=False),
            sa.Column("updated_ms", Ms, nullable=False),
        )
    op.create_index("outbox_by_status", "outbox", ["status", "created_ms"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("outbox_by_status", table_name="outbox", if_exists=True)
    op.drop_table("outbox")
