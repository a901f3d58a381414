"""The detector's state per device (issue 14, incremental detector state).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

- ``detector_devices``: one row per (state name, device): the device's part of the detector state as JSON
  text, written by the alerts service only for the devices that changed since its last commit; the
  detector-wide part stays in ``detector_state`` under the same name. A ``WITHOUT ROWID`` table on
  SQLite, like ``windows``. A database from before keeps its whole-document snapshot (version 1 to 3) in
  ``detector_state``: the service restores from it and its first commit writes every device as a row and
  replaces the document with the detector-wide part (no data migration here: the rows are the
  detector's to write).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Ms = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as alerts.ledger.schema.Ms


def upgrade() -> None:
    if "detector_devices" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "detector_devices",
            sa.Column("name", sa.Text(), primary_key=True),
            sa.Column("device_id", sa.Text(), primary_key=True),
            sa.Column("data", sa.Text(), nullable=False),
            sa.Column("updated_ms", Ms, nullable=False),
            sqlite_with_rowid=False,
        )


def downgrade() -> None:
    # the rows do not go back into a whole document: a release before 0007 refuses the version-4 document
    # and starts its detector fresh (windows in progress are lost; finalised results stay in the ledger)
    op.drop_table("detector_devices")
