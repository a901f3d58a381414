"""Rendering: notice templates (``alerts/enforcement/templates/``, ``string.Template``), the locale texts
used outside them, and the MQTT JSON of a transition.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.enforcement.notify.settings import DEFAULT_LOCALE, NotifySettings
from alerts.model import EDUCATION, ENFORCEMENT, EXCEEDANCE, WARNING, Transition
from ingest.registry import Device
from ingest.timeutil import format_local, format_utc

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_NAMES = (
    "exceedance_education",
    "exceedance_warning",
    "exceedance_enforcement",
    "purifier_off",
    "offline",
    "closed",
)


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

    @staticmethod
    def template_name(kind: str, action: str, level: str) -> str:
        if action == "closed":
            return "closed"
        if kind == EXCEEDANCE:
            return f"exceedance_{level or EDUCATION}"
        return kind

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
