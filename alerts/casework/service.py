"""Casework through the ledger: act on a case, attach a file, and what a case page or listing shows.

Used alike by the API (``/api/v1/cases``), the console (``/console``) and the command line
(``fumewatch case``), so the three can never disagree about a rule. Times people read are in the display
zone with their offset (``*_ms`` stay for machines).
"""

from __future__ import annotations

from typing import Any

from alerts.casework import attachments as att
from alerts.casework.lifecycle import (
    CLOSED,
    OWNER_ACTIONS,
    RECTIFICATION_ORDERED,
    BadFields,
    IllegalAction,
    allowed_actions,
    plan,
)
from alerts.findings import evidence_text
from alerts.ledger import Ledger
from alerts.model import DATA_INTEGRITY
from ingest.timeutil import format_display, now_ms


class Casework:
    def __init__(self, ledger: Ledger, tz: str = "Asia/Shanghai", max_attachment_bytes: int = 0) -> None:
        self.ledger = ledger
        self.tz = tz
        self.max_attachment_bytes = max_attachment_bytes or att.DEFAULT_MAX_BYTES

    # -- acting -------------------------------------------------------------------------------------------

    def act(
        self,
        case_id: str,
        action: str,
        fields: dict[str, Any],
        *,
        actor: str,
        note: str = "",
        version: int | None = None,
        owner: bool = False,
    ) -> dict[str, Any]:
        """Apply ``action``; ``version`` is the one the caller saw (None: the current one, for a command
        line that reads and acts at once). Raises CaseNotFound, StaleCase, IllegalAction, BadFields.

        ``owner``: the caller is an owner's page link (:mod:`alerts.owner`), which may take only the
        owner's actions (``owner_evidence``, ``owner_statement``), as inspectors may take only theirs.
        A recheck or review that found the rectification done is recorded on the ladder step's episode
        (:func:`rectification_record`)."""
        from alerts.ledger.casework import CaseNotFound

        if (action in OWNER_ACTIONS) != owner:
            who = "an owner's page link" if owner else "an inspector"
            raise IllegalAction(f"{action} cannot be taken by {who}")
        if version is None:
            current = self.ledger.get_case(case_id)
            if current is None:
                raise CaseNotFound(case_id)
            version = int(current["version"])
        at = now_ms()

        def decide(case: dict[str, Any], actions: list[dict[str, Any]]):
            step = plan(case, actions, action, fields, note, now_ms=at, tz=self.tz)
            wanted = set(step.fields.get("attachments") or ())
            if wanted:
                have = {a["attachment_id"] for a in self.ledger.case_attachments(case_id)}
                missing = sorted(wanted - have)
                if missing:
                    raise BadFields(f"{action}: attachments {', '.join(missing)} are not on case {case_id}")
            return step

        out = self.ledger.act_on_case(case_id, version, actor, decide)
        if action in ("recheck", "review_submission"):  # the trail's parsed finding decides
            self._record_rectification(out, actor)
        return out

    def _record_rectification(self, case: dict[str, Any], actor: str) -> None:
        """Record on the step's episode that an inspector found it rectified, and whether in time."""
        rec = rectification_record(case, self.ledger.case_actions(case["case_id"]), actor)
        if rec is None:
            return
        if self.ledger.get_episode(rec["episode_id"]) is not None:  # else a case from before episodes
            self.ledger.update_episode(rec["episode_id"], record={"rectification": rec})

    def attach(
        self, case_id: str, filename: str, content_type: str, data: bytes, *, actor: str, note: str = ""
    ) -> dict[str, Any]:
        name, real = att.check(filename, content_type, data, self.max_attachment_bytes)
        case = self.ledger.get_case(case_id)
        if case is not None and case["status"] == CLOSED:
            from alerts.casework.lifecycle import IllegalAction

            raise IllegalAction(f"case {case_id} is closed: it takes no further attachments")
        return self.present_attachment(
            self.ledger.add_case_attachment(
                case_id, filename=name, content_type=real, data=data, uploaded_by=actor, note=note
            )
        )

    # -- reading ------------------------------------------------------------------------------------------

    def summary(self, case: dict[str, Any], now: int | None = None) -> dict[str, Any]:
        """The listing row of a case: ids, restaurant, status, assignee, deadline, overdue, times."""
        now = now_ms() if now is None else now
        deadline = case.get("deadline_ms")
        return {
            "case_id": case["case_id"],
            "case_type": case.get("case_type", "enforcement"),
            "restaurant_id": case.get("restaurant_id", ""),
            "district": case.get("district", ""),
            "device_id": case.get("device_id", ""),
            "status": case["status"],
            "outcome": case.get("outcome") or "",
            "assignee": case.get("assignee") or "",
            "version": case.get("version", 1),
            "level": case.get("level", ""),
            "start": format_display(case["start_ms"], self.tz),
            "start_ms": case["start_ms"],
            "deadline": format_display(deadline, self.tz) if deadline else "",
            "deadline_ms": deadline,
            "overdue": bool(deadline and case["status"] == RECTIFICATION_ORDERED and deadline < now),
            "updated": format_display(case["updated_ms"], self.tz) if case.get("updated_ms") else "",
            "event_id": case.get("event_id", ""),
        }

    def list(self, **filters: Any) -> list[dict[str, Any]]:
        now = now_ms()
        return [self.summary(c, now) for c in self.ledger.list_cases(**filters)]

    def view(self, case_id: str) -> dict[str, Any] | None:
        """Everything a case page shows: the case record (evidence, episodes, receipts at the time of the
        case), its lifecycle summary, the audit trail, attachments, every notice of its events now, and
        the actions its state allows."""
        case = self.ledger.get_case(case_id)
        if case is None:
            return None
        trail = [self.present_action(a) for a in self.ledger.case_actions(case_id)]
        event_ids = _event_ids(case)
        notices = [
            {
                "key": n.key,
                "channel": n.channel,
                "target": n.target,
                "status": n.status,
                "attempts": n.attempts,
                "error": n.error,
                "created": format_display(n.created_ms, self.tz) if n.created_ms else "",
                "updated": format_display(n.updated_ms, self.tz) if n.updated_ms else "",
                "template": (n.payload or {}).get("template", ""),
            }
            for n in self.ledger.notices_for_events(event_ids)
        ]
        return {
            "case": case,
            "summary": self.summary(case),
            "lifecycle": lifecycle_summary(trail),
            "trail": trail,
            "attachments": [self.present_attachment(a) for a in self.ledger.case_attachments(case_id)],
            "notices": notices,
            "allowed_actions": allowed_actions(case),
            "events": self.ledger.existing_event_ids(event_ids),
            # evidence under review: data-integrity findings covering the case's events (alerts/integrity)
            "integrity": self.integrity_findings(event_ids),
        }

    def integrity_findings(self, event_ids: list[str]) -> list[dict[str, Any]]:
        """The ``data_integrity`` events of the same device overlapping any of these events: the case's
        evidence rests on data an integrity check doubted, until an inspector has checked the monitor."""
        out: dict[str, dict[str, Any]] = {}
        for eid in event_ids:
            e = self.ledger.get_event(eid)
            if e is None or e.kind == DATA_INTEGRITY:
                continue
            end = e.end_ms if e.end_ms is not None else now_ms()
            for f in self.ledger.list_events(
                since_ms=e.start_ms, until_ms=end + 1, restaurant_id=e.restaurant_id, kind=DATA_INTEGRITY
            ):
                if f.device_id == e.device_id and f.event_id not in out:
                    out[f.event_id] = {
                        "event_id": f.event_id,
                        "check": f.rule,
                        "covers": eid,
                        "start": format_display(f.start_ms, self.tz),
                        "end": format_display(f.end_ms, self.tz) if f.end_ms is not None else "",
                        "minutes": f.judgement.get("minutes"),
                        "evidence": evidence_text(f.judgement, "zh", f.rule, self.tz),
                        "evidence_en": evidence_text(f.judgement, "en", f.rule, self.tz),
                    }
        return sorted(out.values(), key=lambda f: (f["start"], f["event_id"]))

    def present_action(self, a: dict[str, Any]) -> dict[str, Any]:
        out = {**a, "at": format_display(a["at_ms"], self.tz)}
        f = dict(a["fields"])
        for k in [k for k in f if k.endswith("_ms") and isinstance(f[k], int)]:
            f[k.removesuffix("_ms")] = format_display(f[k], self.tz)
        out["fields"] = f
        return out

    def present_attachment(self, a: dict[str, Any]) -> dict[str, Any]:
        return {**a, "at": format_display(a["at_ms"], self.tz)}


