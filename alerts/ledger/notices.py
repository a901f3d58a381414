"""The exactly-once gate: one row per notice (transition key, masked target) in the ``notices`` table.

Before sending, the sender claims the row (:meth:`NoticeGate.notice_begin`): in one transaction that holds
the row locked (SQLite: the write lock, ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE``, and an
``INSERT ... ON CONFLICT DO NOTHING`` when there is no row yet, so two first claims cannot both insert)
it decides and records ``pending`` with the claimant (``host:pid``). After the remote end accepted the
notice the sender records ``sent`` (:meth:`NoticeGate.notice_done`). The answers:

- a row already ``sent``: False (delivered; never sent again, across restarts and processes);
- a row ``pending`` under another claimant that is alive (same host: its pid exists; other host: the claim
  is younger than :attr:`claim_lease_s`): False, that process is sending it now;
- otherwise (no row, ``failed``, ``skipped``, our own ``pending``, or a pending claim whose process is
  gone): claim it, True.

A crash between the remote accept and the ``sent`` record leaves the row ``pending``; :meth:`pending_notices`
lists those so the notifier resends them (the remaining at-least-once window, documented in
:mod:`alerts.enforcement.notify`).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, Row, and_, bindparam, select, true, update

from alerts.ledger.masking import mask_target, scrub
from alerts.ledger.schema import _NOTICE_COLUMNS, notices
from ingest.timeutil import now_ms

#: Notice statuses.
PENDING = "pending"
SENT = "sent"
FAILED = "failed"
SKIPPED = "skipped"
NOTICE_STATUSES = (PENDING, SENT, FAILED, SKIPPED)


@dataclass(slots=True)
class NoticeRecord:
    """One row of the notice ledger: one notice of one transition to one target."""

    key: str
    target: str  # masked
    event_id: str
    action: str
    channel: str  # owner | inspector | mqtt
    restaurant_id: str
    device_id: str
    status: str  # pending | sent | failed | skipped
    attempts: int
    error: str
    payload: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0
    updated_ms: int = 0


def _split_key(key: str) -> tuple[str, str]:
    event_id, sep, action = key.rpartition(":")
    return (event_id, action) if sep else (key, "")


def _claimant_alive(claimant: str) -> bool:
    host, _, pid = claimant.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # cannot tell from here: the lease decides
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _row_query() -> Any:
    n = notices.c
    return select(1).where(n.key == bindparam("b_key"), n.target == bindparam("b_target"))


def _locked_query() -> Any:
    """The notice row, locked until the transaction ends (PostgreSQL; SQLite holds the write lock)."""
    n = notices.c
    q = select(n.status, n.claimed_by, n.updated_ms)
    return q.where(n.key == bindparam("b_key"), n.target == bindparam("b_target")).with_for_update()


class NoticeGate:
    """The notice methods of :class:`alerts.ledger.Ledger` (which provides the plumbing used here)."""

    claimant: str
    claim_lease_s: float

    def notice_begin(self, key: str, channel: str, target: str, payload: dict[str, Any]) -> bool:
        """Claim the notice (``key``, ``target``) before sending it: True = go ahead and send.

        See the module docstring for when the answer is False. ``key`` is :attr:`Transition.key`
        (``event_id:action``); ``target`` is masked before it is stored (:func:`mask_target`).
        ``payload`` (JSON) should carry the rendered notice and ``device_id``/``restaurant_id``, so a
        resend after a crash uses the same text; it must hold no secrets.
        """
        return self._claim(key, channel, target, payload, PENDING, "")

    def notice_done(self, key: str, target: str, ok: bool, error: str = "", attempts: int = 1) -> None:
        """Record the outcome of a send claimed with :meth:`notice_begin`: ``sent`` or ``failed``.

        ``attempts`` is added to the row's count (a retried failure accumulates); ``error`` is scrubbed.
        A ``sent`` row is never changed again.
        """
        n = notices.c
        masked = mask_target(target)
        done = self._prepared(  # type: ignore[attr-defined]
            "notice_done",
            lambda: (
                update(notices)
                .where(n.key == bindparam("b_key"), n.target == bindparam("b_target"), n.status != SENT)
                .values(attempts=n.attempts + bindparam("b_attempts", type_=Integer))
            ),
        )
        where = {"b_key": key, "b_target": masked}
        with self.transaction() as c:  # type: ignore[attr-defined]
            values = {
                "status": SENT if ok else FAILED,
                "error": "" if ok else scrub(error),
                "updated_ms": now_ms(),
                "claimed_by": "",
            }
            cur = c.execute(done, {**where, **values, "b_attempts": attempts})
            if cur.rowcount == 0:
                exists = c.execute(self._prepared("notice_row", _row_query), where).first()  # type: ignore[attr-defined]
                if exists is None:
                    raise KeyError(f"notice_done without notice_begin for {key!r} -> {masked!r}")

    def notice_skip(self, key: str, channel: str, target: str, reason: str, payload: dict[str, Any]) -> bool:
        """Record a notice that is not sent for a reason that is not an error (e.g. no owner_notify URL).

        Returns False (and changes nothing) when that (key, target) was already sent (or is being sent).
        """
        return self._claim(key, channel, target, payload, SKIPPED, reason)

    def _may_claim(self, row: Row) -> bool:
        status, claimed_by, updated_ms = row
        if status == SENT:
            return False
        if status != PENDING or claimed_by in ("", self.claimant):
            return True
        stale = updated_ms < now_ms() - int(self.claim_lease_s * 1000)
        return stale or not _claimant_alive(claimed_by)

    def _claim(
        self, key: str, channel: str, target: str, payload: dict[str, Any], status: str, error: str
    ) -> bool:
        n = notices.c
        masked = mask_target(target)
        event_id, action = _split_key(key)
        ts = now_ms()
        values = {
            "status": status,
            "error": scrub(error),
            "channel": channel,
            "payload": json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str),
            "updated_ms": ts,
            "claimed_by": self.claimant if status == PENDING else "",
        }
        where = {"b_key": key, "b_target": masked}
        locked = self._prepared("notice_locked", _locked_query)  # type: ignore[attr-defined]
        with self.transaction() as c:  # type: ignore[attr-defined]
            row = c.execute(locked, where).first()
            if row is None:
                ins = self._prepared(  # type: ignore[attr-defined]
                    "notice_insert",
                    lambda: self._insert(notices).on_conflict_do_nothing(index_elements=[n.key, n.target]),  # type: ignore[attr-defined]
                )
                first = {
                    "key": key,
                    "target": masked,
                    "event_id": event_id,
                    "action": action,
                    "restaurant_id": str(payload.get("restaurant_id", "")),
                    "device_id": str(payload.get("device_id", "")),
                    "attempts": 0,
                    "created_ms": ts,
                }
                if c.execute(ins, {**first, **values}).rowcount == 1:
                    return True
                row = c.execute(locked, where).first()  # a concurrent first claim won the insert
                assert row is not None
            if not self._may_claim(row):
                return False
            claim = self._prepared(  # type: ignore[attr-defined]
                "notice_claim",
                lambda: update(notices).where(n.key == bindparam("b_key"), n.target == bindparam("b_target")),
            )
            c.execute(claim, {**where, **values})
        return True

    def notice_status(self, key: str, target: str) -> str | None:
        n = notices.c
        rows = self._read(select(n.status).where(n.key == key, n.target == mask_target(target)))  # type: ignore[attr-defined]
        return rows[0][0] if rows else None

    def pending_notices(self) -> list[NoticeRecord]:
        """Notices claimed but never resolved (a crash between claim and outcome), oldest first."""
        return self._notices(notices.c.status == PENDING)

    def list_notices(
        self,
        event_id: str | None = None,
        key: str | None = None,
        status: str | None = None,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        restaurant_id: str | None = None,
        channel: str | None = None,
        action: str | None = None,
    ) -> list[NoticeRecord]:
        """Notices, oldest first; ``since_ms``/``until_ms`` select by creation time, ``[since, until)``."""
        n = notices.c
        conds = [
            n[col] == val
            for col, val in (
                ("event_id", event_id),
                ("key", key),
                ("status", status),
                ("restaurant_id", restaurant_id),
                ("channel", channel),
                ("action", action),
            )
            if val is not None
        ]
        if since_ms is not None:
            conds.append(n.created_ms >= since_ms)
        if until_ms is not None:
            conds.append(n.created_ms < until_ms)
        return self._notices(and_(true(), *conds))

    def _notices(self, where: Any) -> list[NoticeRecord]:
        n = notices.c
        q = select(*(n[c] for c in _NOTICE_COLUMNS)).where(where).order_by(n.created_ms, n.key, n.target)
        out = []
        for r in self._read(q):  # type: ignore[attr-defined]
            d = dict(zip(_NOTICE_COLUMNS, r, strict=True))
            d["payload"] = json.loads(d["payload"])
            out.append(NoticeRecord(**d))
        return out

    def notice_keys(self, event_ids: Iterable[str]) -> set[str]:
        """Transition keys that have at least one notice row, among ``event_ids`` (for catch-up scans)."""
        ids = list(event_ids)
        if not ids:
            return set()
        n = notices.c
        rows = self._read(select(n.key).distinct().where(n.event_id.in_(ids)))  # type: ignore[attr-defined]
        return {r[0] for r in rows}
