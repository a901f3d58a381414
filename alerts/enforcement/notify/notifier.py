"""The notice pipeline, per transition: decide (ladder level, case, recipients), render, then for each
target the ledger's gate (``pending`` committed before the send), the send, and the receipt
(``sent``/``failed``). See :mod:`alerts.enforcement.notify` for the exactly-once argument.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from alerts.enforcement import ladder
from alerts.enforcement.notify.render import Renderer
from alerts.enforcement.notify.send import Sender
from alerts.enforcement.notify.settings import ALREADY_SENT, DeviceLookup, NoticeResult, NotifySettings
from alerts.enforcement.notify.targets import INSPECTOR, MQTT, OWNER, _topic_part, recipients
from alerts.ledger import FAILED, SENT, SKIPPED, Ledger, NoticeRecord, scrub
from alerts.model import ENFORCEMENT, EXCEEDANCE, OFFLINE, PURIFIER_OFF, Event, Transition
from ingest.registry import Device
from ingest.timeutil import now_ms

log = logging.getLogger("alerts.enforcement.notify")


class Notifier:
    """Decide, render, send and record notices for event transitions.

    ``mqtt_publish(topic, payload)`` must raise when the publish fails (e.g. wait for the broker's ack
    with a timeout); None disables the MQTT copy. ``standard_of(profile_name)`` names the standard a limit
    profile implements (e.g. ``lambda n: profiles.get(n).standard``); it falls back to
    ``settings.profile_standards``. ``sleep`` is the backoff sleeper (tests pass a fast one).
    """

    def __init__(
        self,
        settings: NotifySettings,
        ledger: Ledger,
        mqtt_publish: Callable[[str, bytes], None] | None = None,
        *,
        standard_of: Callable[[str], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.mqtt_publish = mqtt_publish
        self._renderer = Renderer(settings, standard_of=standard_of)
        self._sender = Sender(settings, sleep)
        self.locale = self._renderer.locale
        self.check_templates()

    # -- public -------------------------------------------------------------------------------------------

    def notify(self, transition: Transition, device: Device | None) -> list[NoticeResult]:
        """Send the notices of ``transition`` (each target at most once, ever); return one result per target.

        Stores the event, assigns its ladder level (exceedances), stores/refreshes the enforcement case, then
        sends. Failures are recorded and returned, never raised; only a ledger (SQLite) error propagates.
        """
        event = transition.event
        action = transition.action
        if action not in ("opened", "closed") or event.kind not in (EXCEEDANCE, PURIFIER_OFF, OFFLINE):
            return []
        occurrence: int | None = None
        if event.kind == EXCEEDANCE:
            ladder.assign_level(self.ledger, event, self.settings.lookback_days)
            occurrence = self.ledger.get_occurrence(event.event_id)
        else:
            self.ledger.upsert_event(event)
        level = event.level
        case: dict[str, Any] | None = None
        if level == ENFORCEMENT:
            case = ladder.build_case(
                event,
                self._evidence(event, transition.at_ms),
                occurrence=occurrence,
                lookback_days=self.settings.lookback_days,
                created_ms=transition.at_ms,
            )
            self.ledger.upsert_case(case)
        name = self._renderer.template_name(event.kind, action, level)
        ctx = self._context(transition, device, occurrence, case)
        title, body = self.render(name, ctx)
        payload = {
            "template": name,
            "locale": self.locale,
            "kind": event.kind,
            "action": action,
            "level": level,
            "occurrence": occurrence,
            "restaurant_id": event.restaurant_id,
            "device_id": event.device_id,
            "at_ms": transition.at_ms,
            "title": title,
            "body": body,
        }
        results: list[NoticeResult] = []
        for channel, url, target in recipients(
            event.kind, action, level, device, self.settings.inspector_targets
        ):
            results.append(self._deliver(transition.key, channel, url, target, payload))
        if self.mqtt_publish is not None:
            message = self._renderer.mqtt_message(transition, payload, case)
            results.append(self._deliver_mqtt(transition.key, event.restaurant_id, message, payload))
        return results

    def resume_pending(self, devices: DeviceLookup | Callable[[str], Device | None]) -> list[NoticeResult]:
        """Resend notices left ``pending`` by a crash (never one recorded ``sent``); call once at start-up.

        ``devices``: the registry (or any ``device_id -> Device | None``), needed because raw target URLs
        are not stored. The stored rendered text is resent, so the owner reads what was meant at the time.
        """
        lookup = devices.get if hasattr(devices, "get") else devices
        groups: dict[str, list[NoticeRecord]] = {}
        for rec in self.ledger.pending_notices():
            groups.setdefault(rec.key, []).append(rec)
        results: list[NoticeResult] = []
        for key, recs in groups.items():
            first = recs[0]
            device = lookup(first.device_id) if first.device_id else None  # type: ignore[operator]
            event = self.ledger.get_event(first.event_id)
            kind = event.kind if event else str(first.payload.get("kind", ""))
            level = str(first.payload.get("level", ""))
            urls = {
                t: (ch, u)
                for ch, u, t in recipients(kind, first.action, level, device, self.settings.inspector_targets)
                if u
            }
            for rec in recs:
                if rec.channel == MQTT:
                    message = rec.payload.get("mqtt_message")
                    if isinstance(message, dict):
                        results.append(self._deliver_mqtt(key, first.restaurant_id, message, rec.payload))
                        continue
                elif rec.target in urls:
                    channel, url = urls[rec.target]
                    results.append(self._deliver(key, channel, url, rec.target, rec.payload))
                    continue
                reason = "target no longer configured; not resent"
                self.ledger.notice_done(key, rec.target, False, reason, 0)
                log.warning("notice_resume key=%s target=%s status=failed reason=%r", key, rec.target, reason)
                results.append(NoticeResult(key, rec.channel, rec.target, FAILED, rec.attempts, reason))
        return results

    def catch_up(
        self, devices: DeviceLookup | Callable[[str], Device | None], now: int | None = None
    ) -> list[NoticeResult]:
        """Notify transitions stored in the ledger that never reached the notifier (crash in between).

        For events overlapping the last ``catch_up_max_age_s`` (open ones included): an ``opened`` or
        (closed events) ``closed`` transition without any notice row is notified now. Pair it with storing
        events in the same transaction as the detector snapshot, so "event stored" implies "will be
        notified". Call at start-up after :meth:`resume_pending`.
        """
        lookup = devices.get if hasattr(devices, "get") else devices
        t = now if now is not None else now_ms()
        events = [
            e
            for e in self.ledger.list_events(since_ms=t - int(self.settings.catch_up_max_age_s * 1000))
            if e.kind in (EXCEEDANCE, PURIFIER_OFF, OFFLINE)
        ]
        done = self.ledger.notice_keys(e.event_id for e in events)
        results: list[NoticeResult] = []
        for e in events:
            actions = ["opened"] + (["closed"] if e.state == "closed" else [])
            for action in actions:
                tr = Transition(e, action, e.end_ms if (action == "closed" and e.end_ms) else t)
                if tr.key not in done:
                    log.info("notice_catch_up key=%s", tr.key)
                    results += self.notify(tr, lookup(e.device_id))  # type: ignore[operator]
        return results

    def render(self, name: str, ctx: dict[str, str], locale: str | None = None) -> tuple[str, str]:
        """(title, body) of template ``name`` in ``locale`` (default: the settings' locale)."""
        return self._renderer.render(name, ctx, locale)

    def check_templates(self) -> None:
        """Load and render every template with sample values: a typo fails at start-up, not mid-incident."""
        self._renderer.check_templates()

    # -- decisions ----------------------------------------------------------------------------------------

    def _evidence(self, event: Event, at_ms: int) -> list[Any]:
        """The event's windows from the ledger (store drained windows before notifying), else its evidence."""
        # windows starting inside [start, end) of a closed event, or before the transition of an open one
        until = event.end_ms if event.end_ms is not None else at_ms
        stored = self.ledger.list_windows(
            device_id=event.device_id,
            pollutant=event.pollutant or None,
            since_ms=event.start_ms,
            until_ms=until,
        )
        return list(stored) if stored else list(event.evidence)

    # -- rendering ----------------------------------------------------------------------------------------

    def _context(
        self,
        transition: Transition,
        device: Device | None,
        occurrence: int | None,
        case: dict[str, Any] | None,
    ) -> dict[str, str]:
        return self._renderer.context(transition, device, occurrence, case)

    # -- sending ------------------------------------------------------------------------------------------

    def _deliver(
        self, key: str, channel: str, url: str | None, target: str, payload: dict[str, Any]
    ) -> NoticeResult:
        if url is None:
            reason = (
                "device has no owner_notify URL in the registry"
                if channel == OWNER
                else "no [notify] inspector_targets configured"
            )
            if not self.ledger.notice_skip(key, channel, target, reason, payload):
                return NoticeResult(key, channel, target, ALREADY_SENT)
            log.log(
                logging.WARNING if channel == INSPECTOR else logging.INFO,
                "notice key=%s channel=%s status=skipped reason=%r",
                key,
                channel,
                reason,
            )
            return NoticeResult(key, channel, target, SKIPPED, 0, reason)
        if not self.ledger.notice_begin(key, channel, target, payload):
            return NoticeResult(key, channel, target, ALREADY_SENT)
        notice_id = f"{key}:{channel}"
        sender = self._sender.apprise_for(url, notice_id)
        if sender is None:
            ok, attempts, error = False, 1, "not a usable apprise URL (unknown scheme or malformed)"
        else:
            title, body = str(payload["title"]), str(payload["body"])
            ok, attempts, error = self._sender.with_retries(
                lambda: self._sender.send_once(sender, title, body)
            )
        self.ledger.notice_done(key, target, ok, error, attempts)
        status = SENT if ok else FAILED
        log.log(
            logging.INFO if ok else logging.WARNING,
            "notice key=%s channel=%s target=%s status=%s attempts=%d%s",
            key,
            channel,
            target,
            status,
            attempts,
            f" error={scrub(error)!r}" if error else "",
        )
        return NoticeResult(key, channel, target, status, attempts, scrub(error))

    def _deliver_mqtt(
        self, key: str, restaurant_id: str, message: dict[str, Any], payload: dict[str, Any]
    ) -> NoticeResult:
        topic = f"{self.settings.mqtt_topic_prefix.rstrip('/')}/alerts/{_topic_part(restaurant_id)}"
        target = f"mqtt:{topic}"
        record = {**payload, "mqtt_message": message}
        if not self.ledger.notice_begin(key, MQTT, target, record):
            return NoticeResult(key, MQTT, target, ALREADY_SENT)
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
        publish = self.mqtt_publish
        assert publish is not None

        def attempt() -> tuple[bool, str]:
            publish(topic, data)
            return True, ""

        ok, attempts, error = self._sender.with_retries(attempt)
        self.ledger.notice_done(key, target, ok, error, attempts)
        return NoticeResult(key, MQTT, target, SENT if ok else FAILED, attempts, scrub(error))
