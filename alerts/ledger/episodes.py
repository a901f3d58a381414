"""Episodes of the enforcement ladder and inspectors' tasks in the ledger (revision 0003).

An episode is one restaurant's offence (its exceedance and purifier_off events that overlap or touch);
:mod:`alerts.enforcement.episodes` decides them, this module stores them. Tasks are inspectors' work
that is not a case, e.g. ``owner_unreachable``: serve a notice on site because no owner channel took it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import and_, func, select, text, true, update

from alerts.ledger.event_rows import _dumps, _event_cols, _event_from_row
from alerts.ledger.notices import NoticeRecord
from alerts.ledger.schema import episodes, events, notices, tasks
from alerts.model import Event
from ingest.timeutil import now_ms

_EPISODE_COLUMNS = (
    "episode_id",
    "restaurant_id",
    "district",
    "device_id",
    "lead_event_id",
    "start_ms",
    "end_ms",
    "level",
    "step",
    "repeat",
    "step_episode_id",
    "reissued",
    "deadline_ms",
    "record",
    "created_ms",
)


@dataclass(slots=True)
class Episode:
    """One restaurant's offence on the ladder. ``step`` is its position (1 education, 2 warning, >= 3
    enforcement); ``repeat``: it started inside the correction period of ``step_episode_id`` and is
    recorded against that step; ``reissued``: the step was given again because the previous step's
    notice never reached the owner; ``deadline_ms``: the correction deadline of its step."""

    episode_id: str
    restaurant_id: str
    district: str
    device_id: str
    lead_event_id: str
    start_ms: int
    end_ms: int | None
    level: str
    step: int
    repeat: bool
    step_episode_id: str
    reissued: bool
    deadline_ms: int
    record: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def episode_id_for(restaurant_id: str, start_ms: int) -> str:
    return f"episode:{restaurant_id}:{start_ms}"


class EpisodeStore:
    """The episode and task methods of :class:`alerts.ledger.Ledger` (which provides the plumbing)."""

    # -- episodes -----------------------------------------------------------------------------------------

    def lock_restaurant(self, restaurant_id: str) -> None:
        """Inside a transaction: serialise ladder decisions for one restaurant across processes.

        PostgreSQL: a transaction-scoped advisory lock on the restaurant; SQLite: the write transaction
        (``BEGIN IMMEDIATE``) already excludes every other writer.
        """
        if self.dialect == "postgresql":  # type: ignore[attr-defined]
            tx = self._tx  # type: ignore[attr-defined]
            assert tx is not None, "lock_restaurant() needs an open ledger.transaction()"
            tx.execute(text("SELECT pg_advisory_xact_lock(hashtext(:r))"), {"r": f"episodes:{restaurant_id}"})

    def insert_episode(self, ep: Episode) -> Episode:
        """Store a new episode (idempotent on ``episode_id``: an existing one is returned unchanged)."""
        ts = now_ms()
        row = {c: getattr(ep, c) for c in _EPISODE_COLUMNS}
        row.update(repeat=int(ep.repeat), reissued=int(ep.reissued), record=_dumps(ep.record))
        row.update(created_ms=ep.created_ms or ts, updated_ms=ts)
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(self._insert(episodes).values(**row).on_conflict_do_nothing())  # type: ignore[attr-defined]
            stored = self.get_episode(ep.episode_id)
        assert stored is not None
        return stored

    def get_episode(self, episode_id: str) -> Episode | None:
        rows = self._read(_episode_select().where(episodes.c.episode_id == episode_id))  # type: ignore[attr-defined]
        return _episode_from_row(rows[0]) if rows else None

    def list_episodes(
        self,
        restaurant_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        district: str | None = None,
        include_dismissed: bool = False,
    ) -> list[Episode]:
        """Episodes whose start lies in ``[since_ms, until_ms]`` (both inclusive), by start then id;
        without those a case dismissed (they no longer count on the ladder) unless ``include_dismissed``."""
        t = episodes.c
        conds = [t[c] == v for c, v in (("restaurant_id", restaurant_id), ("district", district)) if v]
        if not include_dismissed:
            conds.append(t.dismissed_by == "")
        if since_ms is not None:
            conds.append(t.start_ms >= since_ms)
        if until_ms is not None:
            conds.append(t.start_ms <= until_ms)
        q = _episode_select().where(and_(true(), *conds)).order_by(t.start_ms, t.episode_id)
        return [_episode_from_row(r) for r in self._read(q)]  # type: ignore[attr-defined]

    def update_episode(
        self, episode_id: str, *, end_ms: int | None = None, record: dict | None = None
    ) -> None:
        """Extend the known end (never shortens it) and merge ``record`` keys into the stored record."""
        t = episodes.c
        with self.transaction() as c:  # type: ignore[attr-defined]
            row = c.execute(
                select(t.end_ms, t.record).where(t.episode_id == episode_id).with_for_update()
            ).first()
            if row is None:
                raise KeyError(f"no episode {episode_id!r}")
            values: dict[str, Any] = {"updated_ms": now_ms()}
            if end_ms is not None and (row[0] is None or end_ms > row[0]):
                values["end_ms"] = end_ms
            if record:
                values["record"] = _dumps({**json.loads(row[1] or "{}"), **record})
            c.execute(update(episodes).where(t.episode_id == episode_id).values(**values))

    def set_event_episode(self, event_id: str, episode_id: str) -> None:
        """Put an event into an episode (only once: an event never changes episode)."""
        t = events.c
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(
                update(events)
                .where(t.event_id == event_id, t.episode_id == "")
                .values(episode_id=episode_id, updated_ms=now_ms())
            )

    def episode_events(self, episode_ids: Iterable[str]) -> list[Event]:
        """The events of these episodes, by start then id."""
        ids = list(episode_ids)
        if not ids:
            return []
        q = (
            select(*_event_cols())
            .where(events.c.episode_id.in_(ids))
            .order_by(events.c.start_ms, events.c.event_id)
        )
        return [_event_from_row(r) for r in self._read(q)]  # type: ignore[attr-defined]

    def notices_for_events(self, event_ids: Iterable[str]) -> list[NoticeRecord]:
        """Every notice row of these events (receipts), oldest first."""
        ids = list(event_ids)
        if not ids:
            return []
        return self._notices(notices.c.event_id.in_(ids))  # type: ignore[attr-defined]

    def dead_letter_counts(self, device_id: str, since_ms: int, until_ms: int) -> dict[str, int]:
        """Refused messages of ``device_id`` received in ``[since_ms, until_ms)`` (by arrival time: a refused
        message has no trusted reading time), by reason: the device's data flags for a case file."""
        from ingest.state_schema import dead_letters

        d = dead_letters.c
        q = (
            select(d.reason, func.count())
            .where(d.device_id == device_id, d.received_ms >= since_ms, d.received_ms < until_ms)
            .group_by(d.reason)
        )
        try:
            return {str(r): int(n) for r, n in self._read(q)}  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a ledger without ingest's table (tools, tests): no flags known
            return {}

    # -- tasks --------------------------------------------------------------------------------------------

    def add_task(self, task: dict[str, Any]) -> bool:
        """Store an inspectors' task (``task_id``, ``kind``, ``episode_id``, ``restaurant_id``, ...) unless
        one with that id exists; True if it is new. Inspectors work it as a case (``case-<task_id>``,
        ``case_type`` = the task's kind, lead event ``event_id``, ``start_ms``), stored with it."""
        ts = now_ms()
        t = tasks.c
        with self.transaction() as c:  # type: ignore[attr-defined]
            if c.execute(select(t.task_id).where(t.task_id == task["task_id"])).first() is not None:
                return False
            c.execute(
                tasks.insert().values(
                    task_id=task["task_id"],
                    kind=task["kind"],
                    episode_id=task["episode_id"],
                    restaurant_id=task["restaurant_id"],
                    district=task.get("district", ""),
                    status=task.get("status", "open"),
                    record=_dumps(task),
                    created_ms=task.get("created_ms") or ts,
                    updated_ms=ts,
                )
            )
            if task.get("event_id") and task.get("start_ms") is not None:
                self.upsert_case(  # type: ignore[attr-defined]
                    {
                        **task,
                        "case_id": f"case-{task['task_id']}",
                        "case_type": task["kind"],
                        "task_id": task["task_id"],
                        "created_ms": task.get("created_ms") or ts,
                    }
                )
        return True

    def list_tasks(
        self,
        restaurant_id: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        district: str | None = None,
    ) -> list[dict[str, Any]]:
        t = tasks.c
        conds = [
            t[c] == v
            for c, v in (
                ("restaurant_id", restaurant_id),
                ("status", status),
                ("kind", kind),
                ("district", district),
            )
            if v
        ]
        q = select(t.record, t.status).where(and_(true(), *conds)).order_by(t.created_ms, t.task_id)
        out = []
        for record, st in self._read(q):  # type: ignore[attr-defined]
            d = json.loads(record)
            d["status"] = st
            out.append(d)
        return out

    def count_tasks(self) -> int:
        return int(self._read(select(func.count()).select_from(tasks))[0][0])  # type: ignore[attr-defined]


def _episode_select() -> Any:
    return select(*(episodes.c[c] for c in _EPISODE_COLUMNS))


def _episode_from_row(r: Any) -> Episode:
    d = dict(zip(_EPISODE_COLUMNS, r, strict=True))
    d["repeat"], d["reissued"] = bool(d["repeat"]), bool(d["reissued"])
    d["record"] = json.loads(d["record"] or "{}")
    return Episode(**d)
