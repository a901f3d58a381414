"""The owner's page (issue 15, service before penalty): its links and what owners submit through it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

- ``owner_links``: one row per capability link (the restaurant, the notice that carried it, issue and
  expiry times, revocation). The signed token is not stored; it is rebuilt from the row with
  ``FUMEWATCH_OWNER_LINK_SECRET``, and a revoked or unknown row makes any token for it useless.
- ``owner_submissions``: rectification evidence and statements sent through the page, with the case of the
  ladder step they landed on and the receipt notice's key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Ms = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as alerts.ledger.schema.Ms


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "owner_links" not in have:
        op.create_table(
            "owner_links",
            sa.Column("link_id", sa.Text(), primary_key=True),
            sa.Column("restaurant_id", sa.Text(), nullable=False),
            sa.Column("notice_key", sa.Text(), nullable=False, server_default=""),
            sa.Column("issued_by", sa.Text(), nullable=False, server_default="system"),
            sa.Column("issued_ms", Ms, nullable=False),
            sa.Column("expires_ms", Ms, nullable=False),
            sa.Column("revoked_ms", Ms),
            sa.Column("revoked_by", sa.Text(), nullable=False, server_default=""),
            sa.Column("revoke_reason", sa.Text(), nullable=False, server_default=""),
            sa.Column("last_used_ms", Ms),
        )
        op.create_index("owner_links_by_restaurant", "owner_links", ["restaurant_id", "issued_ms"])
    if "owner_submissions" not in have:
        op.create_table(
            "owner_submissions",
            sa.Column("submission_id", sa.Text(), primary_key=True),
            sa.Column("kind", sa.Text(), nullable=False),
            sa.Column("restaurant_id", sa.Text(), nullable=False),
            sa.Column("link_id", sa.Text(), nullable=False),
            sa.Column("episode_id", sa.Text(), nullable=False, server_default=""),
            sa.Column("case_id", sa.Text(), nullable=False, server_default=""),
            sa.Column("received_ms", Ms, nullable=False),
            sa.Column("text", sa.Text(), nullable=False, server_default=""),
            sa.Column("attachments", sa.Text(), nullable=False, server_default="[]"),
            sa.Column("receipt_key", sa.Text(), nullable=False, server_default=""),
        )
        op.create_index(
            "owner_submissions_by_restaurant", "owner_submissions", ["restaurant_id", "received_ms"]
        )
        op.create_index("owner_submissions_by_link", "owner_submissions", ["link_id", "received_ms"])


def downgrade() -> None:
    op.drop_table("owner_submissions")
    op.drop_table("owner_links")
