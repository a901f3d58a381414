"""The ``[notify]`` settings section and what one notice attempt comes to (:class:`NoticeResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, Field

from alerts.enforcement import ladder
from ingest.registry import Device

DEFAULT_LOCALE = "zh-CN"
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
    display_tz: str = ""  # "" = the top-level display_tz (filled in when the settings load)
    inspector_targets: list[str] = Field(default_factory=list, repr=False)
    retries: int = Field(3, ge=0)  # retries after the first attempt: up to retries + 1 attempts per target
    retry_backoff_s: float = Field(2.0, ge=0)  # sleep before retry n: retry_backoff_s * 2**(n-1)
    retry_backoff_max_s: float = Field(60.0, ge=0)
    timeout_s: float = Field(10.0, gt=0)  # connect and read timeout of one attempt
    contact_phone: str = "12345"  # 12345 is the city-service hotline; put the bureau's number here
    office: str = ""  # the bureau's office named in notices; "" = the locale's default sender
    sender: str = ""  # signature line; "" = the locale's default
    lookback_days: float = Field(ladder.DEFAULT_LOOKBACK_DAYS, gt=0)  # enforcement ladder look-back
    mqtt_topic_prefix: str = "fume/v1"
    templates_dir: str = ""  # "" = the built-in alerts/enforcement/templates
    catch_up_max_age_s: float = Field(6 * 3600.0, ge=0)  # see Notifier.catch_up
    # How often the alerts service resends pending notices (MQTT alerts once connected, notices put back by
    # `fumewatch notices retry`) and outbox transitions whose notifying failed, seconds.
    drain_interval_s: float = Field(30.0, gt=0)
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
