"""Delivery of notices: each claimed target sent through apprise (or the MQTT alert published while
connected), its receipt recorded; and the resend at start-up of what a crash left pending.

:class:`Delivery` is a part of :class:`alerts.enforcement.notify.Notifier`, which provides ``ledger``,
``settings``, ``_sender``, ``mqtt_publish`` and ``mqtt_connected``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from alerts.enforcement.notify.settings import ALREADY_SENT, DeviceLookup, NoticeResult
from alerts.enforcement.notify.targets import INSPECTOR, MQTT, OWNER, _topic_part, recipients
from alerts.ledger import FAILED, PENDING, SENT, SKIPPED, NoticeRecord, scrub
from ingest.registry import Device

log = logging.getLogger("alerts.enforcement.notify")


class Delivery:
    """Sending and resending; see the module docstring."""

    ledger: Any
    settings: Any
    _sender: Any
    mqtt_publish: Callable[[str, bytes], None] | None
    mqtt_connected: Callable[[], bool]
    owns: Callable[[str], bool]

    def resume_pending(self, devices: DeviceLookup | Callable[[str], Device | None]) -> list[NoticeResult]:
        """Resend notices left ``pending`` by a crash (never one recorded ``sent``); call once at start-up.

        ``devices``: the registry (or any ``device_id -> Device | None``), needed because raw target URLs
        are not stored. The stored rendered text is resent, so the owner reads what was meant at the time.
        """
        lookup = devices.get if hasattr(devices, "get") else devices
        groups: dict[str, list[NoticeRecord]] = {}
        for rec in self.ledger.pending_notices():
            if not self.owns(rec.device_id):
                continue  # another partition's worker resumes it
            groups.setdefault(rec.key, []).append(rec)
        results: list[NoticeResult] = []
        for key, recs in groups.items():
            first = recs[0]
            device = lookup(first.device_id) if first.device_id else None  # type: ignore[operator]
            urls = {t: (ch, u) for ch, u, t in recipients(device, self.settings.inspector_targets) if u}
            for rec in recs:
                if rec.channel == MQTT:
                    message = rec.payload.get("mqtt_message")
                    if isinstance(message, dict):
                        if not self.mqtt_connected():  # left pending: sent by a drain once connected
                            results.append(NoticeResult(key, MQTT, rec.target, PENDING, rec.attempts))
                            continue
                        results.append(self._deliver_mqtt(key, rec.target, message, rec.payload))
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

    def _deliver(
        self,
        key: str,
        channel: str,
        url: str | None,
        target: str,
        payload: dict[str, Any],
        *,
        claimed: bool = False,
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
        if not claimed and not self.ledger.notice_begin(key, channel, target, payload):
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

    def _mqtt_target(self, restaurant_id: str) -> str:
        return f"mqtt:{self.settings.mqtt_topic_prefix.rstrip('/')}/alerts/{_topic_part(restaurant_id)}"

    def _deliver_mqtt(
        self,
        key: str,
        target: str,
        message: dict[str, Any],
        payload: dict[str, Any] | None = None,
        *,
        claimed: bool = False,
    ) -> NoticeResult:
        """Publish the MQTT alert. Only while connected: otherwise the row stays ``pending`` (claimed) and
        :meth:`drain` sends it once the client is connected, so a publish queued by a disconnected client
        is never recorded failed and then sent twice."""
        topic = target.removeprefix("mqtt:")
        if not claimed and not self.ledger.notice_begin(
            key, MQTT, target, {**(payload or {}), "mqtt_message": message}
        ):
            return NoticeResult(key, MQTT, target, ALREADY_SENT)
        if not self.mqtt_connected():
            return NoticeResult(key, MQTT, target, PENDING, 0, "MQTT not connected; sent once it is")
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
        publish = self.mqtt_publish
        assert publish is not None

        def attempt() -> tuple[bool, str]:
            publish(topic, data)
            return True, ""

        ok, attempts, error = self._sender.with_retries(attempt)
        self.ledger.notice_done(key, target, ok, error, attempts)
        return NoticeResult(key, MQTT, target, SENT if ok else FAILED, attempts, scrub(error))
