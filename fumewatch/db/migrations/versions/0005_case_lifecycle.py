"""The case lifecycle (issue 12): case columns, the append-only audit trail, attachments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

- ``cases``: ``case_type`` (enforcement | owner_unreachable), ``version`` (the optimistic-lock counter
  every action increments), ``assignee``, ``outcome``, ``deadline_ms`` (rectification deadline),
  ``closed_ms``; ``event_id`` is no longer unique (an enforcement step's case and its owner_unreachable
  case share the lead event); indexes by event and by status.
- ``case_actions``: who did what when to a case; ``case_attachments``: photos and documents with their
  SHA-256. Both refuse UPDATE and DELETE (triggers): a wrong step is corrected by a new one.
- ``events.dismissed_by`` / ``episodes.dismissed_by``: the case that dismissed them (device fault, invalid
  data); reports and the ladder no longer count them.
- Every ``owner_unreachable`` task gets its case (open, version 1), so inspectors work both in one list;
  every case gets its opening audit record.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Ms = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as ingest.state_schema.Ms


APPEND_ONLY = ("case_actions", "case_attachments")


def append_only_ddl(table: str, dialect: str) -> list[str]:
    """Frozen copy of alerts.ledger.schema.append_only_ddl as of 0005."""
    msg = f"{table} is append-only: correct a step with a new one"
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op_} BEFORE {op_.upper()} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{msg}'); END"
            for op_ in ("update", "delete")
        ]
    if dialect == "postgresql":
        return [
            f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{msg}'; END $$",
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
        ]
    return []


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


#: In batch mode an unnamed constraint (0001's inline UNIQUE on SQLite) is reflected under this name.
_UQ = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _event_id_unique() -> list[str]:
    """Names of the unique constraints on cases.event_id alone (0001 declared it unique); an unnamed one
    as batch mode names it (:data:`_UQ`)."""
    insp = sa.inspect(op.get_bind())
    found = [u["name"] for u in insp.get_unique_constraints("cases") if u["column_names"] == ["event_id"]]
    return [n or "uq_cases_event_id" for n in found]


def upgrade() -> None:
    bind = op.get_bind()
    new_case_columns = [
        sa.Column("case_type", sa.Text(), nullable=False, server_default="enforcement"),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("assignee", sa.Text(), nullable=False, server_default=""),
        sa.Column("outcome", sa.Text(), nullable=False, server_default=""),
        sa.Column("deadline_ms", Ms, nullable=True),
        sa.Column("closed_ms", Ms, nullable=True),
    ]
    have = _columns("cases")
    unique = _event_id_unique()
    if bind.dialect.name == "sqlite":
        # SQLite cannot drop the inline UNIQUE of 0001: batch mode rebuilds the table without it.
        with op.batch_alter_table(
            "cases", recreate="always" if unique else "auto", naming_convention=_UQ
        ) as batch:
            for col in new_case_columns:
                if col.name not in have:
                    batch.add_column(col)
            for name in unique:
                batch.drop_constraint(name, type_="unique")
    else:
        for col in new_case_columns:
            if col.name not in have:
                op.add_column("cases", col)
        for name in unique:
            op.drop_constraint(name, "cases", type_="unique")
    op.create_index("cases_by_event", "cases", ["event_id"], if_not_exists=True)
    op.create_index("cases_by_status", "cases", ["status", "start_ms"], if_not_exists=True)
    op.create_index("cases_by_updated", "cases", ["updated_ms"], if_not_exists=True)
    op.create_index("cases_by_restaurant", "cases", ["restaurant_id", "start_ms"], if_not_exists=True)
    for table in ("events", "episodes"):
        if "dismissed_by" not in _columns(table):
            op.add_column(table, sa.Column("dismissed_by", sa.Text(), nullable=False, server_default=""))
    names = set(sa.inspect(bind).get_table_names())
    if "case_actions" not in names:
        op.create_table(
            "case_actions",
            sa.Column("case_id", sa.Text(), primary_key=True),
            sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("action", sa.Text(), nullable=False),
            sa.Column("actor", sa.Text(), nullable=False),
            sa.Column("at_ms", Ms, nullable=False),
            sa.Column("from_status", sa.Text(), nullable=False),
            sa.Column("to_status", sa.Text(), nullable=False),
            sa.Column("note", sa.Text(), nullable=False, server_default=""),
            sa.Column("fields", sa.Text(), nullable=False, server_default="{}"),
        )
    if "case_attachments" not in names:
        op.create_table(
            "case_attachments",
            sa.Column("attachment_id", sa.Text(), primary_key=True),
            sa.Column("case_id", sa.Text(), nullable=False),
            sa.Column("filename", sa.Text(), nullable=False),
            sa.Column("content_type", sa.Text(), nullable=False),
            sa.Column("size_bytes", sa.Integer(), nullable=False),
            sa.Column("sha256", sa.Text(), nullable=False),
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.Column("uploaded_by", sa.Text(), nullable=False),
            sa.Column("at_ms", Ms, nullable=False),
            sa.Column("note", sa.Text(), nullable=False, server_default=""),
        )
    op.create_index("case_attachments_by_case", "case_attachments", ["case_id", "at_ms"], if_not_exists=True)
    for table in APPEND_ONLY:
        for stmt in append_only_ddl(table, bind.dialect.name):
            bind.exec_driver_sql(stmt)
    _cases_for_tasks(bind)
    _opening_records(bind)


def _opening_records(bind) -> None:
    """Every case's trail starts with its opening (seq 1, actor system), also for cases from before."""
    bind.execute(
        sa.text(
            "INSERT INTO case_actions (case_id, seq, action, actor, at_ms, from_status, to_status, note, fields)"
            " SELECT c.case_id, 1, 'open', 'system', c.created_ms, '', 'open',"
            " 'opened by the ladder (trail recorded from the upgrade to 0005)', '{}' FROM cases c"
            " WHERE NOT EXISTS (SELECT 1 FROM case_actions a WHERE a.case_id = c.case_id)"
        )
    )


