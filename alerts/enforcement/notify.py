"""Notices: who is told what, rendered from templates, sent through apprise, recorded exactly once.

Recipients by transition (``opened`` unless noted):

==========================  =====================================================================
exceedance, ``education``   owner (guidance: a reminder, no penalty for a first minor offence)
exceedance, ``warning``     owner + inspectors (the notice says the inspector is copied)
exceedance, ``enforcement`` inspectors only; the case record is stored in the ledger
purifier_off, offline       owner
any kind, ``closed``        owner (short note); an enforcement case is refreshed with the end time
late_data                   nobody
==========================  =====================================================================

Owners' targets are the apprise URLs of the registry's ``owner_notify``; inspectors' are
``[notify] inspector_targets``. Each target is sent separately (one ``apprise.Apprise()`` each, so one
failure does not hide another), retried with exponential backoff. Every transition is also published as
JSON on MQTT ``{mqtt_topic_prefix}/alerts/{restaurant_id}`` through the ``mqtt_publish`` callback.

Exactly once, and the window that remains
-----------------------------------------
Each (transition key, target) goes through the ledger's gate (:meth:`Ledger.notice_begin`): it is recorded
``pending`` in a committed transaction *before* the send, and ``sent``/``failed`` after. A target already
``sent`` is never sent again: calling :meth:`Notifier.notify` twice, replaying, or restarting the service
sends nothing new. After a crash, :meth:`Notifier.resume_pending` resends what is still ``pending``.

The remaining window is between the remote end accepting a notice and the ``sent`` record being committed
(milliseconds): a crash exactly there resends that one notice on restart (at-least-once for that notice).
No protocol apprise speaks lets us close it, so every notice carries an idempotency key for receivers to
dedupe on: ``<event_id>:<action>:<channel>`` as the ``Idempotency-Key`` and ``X-Fumewatch-Notice-Key``
HTTP headers and a ``notice_key`` JSON field for ``json://`` webhooks, the ``X-Fumewatch-Notice-Key``
header for email, and ``notice_key`` in the MQTT JSON. Transport-level retries inside one attempt (an SMTP
server that accepted but whose reply was lost) are the same window.

Raw target URLs hold secrets and are never stored; the ledger keeps masked forms. To resend after a crash
the notifier therefore re-derives the URLs from the registry and settings (``resume_pending(devices)``);
a pending target that is no longer configured is marked failed, not guessed. If two targets of one
transition mask alike (same scheme and host), the later ones get ``#2``, ``#3`` in recipient order.

Sending blocks (retries sleep): run the notifier on its own thread, off the ingest/detector path.
"""

from __future__ import annotations

import json
import logging
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import apprise
from pydantic import BaseModel, Field

from alerts.enforcement import ladder
from alerts.ledger import FAILED, PENDING, SENT, SKIPPED, Ledger, NoticeRecord, mask_target, scrub
from alerts.model import (
    EDUCATION,
    ENFORCEMENT,
    EXCEEDANCE,
    OFFLINE,
    PURIFIER_OFF,
    WARNING,
    Event,
    Transition,
)
from ingest.registry import Device
from ingest.timeutil import format_local, format_utc, now_ms

log = logging.getLogger("alerts.enforcement.notify")

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_LOCALE = "zh-CN"
TEMPLATE_NAMES = (
    "exceedance_education",
    "exceedance_warning",
    "exceedance_enforcement",
    "purifier_off",
    "offline",
    "closed",
)
OWNER = "owner"
INSPECTOR = "inspector"
MQTT = "mqtt"
ALREADY_SENT = "already_sent"

#: Limit profile -> the standard it implements, shown in notices, when no ``standard_of`` lookup is given
#: (the service passes one backed by alerts/profiles.toml). Extend with ``[notify.profile_standards]``.
DEFAULT_PROFILE_STANDARDS = {
    "gb18483": "GB 18483-2001",
    "db11-1488": "DB11/1488-2018",
    "db31-844": "DB31/844-2014",
    "szdbz-254": "SZDB/Z 254-2017",
    "db37-597": "DB37/597",
}


