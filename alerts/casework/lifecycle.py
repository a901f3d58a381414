"""The rules of a case's life: which action is allowed in which state, what it needs, what it changes.

States (``status``)::

    open ─assign→ assigned ─inspect→ inspected ─order_rectification→ rectification_ordered
                                                   ─recheck→ rechecked ─close→ closed

- ``assign`` (any state before closed): sets the assignee; ``open`` becomes ``assigned``.
- ``inspect`` (assigned, inspected): the on-site record — when, findings, purifier and fan condition,
  photos (attachment ids). A later inspection supersedes an earlier one; both stay in the trail.
- ``order_rectification`` (inspected, rectification_ordered, rechecked): the deadline date (local, not in
  the past) and what must be done. Ordering again sets a new deadline.
- ``recheck`` (rectification_ordered): was it rectified, findings, photos.
- ``record_statement`` (any state before closed): the owner's statement (陈述、申辩), written or oral;
  the status does not change.
- ``close`` with an outcome:
  - ``rectified``: only after a recheck that found it rectified;
  - ``penalized``: only with an inspection record; the decision number (行政处罚决定书文号) and the
    amount in yuan;
  - ``not_punished`` (免罚): only with an inspection record; the 免罚清单 item cited;
  - ``dismissed`` (device fault, invalid data, duplicate, other; a note is required): from any state; the
    case's events and episodes are then marked so reports and the ladder no longer count them;
  - ``served`` (owner_unreachable cases only: the notice was served on site);
  - ``not_rectified`` (rectification cases only: the owner's evidence did not show the work done; the
    ladder step stands).
  A closed case takes no further action: a wrong close is answered by a new case, not an edit.

The owner's page (issue 15) adds two actions only an owner's link can take (never an inspector's token:
:meth:`alerts.casework.Casework.act` refuses them otherwise), and one inspectors take on them:

- ``owner_evidence`` (any state before closed): rectification evidence the owner sent (photos, invoice, a
  note); the status does not change. ``owner_statement``: the owner's statement (陈述、申辩) sent online;
  it counts among the statements like ``record_statement``.
- ``review_submission`` (any state before closed, needs an ``owner_evidence`` of that ``submission_id``):
  an inspector's finding on the evidence, ``rectified`` yes/no. The owner's submission alone never closes
  a case: ``close rectified`` needs a recheck or a review that found the rectification done.

A ``rectification`` case (整改核查) is the case an owner's submission opens for a ladder step that has
none (education and warning steps: enforcement steps have their ``enforcement`` case already).

Everything here is pure: :func:`plan` turns (case, its actions so far, the requested action) into a
:class:`Step` or raises :class:`IllegalAction` (409: wrong state, missing precondition) or
:class:`BadFields` (400). The ledger (:mod:`alerts.ledger.casework`) applies a step atomically with the
version check (:class:`~alerts.ledger.casework.StaleCase`, 409) and appends the audit record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.timeutil import zone

OPEN, ASSIGNED, INSPECTED = "open", "assigned", "inspected"
RECTIFICATION_ORDERED, RECHECKED, CLOSED = "rectification_ordered", "rechecked", "closed"
STATUSES = (OPEN, ASSIGNED, INSPECTED, RECTIFICATION_ORDERED, RECHECKED, CLOSED)
ENFORCEMENT_CASE, OWNER_UNREACHABLE_CASE = "enforcement", "owner_unreachable"
RECTIFICATION_CASE = "rectification"
OUTCOMES = ("rectified", "penalized", "not_punished", "dismissed", "served", "not_rectified")
#: What inspectors do (the API's and the console's actions).
ACTIONS = (
    "assign",
    "inspect",
    "order_rectification",
    "recheck",
    "record_statement",
    "review_submission",
    "close",
)
#: What only an owner's page link does (source: owner page).
OWNER_ACTIONS = ("owner_evidence", "owner_statement")
#: Audit-only actions the ledger writes itself (no state change, no version step).
OPENED, ATTACHED = "open", "attach"

Condition = Literal["working", "not_working", "bypassed", "absent", "unknown"]
_BEFORE_CLOSED = (OPEN, ASSIGNED, INSPECTED, RECTIFICATION_ORDERED, RECHECKED)
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "assign": _BEFORE_CLOSED,
    "inspect": (ASSIGNED, INSPECTED),
    "order_rectification": (INSPECTED, RECTIFICATION_ORDERED, RECHECKED),
    "recheck": (RECTIFICATION_ORDERED,),
    "record_statement": _BEFORE_CLOSED,
    "review_submission": _BEFORE_CLOSED,
    "owner_evidence": _BEFORE_CLOSED,
    "owner_statement": _BEFORE_CLOSED,
    "close": _BEFORE_CLOSED,
}
#: Longest free text (findings, notes, statements): a page, not a book.
TEXT_MAX = 4000


class IllegalAction(Exception):
    """The action is not allowed in the case's state or lacks a precondition (HTTP 409)."""


