"""The owner's page in the ledger (issue 15): the links notices carried, and what owners sent through them.

A link row is written when a notice is rendered with the link (or an operator issues one by hand); the
signed token is rebuilt from the row (:mod:`alerts.owner.links`), so the ledger never holds a token, and a
revoked or missing row makes every token for it useless. Submissions are the owner's side of what also
lands on the case as an audit record: the receipt, the page's list, the per-link rate limit.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select, update

from alerts.ledger.casework import _plain
from alerts.ledger.schema import owner_links, owner_submissions


class OwnerStore:
    """Mixin of :class:`alerts.ledger.Ledger`: owner links and submissions."""

    def issue_owner_link(
        self,
        *,
        link_id: str,
        restaurant_id: str,
        notice_key: str,
        issued_ms: int,
        expires_ms: int,
        issued_by: str = "system",
    ) -> dict[str, Any]:
        """The link row ``link_id``, inserted unless it exists (a notice rendered again after a restart
        keeps the link, and the expiry, it was first given); returns the stored row."""
        stmt = (
            self._insert(owner_links)  # type: ignore[attr-defined]
            .values(
                link_id=link_id,
                restaurant_id=restaurant_id,
                notice_key=notice_key,
                issued_by=issued_by,
                issued_ms=issued_ms,
                expires_ms=expires_ms,
            )
            .on_conflict_do_nothing(index_elements=[owner_links.c.link_id])
        )
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(stmt)
            row = c.execute(select(owner_links).where(owner_links.c.link_id == link_id)).first()
        assert row is not None
        return _plain(row)

    def get_owner_link(self, link_id: str) -> dict[str, Any] | None:
        rows = self._read(select(owner_links).where(owner_links.c.link_id == link_id))  # type: ignore[attr-defined]
        return _plain(rows[0]) if rows else None

    def list_owner_links(self, restaurant_id: str | None = None) -> list[dict[str, Any]]:
        """Link rows, newest first (all restaurants when ``restaurant_id`` is None)."""
        q = select(owner_links).order_by(owner_links.c.issued_ms.desc(), owner_links.c.link_id)
        if restaurant_id is not None:
            q = q.where(owner_links.c.restaurant_id == restaurant_id)
        return [_plain(r) for r in self._read(q)]  # type: ignore[attr-defined]

    def revoke_owner_links(
        self,
        *,
        at_ms: int,
        by: str,
        reason: str,
        link_id: str | None = None,
        restaurant_id: str | None = None,
    ) -> int:
        """Revoke one link, or every link of a restaurant not yet revoked; returns how many were revoked."""
        if (link_id is None) == (restaurant_id is None):
            raise ValueError("revoke one link_id or every link of one restaurant_id")
        t = owner_links.c
        where = t.revoked_ms.is_(None)
        where = where & (t.link_id == link_id if link_id is not None else t.restaurant_id == restaurant_id)
        with self.transaction() as c:  # type: ignore[attr-defined]
            res = c.execute(
                update(owner_links).where(where).values(revoked_ms=at_ms, revoked_by=by, revoke_reason=reason)
            )
            return int(res.rowcount or 0)

    def touch_owner_link(self, link_id: str, at_ms: int) -> None:
        """Record that the link was used (the page opened, a form sent)."""
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(update(owner_links).where(owner_links.c.link_id == link_id).values(last_used_ms=at_ms))

    def add_owner_submission(self, row: dict[str, Any]) -> None:
        values = {**row, "attachments": json.dumps(list(row.get("attachments") or []))}
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(owner_submissions.insert().values(**values))

    def set_submission_receipt(self, submission_id: str, receipt_key: str) -> None:
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(
                update(owner_submissions)
                .where(owner_submissions.c.submission_id == submission_id)
                .values(receipt_key=receipt_key)
            )

    def list_owner_submissions(
        self, restaurant_id: str | None = None, case_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Submissions, newest first, with ``attachments`` as a list."""
        t = owner_submissions.c
        q = select(owner_submissions).order_by(t.received_ms.desc(), t.submission_id)
        if restaurant_id is not None:
            q = q.where(t.restaurant_id == restaurant_id)
        if case_id is not None:
            q = q.where(t.case_id == case_id)
        out = []
        for r in self._read(q):  # type: ignore[attr-defined]
            d = _plain(r)
            d["attachments"] = json.loads(d["attachments"] or "[]")
            out.append(d)
        return out

    def count_owner_submissions(self, link_id: str, since_ms: int) -> int:
        t = owner_submissions.c
        q = select(func.count()).where(t.link_id == link_id, t.received_ms >= since_ms)
        return int(self._read(q)[0][0])  # type: ignore[attr-defined]
