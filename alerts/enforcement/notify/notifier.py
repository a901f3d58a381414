"""The notice pipeline, per transition: decide (ladder level, case, recipients), render, then for each
target the ledger's gate (``pending`` committed before the send), the send, and the receipt
(``sent``/``failed``). See :mod:`alerts.enforcement.notify` for the exactly-once argument.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from alerts.enforcement.episodes import LADDER_KINDS, Decision, LadderPolicy, decide
from alerts.enforcement.notify import case_file
from alerts.enforcement.notify.delivery import Delivery
from alerts.enforcement.notify.facts import ReadingsOf, history, measures
from alerts.enforcement.notify.render import Renderer
from alerts.enforcement.notify.send import Sender
from alerts.enforcement.notify.settings import ALREADY_SENT, DeviceLookup, NoticeResult, NotifySettings
from alerts.enforcement.notify.targets import INSPECTOR, MQTT, OWNER, recipients_for
from alerts.ledger import SENT, SKIPPED, Ledger, scrub
from alerts.model import (
    DATA_INTEGRITY,
    EDUCATION,
    EXCEEDANCE,
    MAINTENANCE_REMINDER,
    OFFLINE,
    PURIFIER_OFF,
    WARNING,
    Transition,
)
from ingest.registry import Device
from ingest.timeutil import now_ms

log = logging.getLogger("alerts.enforcement.notify")


#: Owner notices that inspectors get a copy of (same text, the title marked as a copy).
COPIED_TO_INSPECTORS = ("warning", "repeat")


def episode_closed_key(ep: Any) -> str:
    """Notice key of an episode's one closed notice (its lead event, action ``episode_closed``)."""
    return f"{ep.lead_event_id}:episode_closed"