class BadFields(ValueError):
    """The action's fields are missing or invalid (HTTP 400)."""


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _text(required: bool = True, max_length: int = TEXT_MAX) -> Any:
    return Field(..., min_length=1, max_length=max_length) if required else Field("", max_length=max_length)


class AssignFields(_Fields):
    assignee: str = _text(max_length=64)


class InspectFields(_Fields):
    inspected_at: datetime
    findings: str = _text()
    purifier: Condition
    fan: Condition
    attachments: list[str] = Field(default_factory=list, max_length=50)


class OrderFields(_Fields):
    deadline: date
    requirements: str = _text()


class RecheckFields(_Fields):
    rechecked_at: datetime
    rectified: bool
    findings: str = _text()
    attachments: list[str] = Field(default_factory=list, max_length=50)


class StatementFields(_Fields):
    statement: str = _text()
    form: Literal["written", "oral"] = "written"
    given_at: datetime | None = None
    attachments: list[str] = Field(default_factory=list, max_length=50)


class OwnerEvidenceFields(_Fields):
    submission_id: str = _text(max_length=64)
    link_id: str = _text(max_length=64)
    source: Literal["owner_page"] = "owner_page"
    submitted_at: datetime
    note: str = _text(required=False)
    attachments: list[str] = Field(default_factory=list, max_length=20)
    #: per stored attachment: the SHA-256 and size of the file as the owner sent it (photos are re-encoded)
    sent: dict[str, dict[str, Any]] = Field(default_factory=dict)


class OwnerStatementFields(_Fields):
    submission_id: str = _text(max_length=64)
    link_id: str = _text(max_length=64)
    source: Literal["owner_page"] = "owner_page"
    statement: str = _text()
    form: Literal["online"] = "online"
    given_at: datetime
    attachments: list[str] = Field(default_factory=list, max_length=20)
    sent: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ReviewFields(_Fields):
    submission_id: str = _text(max_length=64)
    rectified: bool
    findings: str = _text()


class CloseFields(_Fields):
    outcome: Literal["rectified", "penalized", "not_punished", "dismissed", "served", "not_rectified"]
    decision_number: str = _text(required=False, max_length=128)
    amount_yuan: float | None = Field(None, gt=0, le=10_000_000)
    exemption_item: str = _text(required=False, max_length=500)
    dismiss_reason: Literal["device_fault", "invalid_data", "duplicate", "other"] | None = None

    @field_validator("amount_yuan")
    @classmethod
    def _cents(cls, v: float | None) -> float | None:
        if v is not None and round(v, 2) != v:
            raise ValueError("amount_yuan has at most two decimals (fen)")
        return v


FIELDS: dict[str, type[_Fields]] = {
    "assign": AssignFields,
    "inspect": InspectFields,
    "order_rectification": OrderFields,
    "recheck": RecheckFields,
    "record_statement": StatementFields,
    "review_submission": ReviewFields,
    "owner_evidence": OwnerEvidenceFields,
    "owner_statement": OwnerStatementFields,
    "close": CloseFields,
}


@dataclass
class Step:
    """What one action does to a case: the audit record and the case columns it sets."""

    action: str
    from_status: str
    to_status: str
    fields: dict[str, Any]
    note: str
    columns: dict[str, Any] = field(default_factory=dict)  # assignee, outcome, deadline_ms, closed_ms
    dismiss: bool = False  # mark the case's events and episodes dismissed


