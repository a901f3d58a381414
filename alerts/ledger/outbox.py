"""The durable outbox of event transitions (revision 0004), and the retry of failed notices.

The alerts service writes each transition here in the transaction that stores its event (so "event
stored" implies "will be notified", whatever crashes afterwards); the notifier marks it done once every
target of the transition has a notice row. See docs/ledger.md, "The exactly-once gate".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update

from alerts.ledger.event_rows import _dumps
from alerts.ledger.notices import FAILED, PENDING
from alerts.ledger.schema import notices, outbox
from alerts.model import Event, Transition
from ingest.timeutil import now_ms

DONE = "done"


class OutboxStore:
    """The outbox methods of :class:`alerts.ledger.Ledger` (which provides the plumbing)."""

    def add_outbox(self, transitions: Iterable[Transition]) -> int:
        """Record transitions to notify (idempotent on the transition key: a replayed transition that is
        already recorded keeps its row and status). Call inside the transaction that stores the events."""
        rows = [
            {
                "key": tr.key,
                "event_id": tr.event.event_id,
                "action": tr.action,
                "at_ms": tr.at_ms,
                "event": _dumps(tr.event.as_dict()),
                "status": PENDING,
                "attempts": 0,
                "error": "",
                "created_ms": now_ms(),
                "updated_ms": now_ms(),
            }
            for tr in transitions
        ]
        if not rows:
            return 0
        stmt = self._insert(outbox).on_conflict_do_nothing(index_elements=[outbox.c.key])  # type: ignore[attr-defined]
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(stmt, rows)
        return len(rows)

    def pending_outbox(self, limit: int | None = None) -> list[Transition]:
        """Transitions not yet notified, oldest first."""
        o = outbox.c
        q = select(o.event, o.action, o.at_ms).where(o.status == PENDING).order_by(o.created_ms, o.key)
        if limit is not None:
            q = q.limit(limit)
        return [Transition(Event(**json.loads(ev)), action, at) for ev, action, at in self._read(q)]  # type: ignore[attr-defined]

    def outbox_status(self, key: str) -> str | None:
        rows = self._read(select(outbox.c.status).where(outbox.c.key == key))  # type: ignore[attr-defined]
        return rows[0][0] if rows else None

    def outbox_done(self, key: str, error: str = "") -> None:
        """The transition's targets all have their notice rows (``error``: it was attempted and failed,
        it stays pending to be tried again)."""
        o = outbox.c
        values: dict[str, Any] = {"updated_ms": now_ms(), "attempts": o.attempts + 1}
        if error:
            values["error"] = error[:500]
        else:
            values.update(status=DONE, error="")
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(update(outbox).where(o.key == key).values(**values))

    def retry_failed_notices(self, key: str | None = None, restaurant_id: str | None = None) -> int:
        """Put failed notices back to pending, unclaimed, so the alerts service sends them again (its
        drain runs every ``[notify] drain_interval_s``, and at start-up). Returns how many."""
        n = notices.c
        conds = [n.status == FAILED]
        if key is not None:
            conds.append(n.key == key)
        if restaurant_id is not None:
            conds.append(n.restaurant_id == restaurant_id)
        with self.transaction() as c:  # type: ignore[attr-defined]
            cur = c.execute(
                update(notices).where(*conds).values(status=PENDING, claimed_by="", updated_ms=now_ms())
            )
        return int(cur.rowcount or 0)