class Notifier(Delivery):
    """Decide, render, send and record notices for event transitions.

    ``mqtt_publish(topic, payload)`` must raise when the publish fails (e.g. wait for the broker's ack
    with a timeout); None disables the MQTT copy. ``standard_of(profile_name)`` names the standard a limit
    profile implements (e.g. ``lambda n: profiles.get(n).standard``); it falls back to
    ``settings.profile_standards``. ``sleep`` is the backoff sleeper (tests pass a fast one). ``policy``:
    the ladder's look-back, correction period and zone; ``readings_of(device_id, since_ms, until_ms)``:
    the readings store, for the C, Q, n a notice states (None: the notice says they are unavailable);
    ``contact_of(district)``: (office, phone) named in notices. ``owns(device_id)``: which devices' pending
    notices and outbox transitions this notifier resumes (a partitioned worker's own, see
    :mod:`alerts.partition`); None: all of them. ``owner_link(restaurant_id, notice_key)``: the owner's
    page link an owner notice carries, (url, expires_ms), issued and recorded by the caller
    (:class:`alerts.owner.links.OwnerLinks`); None, or a None answer: the notice carries no link. Only
    owner notices carry it: inspector copies and the MQTT alert never hold an owner's capability.
    """

    def __init__(
        self,
        settings: NotifySettings,
        ledger: Ledger,
        mqtt_publish: Callable[[str, bytes], None] | None = None,
        *,
        standard_of: Callable[[str], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        policy: LadderPolicy | None = None,
        readings_of: ReadingsOf | None = None,
        contact_of: Callable[[str], tuple[str, str]] | None = None,
        objection_days: int = 3,
        ref_flow_per_head_m3_h: float = 2000.0,
        mqtt_connected: Callable[[], bool] | None = None,
        owns: Callable[[str], bool] | None = None,
        owner_link: Callable[[str, str], tuple[str, int] | None] | None = None,
    ) -> None:
        if not settings.display_tz:  # standalone use; the loaded settings fill in the top-level zone
            settings = settings.model_copy(update={"display_tz": "Asia/Shanghai"})
        self.settings = settings
        self.ledger = ledger
        self.mqtt_publish = mqtt_publish
        self.policy = policy or LadderPolicy(lookback_days=settings.lookback_days, tz=settings.display_tz)
        self.readings_of = readings_of
        self.contact_of = contact_of or (lambda _district: (settings.office, settings.contact_phone))
        self.objection_days = objection_days
        self.mqtt_connected = mqtt_connected or (lambda: True)
        self.ref_flow_per_head_m3_h = ref_flow_per_head_m3_h
        self.owns = owns or (lambda _device_id: True)
        self.owner_link = owner_link
        self._renderer = Renderer(settings, standard_of=standard_of)
        self._sender = Sender(settings, sleep)
        self.locale = self._renderer.locale
        self.check_templates()

    # -- public -------------------------------------------------------------------------------------------

    def notify(self, transition: Transition, device: Device | None) -> list[NoticeResult]:
        """Send the notices of ``transition`` (each target at most once, ever); return one result per target.

        Offences (exceedance, purifier_off) go through the ladder first: the event is stored and put into
        its episode (:func:`alerts.enforcement.episodes.decide`), the step's case is stored or refreshed,
        then the plan of the table in :mod:`alerts.enforcement.notify` is sent. Failures are recorded and
        returned, never raised; only a ledger error propagates.
        """
        event = transition.event
        if transition.action not in ("opened", "closed") or event.kind not in (
            EXCEEDANCE,
            PURIFIER_OFF,
            OFFLINE,
            MAINTENANCE_REMINDER,
            DATA_INTEGRITY,
        ):
            return []
        if event.kind not in LADDER_KINDS:  # offline/restored, reminders: the owner; integrity: inspectors
            if event.kind in (MAINTENANCE_REMINDER, DATA_INTEGRITY) and transition.action != "opened":
                return []
            self.ledger.upsert_event(event)
            name = {MAINTENANCE_REMINDER: "maintenance_reminder", OFFLINE: "offline"}.get(
                event.kind, event.kind
            )
            name = "restored" if transition.action == "closed" else name
            role = INSPECTOR if event.kind == DATA_INTEGRITY else OWNER
            facts = self._facts(transition, device, None)
            return self._send_plan(transition, device, [(name, role)], facts, None)
        dismissed = self.ledger.dismissed_by(event.event_id)
        if dismissed:  # an inspector found the data invalid (device fault ...): it is no offence any more
            log.info("event=notice_skipped_dismissed event_id=%s case_id=%s", event.event_id, dismissed)
            self.ledger.upsert_event(event)
            return []
        decision = decide(self.ledger, event, self.policy)
        event.level, event.episode_id = decision.level, decision.episode.episode_id
        facts = self._facts(transition, device, decision)
        self.ledger.update_episode(
            decision.episode.episode_id,
            record={
                f"measures:{event.event_id}": facts["measures"],
                f"dead_letters:{event.event_id}": facts["dead_letters"],
            },
        )
        case = self._refresh_case(transition, decision, facts)
        plan, skip = self._plan(transition, decision)
        results = [self._skip(transition, role, device, reason, facts) for role, reason in skip]
        results += self._send_plan(transition, device, plan, facts, case)
        if transition.action == "opened" and not decision.joined:
            results += self._check_owner_reached(transition, device, decision, facts)
        if case is not None:  # again, now with the receipts of what was just sent
            self._refresh_case(transition, decision, facts)
        return results

    def drain_outbox(self, devices: DeviceLookup | Callable[[str], Device | None]) -> list[NoticeResult]:
        """Notify every transition of the durable outbox not yet done (a crash between the commit that
        stored it and the end of its notices), oldest first; each is marked done once all its targets
        have their notice rows. Idempotent: targets already sent are not sent again."""
        lookup = devices.get if hasattr(devices, "get") else devices
        results: list[NoticeResult] = []
        for tr in self.ledger.pending_outbox():
            if not self.owns(tr.event.device_id):
                continue  # another partition's worker resumes it
            results += self.notify_recorded(tr, lookup(tr.event.device_id))  # type: ignore[operator]
        return results

    def notify_recorded(self, tr: Transition, device: Device | None) -> list[NoticeResult]:
        """:meth:`notify` a transition of the outbox and mark it done (or record why not: it stays
        pending, for the next drain)."""
        try:
            results = self.notify(tr, device)
        except Exception as exc:
            self.ledger.outbox_done(tr.key, error=f"{type(exc).__name__}: {scrub(str(exc))}"[:500])
            raise
        self.ledger.outbox_done(tr.key)
        return results

    def drain(self, devices: DeviceLookup | Callable[[str], Device | None]) -> list[NoticeResult]:
        """What start-up and the periodic drain do: resend pending notices (MQTT ones only while
        connected; failed ones put back by ``fumewatch notices retry``), then the outbox."""
        return self.resume_pending(devices) + self.drain_outbox(devices)

    def catch_up(
        self, devices: DeviceLookup | Callable[[str], Device | None], now: int | None = None
    ) -> list[NoticeResult]:
        """Notify transitions of events stored before the outbox existed (revision 0004) that never reached
        the notifier. Transitions the outbox knows are its business (:meth:`drain_outbox`), whatever their
        notice rows: a transition with only some targets recorded is finished there, never taken as done.

        For events overlapping the last ``catch_up_max_age_s`` (open ones included): an ``opened`` or
        (closed events) ``closed`` transition with no outbox row and no notice row is notified now. Call
        at start-up after :meth:`drain`.
        """
        lookup = devices.get if hasattr(devices, "get") else devices
        t = now if now is not None else now_ms()
        events = [
            e
            for e in self.ledger.list_events(since_ms=t - int(self.settings.catch_up_max_age_s * 1000))
            if e.kind in (EXCEEDANCE, PURIFIER_OFF, OFFLINE) and self.owns(e.device_id)
        ]
        done = self.ledger.notice_keys(e.event_id for e in events)
        results: list[NoticeResult] = []
        for e in events:
            actions = ["opened"] + (["closed"] if e.state == "closed" else [])
            for action in actions:
                tr = Transition(e, action, e.end_ms if (action == "closed" and e.end_ms) else t)
                if tr.key not in done and self.ledger.outbox_status(tr.key) is None:
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

    def _plan(self, tr: Transition, d: Decision) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """((template, role) to send, (role, reason) recorded as skipped) for a ladder transition."""
        ep = d.episode
        if tr.action == "opened":
            if d.joined:
                return [], [
                    (OWNER, f"part of episode {ep.episode_id}, announced to the owner when it opened")
                ]
            if ep.repeat:
                return [("repeat", OWNER), ("repeat", INSPECTOR)], []
            return {
                EDUCATION: [("education", OWNER)],
                WARNING: [("warning", OWNER), ("warning", INSPECTOR)],
            }.get(ep.level, [("enforcement", OWNER), ("case", INSPECTOR)]), []
        others = [
            e.event_id
            for e in self.ledger.episode_events([ep.episode_id])
            if e.state != "closed" and e.event_id != tr.event.event_id
        ]
        if others:
            return [], [
                (OWNER, f"episode {ep.episode_id} still open ({', '.join(others)}); told when it ends")
            ]
        opened = [
            n
            for n in self.ledger.notices_for_events(
                e.event_id for e in self.ledger.episode_events([ep.episode_id])
            )
            if n.channel == OWNER and n.action == "opened"
        ]
        if not any(n.status == SENT for n in opened):
            return [], [
                (OWNER, f"no opened notice of episode {ep.episode_id} reached the owner; no closed notice")
            ]
        # one closed notice per episode, however many of its events end together (a service end closes
        # them in one batch): it goes through the gate under the episode's lead event, and each event's
        # own closed transition records where the owner was told
        return [("closed", OWNER)], [
            (OWNER, f"the owner is told in the episode's notice {episode_closed_key(ep)}")
        ]

    def _facts(self, tr: Transition, device: Device | None, d: Decision | None) -> dict[str, Any]:
        tz = self.settings.display_tz
        ev = tr.event
        f: dict[str, Any] = {
            "measures": measures(ev, device, self.readings_of, tr.at_ms, self.ref_flow_per_head_m3_h),
            # the device's data flags: messages ingest refused while the event ran (by arrival time)
            "dead_letters": self.ledger.dead_letter_counts(
                ev.device_id, ev.start_ms, (ev.end_ms if ev.end_ms is not None else tr.at_ms) + 1
            ),
            "decision": d,
            "history": [],
            "delivery": None,
            "contact": self.contact_of(ev.district or (device.district if device else "")),
            "objection_days": self.objection_days,
            "episode_events": [],
        }
        if d is not None:
            lookback_ms = int(self.policy.lookback_days * 86_400_000)
            f["history"] = history(self.ledger, d.episode, lookback_ms, tz)
            f["episode_events"] = self.ledger.episode_events([d.episode.episode_id])
        return f

    def _refresh_case(self, tr: Transition, d: Decision, facts: dict[str, Any]) -> dict[str, Any] | None:
        """Store (or refresh) the case of an enforcement step (:func:`case_file.refresh_case`)."""
        return case_file.refresh_case(
            self.ledger, tr, d, facts, tz=self.settings.display_tz, locale=self.locale, policy=self.policy
        )

    def _check_owner_reached(
        self, tr: Transition, device: Device | None, d: Decision, facts: dict[str, Any]
    ) -> list[NoticeResult]:
        """No owner channel took the step's notice: open an ``owner_unreachable`` task and tell inspectors."""
        opened = self.ledger.list_notices(key=tr.key, channel=OWNER)
        if any(n.status == SENT for n in opened):
            return []
        ep = d.episode
        reasons = sorted({n.error for n in opened if n.error}) or ["no owner channel"]
        self.ledger.add_task(
            case_file.owner_unreachable_task(tr, ep, reasons, facts, self.settings.display_tz)
        )
        facts = {**facts, "unreachable_reasons": reasons}
        task_tr = Transition(tr.event, "owner_unreachable", tr.at_ms)
        return self._send_plan(task_tr, device, [("owner_unreachable", INSPECTOR)], facts, None)

    # -- rendering ----------------------------------------------------------------------------------------

    def _send_plan(
        self,
        tr: Transition,
        device: Device | None,
        plan: list[tuple[str, str]],
        facts: dict[str, Any],
        case: dict[str, Any] | None,
    ) -> list[NoticeResult]:
        """Claim every target of the plan (and the MQTT alert) as ``pending`` in one transaction, then send
        them one by one: a crash at any point leaves the unsent ones pending, for start-up to resume."""
        d: Decision | None = facts.get("decision")
        items: list[
            tuple[str, str, str, str | None, str, dict[str, Any]]
        ] = []  # name, key, channel, url, ...
        for name, role in plan:
            key = episode_closed_key(d.episode) if (name == "closed" and d is not None) else tr.key
            payload = self._payload(tr, device, name, self._with_link(tr, facts, role, key), case)
            if role == INSPECTOR and name in COPIED_TO_INSPECTORS:  # the owner's text, marked as a copy
                payload = {**payload, "title": self._renderer.copy_title(payload["title"])}
            for channel, url, target in recipients_for(role, device, self.settings.inspector_targets):
                items.append((name, key, channel, url, target, payload))
        mqtt: tuple[str, dict[str, Any], dict[str, Any]] | None = None
        if self.mqtt_publish is not None and tr.action in ("opened", "closed"):
            # the first notice's text (the owner's: plans start with it), rendered without the owner's link
            payload = self._payload(tr, device, plan[0][0] if plan else None, facts, case)
            mqtt = (
                self._mqtt_target(tr.event.restaurant_id),
                self._renderer.mqtt_message(tr, payload, case),
                payload,
            )
        results: list[NoticeResult] = []
        claimed: list[bool] = []
        with self.ledger.transaction():
            for _, key, channel, url, target, payload in items:
                claimed.append(url is None or self.ledger.notice_begin(key, channel, target, payload))
            mqtt_claimed = mqtt is not None and self.ledger.notice_begin(
                tr.key, MQTT, mqtt[0], {**mqtt[2], "mqtt_message": mqtt[1]}
            )
        for (name, key, channel, url, target, payload), ok in zip(items, claimed, strict=True):
            if not ok:
                results.append(NoticeResult(key, channel, target, ALREADY_SENT))
                continue
            if name == "case" and d is not None:  # the owner's notice of this step went out just before
                case = self._refresh_case(tr, d, facts) or case
                payload = self._payload(tr, device, name, facts, case)
                self.ledger.notice_begin(key, channel, target, payload)  # our own claim: the final text
            results.append(self._deliver(key, channel, url, target, payload, claimed=True))
        if mqtt is not None:
            if mqtt_claimed:
                results.append(self._deliver_mqtt(tr.key, mqtt[0], mqtt[1], claimed=True))
            else:
                results.append(NoticeResult(tr.key, MQTT, mqtt[0], ALREADY_SENT))
        return results

    def _with_link(self, tr: Transition, facts: dict[str, Any], role: str, key: str) -> dict[str, Any]:
        """``facts`` with the owner's page link when ``role`` is the owner and links are issued."""
        if role != OWNER or self.owner_link is None:
            return facts
        return {**facts, "owner_link": self.owner_link(tr.event.restaurant_id, key)}

    def _payload(
        self,
        tr: Transition,
        device: Device | None,
        name: str | None,
        facts: dict[str, Any],
        case: dict | None,
    ) -> dict[str, Any]:
        event = tr.event
        d: Decision | None = facts.get("decision")
        title, body = self.render(name, self._renderer.context(tr, device, facts, case)) if name else ("", "")
        return {
            "template": name or "",
            "locale": self.locale,
            "kind": event.kind,
            "action": tr.action,
            "level": event.level,
            "occurrence": d.episode.step if d else None,
            "episode_id": d.episode.episode_id if d else "",
            "repeat": bool(d and d.episode.repeat),
            "rule": event.rule,
            "restaurant_id": event.restaurant_id,
            "device_id": event.device_id,
            "at_ms": tr.at_ms,
            "title": title,
            "body": body,
        }

    def _skip(
        self, tr: Transition, role: str, device: Device | None, reason: str, facts: dict[str, Any]
    ) -> NoticeResult:
        payload = self._payload(tr, device, None, facts, None)
        target = f"{role}:episode"
        if not self.ledger.notice_skip(tr.key, role, target, reason, payload):
            return NoticeResult(tr.key, role, target, ALREADY_SENT)
        log.info("notice key=%s channel=%s status=skipped reason=%r", tr.key, role, reason)
        return NoticeResult(tr.key, role, target, SKIPPED, 0, reason)
