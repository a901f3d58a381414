"""Who is told: the targets of a role (owners, inspectors) and the MQTT topic of a transition's copy.

Which roles get which notice is the notifier's plan (table in :mod:`alerts.enforcement.notify`). Owners'
targets are the apprise URLs of the registry's ``owner_notify``; inspectors' are ``[notify]
inspector_targets``.
"""

from __future__ import annotations

from collections import Counter

from alerts.ledger import mask_target
from ingest.registry import Device

OWNER = "owner"
INSPECTOR = "inspector"
MQTT = "mqtt"


def recipients(device: Device | None, inspector_targets: list[str]) -> list[tuple[str, str | None, str]]:
    """(channel, url or None, masked target id) of every role, owners first, then inspectors.

    The masked id is what the ledger keys a notice on, so it must be the same whichever roles a notice
    goes to: it is always derived from this one list. Two targets that mask alike (same scheme and host,
    e.g. an owner's and the inspectors' hook on one gateway) get ``#2``, ``#3`` in this order.
    """
    out: list[tuple[str, str | None, str]] = []
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for role in (OWNER, INSPECTOR):
        if role == OWNER:
            urls = device.notify_urls if device is not None else []
        else:
            urls = [u.strip() for u in inspector_targets if u.strip()]
        if not urls:
            out.append((role, None, f"{role}:none"))
            continue
        for url in urls:
            if url in seen:
                continue
            seen.add(url)
            base = mask_target(url) if "://" in url else "invalid-url"
            counts[base] += 1
            out.append((role, url, base if counts[base] == 1 else f"{base}#{counts[base]}"))
    return out


def recipients_for(
    role: str, device: Device | None, inspector_targets: list[str]
) -> list[tuple[str, str | None, str]]:
    """The entries of :func:`recipients` for one role."""
    return [r for r in recipients(device, inspector_targets) if r[0] == role]


def _topic_part(text: str) -> str:
    """A restaurant id made safe for one MQTT topic level (no wildcards or separators)."""
    return "".join("_" if ch in "/+#\x00" else ch for ch in text) or "_"
