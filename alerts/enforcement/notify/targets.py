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


def recipients_for(
    role: str, device: Device | None, inspector_targets: list[str]
) -> list[tuple[str, str | None, str]]:
    """(channel, url or None, masked target id) of one role, in a fixed order. Two targets that mask
    alike (same scheme and host) get ``#2``, ``#3``."""
    if role == OWNER:
        urls = device.notify_urls if device is not None else []
    else:
        urls = [u.strip() for u in inspector_targets if u.strip()]
    if not urls:
        return [(role, None, f"{role}:none")]
    out: list[tuple[str, str | None, str]] = []
    seen: set[str] = set()
    counts: Counter[str] = Counter()
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
