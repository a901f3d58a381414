"""Cases as inspectors work them: the case row with its version, the append-only audit trail
(``case_actions``) and attachments (``case_attachments``).

The rules (which action in which state) live in :mod:`alerts.casework.lifecycle`; this mixin applies a
decided step atomically: the case row is locked, its ``version`` compared with the one the caller read
(:class:`StaleCase` when another inspector got there first: two concurrent edits never both win), the
audit record appended and the columns set, in one transaction. Audit rows and attachments are never
updated or deleted (database triggers refuse it, see :func:`alerts.ledger.schema.append_only_ddl`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, or_, select, update

from alerts.ledger.schema import case_actions, case_attachments, cases, episodes, events
from ingest.timeutil import now_ms

SYSTEM = "system"  # the actor of what fumewatch itself records (a case opened by the ladder)
CASE_COLUMNS = ("status", "version", "case_type", "assignee", "outcome", "deadline_ms", "closed_ms")


class StaleCase(Exception):
    """The case changed since the caller read it (HTTP 409): reload it and decide again."""


class CaseNotFound(KeyError):
    def __str__(self) -> str:
        return f"no case {self.args[0]!r}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class CaseworkStore:
    """Mixin of :class:`alerts.ledger.Ledger`: reading and acting on cases."""

    def get_case(self, case_id: str) -> dict[str, Any] | None:
        """The case record with its lifecycle columns (status, version, case_type, assignee, outcome,
        deadline_ms, closed_ms, updated_ms), or None."""
        t = cases.c
        cols = [t.record, t.updated_ms, *(t[c] for c in CASE_COLUMNS)]
        rows = self._read(select(*cols).where(t.case_id == case_id))  # type: ignore[attr-defined]
        return case_from_row(rows[0]) if rows else None

    def case_actions(self, case_id: str) -> list[dict[str, Any]]:
        """The case's audit trail, oldest first (``seq`` 1 is its opening)."""
        t = case_actions.c
        q = select(*case_actions.c).where(t.case_id == case_id).order_by(t.seq)
        out = []
        for r in self._read(q):  # type: ignore[attr-defined]
            d = _plain(r)
            d["fields"] = json.loads(d["fields"] or "{}")
            out.append(d)
        return out

    def record_case_opened(self, c: Any, case_id: str, at_ms: int, note: str, actor: str = SYSTEM) -> None:
        """The opening audit record (seq 1), in the caller's transaction ``c``; nothing if it exists."""
        t = case_actions.c
        if c.execute(select(t.seq).where(t.case_id == case_id, t.seq == 1)).first() is None:
            c.execute(
                case_actions.insert().values(
                    case_id=case_id,
                    seq=1,
                    action="open",
                    actor=actor,
                    at_ms=at_ms,
                    from_status="",
                    to_status="open",
                    note=note,
                    fields="{}",
                )
            )

    def act_on_case(
        self,
        case_id: str,
        version: int,
        actor: str,
        decide: Callable[[dict[str, Any], list[dict[str, Any]]], Any],
    ) -> dict[str, Any]:
        """Apply the step ``decide(case, actions)`` returns (an :class:`alerts.casework.lifecycle.Step`;
        it raises to refuse) if the case is still at ``version``; returns the updated case."""
        ts = now_ms()
        t = cases.c
        with self.transaction() as c:  # type: ignore[attr-defined]
            row = c.execute(
                select(t.record, t.updated_ms, *(t[x] for x in CASE_COLUMNS))
                .where(t.case_id == case_id)
                .with_for_update()
            ).first()
            if row is None:
                raise CaseNotFound(case_id)
            case = case_from_row(row)
            if case["version"] != version:
                raise StaleCase(
                    f"case {case_id} is at version {case['version']}, not {version}: it was changed "
                    f"(last by {self._last_actor(c, case_id)}); reload it and decide again"
                )
            step = decide(case, self.case_actions(case_id))
            seq = self._next_seq(c, case_id)
            c.execute(
                case_actions.insert().values(
                    case_id=case_id,
                    seq=seq,
                    action=step.action,
                    actor=actor,
                    at_ms=ts,
                    from_status=step.from_status,
                    to_status=step.to_status,
                    note=step.note,
                    fields=_dumps(step.fields),
                )
            )
            c.execute(
                update(cases)
                .where(t.case_id == case_id)
                .values(status=step.to_status, version=version + 1, updated_ms=ts, **step.columns)
            )
            if step.dismiss:
                self._dismiss(c, case_id, case)
            out = self.get_case(case_id)
        assert out is not None
        return out

    def add_case_attachment(
        self,
        case_id: str,
        *,
        filename: str,
        content_type: str,
        data: bytes,
        uploaded_by: str,
        note: str = "",
    ) -> dict[str, Any]:
        """Store a photo or document on a case (audit action ``attach``; the version does not change, so
        a form opened before the upload still submits). The same bytes twice are stored once."""
        digest = hashlib.sha256(data).hexdigest()
        attachment_id = f"att-{digest[:24]}"
        ts = now_ms()
        t = case_attachments.c
        with self.transaction() as c:  # type: ignore[attr-defined]
            status = c.execute(select(cases.c.status).where(cases.c.case_id == case_id)).first()
            if status is None:
                raise CaseNotFound(case_id)
            have = c.execute(
                select(t.attachment_id).where(t.attachment_id == attachment_id, t.case_id == case_id)
            ).first()
            if have is None:
                if c.execute(select(t.case_id).where(t.attachment_id == attachment_id)).first():
                    attachment_id = f"att-{digest[:24]}-{case_id[-12:]}"  # the same photo on another case
                c.execute(
                    case_attachments.insert().values(
                        attachment_id=attachment_id,
                        case_id=case_id,
                        filename=filename,
                        content_type=content_type,
                        size_bytes=len(data),
                        sha256=digest,
                        data=data,
                        uploaded_by=uploaded_by,
                        at_ms=ts,
                        note=note,
                    )
                )
                c.execute(
                    case_actions.insert().values(
                        case_id=case_id,
                        seq=self._next_seq(c, case_id),
                        action="attach",
                        actor=uploaded_by,
                        at_ms=ts,
                        from_status=status[0],
                        to_status=status[0],
                        note=note,
                        fields=_dumps(
                            {"attachment_id": attachment_id, "filename": filename, "sha256": digest}
                        ),
                    )
                )
        return next(a for a in self.case_attachments(case_id) if a["attachment_id"] == attachment_id)

    def case_attachments(self, case_id: str) -> list[dict[str, Any]]:
        """Attachment metadata (no bytes), oldest first."""
        t = case_attachments.c
        cols = [c for c in case_attachments.c if c.name != "data"]
        q = select(*cols).where(t.case_id == case_id).order_by(t.at_ms, t.attachment_id)
        return [_plain(r) for r in self._read(q)]  # type: ignore[attr-defined]

    def case_attachment_data(self, case_id: str, attachment_id: str) -> tuple[dict[str, Any], bytes] | None:
        t = case_attachments.c
        q = select(*case_attachments.c).where(t.case_id == case_id, t.attachment_id == attachment_id)
        rows = self._read(q)  # type: ignore[attr-defined]
        if not rows:
            return None
        d = _plain(rows[0])
        return {k: v for k, v in d.items() if k != "data"}, bytes(d["data"])

    def case_ids_for_events(self, event_ids: list[str]) -> dict[str, list[str]]:
        """event id -> ids of the cases whose lead event it is."""
        out: dict[str, list[str]] = {}
        if not event_ids:
            return out
        q = select(cases.c.event_id, cases.c.case_id).where(cases.c.event_id.in_(event_ids))
        for ev, cid in self._read(q):  # type: ignore[attr-defined]
            out.setdefault(ev, []).append(cid)
        return out

    def dismissed_by(self, event_id: str) -> str:
        """The case that dismissed the event ("" when none)."""
        rows = self._read(select(events.c.dismissed_by).where(events.c.event_id == event_id))  # type: ignore[attr-defined]
        return rows[0][0] if rows else ""

    # -- internals ----------------------------------------------------------------------------------------

    @staticmethod
    def _next_seq(c: Any, case_id: str) -> int:
        n = c.execute(select(func.max(case_actions.c.seq)).where(case_actions.c.case_id == case_id)).scalar()
        return int(n or 0) + 1

    @staticmethod
    def _last_actor(c: Any, case_id: str) -> str:
        t = case_actions.c
        row = c.execute(
            select(t.actor, t.action).where(t.case_id == case_id).order_by(t.seq.desc()).limit(1)
        ).first()
        return f"{row[0]} ({row[1]})" if row else "?"

    @staticmethod
    def _dismiss(c: Any, case_id: str, case: dict[str, Any]) -> None:
        """Mark the case's events and episodes: reports and the ladder no longer count them."""
        episode_ids = {p.get("episode_id") for p in case.get("episodes") or []}
        episode_ids |= {case.get("episode_id"), (case.get("step") or {}).get("episode_id")}
        episode_ids.discard(None)
        event_ids = {case.get("event_id")}
        for p in case.get("episodes") or []:
            event_ids |= {e.get("event_id") for e in p.get("events") or []}
        event_ids.discard(None)
        conds = [events.c.event_id.in_(sorted(event_ids))]
        if episode_ids:
            conds.append(events.c.episode_id.in_(sorted(episode_ids)))
            c.execute(
                update(episodes)
                .where(episodes.c.episode_id.in_(sorted(episode_ids)), episodes.c.dismissed_by == "")
                .values(dismissed_by=case_id)
            )
        c.execute(update(events).where(or_(*conds), events.c.dismissed_by == "").values(dismissed_by=case_id))


def case_from_row(row: Any) -> dict[str, Any]:
    d = json.loads(row[0])
    d["updated_ms"] = row[1]
    d.update(zip(CASE_COLUMNS, row[2:], strict=True))
    return d


def _plain(row: Any) -> dict[str, Any]:
    """A row as a dict with plain ``str`` keys (SQLAlchemy's are ``quoted_name``, which orjson refuses)."""
    return {str(k): v for k, v in row._mapping.items()}
