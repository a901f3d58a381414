"""Settings of the alerts service: the ingest settings plus ``[alerts]`` (detector) and ``[notify]``.

The whole application's settings (these plus ``[report]`` and ``[api]``) are composed in
:mod:`fumewatch.settings`; this package only defines the sections it reads.

Environment overrides follow the same rule: ``FUMEWATCH_ALERTS_WINDOW_S``, ``FUMEWATCH_NOTIFY_LOCALE``,
``FUMEWATCH_NOTIFY_INSPECTOR_TARGETS='["mailtos://..."]'`` (target URLs may hold tokens: keep them in the
environment, not in the TOML file).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from alerts.detection.window import DetectorConfig
from alerts.enforcement.notify import NotifySettings
from ingest.config import Settings

_DEFAULTS = DetectorConfig()


class AlertsSettings(BaseModel):
    # -- detector (see alerts/window.py DetectorConfig for the reasoning behind each default)
    window_s: int = _DEFAULTS.window_s
    allowed_lateness_s: int = _DEFAULTS.allowed_lateness_s
    expected_interval_s: int = _DEFAULTS.expected_interval_s
    min_valid_share: float = _DEFAULTS.min_valid_share
    open_after_windows: int = _DEFAULTS.open_after_windows
    close_after_windows: int = _DEFAULTS.close_after_windows
    purifier_off_min: float = _DEFAULTS.purifier_off_min
    purifier_max_gap_s: int = _DEFAULTS.purifier_max_gap_s
    offline_min: float = _DEFAULTS.offline_min
    business_hours: str = _DEFAULTS.business_hours
    business_tz: str = _DEFAULTS.business_tz
    default_profile: str = _DEFAULTS.default_profile
    late_episode_s: int = _DEFAULTS.late_episode_s
    max_evidence_windows: int = _DEFAULTS.max_evidence_windows
    max_gap_s: int | None = _DEFAULTS.max_gap_s
    # -- service
    # Extra or overriding limit profiles (TOML, same shape as alerts/profiles.toml); "" = packaged only.
    profiles_file: str = ""
    # MQTT client id of the alerts service's own persistent session.
    client_id: str = "fumewatch-alerts"
    # "wall": offline detection and window finalisation follow the real clock (production);
    # "event": they follow the newest reading seen (replays, the demo).
    clock: Literal["wall", "event"] = "wall"
    # Detector state, events and windows are committed (and MQTT messages acknowledged) this often.
    commit_interval_s: float = Field(1.0, gt=0)
    # How often the clock advances the detector (offline devices, silent devices' windows).
    advance_interval_s: float = Field(5.0, gt=0)
    # Without saved state, warm the detector from the store's last hours of readings.
    warmup_hours: float = Field(2.0, ge=0)

    def detector_config(self) -> DetectorConfig:
        return DetectorConfig.from_dict(self.model_dump())


class AlertsAppSettings(Settings):
    """What the alerts service reads: the ingest settings plus ``[alerts]`` and ``[notify]``."""

    alerts: AlertsSettings = AlertsSettings()
    notify: NotifySettings = NotifySettings()
