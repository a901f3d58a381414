"""The judgement rule on events, episodes of the enforcement ladder, inspectors' tasks (issue 10).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

- ``events.rule`` / ``events.judgement``: which rule decided the event (gb18483 | consecutive | bypass |
  offline | late) and how (the judged groups). Events stored before get "" and {}: listings show the rule
  as unrecorded rather than guess it.
- ``events.episode_id`` and the ``episodes`` table: the ladder counts episodes (a restaurant's exceedance
  and purifier_off events that overlap or touch), with the correction deadline of each step.
- ``events.asof_ms``: the event time an open event's stored snapshot reflects, so an older snapshot
  never replaces a newer one.
- ``windows.unconverted``: oil-fume samples of the window that are measured, not reference-converted.
- ``tasks``: inspectors' work that is not a case (``owner_unreachable``).

Events and their ladder levels from before keep their level; they take part in episodes from now on only
through the events table (they have no episode row), so a restaurant's first episode after the upgrade
starts the ladder from education. Idempotent on a database ``Ledger()`` created with this schema.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Ms = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as ingest.state_schema.Ms


def _add(table: str, *columns: sa.Column) -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    for col in columns:
        if col.name not in have:
            op.add_column(table, col)


def upgrade() -> None:
    _add(
        "events",
        sa.Column("rule", sa.Text(), nullable=False, server_default=""),
        sa.Column("judgement", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("episode_id", sa.Text(), nullable=False, server_default=""),
        sa.Column("asof_ms", Ms, nullable=True),
    )
    _add("windows", sa.Column("unconverted", sa.Integer(), nullable=False, server_default=sa.text("0")))
    names = set(sa.inspect(op.get_bind()).get_table_names())
    if "episodes" not in names:
        op.create_table(
            "episodes",
            sa.Column("episode_id", sa.Text(), primary_key=True),
            sa.Column("restaurant_id", sa.Text(), nullable=False),
            sa.Column("district", sa.Text(), nullable=False, server_default=""),
            sa.Column("device_id", sa.Text(), nullable=False, server_default=""),
            sa.Column("lead_event_id", sa.Text(), nullable=False),
            sa.Column("start_ms", Ms, nullable=False),
            sa.Column("end_ms", Ms),
            sa.Column("level", sa.Text(), nullable=False),
            sa.Column("step", sa.Integer(), nullable=False),
            sa.Column("repeat", sa.Integer(), nullable=False, server_default=sa.text("0")),
            sa.Column("step_episode_id", sa.Text(), nullable=False),
            sa.Column("reissued", sa.Integer(), nullable=False, server_default=sa.text("0")),
            sa.Column("deadline_ms", Ms, nullable=False),
            sa.Column("record", sa.Text(), nullable=False, server_default="{}"),
            sa.Column("created_ms", Ms, nullable=False),
            sa.Column("updated_ms", Ms, nullable=False),
        )
    op.create_index(
        "episodes_by_restaurant", "episodes", ["restaurant_id", "start_ms", "episode_id"], if_not_exists=True
    )
    if "tasks" not in names:
        op.create_table(
            "tasks",
            sa.Column("task_id", sa.Text(), primary_key=True),
            sa.Column("kind", sa.Text(), nullable=False),
            sa.Column("episode_id", sa.Text(), nullable=False),
            sa.Column("restaurant_id", sa.Text(), nullable=False),
            sa.Column("district", sa.Text(), nullable=False, server_default=""),
            sa.Column("status", sa.Text(), nullable=False, server_default="open"),
            sa.Column("record", sa.Text(), nullable=False, server_default="{}"),
            sa.Column("created_ms", Ms, nullable=False),
            sa.Column("updated_ms", Ms, nullable=False),
        )
    op.create_index("tasks_by_restaurant", "tasks", ["restaurant_id", "created_ms"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("tasks_by_restaurant", table_name="tasks", if_exists=True)
    op.drop_table("tasks")
    op.drop_index("episodes_by_restaurant", table_name="episodes", if_exists=True)
    op.drop_table("episodes")
    with op.batch_alter_table("windows") as batch:
        batch.drop_column("unconverted")
    with op.batch_alter_table("events") as batch:
        for name in ("asof_ms", "episode_id", "judgement", "rule"):
            batch.drop_column(name)