class NotifySettings(BaseModel):
    """``[notify]`` section. Target URLs may hold tokens: set them in the environment, not in the TOML
    (``FUMEWATCH_NOTIFY_INSPECTOR_TARGETS='["mailtos://user:pw@mail.example.com?to=..."]'``)."""

    locale: str = DEFAULT_LOCALE  # "zh-CN" | "en"
    display_tz: str = "Asia/Shanghai"
    inspector_targets: list[str] = Field(default_factory=list, repr=False)
    retries: int = Field(3, ge=0)  # retries after the first attempt: up to retries + 1 attempts per target
    retry_backoff_s: float = Field(2.0, ge=0)  # sleep before retry n: retry_backoff_s * 2**(n-1)
    retry_backoff_max_s: float = Field(60.0, ge=0)
    timeout_s: float = Field(10.0, gt=0)  # connect and read timeout of one attempt
    contact_phone: str = "12345"  # 12345 is the city-service hotline; put the bureau's number here
    sender: str = ""  # signature line; "" = the locale's default
    lookback_days: float = Field(ladder.DEFAULT_LOOKBACK_DAYS, gt=0)  # enforcement ladder look-back
    mqtt_topic_prefix: str = "fume/v1"
    templates_dir: str = ""  # "" = the built-in alerts/templates
    catch_up_max_age_s: float = Field(6 * 3600.0, ge=0)  # see Notifier.catch_up
    profile_standards: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PROFILE_STANDARDS))


@dataclass(slots=True)
class NoticeResult:
    """Outcome of one notice: ``sent`` | ``failed`` | ``skipped`` | ``already_sent``."""

    key: str
    channel: str  # owner | inspector | mqtt
    target: str  # masked
    status: str
    attempts: int = 0
    error: str = ""


class DeviceLookup(Protocol):
    def get(self, device_id: str) -> Device | None: ...


# ---------------------------------------------------------------------------------------------------------
# Locale texts used outside the templates
# ---------------------------------------------------------------------------------------------------------

_TEXTS: dict[str, dict[str, Any]] = {
    "zh-CN": {
        "pollutant": {"oil_fume": "油烟", "pm": "颗粒物", "nmhc": "非甲烷总烃"},
        "kind": {"purifier_off": "净化器未开启", "offline": "监测设备离线", "late_data": "数据迟到"},
        "exceedance": "{pollutant}超标",
        "level": {EDUCATION: "教育劝导", WARNING: "告诫", ENFORCEMENT: "执法"},
        "units": ("天", "小时", "分钟"),
        "sep": " ",
        "tz": {"Asia/Shanghai": "北京时间"},
        "none": "—",
        "owner": "负责人",
        "sender": "城市管理综合执法部门",
    },
    "en": {
        "pollutant": {"oil_fume": "oil fume", "pm": "particulate matter", "nmhc": "non-methane hydrocarbons"},
        "kind": {
            "purifier_off": "purifier-off incident",
            "offline": "monitor outage",
            "late_data": "late data",
        },
        "exceedance": "{pollutant} exceedance",
        "level": {EDUCATION: "education", WARNING: "warning", ENFORCEMENT: "enforcement"},
        "units": ("d", "h", "min"),
        "sep": " ",
        "tz": {"Asia/Shanghai": "Beijing time"},
        "none": "n/a",
        "owner": "owner",
        "sender": "City Management Bureau",
    },
}


def normalize_locale(locale: str) -> str:
    low = locale.replace("_", "-").strip().lower()
    if low.startswith("zh"):
        return "zh-CN"
    if low.startswith("en"):
        return "en"
    return locale


def format_duration(ms: int, locale: str = DEFAULT_LOCALE) -> str:
    """``1 小时 10 分钟`` / ``1 h 10 min``; whole minutes, at least 0."""
    texts = _TEXTS.get(normalize_locale(locale), _TEXTS[DEFAULT_LOCALE])
    d_u, h_u, m_u = texts["units"]
    minutes = max(0, int(round(ms / 60_000)))
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    parts = []
    if days:
        parts.append(f"{days} {d_u}")
    if hours:
        parts.append(f"{hours} {h_u}")
    if mins or not parts:
        parts.append(f"{mins} {m_u}")
    return texts["sep"].join(parts)


def _num(value: float | None, none: str) -> str:
    return none if value is None else f"{value:.2f}"


def _topic_part(text: str) -> str:
    """A restaurant id made safe for one MQTT topic level (no wildcards or separators)."""
    return "".join("_" if ch in "/+#\x00" else ch for ch in text) or "_"