def _cases_for_tasks(bind) -> None:
    """An open case for every owner_unreachable task that has none (same record, lead event of its
    episode)."""
    rows = bind.execute(
        sa.text(
            "SELECT t.task_id, t.episode_id, t.restaurant_id, t.district, t.status, t.record, t.created_ms,"
            " e.lead_event_id, e.device_id, e.start_ms FROM tasks t JOIN episodes e"
            " ON e.episode_id = t.episode_id WHERE t.kind = 'owner_unreachable'"
        )
    ).fetchall()
    for r in rows:
        case_id = f"case-{r.task_id}"
        if bind.execute(sa.text("SELECT 1 FROM cases WHERE case_id = :c"), {"c": case_id}).first():
            continue
        record = {**json.loads(r.record or "{}"), "case_id": case_id, "case_type": "owner_unreachable"}
        record.setdefault("event_id", r.lead_event_id)
        record.setdefault("start_ms", r.start_ms)
        bind.execute(
            sa.text(
                "INSERT INTO cases (case_id, event_id, restaurant_id, device_id, district, status, start_ms,"
                " record, created_ms, updated_ms, case_type) VALUES (:case_id, :event_id, :restaurant_id,"
                " :device_id, :district, 'open', :start_ms, :record, :created_ms, :created_ms,"
                " 'owner_unreachable')"
            ),
            {
                "case_id": case_id,
                "event_id": r.lead_event_id,
                "restaurant_id": r.restaurant_id,
                "device_id": r.device_id,
                "district": r.district,
                "start_ms": r.start_ms,
                "record": json.dumps(record, ensure_ascii=False, separators=(",", ":")),
                "created_ms": r.created_ms,
            },
        )


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM cases WHERE case_type = 'owner_unreachable'"))
    for table in ("case_attachments", "case_actions"):
        if bind.dialect.name == "postgresql":
            bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {table}_append_only() CASCADE")
    op.drop_index("case_attachments_by_case", table_name="case_attachments", if_exists=True)
    op.drop_table("case_attachments")
    op.drop_table("case_actions")
    for table in ("episodes", "events"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("dismissed_by")
    op.drop_index("cases_by_status", table_name="cases", if_exists=True)
    op.drop_index("cases_by_updated", table_name="cases", if_exists=True)
    op.drop_index("cases_by_event", table_name="cases", if_exists=True)
    with op.batch_alter_table(
        "cases", recreate="always" if bind.dialect.name == "sqlite" else "auto"
    ) as batch:
        for name in ("closed_ms", "deadline_ms", "outcome", "assignee", "version", "case_type"):
            batch.drop_column(name)
        batch.create_unique_constraint("cases_event_id_key", ["event_id"])
