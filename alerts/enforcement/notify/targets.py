"""Who is told: the recipients of a transition (owners, inspectors) and the MQTT topic of its copy.

The table is in :mod:`alerts.enforcement.notify`. Owners' targets are the apprise URLs of the registry's
``owner_notify``; inspectors' are ``[notify] inspector_targets``.
"""

from __future__ import annotations

from collections import Counter

from alerts.ledger import mask_target
from alerts.model import EDUCATION, ENFORCEMENT, EXCEEDANCE, OFFLINE, PURIFIER_OFF, WARNING
from ingest.registry import Device

OWNER = "owner"
INSPECTOR = "inspector"
MQTT = "mqtt"


def recipients(
    kind: str, action: str, level: str, device: Device | None, inspector_targets: list[str]
) -> list[tuple[str, str | None, str]]:
    """(channel, url or None, masked target id) in a fixed order: owners first, then inspectors."""
    if action == "closed" or kind in (PURIFIER_OFF, OFFLINE):
        roles = [OWNER]
    elif kind == EXCEEDANCE:
        roles = {EDUCATION: [OWNER], WARNING: [OWNER, INSPECTOR], ENFORCEMENT: [INSPECTOR]}.get(
            level, [OWNER]
        )
    else:
        roles = []
    out: list[tuple[str, str | None, str]] = []
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for role in roles:
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


def _topic_part(text: str) -> str:
    """A restaurant id made safe for one MQTT topic level (no wildcards or separators)."""
    return "".join("_" if ch in "/+#\x00" else ch for ch in text) or "_"
