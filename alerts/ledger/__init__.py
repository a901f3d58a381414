"""The alerts state database: events, enforcement cases, notices, detector snapshots and finalised windows.

An SQLite file (embedded default, WAL) or a PostgreSQL database (``postgresql://user@host/db``), given by
``--state``. The same database holds ingest's ``dead_letters`` table (:mod:`ingest.state`); this package
owns the other tables. Modules:

- :mod:`alerts.ledger.schema`: the tables (SQLAlchemy Core); migrations live in ``fumewatch/db/migrations``
- :mod:`alerts.ledger.core`: :class:`Ledger` (events, cases, detector state, windows; transactions)
- :mod:`alerts.ledger.notices`: the exactly-once notice gate (:meth:`Ledger.notice_begin` ...)
- :mod:`alerts.ledger.episodes`: the ladder's episodes and inspectors' tasks
- :mod:`alerts.ledger.owner`: the owner's page links and submissions
- :mod:`alerts.ledger.masking`: :func:`mask_target` / :func:`scrub`: secrets are never stored

docs/ledger.md describes the schema, the migration workflow and the concurrency guarantees.
"""

from __future__ import annotations

from alerts.ledger.core import Ledger, _dumps, _where
from alerts.ledger.episodes import Episode, episode_id_for
from alerts.ledger.event_rows import asof_ms
from alerts.ledger.masking import mask_target, scrub
from alerts.ledger.notices import FAILED, NOTICE_STATUSES, PENDING, SENT, SKIPPED, NoticeRecord, _split_key
from alerts.ledger.schema import _EVENT_COLUMNS, _NOTICE_COLUMNS, _WINDOW_COLUMNS, metadata

__all__ = [
    "FAILED",
    "NOTICE_STATUSES",
    "PENDING",
    "SENT",
    "SKIPPED",
    "_EVENT_COLUMNS",
    "_NOTICE_COLUMNS",
    "_WINDOW_COLUMNS",
    "Episode",
    "Ledger",
    "NoticeRecord",
    "_dumps",
    "_split_key",
    "_where",
    "asof_ms",
    "episode_id_for",
    "mask_target",
    "metadata",
    "scrub",
]
