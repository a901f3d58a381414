"""Settings of the alerts service: the ingest settings plus ``[alerts]`` (detector) and ``[notify]``.

The whole application's settings (these plus ``[report]`` and ``[api]``) are composed in
:mod:`fumewatch.settings`; this package only defines the sections it reads.

Environment overrides follow the same rule: ``FUMEWATCH_ALERTS_WINDOW_S``, ``FUMEWATCH_NOTIFY_LOCALE``,
``FUMEWATCH_NOTIFY_INSPECTOR_TARGETS='["mailtos://..."]'`` (target URLs may hold tokens: keep them in the
environment, not in the TOML file).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from alerts.detection.window import DetectorConfig
from alerts.enforcement.notify import NotifySettings
from alerts.integrity.settings import IntegritySettings
from alerts.maintenance.settings import MaintenanceSettings
from alerts.owner.settings import OwnerSettings
from alerts.partition import Partition
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
    # Exceedance judgement rule: "gb18483" (GB 18483-2001 §6 data treatment) or "consecutive" (screening).
    rule: Literal["gb18483", "consecutive"] = "gb18483"
    # -- enforcement ladder
    # Each ladder step gives the owner this many days to rectify; episodes inside it repeat the step.
    correction_days: float = Field(7.0, gt=0, le=365)
    # Days the owner has to state a case and defend themselves (陈述、申辩) after a warning or a case notice.
    objection_days: int = Field(3, ge=1, le=60)
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
    # "K/N": the partition this worker owns (alerts/partition.py); "" = every device, one worker.
    partition: str = ""
    # How often the registry file is checked for edits (0 = never), seconds.
    registry_poll_s: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _partition_parses(self) -> AlertsSettings:
        if self.partition:
            Partition.parse(self.partition)  # PartitionError is a ValueError: a one-line settings error
        return self

    def detector_config(self) -> DetectorConfig:
        return DetectorConfig.from_dict(self.model_dump())


class DistrictSettings(BaseModel):
    """``[districts.<name>]``: who a restaurant in that district calls (notices name them)."""

    model_config = {"extra": "forbid"}

    office: str = ""  # "" = [notify] office
    phone: str = ""  # "" = [notify] contact_phone


class AlertsAppSettings(Settings):
    """What the alerts service reads: the ingest settings plus ``[alerts]``, ``[notify]``,
    ``[districts.<name>]``, ``[owner]``, ``[maintenance]`` and ``[integrity]``."""

    alerts: AlertsSettings = AlertsSettings()
    notify: NotifySettings = NotifySettings()
    districts: dict[str, DistrictSettings] = Field(default_factory=dict)
    # the owner's page (issue 15): the alerts service issues its links, `fumewatch api` serves it
    owner: OwnerSettings = OwnerSettings()
    # maintenance reminders (清洗提醒, issue 15): alerts/maintenance, docs/reminders.md
    maintenance: MaintenanceSettings = MaintenanceSettings()
    # data-integrity checks (issue 16): alerts/integrity, docs/integrity.md
    integrity: IntegritySettings = IntegritySettings()

    @model_validator(mode="after")
    def _notices_in_display_zone(self) -> AlertsAppSettings:
        if not self.notify.display_tz:
            self.notify.display_tz = self.display_tz
        return self

    def district_contact(self, district: str) -> tuple[str, str]:
        """(office, phone) for notices to a restaurant in ``district``."""
        d = self.districts.get(district)
        office = (d.office if d else "") or self.notify.office
        phone = (d.phone if d else "") or self.notify.contact_phone
        return office, phone
