"""The owner's receipt (回执) for a submission through their page, through their own notice channels.

It goes through the same exactly-once gate as every notice, keyed ``owner_submission:<id>:receipt`` (a
crash mid-send leaves it ``pending``, and the alerts service's start-up resumes it like any other). An
owner without a working channel gets a ``skipped`` row saying so: the page's own receipt is then the only
one, and it says which channels took the notice.
"""

from __future__ import annotations

from typing import Any

from alerts.enforcement.notify.settings import NoticeResult
from alerts.enforcement.notify.targets import OWNER, recipients_for
from alerts.model import Event, Transition
from ingest.registry import Device

RECEIPT = "receipt"
SUBMISSION_KIND = "owner_submission"


def receipt_key(submission_id: str) -> str:
    return f"{SUBMISSION_KIND}:{submission_id}:{RECEIPT}"


def send_receipt(
    notifier: Any, submission: dict[str, Any], device: Device | None, link: tuple[str, int] | None
) -> list[NoticeResult]:
    """Send the receipt of ``submission`` (an ``owner_submissions`` row) to the owner's channels of
    ``device`` (the restaurant's first device in the registry); ``link``: (url, expires_ms) of the page
    the owner used, repeated in the receipt. ``notifier``: an :class:`alerts.enforcement.notify.Notifier`."""
    at = int(submission["received_ms"])
    event = Event(
        event_id=f"{SUBMISSION_KIND}:{submission['submission_id']}",
        kind=SUBMISSION_KIND,
        restaurant_id=submission["restaurant_id"],
        device_id=device.device_id if device else "",
        district=device.district if device else "",
        start_ms=at,
        end_ms=at,
        state="closed",
    )
    tr = Transition(event, RECEIPT, at)
    facts = {
        "submission": submission,
        "owner_link": link,
        "contact": notifier.contact_of(event.district),
        "measures": {},
    }
    payload = notifier._payload(tr, device, RECEIPT, facts, {"case_id": submission["case_id"]})
    results: list[NoticeResult] = []
    for channel, url, target in recipients_for(OWNER, device, []):
        if url is None:
            results.append(notifier._skip(tr, OWNER, device, "no owner channel in the registry", facts))
            continue
        results.append(notifier._deliver(tr.key, channel, url, target, payload))
    return results