def _event_ids(case: dict[str, Any]) -> list[str]:
    ids = [case.get("event_id")]
    for p in case.get("episodes") or []:
        ids += [e.get("event_id") for e in p.get("events") or []]
    return sorted({i for i in ids if i})


def lifecycle_summary(trail: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest inspection, rectification order, recheck and closure, and every statement, from the
    (presented) audit trail: the trail is the record, this is a view of it."""
    out: dict[str, Any] = {"statements": []}
    for a in trail:
        entry = {"by": a["actor"], "at": a["at"], "note": a["note"], **a["fields"]}
        if a["action"] == "inspect":
            out["inspection"] = entry
        elif a["action"] == "order_rectification":
            out["rectification"] = entry
        elif a["action"] == "recheck":
            out["recheck"] = entry
        elif a["action"] == "record_statement":
            out["statements"].append(entry)
        elif a["action"] == "close":
            out["closure"] = entry
        elif a["action"] == "assign":
            out["assignment"] = entry
        elif a["action"] == "owner_statement":
            out["statements"].append(entry)
        elif a["action"] == "owner_evidence":
            out.setdefault("owner_evidence", []).append(entry)
        elif a["action"] == "review_submission":
            out.setdefault("reviews", []).append(entry)
    return out


def step_episode_id(case: dict[str, Any]) -> str:
    """The episode of the ladder step a case is about ("" when the record does not say)."""
    return str((case.get("step") or {}).get("episode_id") or case.get("episode_id") or "")


def rectification_record(
    case: dict[str, Any], actions: list[dict[str, Any]], actor: str
) -> dict[str, Any] | None:
    """What the step's episode records when the latest recheck or review found the rectification done:
    when the work was shown done (the recheck's time, or when the owner sent the reviewed evidence), the
    step's correction deadline, and ``in_time`` (shown done on or before the deadline, 整改期限内). The
    ladder itself does not change on it (docs/owner.md): it is the record an inspector cites."""
    episode_id = step_episode_id(case)
    findings = [a for a in actions if a["action"] in ("recheck", "review_submission")]
    if not episode_id or not findings or not findings[-1]["fields"].get("rectified"):
        return None
    last = findings[-1]
    f = last["fields"]
    if last["action"] == "recheck":
        shown_ms = f.get("rechecked_at_ms") or last["at_ms"]
    else:
        ev = [
            a
            for a in actions
            if a["action"] == "owner_evidence" and a["fields"].get("submission_id") == f.get("submission_id")
        ]
        shown_ms = ev[-1]["fields"].get("submitted_at_ms") if ev else last["at_ms"]
    deadline = (case.get("step") or {}).get("deadline_ms") or case.get("step_deadline_ms")
    return {
        "case_id": case["case_id"],
        "episode_id": episode_id,
        "confirmed_by": actor,
        "confirmed_ms": last["at_ms"],
        "via": last["action"],
        "submission_id": f.get("submission_id", ""),
        "shown_done_ms": shown_ms,
        "deadline_ms": deadline,
        "in_time": bool(deadline is not None and shown_ms is not None and shown_ms <= deadline),
    }
