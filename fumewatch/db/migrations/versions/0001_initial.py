"""The state database of fumewatch 0.1, the release before Alembic.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Exactly the tables and indexes the hand-written ``CREATE TABLE IF NOT EXISTS`` strings of 0.1 made
(``ingest/state.py``: dead_letters; ``alerts/ledger.py``: events, cases, notices, detector_state,
windows). The tables are frozen here (not imported from the live schema modules, which move on).

Created with ``checkfirst``: on a database written by 0.1 (tables present, no ``alembic_version``) this
revision creates only what is missing (e.g. the ledger tables in a file only ingest has used) and keeps
every existing table and row; :func:`fumewatch.db.upgrade` runs it that way to adopt such a database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.sqlite import REAL

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Ms = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Mg = sa.Float(precision=53).with_variant(REAL(), "sqlite")


def _text(name: str, default: str | None = None, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=nullable, server_default=default)


def tables() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "dead_letters",
        md,
        sa.Column("id", Ms, primary_key=True, autoincrement=True),
        sa.Column("received_ms", Ms, nullable=False),
        _text("topic"),
        _text("device_id", ""),
        _text("reason"),
        _text("payload_excerpt"),
        _text("detail", "{}"),
        sa.Index("dead_letters_received", "received_ms"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "events",
        md,
        sa.Column("event_id", sa.Text, primary_key=True),
        _text("kind"),
        _text("restaurant_id"),
        _text("device_id"),
        _text("district", ""),
        sa.Column("start_ms", Ms, nullable=False),
        sa.Column("end_ms", Ms),
        _text("pollutant", ""),
        sa.Column("peak_mg_m3", Mg),
        sa.Column("mean_mg_m3", Mg),
        sa.Column("limit_mg_m3", Mg),
        _text("profile", ""),
        _text("level", ""),
        sa.Column("occurrence", sa.Integer),
        _text("state", "open"),
        _text("evidence", "[]"),
        sa.Column("created_ms", Ms, nullable=False),
        sa.Column("updated_ms", Ms, nullable=False),
        sa.Index("events_by_restaurant", "restaurant_id", "kind", "start_ms", "event_id"),
        sa.Index("events_by_start", "start_ms"),
    )
    sa.Table(
        "cases",
        md,
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False, unique=True),
        _text("restaurant_id"),
        _text("device_id"),
        _text("district", ""),
        _text("status", "open"),
        sa.Column("start_ms", Ms, nullable=False),
        sa.Column("end_ms", Ms),
        _text("record"),
        sa.Column("created_ms", Ms, nullable=False),
        sa.Column("updated_ms", Ms, nullable=False),
        sa.Index("cases_by_restaurant", "restaurant_id", "start_ms"),
    )
    sa.Table(
        "notices",
        md,
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("target", sa.Text, primary_key=True),
        _text("event_id"),
        _text("action"),
        _text("channel"),
        _text("restaurant_id", ""),
        _text("device_id", ""),
        _text("status"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        _text("error", ""),
        _text("payload", "{}"),
        sa.Column("created_ms", Ms, nullable=False),
        sa.Column("updated_ms", Ms, nullable=False),
        sa.Index("notices_by_status", "status", "created_ms"),
        sa.Index("notices_by_event", "event_id"),
    )
    sa.Table(
        "detector_state",
        md,
        sa.Column("name", sa.Text, primary_key=True),
        _text("data"),
        sa.Column("updated_ms", Ms, nullable=False),
    )
    sa.Table(
        "windows",
        md,
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("pollutant", sa.Text, primary_key=True),
        sa.Column("start_ms", Ms, primary_key=True, autoincrement=False),
        sa.Column("end_ms", Ms, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("expected", sa.Integer, nullable=False),
        sa.Column("valid", sa.Integer, nullable=False),
        _text("invalid_reason", ""),
        sa.Column("mean_mg_m3", Mg),
        sa.Column("max_mg_m3", Mg),
        sa.Column("exceeds", sa.Integer, nullable=False),
        sa.Index("windows_by_start", "start_ms"),
        sqlite_with_rowid=False,
    )
    return md


def upgrade() -> None:
    tables().create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    tables().drop_all(op.get_bind(), checkfirst=True)