def parse_fields(action: str, raw: dict[str, Any], tz: str) -> dict[str, Any]:
    """The action's fields validated, times made aware (a local time without offset is in ``tz``) and
    serialisable (epoch ms for times, ISO dates); :class:`BadFields` with a one-line reason."""
    model = FIELDS.get(action)
    if model is None:
        raise BadFields(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or action
        raise BadFields(f"{action}: {where}: {first['msg']}") from None
    out: dict[str, Any] = {}
    for k, v in parsed.model_dump().items():
        if isinstance(v, datetime):
            aware = v if v.tzinfo is not None else v.replace(tzinfo=zone(tz))
            out[f"{k}_ms"] = int(aware.timestamp() * 1000)
        elif isinstance(v, date):
            out[k] = v.isoformat()
        elif v is not None and v != "" and v != []:
            out[k] = v
    return out


def end_of_day_ms(day: str, tz: str) -> int:
    """The last millisecond of the local ``day`` (YYYY-MM-DD) in ``tz``: a deadline includes its day."""
    d = date.fromisoformat(day)
    end = datetime.combine(d + timedelta(days=1), time(0), zone(tz))
    return int(end.timestamp() * 1000) - 1


def plan(
    case: dict[str, Any],
    actions: list[dict[str, Any]],
    action: str,
    raw_fields: dict[str, Any],
    note: str,
    *,
    now_ms: int,
    tz: str,
) -> Step:
    """The :class:`Step` ``action`` makes on ``case`` (its columns: status, case_type; ``actions``: its
    audit trail so far), or :class:`IllegalAction` / :class:`BadFields`."""
    status = case["status"]
    if action not in FIELDS:
        raise BadFields(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    note = (note or "").strip()
    if len(note) > TEXT_MAX:
        raise BadFields(f"note: at most {TEXT_MAX} characters")
    if status == CLOSED:
        raise IllegalAction(
            f"case {case['case_id']} is closed (outcome {case.get('outcome') or '?'}): it takes no further "
            "action; a new offence opens a new case"
        )
    if status not in ALLOWED_FROM[action]:
        allowed = ", ".join(ALLOWED_FROM[action])
        raise IllegalAction(f"{action} is not allowed on a case that is {status} (only when {allowed})")
    f = parse_fields(action, raw_fields, tz)
    step = Step(action, status, status, f, note)
    for k in ("inspected_at_ms", "rechecked_at_ms", "given_at_ms"):
        if k in f and f[k] > now_ms + 300_000:
            raise BadFields(f"{action}: {k.removesuffix('_ms')} is in the future")
    if action == "assign":
        step.to_status = ASSIGNED if status == OPEN else status
        step.columns["assignee"] = f["assignee"]
    elif action == "inspect":
        step.to_status = INSPECTED
    elif action == "order_rectification":
        today = datetime.fromtimestamp(now_ms / 1000, zone(tz)).date().isoformat()
        if f["deadline"] < today:
            raise BadFields(f"order_rectification: deadline {f['deadline']} is before today ({today})")
        step.to_status = RECTIFICATION_ORDERED
        step.columns["deadline_ms"] = end_of_day_ms(f["deadline"], tz)
    elif action == "recheck":
        step.to_status = RECHECKED
    elif action == "review_submission":
        sid = f["submission_id"]
        if not any(
            a["action"] == "owner_evidence" and a["fields"].get("submission_id") == sid for a in actions
        ):
            raise IllegalAction(f"review_submission: the case has no owner evidence {sid}")
    elif action == "close":
        _check_close(case, actions, f, note)
        step.to_status = CLOSED
        step.columns.update(outcome=f["outcome"], closed_ms=now_ms)
        step.dismiss = f["outcome"] == "dismissed"
    return step


def _check_close(case: dict[str, Any], actions: list[dict[str, Any]], f: dict[str, Any], note: str) -> None:
    outcome = f["outcome"]
    inspected = any(a["action"] == "inspect" for a in actions)
    task = case.get("case_type") == OWNER_UNREACHABLE_CASE
    if outcome == "served" and not task:
        raise IllegalAction("served closes owner_unreachable cases only")
    if outcome == "not_rectified" and case.get("case_type") != RECTIFICATION_CASE:
        raise IllegalAction("not_rectified closes rectification cases only")
    if outcome not in allowed_outcomes(case):
        raise IllegalAction(
            f"a {case.get('case_type') or ENFORCEMENT_CASE} case closes as "
            f"{' or '.join(allowed_outcomes(case))}, not {outcome}"
        )
    if outcome == "rectified":
        findings = [a for a in actions if a["action"] in ("recheck", "review_submission")]
        if not findings or not findings[-1]["fields"].get("rectified"):
            raise IllegalAction(
                "rectified needs a recheck, or a review of the owner's evidence, that found the rectification "
                "done (the owner's submission alone never closes a case)"
            )
    elif outcome in ("penalized", "not_punished") and not inspected:
        raise IllegalAction(f"{outcome} needs an on-site inspection record first (inspect)")
    if outcome == "penalized":
        if not f.get("decision_number") or f.get("amount_yuan") is None:
            raise BadFields("close penalized: decision_number and amount_yuan are required")
    elif outcome == "not_punished":
        if not f.get("exemption_item"):
            raise BadFields("close not_punished: exemption_item (the 免罚清单 item applied) is required")
    elif outcome == "dismissed":
        if not f.get("dismiss_reason"):
            raise BadFields("close dismissed: dismiss_reason is required")
        if not note:
            raise BadFields("close dismissed: a note saying why is required")
    extra = {
        "decision_number": outcome == "penalized",
        "amount_yuan": outcome == "penalized",
        "exemption_item": outcome == "not_punished",
        "dismiss_reason": outcome == "dismissed",
    }
    wrong = [k for k, allowed in extra.items() if k in f and not allowed]
    if wrong:
        raise BadFields(f"close {outcome}: {', '.join(wrong)} do not apply")


#: The close outcomes of each case type (the rest of their preconditions are checked by :func:`plan`).
OUTCOMES_BY_TYPE = {
    ENFORCEMENT_CASE: ("rectified", "penalized", "not_punished", "dismissed"),
    OWNER_UNREACHABLE_CASE: ("served", "dismissed"),
    RECTIFICATION_CASE: ("rectified", "not_rectified", "dismissed"),
}


def allowed_outcomes(case: dict[str, Any]) -> tuple[str, ...]:
    """The outcomes a case of this type may close with."""
    return OUTCOMES_BY_TYPE.get(case.get("case_type") or ENFORCEMENT_CASE, OUTCOMES_BY_TYPE[ENFORCEMENT_CASE])


def allowed_actions(case: dict[str, Any]) -> list[str]:
    """The actions the case's state allows (the console shows their forms)."""
    return [a for a in ACTIONS if case["status"] in ALLOWED_FROM[a]]