# ---------------------------------------------------------------------------------------------------------
# Notifier
# ---------------------------------------------------------------------------------------------------------


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
        self._standard_of = standard_of
        self.ledger = ledger
        self.mqtt_publish = mqtt_publish
        self._sleep = sleep
        self.locale = normalize_locale(settings.locale)
        self._templates_dir = Path(settings.templates_dir) if settings.templates_dir else TEMPLATES_DIR
        self._templates: dict[tuple[str, str], tuple[string.Template, string.Template]] = {}
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
        name = self._template_name(event.kind, action, level)
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
        for channel, url, target in self._recipients(event.kind, action, level, device):
            results.append(self._deliver(transition.key, channel, url, target, payload))
        if self.mqtt_publish is not None:
            message = self._mqtt_message(transition, payload, case)
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
            urls = {t: (ch, u) for ch, u, t in self._recipients(kind, first.action, level, device) if u}
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
        title_t, body_t = self._template(name, normalize_locale(locale or self.locale))
        return title_t.substitute(ctx).strip(), body_t.substitute(ctx).strip() + "\n"

    def check_templates(self) -> None:
        """Load and render every template with sample values: a typo fails at start-up, not mid-incident."""
        sample = {k: "x" for k in _CONTEXT_KEYS}
        for name in TEMPLATE_NAMES:
            self.render(name, sample)

    # -- decisions ----------------------------------------------------------------------------------------

    @staticmethod
    def _template_name(kind: str, action: str, level: str) -> str:
        if action == "closed":
            return "closed"
        if kind == EXCEEDANCE:
            return f"exceedance_{level or EDUCATION}"
        return kind

    def _recipients(
        self, kind: str, action: str, level: str, device: Device | None
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
                urls = [u.strip() for u in self.settings.inspector_targets if u.strip()]
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

    def _template(self, name: str, locale: str) -> tuple[string.Template, string.Template]:
        cached = self._templates.get((name, locale))
        if cached is not None:
            return cached
        path = self._templates_dir / f"{name}.{locale}.txt"
        if not path.is_file():
            path = self._templates_dir / f"{name}.{DEFAULT_LOCALE}.txt"
        text = path.read_text(encoding="utf-8")
        title, _, body = text.partition("\n")
        pair = (string.Template(title), string.Template(body.lstrip("\n")))
        self._templates[(name, locale)] = pair
        return pair

    def _context(
        self,
        transition: Transition,
        device: Device | None,
        occurrence: int | None,
        case: dict[str, Any] | None,
    ) -> dict[str, str]:
        e = transition.event
        s = self.settings
        texts = _TEXTS.get(self.locale, _TEXTS[DEFAULT_LOCALE])
        none = texts["none"]
        tz = s.display_tz
        pollutant = texts["pollutant"].get(e.pollutant or "oil_fume", e.pollutant)
        if e.kind == EXCEEDANCE:
            kind_name = texts["exceedance"].format(pollutant=pollutant)
        else:
            kind_name = texts["kind"].get(e.kind, e.kind)
        end_ms = e.end_ms if e.end_ms is not None else transition.at_ms
        duration_ms = (end_ms if transition.action == "closed" else transition.at_ms) - e.start_ms
        readings = (case or {}).get("evidence", {}).get("readings", {})
        ctx = {
            "restaurant_name": (device.name if device else "") or e.restaurant_id,
            "restaurant_id": e.restaurant_id,
            "address": (device.address if device else "") or none,
            "district": e.district or (device.district if device else "") or none,
            "owner_name": (device.owner_name if device else "") or texts["owner"],
            "device_id": e.device_id,
            "start": format_local(e.start_ms, tz),
            "end": format_local(end_ms, tz),
            "at": format_local(transition.at_ms, tz),
            "tz_label": texts["tz"].get(tz, tz),
            "duration": format_duration(duration_ms, self.locale),
            "pollutant": pollutant,
            "peak": _num(e.peak_mg_m3, none),
            "mean": _num(e.mean_mg_m3, none),
            "limit": _num(e.limit_mg_m3, none),
            "standard": self._standard(e.profile) or none,
            "profile": e.profile or none,
            "contact_phone": s.contact_phone,
            "level_name": texts["level"].get(e.level, e.level or none),
            "occurrence": str(occurrence) if occurrence is not None else none,
            "lookback_days": f"{s.lookback_days:g}",
            "kind_name": kind_name,
            "case_id": (case or {}).get("case_id", none),
            "event_id": e.event_id,
            "evidence_windows": str(readings.get("windows", 0)),
            "evidence_exceeding": str(readings.get("exceeding_windows", 0)),
            "evidence_samples": str(readings.get("samples", 0)),
            "evidence_expected": str(readings.get("expected_samples", 0)),
            "sender": s.sender or texts["sender"],
        }
        return ctx

    def _standard(self, profile: str) -> str:
        if self._standard_of is not None and profile:
            try:
                found = self._standard_of(profile)
            except Exception:  # an unknown profile must not stop a notice
                found = ""
            if found:
                return found
        return self.settings.profile_standards.get(profile, profile)

    def _mqtt_message(
        self, transition: Transition, payload: dict[str, Any], case: dict[str, Any] | None
    ) -> dict[str, Any]:
        e = transition.event
        return {
            "notice_key": transition.key,
            "event_id": e.event_id,
            "action": transition.action,
            "kind": e.kind,
            "level": e.level,
            "occurrence": payload.get("occurrence"),
            "case_id": case["case_id"] if case else None,
            "restaurant_id": e.restaurant_id,
            "device_id": e.device_id,
            "district": e.district,
            "pollutant": e.pollutant,
            "start": format_utc(e.start_ms),
            "end": format_utc(e.end_ms) if e.end_ms is not None else None,
            "at": format_utc(transition.at_ms),
            "peak_mg_m3": e.peak_mg_m3,
            "mean_mg_m3": e.mean_mg_m3,
            "limit_mg_m3": e.limit_mg_m3,
            "profile": e.profile,
            "locale": payload["locale"],
            "title": payload["title"],
            "body": payload["body"],
        }

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
        sender = self._apprise_for(url, notice_id)
        if sender is None:
            ok, attempts, error = False, 1, "not a usable apprise URL (unknown scheme or malformed)"
        else:
            title, body = str(payload["title"]), str(payload["body"])
            ok, attempts, error = self._with_retries(lambda: self._send_once(sender, title, body))
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

        ok, attempts, error = self._with_retries(attempt)
        self.ledger.notice_done(key, target, ok, error, attempts)
        return NoticeResult(key, MQTT, target, SENT if ok else FAILED, attempts, scrub(error))

    def _with_retries(self, attempt: Callable[[], tuple[bool, str]]) -> tuple[bool, int, str]:
        s = self.settings
        error = ""
        for n in range(1, s.retries + 2):
            try:
                ok, error = attempt()
            except Exception as exc:  # a broken target must not stop the others
                ok, error = False, f"{type(exc).__name__}: {exc}"
            if ok:
                return True, n, ""
            if n <= s.retries:
                self._sleep(min(s.retry_backoff_s * 2 ** (n - 1), s.retry_backoff_max_s))
        return False, s.retries + 1, error

    def _apprise_for(self, url: str, notice_id: str) -> apprise.Apprise | None:
        """One ``Apprise`` holding just this target (reused across its retries), or None for a bad URL."""
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            return None
        plugin.socket_connect_timeout = self.settings.timeout_s
        plugin.socket_read_timeout = self.settings.timeout_s
        headers = getattr(plugin, "headers", None)
        if isinstance(headers, dict):  # HTTP plugins (json/form/xml) and email: extra headers
            headers["X-Fumewatch-Notice-Key"] = notice_id
            if url.split("://", 1)[0].lower() in ("json", "jsons", "form", "forms", "xml", "xmls"):
                headers["Idempotency-Key"] = notice_id
        extras = getattr(plugin, "payload_extras", None)
        if isinstance(extras, dict):  # json:// body fields
            extras["notice_key"] = notice_id
        sender = apprise.Apprise()
        sender.add(plugin)
        return sender

    @staticmethod
    def _send_once(sender: apprise.Apprise, title: str, body: str) -> tuple[bool, str]:
        # apprise reports failure as False plus a warning in its log: capture the warning as the reason.
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
        if ok:
            return True, ""
        lines = [ln for ln in captured.getvalue().splitlines() if ln.strip()]
        return False, scrub(lines[-1] if lines else "apprise reported a failure")


_CONTEXT_KEYS = (
    "restaurant_name",
    "restaurant_id",
    "address",
    "district",
    "owner_name",
    "device_id",
    "start",
    "end",
    "at",
    "tz_label",
    "duration",
    "pollutant",
    "peak",
    "mean",
    "limit",
    "standard",
    "profile",
    "contact_phone",
    "level_name",
    "occurrence",
    "lookback_days",
    "kind_name",
    "case_id",
    "event_id",
    "evidence_windows",
    "evidence_exceeding",
    "evidence_samples",
    "evidence_expected",
    "sender",
)

__all__ = [
    "ALREADY_SENT",
    "FAILED",
    "PENDING",
    "SENT",
    "SKIPPED",
    "NoticeResult",
    "Notifier",
    "NotifySettings",
    "format_duration",
    "normalize_locale",
]
