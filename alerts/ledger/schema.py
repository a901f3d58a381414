"""The alerts ledger's tables in the state database (SQLAlchemy Core): events, cases, notices,
detector_state, windows.

Ingest's ``dead_letters`` table is in :mod:`ingest.state_schema`; ``fumewatch/db/migrations`` versions both
(revision 0001 is the schema the release before Alembic created, 0002 adds the notice claim owner and the
index the notice listings filter on, 0003 the judgement rule, episodes and inspectors' tasks, 0004 the
outbox, 0005 the case lifecycle: case columns, the case_actions audit trail and case_attachments, 0007 the
detector's per-device state rows, 0008 the owner's page links and submissions). A change here needs a
migration: see docs/ledger.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Float, Index, Integer, LargeBinary, MetaData, Table, Text, event, text
from sqlalchemy.dialects.sqlite import REAL

from ingest.state_schema import Ms

metadata = MetaData()

#: Floating point mg/m3: DOUBLE PRECISION (REAL on SQLite, a 64-bit float there).
Mg = Float(precision=53).with_variant(REAL(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("restaurant_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("district", Text, nullable=False, server_default=""),
    Column("start_ms", Ms, nullable=False),
    Column("end_ms", Ms),
    Column("pollutant", Text, nullable=False, server_default=""),
    Column("peak_mg_m3", Mg),
    Column("mean_mg_m3", Mg),
    Column("limit_mg_m3", Mg),
    Column("profile", Text, nullable=False, server_default=""),
    Column("level", Text, nullable=False, server_default=""),
    Column("occurrence", Integer),
    Column("state", Text, nullable=False, server_default="open"),
    Column("evidence", Text, nullable=False, server_default="[]"),
    Column("created_ms", Ms, nullable=False),
    Column("updated_ms", Ms, nullable=False),
    # 0003: the rule that decided it, how (gb18483 groups), its episode, and the event time its stored
    # snapshot reflects (an older snapshot of an open event never replaces a newer one)
    Column("rule", Text, nullable=False, server_default=""),
    Column("judgement", Text, nullable=False, server_default="{}"),
    Column("episode_id", Text, nullable=False, server_default=""),
    Column("asof_ms", Ms),
    # 0005: the case that dismissed it (device fault, invalid data): reports and the ladder skip it
    Column("dismissed_by", Text, nullable=False, server_default=""),
    Index("events_by_restaurant", "restaurant_id", "kind", "start_ms", "event_id"),
    Index("events_by_start", "start_ms"),
)

#: 0003. One restaurant's offence: its exceedance and purifier_off events that overlap or touch. The
#: enforcement ladder counts episodes, never events (docs/domain.md, "Episodes and the ladder").
episodes = Table(
    "episodes",
    metadata,
    Column("episode_id", Text, primary_key=True),
    Column("restaurant_id", Text, nullable=False),
    Column("district", Text, nullable=False, server_default=""),
    Column("device_id", Text, nullable=False, server_default=""),
    Column("lead_event_id", Text, nullable=False),
    Column("start_ms", Ms, nullable=False),
    Column("end_ms", Ms),  # end as far as known (the latest known end of its events)
    Column("level", Text, nullable=False),
    Column("step", Integer, nullable=False),  # position on the ladder: 1 education, 2 warning, >= 3 case
    # recorded against an earlier step because it started inside that step's correction period
    Column("repeat", Integer, nullable=False, server_default=text("0")),
    Column("step_episode_id", Text, nullable=False),  # the step it belongs to (itself unless a repeat)
    # the step was given again because the previous one's notice never reached the owner
    Column("reissued", Integer, nullable=False, server_default=text("0")),
    Column("deadline_ms", Ms, nullable=False),  # correction deadline of its step
    Column("record", Text, nullable=False, server_default="{}"),  # measures, decisions (JSON)
    Column("dismissed_by", Text, nullable=False, server_default=""),  # 0005: as events.dismissed_by
    Column("created_ms", Ms, nullable=False),
    Column("updated_ms", Ms, nullable=False),
    Index("episodes_by_restaurant", "restaurant_id", "start_ms", "episode_id"),
)

#: 0003. Work for inspectors that is not a case: ``owner_unreachable`` (serve the notice on site).
tasks = Table(
    "tasks",
    metadata,
    Column("task_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("episode_id", Text, nullable=False),
    Column("restaurant_id", Text, nullable=False),
    Column("district", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False, server_default="open"),
    Column("record", Text, nullable=False, server_default="{}"),
    Column("created_ms", Ms, nullable=False),
    Column("updated_ms", Ms, nullable=False),
    Index("tasks_by_restaurant", "restaurant_id", "created_ms"),
)

#: Cases for inspectors: an enforcement step's case (``case_type`` enforcement, one per step's lead event)
#: or an ``owner_unreachable`` task (0005). Their lifecycle (alerts/casework) moves ``status`` with a
#: ``version`` check; each move is a ``case_actions`` row.
cases = Table(
    "cases",
    metadata,
    Column("case_id", Text, primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("restaurant_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("district", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False, server_default="open"),
    Column("start_ms", Ms, nullable=False),
    Column("end_ms", Ms),
    Column("record", Text, nullable=False),
    Column("created_ms", Ms, nullable=False),
    Column("updated_ms", Ms, nullable=False),
    # 0005: the lifecycle
    Column("case_type", Text, nullable=False, server_default="enforcement"),  # | owner_unreachable
    Column("version", Integer, nullable=False, server_default=text("1")),  # +1 per action
    Column("assignee", Text, nullable=False, server_default=""),
    Column("outcome", Text, nullable=False, server_default=""),  # set when closed
    Column("deadline_ms", Ms),  # rectification deadline (end of its local day)
    Column("closed_ms", Ms),
    Index("cases_by_restaurant", "restaurant_id", "start_ms"),
    Index("cases_by_event", "event_id"),  # 0005 (was unique: a step's task and case share a lead event)
    Index("cases_by_status", "status", "start_ms"),  # 0005
    Index("cases_by_updated", "updated_ms"),  # 0005: copying changed cases (alerts/case_sync.py)
)

#: 0005. The audit trail of cases: who did what when, never updated or deleted (triggers refuse it); a
#: wrong step is corrected by a new one. ``seq`` counts a case's actions from 1 (= the version it made).
case_actions = Table(
    "case_actions",
    metadata,
    Column("case_id", Text, primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),  # the inspector's name (from their token), or "system"
    Column("at_ms", Ms, nullable=False),
    Column("from_status", Text, nullable=False),
    Column("to_status", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("fields", Text, nullable=False, server_default="{}"),  # the action's fields (JSON)
)

#: 0005. Photos and documents of a case (on-site photos, the owner's written statement), kept in the
#: database with their SHA-256 so a case file can show they are unaltered; never updated or deleted.
case_attachments = Table(
    "case_attachments",
    metadata,
    Column("attachment_id", Text, primary_key=True),
    Column("case_id", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("uploaded_by", Text, nullable=False),
    Column("at_ms", Ms, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Index("case_attachments_by_case", "case_id", "at_ms"),
)

#: Triggers that make the audit tables append-only (created with the tables and by migration 0005).
APPEND_ONLY = ("case_actions", "case_attachments")


def append_only_ddl(table: str, dialect: str) -> list[str]:
    """The statements that make ``table`` refuse UPDATE and DELETE on ``dialect``."""
    msg = f"{table} is append-only: correct a step with a new one"
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {op.upper()} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{msg}'); END"
            for op in ("update", "delete")
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


def _install_append_only(target: Table, connection: Any, **_: Any) -> None:
    for stmt in append_only_ddl(target.name, connection.dialect.name):
        connection.exec_driver_sql(stmt)


for _t in (case_actions, case_attachments):
    event.listen(_t, "after_create", _install_append_only)

notices = Table(
    "notices",
    metadata,
    Column("key", Text, primary_key=True),
    Column("target", Text, primary_key=True),
    Column("event_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("restaurant_id", Text, nullable=False, server_default=""),
    Column("device_id", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=False, server_default=""),
    Column("payload", Text, nullable=False, server_default="{}"),
    Column("created_ms", Ms, nullable=False),
    Column("updated_ms", Ms, nullable=False),
    # 0002: who holds a pending claim ("host:pid"; "" = nobody, e.g. rows written before 0002)
    Column("claimed_by", Text, nullable=False, server_default=""),
    Index("notices_by_status", "status", "created_ms"),
    Index("notices_by_event", "event_id"),
    Index("notices_by_restaurant", "restaurant_id", "created_ms"),  # 0002
)

detector_state = Table(
    "detector_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("data", Text, nullable=False),
    Column("updated_ms", Ms, nullable=False),
)

#: 0007. The detector's state per device (issue 14): the alerts service writes the rows of the devices
#: that changed since its last commit (``detector_state`` under the same ``name`` holds the detector-wide
#: part), and restores device by device.
detector_devices = Table(
    "detector_devices",
    metadata,
    Column("name", Text, primary_key=True),
    Column("device_id", Text, primary_key=True),
    Column("data", Text, nullable=False),
    Column("updated_ms", Ms, nullable=False),
    sqlite_with_rowid=False,
)

windows = Table(
    "windows",
    metadata,
    Column("device_id", Text, primary_key=True),
    Column("pollutant", Text, primary_key=True),
    Column("start_ms", Ms, primary_key=True, autoincrement=False),
    Column("end_ms", Ms, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("expected", Integer, nullable=False),
    Column("valid", Integer, nullable=False),
    Column("invalid_reason", Text, nullable=False, server_default=""),
    Column("mean_mg_m3", Mg),
    Column("max_mg_m3", Mg),
    Column("exceeds", Integer, nullable=False),
    # 0003: oil-fume samples that are measured, not reference-converted (flow unknown)
    Column("unconverted", Integer, nullable=False, server_default=text("0")),
    Index("windows_by_start", "start_ms"),
    sqlite_with_rowid=False,
)

#: 0004. The durable outbox of transitions: written in the transaction that stores the transition's event
#: (with the detector snapshot), done once the notifier has planned and sent (or recorded) every target.
#: Start-up resumes every pending row, so a transition is never left with no notice.
outbox = Table(
    "outbox",
    metadata,
    Column("key", Text, primary_key=True),  # the transition key, ``event_id:action``
    Column("event_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("at_ms", Ms, nullable=False),
    Column("event", Text, nullable=False),  # the event as the transition carried it (JSON)
    Column("status", Text, nullable=False, server_default="pending"),  # pending | done
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=False, server_default=""),
    Column("created_ms", Ms, nullable=False),
    Column("updated_ms", Ms, nullable=False),
    Index("outbox_by_status", "status", "created_ms"),
)

#: 0008. The owner's page links (issue 15): one row per link a notice carried (or an operator issued),
#: so a link can be revoked and every page visit and submission traced to the notice it came with. The
#: token itself is never stored: it is rebuilt from the row with the signing secret.
owner_links = Table(
    "owner_links",
    metadata,
    Column("link_id", Text, primary_key=True),
    Column("restaurant_id", Text, nullable=False),
    Column("notice_key", Text, nullable=False, server_default=""),  # "" when issued by hand
    Column("issued_by", Text, nullable=False, server_default="system"),
    Column("issued_ms", Ms, nullable=False),
    Column("expires_ms", Ms, nullable=False),
    Column("revoked_ms", Ms),
    Column("revoked_by", Text, nullable=False, server_default=""),
    Column("revoke_reason", Text, nullable=False, server_default=""),
    Column("last_used_ms", Ms),
    Index("owner_links_by_restaurant", "restaurant_id", "issued_ms"),
)

#: 0008. What owners sent through their page: rectification evidence and statements (陈述、申辩). Each also
#: lands on the case of its ladder step as an audit record; this table is the owner's side: the receipt,
#: the page's list, the per-link rate limit.
owner_submissions = Table(
    "owner_submissions",
    metadata,
    Column("submission_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),  # evidence | statement
    Column("restaurant_id", Text, nullable=False),
    Column("link_id", Text, nullable=False),
    Column("episode_id", Text, nullable=False, server_default=""),  # the ladder step's episode
    Column("case_id", Text, nullable=False, server_default=""),
    Column("received_ms", Ms, nullable=False),
    Column("text", Text, nullable=False, server_default=""),
    Column("attachments", Text, nullable=False, server_default="[]"),  # JSON list of attachment ids
    Column("receipt_key", Text, nullable=False, server_default=""),  # the receipt notice's key
    Index("owner_submissions_by_restaurant", "restaurant_id", "received_ms"),
    Index("owner_submissions_by_link", "link_id", "received_ms"),
)

TABLES = (
    events,
    cases,
    notices,
    detector_state,
    detector_devices,
    windows,
    episodes,
    tasks,
    outbox,
    case_actions,
    case_attachments,
    owner_links,
    owner_submissions,
)

_EVENT_COLUMNS = (
    "event_id",
    "kind",
    "restaurant_id",
    "device_id",
    "district",
    "start_ms",
    "end_ms",
    "pollutant",
    "peak_mg_m3",
    "mean_mg_m3",
    "limit_mg_m3",
    "profile",
    "level",
    "state",
    "evidence",
    "rule",
    "judgement",
    "episode_id",
)

_WINDOW_COLUMNS = tuple(c.name for c in windows.columns)

_NOTICE_COLUMNS = (
    "key",
    "target",
    "event_id",
    "action",
    "channel",
    "restaurant_id",
    "device_id",
    "status",
    "attempts",
    "error",
    "payload",
    "created_ms",
    "updated_ms",
)
