"""Rendering: notice templates (``alerts/enforcement/templates/``, ``string.Template``), the locale texts
used outside them, and the MQTT JSON of a transition.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.enforcement.notify.event_values import integrity_values
from alerts.enforcement.notify.owner_values import owner_link_values, reminder_values, submission_values
from alerts.enforcement.notify.settings import DEFAULT_LOCALE, NotifySettings
from alerts.enforcement.notify.texts import _TEXTS
from alerts.model import EXCEEDANCE, MAINTENANCE_REMINDER, OFFLINE, Transition
from alerts.rules import rule
from ingest.registry import Device
from ingest.timeutil import format_display, format_local, format_utc, now_ms

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
#: Owner notices: education, warning, enforcement (the matter went to inspectors), repeat (inside a
#: correction period), closed (the episode ended), offline and restored (a monitor outage and its end),
#: receipt (an owner's submission arrived), maintenance_reminder (清洗提醒, not an offence). Inspectors:
#: warning and repeat (copies), case, owner_unreachable (serve a notice on site), data_integrity (check the
#: monitor).
TEMPLATE_NAMES = (
    "education",
    "warning",
    "enforcement",
    "case",
    "repeat",
    "owner_unreachable",
    "closed",
    "offline",
    "restored",
    "receipt",
    "maintenance_reminder",
    "data_integrity",
)


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
    "period",
    "tz_label",
    "duration",
    "pollutant",
    "offence",
    "kind_name",
    "peak",
    "mean",
    "limit",
    "limit_line",
    "standard",
    "profile",
    "rule_title",
    "rule_source",
    "measures",
    "contact_phone",
    "office",
    "level_name",
    "occurrence",
    "lookback_days",
    "deadline",
    "step_start",
    "objection_deadline",
    "history",
    "episode_id",
    "episode_events",
    "case_id",
    "event_id",
    "evidence_windows",
    "evidence_exceeding",
    "evidence_samples",
    "evidence_expected",
    "owner_delivery",
    "unreachable_reasons",
    "sender",
    "owner_link",
    "owner_link_line",
    "submission_kind",
    "submission_id",
    "submission_received",
    "submission_files",
    "reminder_services",
    "reminder_basis",
    "reminder_threshold",
    "reminder_share",
    "integrity_detail",
)


class Renderer:
    """Notice texts: the templates of ``settings.templates_dir`` (default :data:`TEMPLATES_DIR`) filled
    with the context of a transition, and the JSON of the MQTT copy.

    ``standard_of(profile_name)`` names the standard a limit profile implements; it falls back to
    ``settings.profile_standards``.
    """

    def __init__(self, settings: NotifySettings, *, standard_of: Callable[[str], str] | None = None) -> None:
        self.settings = settings
        self._standard_of = standard_of
        self.locale = normalize_locale(settings.locale)
        self._templates_dir = Path(settings.templates_dir) if settings.templates_dir else TEMPLATES_DIR
        self._templates: dict[tuple[str, str], tuple[string.Template, string.Template]] = {}

    def render(self, name: str, ctx: dict[str, str], locale: str | None = None) -> tuple[str, str]:
        """(title, body) of template ``name`` in ``locale`` (default: the settings' locale)."""
        title_t, body_t = self._template(name, normalize_locale(locale or self.locale))
        return title_t.substitute(ctx).strip(), body_t.substitute(ctx).strip() + "\n"

    def check_templates(self) -> None:
        """Load and render every template with sample values: a typo fails at start-up, not mid-incident."""
        sample = {k: "x" for k in _CONTEXT_KEYS}
        for name in TEMPLATE_NAMES:
            self.render(name, sample)

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

    def context(
        self,
        transition: Transition,
        device: Device | None,
        facts: dict[str, Any] | None = None,
        case: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """The template values of a transition. ``facts`` (from the notifier): ``decision`` (episode and
        step), ``measures``, ``history``, ``contact`` (office, phone), ``objection_days``,
        ``episode_events``, ``unreachable_reasons``, ``owner_link`` ((url, expires_ms) of the owner's page
        link that this notice carries, owner notices only; None: the notice carries none)."""
        facts = facts or {}
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
        offence = texts["offence"].get(e.kind, kind_name).format(pollutant=pollutant)
        end_ms = e.end_ms if e.end_ms is not None else transition.at_ms
        duration_ms = (end_ms if e.end_ms is not None else transition.at_ms) - e.start_ms
        tz_label = f"{texts['tz'].get(tz, tz)} UTC{format_display(e.start_ms, tz)[-6:]}"
        start, at = format_local(e.start_ms, tz), format_local(transition.at_ms, tz)
        period = (
            f"{start}"
            + ("" if e.end_ms is None and self.locale == "zh-CN" else " ")
            + (
                texts["until"].format(end=format_local(e.end_ms, tz))
                if e.end_ms is not None
                else texts["ongoing"].format(at=at)
            )
        )
        readings = (case or {}).get("evidence", {}).get("readings", {})
        d = facts.get("decision")
        ep = d.episode if d is not None else None
        step = d.step if d is not None else None
        office, phone = facts.get("contact") or (s.office, s.contact_phone)
        date_fmt = texts["date_fmt"]
        r = rule(e.rule)
        ctx = {
            "restaurant_name": (device.name if device else "") or e.restaurant_id,
            "restaurant_id": e.restaurant_id,
            "address": (device.address if device else "") or none,
            "district": e.district or (device.district if device else "") or none,
            "owner_name": (device.owner_name if device else "") or texts["owner"],
            "device_id": e.device_id,
            "start": start,
            "end": format_local(end_ms, tz),
            "at": at,
            "period": period,
            "tz_label": tz_label,
            "duration": format_duration(duration_ms, self.locale),
            "pollutant": pollutant,
            "offence": offence,
            "kind_name": kind_name,
            "peak": _num(e.peak_mg_m3, none),
            "mean": _num(e.mean_mg_m3, none),
            "limit": _num(e.limit_mg_m3, none),
            "standard": self._standard(e.profile) or none,
            "limit_line": (
                texts["limit_line"].format(
                    limit=_num(e.limit_mg_m3, none), standard=self._standard(e.profile) or none
                )
                if e.kind == EXCEEDANCE
                else texts["bypass_line"].format(standard=self._standard(e.profile) or none)
            ),
            "profile": e.profile or none,
            "rule_title": r.title(self.locale),
            "rule_source": r.source or none,
            "measures": self._measures(
                e, facts.get("measures") or {}, texts, facts.get("dead_letters") or {}
            ),
            "contact_phone": phone,
            "office": office or s.sender or texts["sender"],
            "level_name": texts["level"].get(e.level, e.level or none),
            "occurrence": str(ep.step) if ep is not None else none,
            "lookback_days": f"{s.lookback_days:g}",
            "deadline": format_local(ep.deadline_ms, tz, date_fmt) if ep is not None else none,
            "step_start": format_local(step.start_ms, tz, date_fmt) if step is not None else none,
            # the owner's period to state their case runs from when the notice goes out
            "objection_deadline": format_local(
                max(transition.at_ms, now_ms()) + int(facts.get("objection_days", 3)) * 86_400_000,
                tz,
                date_fmt,
            ),
            "history": self._history(facts.get("history") or [], texts, s.lookback_days),
            "episode_id": ep.episode_id if ep is not None else none,
            "episode_events": self._episode_events(facts.get("episode_events") or [], texts, tz),
            "case_id": (case or {}).get("case_id", none),
            "event_id": e.event_id,
            "evidence_windows": str(readings.get("windows", 0)),
            "evidence_exceeding": str(readings.get("exceeding_windows", 0)),
            "evidence_samples": str(readings.get("samples", 0)),
            "evidence_expected": str(readings.get("expected_samples", 0)),
            "owner_delivery": self._delivery(((case or {}).get("step") or {}).get("owner_delivery"), texts),
            "unreachable_reasons": "; ".join(facts.get("unreachable_reasons") or []) or none,
            "sender": s.sender or texts["sender"],
            # the page has forms only for a ladder step (docs/owner.md): no offer of them in other notices
            **owner_link_values(
                facts.get("owner_link"),
                texts,
                tz,
                date_fmt,
                forms=e.kind not in (OFFLINE, MAINTENANCE_REMINDER),
            ),
            **reminder_values(e, texts, tz, date_fmt),
            **integrity_values(e, texts, tz),
            **submission_values(facts.get("submission"), texts, tz),
        }
        return ctx

    def copy_title(self, title: str) -> str:
        """An owner notice's title as the inspectors' copy carries it."""
        return _TEXTS.get(self.locale, _TEXTS[DEFAULT_LOCALE])["copy"] + title

    def _measures(
        self, e: Any, m: dict[str, Any], texts: dict[str, Any], flags: dict[str, int] | None = None
    ) -> str:
        """The measurement block: C, Q, n, C_ref (or why one is missing), the judged value, fan/purifier."""
        none = texts["none"]
        lines = []
        pollutant = e.pollutant or "oil_fume"
        if not m.get("readings"):
            lines.append(texts["no_readings"].format(why=m.get("source", none)))
        else:
            lines.append(texts["c_line"].format(c=_num(m.get("c_mg_m3"), none), n_readings=m["readings"]))
            q = m.get("q_m3_h")
            lines.append(texts["q_line"].format(q=f"{q:.0f}") if q else texts["q_unknown"])
            if m.get("n_heads"):
                lines.append(
                    texts["n_line"].format(n=m["n_heads"], ref_flow=f"{m.get('ref_flow_m3_h') or 0:.0f}")
                )
            if pollutant == "oil_fume":
                if m.get("c_ref_mg_m3") is not None:
                    lines.append(texts["ref_line"].format(c_ref=_num(m["c_ref_mg_m3"], none)))
                else:
                    lines.append(texts["ref_unknown"])
                if m.get("unconverted"):
                    lines.append(texts["unconverted"].format(k=m["unconverted"]))
            else:
                lines.append(texts["not_ref"].format(pollutant=texts["pollutant"].get(pollutant, pollutant)))
            f, p = m.get("fan") or {}, m.get("purifier") or {}
            lines.append(
                texts["fan"].format(
                    on=f.get("on", 0),
                    off=f.get("off", 0),
                    unknown=f.get("unknown", 0),
                    p_on=p.get("on", 0),
                    p_off=p.get("off", 0),
                    p_unknown=p.get("unknown", 0),
                )
            )
        if flags:
            lines.append(
                texts["flags"].format(
                    n=sum(flags.values()), reasons=", ".join(f"{r} {k}" for r, k in sorted(flags.items()))
                )
            )
        if e.kind == EXCEEDANCE:
            lines.append(texts["judged"].format(mean=_num(e.mean_mg_m3, none), peak=_num(e.peak_mg_m3, none)))
        return "\n".join(f"  {line}" for line in lines)

    def _history(self, hist: list[dict[str, Any]], texts: dict[str, Any], lookback: float) -> str:
        if not hist:
            return texts["history_none"].format(lookback=f"{lookback:g}")
        out = []
        for h in hist:
            level = texts["level"].get(h["level"], h["level"]) + (
                texts["reissued"] if h.get("reissued") else ""
            )
            out.append(
                texts["history_line"].format(
                    start=format_local(h["start_ms"], self.settings.display_tz, texts["date_fmt"]),
                    level=level,
                    delivery=self._delivery(h, texts),
                )
            )
        return "\n".join(out)

    def _delivery(self, dl: dict[str, Any] | None, texts: dict[str, Any]) -> str:
        if not dl:
            return texts["none"]
        if dl.get("delivered"):
            return texts["delivered"].format(at=format_local(dl["delivered_ms"], self.settings.display_tz))
        return texts["not_delivered"].format(why="; ".join(dl.get("errors") or []) or texts["none"])

    def _episode_events(self, events: list[Any], texts: dict[str, Any], tz: str) -> str:
        out = []
        for ev in events:
            p = texts["pollutant"].get(ev.pollutant or "oil_fume", ev.pollutant)
            name = (
                texts["exceedance"].format(pollutant=p)
                if ev.kind == EXCEEDANCE
                else texts["kind"].get(ev.kind, ev.kind)
            )
            end = format_local(ev.end_ms, tz) if ev.end_ms is not None else texts["none"]
            out.append(
                texts["event_line"].format(
                    name=name, start=format_local(ev.start_ms, tz), end=end, id=ev.event_id
                )
            )
        return "\n".join(out) or texts["none"]

    def _standard(self, profile: str) -> str:
        if self._standard_of is not None and profile:
            try:
                found = self._standard_of(profile)
            except Exception:  # an unknown profile must not stop a notice
                found = ""
            if found:
                return found
        return self.settings.profile_standards.get(profile, profile)

    def mqtt_message(
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
