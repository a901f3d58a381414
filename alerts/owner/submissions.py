"""What the owner's page reads and writes in the ledger: the restaurant's current ladder step, and the
owner's rectification evidence and statements landing on that step's case.

**Which step.** The restaurant's latest episode that still counts (not dismissed), and the step it is
recorded against (a repeat inside a correction period belongs to the step it repeats). The page shows it
with its deadline; forms are offered while the step's case is not closed.

**Which case.** An enforcement step (step >= 3) has its ``enforcement`` case (``case-<lead event>``) from
the ladder. An education or warning step has none, so the owner's first submission opens a
``rectification`` case (整改核查, ``case-rectification:<step episode>``) for inspectors, with the step's
offence and evidence as the ladder recorded them. Every submission is an audit record of that case
(``owner_evidence`` / ``owner_statement``, actor ``owner``, ``source: owner_page``, the link id), its
files are case attachments, and the ``owner_submissions`` row is the owner's receipt. The owner's
submission never closes a case: an inspector reviews it (``review_submission``) or rechecks on site.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from alerts.casework.lifecycle import CLOSED, RECTIFICATION_CASE, BadFields, IllegalAction
from alerts.enforcement import ladder
from alerts.ledger.casework import StaleCase
from alerts.model import ENFORCEMENT
from alerts.owner.uploads import Kept
from ingest.timeutil import format_utc, now_ms

#: The actor of the owner's audit records (the link id and source are in the record's fields).
OWNER_ACTOR = "owner"
EVIDENCE, STATEMENT = "evidence", "statement"


@dataclass(slots=True)
class Step:
    """The restaurant's current ladder step as the page shows it."""

    episode: Any  # the latest episode (alerts.ledger.Episode)
    step: Any  # the episode it is recorded against
    events: list[Any]  # the latest episode's events
    case_id: str
    case: dict[str, Any] | None  # None: no case yet (an education or warning step before any submission)

    @property
    def open_for_submissions(self) -> bool:
        return self.case is None or self.case["status"] != CLOSED


def case_id_for_step(step: Any) -> str:
    if step.level == ENFORCEMENT:
        return ladder.case_id_for(step.lead_event_id)
    return f"case-{RECTIFICATION_CASE}:{step.episode_id}"


def current_step(ledger: Any, restaurant_id: str) -> Step | None:
    """The latest episode that counts and its step, or None (nothing on the ladder)."""
    eps = ledger.list_episodes(restaurant_id=restaurant_id)
    if not eps:
        return None
    latest = max(eps, key=lambda p: (p.start_ms, p.episode_id))
    step = latest
    if latest.repeat and latest.step_episode_id and latest.step_episode_id != latest.episode_id:
        step = ledger.get_episode(latest.step_episode_id) or latest
    case_id = case_id_for_step(step)
    return Step(latest, step, ledger.episode_events([latest.episode_id]), case_id, ledger.get_case(case_id))


def _rectification_case(ledger: Any, st: Step, tz: str, at_ms: int) -> dict[str, Any]:
    """The record of the rectification case an owner's first submission opens for an education or warning
    step: the step and its offence as the ladder recorded them."""
    step = st.step
    lead = ledger.get_event(step.lead_event_id)
    windows = [ladder.window_summary(w, lead, tz) for w in (lead.evidence if lead else [])]
    return {
        "case_id": st.case_id,
        "case_type": RECTIFICATION_CASE,
        "event_id": step.lead_event_id,
        "episode_id": step.episode_id,
        "restaurant_id": step.restaurant_id,
        "district": step.district,
        "device_id": step.device_id,
        "start_ms": step.start_ms,
        "end_ms": step.end_ms,
        "level": step.level,
        "occurrence": step.step,
        "step": step.as_dict(),
        "event_kind": lead.kind if lead else "",
        "pollutant": lead.pollutant if lead else "",
        "rule": lead.rule if lead else "",
        "profile": lead.profile if lead else "",
        "limit_mg_m3": lead.limit_mg_m3 if lead else None,
        "peak_mg_m3": lead.peak_mg_m3 if lead else None,
        "mean_mg_m3": lead.mean_mg_m3 if lead else None,
        "evidence": {"windows": windows, "judgement": lead.judgement if lead else {}},
        "created_ms": at_ms,
        "opened_by": "owner_page",
        "action": "review the owner's rectification evidence or statement (整改核查)",
    }


def submit(
    ledger: Any,
    casework: Any,
    *,
    link: dict[str, Any],
    kind: str,
    text: str,
    files: list[Kept],
    tz: str,
) -> dict[str, Any]:
    """Store one owner submission on the current step's case: attachments, the audit record, the
    submission row. Returns the row (with ``case_id``). Raises :class:`IllegalAction` (nothing on the
    ladder, the case is closed) or :class:`BadFields`."""
    restaurant_id = link["restaurant_id"]
    st = current_step(ledger, restaurant_id)
    if st is None:
        raise IllegalAction("目前没有需要整改的记录，无需提交材料")
    if not st.open_for_submissions:
        raise IllegalAction("该案件已结案，无法再在线提交；如有疑问请致电辖区执法部门")
    at = now_ms()
    if st.case is None:
        if st.step.level == ENFORCEMENT:  # the ladder stores it before the notice; never invent one
            raise IllegalAction("案件尚在生成，请稍后再试")
        ledger.upsert_case(_rectification_case(ledger, st, tz, at))
    submission_id = f"sub-{secrets.token_hex(6)}"
    ids: list[str] = []
    sent: dict[str, dict[str, Any]] = {}
    what = "整改材料" if kind == EVIDENCE else "陈述、申辩材料"
    for f in files:
        a = casework.attach(
            st.case_id,
            f.filename,
            f.content_type,
            f.data,
            actor=OWNER_ACTOR,
            note=f"负责人通过专属页面提交的{what}（{submission_id}）",
        )
        ids.append(a["attachment_id"])
        sent[a["attachment_id"]] = {"sha256": f.sent_sha256, "bytes": f.sent_bytes, "reencoded": f.reencoded}
    common = {
        "submission_id": submission_id,
        "link_id": link["link_id"],
        "source": "owner_page",
        "attachments": ids,
        "sent": sent,
    }
    if kind == EVIDENCE:
        action = "owner_evidence"
        fields = {**common, "submitted_at": format_utc(at), "note": text}
    else:
        action = "owner_statement"
        fields = {**common, "statement": text, "form": "online", "given_at": format_utc(at)}
    for attempt in range(3):  # an inspector acting at the same moment moves the version: read it again
        try:
            casework.act(
                st.case_id, action, fields, actor=OWNER_ACTOR, note="来源：负责人专属页面", owner=True
            )
            break
        except StaleCase:
            if attempt == 2:
                raise
    row = {
        "submission_id": submission_id,
        "kind": kind,
        "restaurant_id": restaurant_id,
        "link_id": link["link_id"],
        "episode_id": st.step.episode_id,
        "case_id": st.case_id,
        "received_ms": at,
        "text": text,
        "attachments": ids,
        "receipt_key": "",
    }
    ledger.add_owner_submission(row)
    return row


def check_text(kind: str, text: str, n_files: int) -> str:
    """The submission's text, stripped; :class:`BadFields` (shown to the owner) when it cannot be kept."""
    text = (text or "").strip()
    if len(text) > 2000:
        raise BadFields("文字说明最多 2000 字")
    if kind == STATEMENT and not text:
        raise BadFields("请填写陈述、申辩的内容")
    if kind == EVIDENCE and not text and not n_files:
        raise BadFields("请至少上传一张照片或一份文件，或写明整改情况")
    return text
