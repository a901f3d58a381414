"""Settings: defaults < TOML file < command-line flags < FUMEWATCH_* environment.

Environment names are ``FUMEWATCH_<SECTION>_<KEY>``, e.g. ``FUMEWATCH_INFLUX_TOKEN``,
``FUMEWATCH_MQTT_BROKER``, ``FUMEWATCH_INGEST_STORE``. Every setting and its default is documented in
``config/fumewatch.sample.toml`` (a test loads it and checks it matches these defaults).
Secrets (broker password, InfluxDB token) belong in the environment or an .env file, never in the TOML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest import config_check
from ingest.config_check import ConfigError
from ingest.config_gateway import GatewaySettings

__all__ = ["ConfigError", "Settings", "load_settings", "parse_broker_url"]

DEFAULT_FACTORS = {
    # The codes the simulator writes (those of the default dialect, ingest/dialects/hj212-2017.toml).
    "a34041": "oil_fume",  # oil fume (油烟), mg/m3
    "a34000": "pm",  # particulate matter (颗粒物), mg/m3
    "a24088": "nmhc",  # non-methane hydrocarbons (非甲烷总烃), mg/m3
    "a00000": "flow",  # exhaust flow (废气流量), m3/h
    "fan01": "fan",  # fan switch state 0/1 (vendor code)
    "pur01": "purifier",  # purifier switch state 0/1 (vendor code)
}


class MqttSettings(BaseModel):
    broker: str = "mqtt://127.0.0.1:1883"
    client_id: str = "fumewatch-ingest"
    # "5" (default; Receive Maximum lets the broker keep many messages in flight) or "3.1.1".
    protocol: Literal["5", "3.1.1"] = "5"
    # MQTT 3.1.1 only: the broker's max_inflight_messages (Mosquitto's default is 20); batches never wait
    # for more unacknowledged messages than this.
    broker_max_inflight: int = Field(20, ge=1)
    topic_prefix: str = "fume/v1"
    qos: int = Field(1, ge=0, le=2)
    keepalive_s: int = 30
    # Non-empty: subscribe as $share/<group>/<topic> so several ingest workers split the load.
    shared_group: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    receive_maximum: int = Field(1000, ge=1, le=65535)

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        parse_broker_url(v)
        return v

    def endpoint(self) -> tuple[str, int, bool, str, str]:
        """(host, port, tls, username, password) from ``broker`` with user/password overrides."""
        host, port, tls, url_user, url_pw = parse_broker_url(self.broker)
        if not tls and (self.cert_file or self.key_file or self.ca_file):
            raise ValueError("mqtt.ca_file/cert_file/key_file are set but the broker URL is not mqtts://")
        user = self.username or url_user
        pw = self.password.get_secret_value() or url_pw
        return (host, port, tls, user, pw)


#: Accepted broker URL forms (``--broker``, ``[mqtt] broker``, FUMEWATCH_MQTT_BROKER). ``tcp://`` and
#: ``ssl://`` are the spellings paho, Eclipse and many vendors' tools use, so they are accepted as aliases.
BROKER_URL_FORMS = (
    "mqtt://[user:pass@]host[:port] (port 1883)",
    "mqtts://[user:pass@]host[:port] (TLS, port 8883)",
    "tcp://... (= mqtt://)",
    "ssl://... (= mqtts://)",
    "host[:port] (= mqtt://host:port)",
)
_TLS_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}


def parse_broker_url(url: str) -> tuple[str, int, bool, str, str]:
    """(host, port, tls, username, password) of a broker URL in one of :data:`BROKER_URL_FORMS`."""
    text = url.strip()
    forms = "; ".join(BROKER_URL_FORMS)
    u = urlsplit(text if "://" in text else f"mqtt://{text}")
    if u.scheme.lower() not in _TLS_SCHEMES:
        raise ValueError(f"broker URL {url!r}: scheme {u.scheme + '://'!r} is not accepted; use {forms}")
    try:
        port = u.port
    except ValueError:
        raise ValueError(f"broker URL {url!r}: the port is not a number 1-65535; use {forms}") from None
    if not u.hostname or (u.path not in ("", "/")) or u.query or u.fragment:
        raise ValueError(f"broker URL {url!r}: give a host (and port) only; use {forms}")
    tls = _TLS_SCHEMES[u.scheme.lower()]
    return (
        u.hostname,
        port or (8883 if tls else 1883),
        tls,
        unquote(u.username or ""),
        unquote(u.password or ""),
    )


class IngestSettings(BaseModel):
    store: str = "data/fumewatch.db"
    # SQLite path, or postgresql://user@host/db (password from FUMEWATCH_STATE_PASSWORD / PGPASSWORD only)
    state: str = "data/state.db"
    registry: str = "data/registry.csv"
    batch_size: int = Field(500, ge=1)
    flush_interval_s: float = Field(0.2, gt=0)
    max_payload_bytes: int = Field(256 * 1024, ge=64)
    max_batch_readings: int = Field(1000, ge=1)
    dead_letter_excerpt_bytes: int = Field(256, ge=16)
    # Back-off of transient store write errors (disk full, locked, InfluxDB buffer full).
    store_retry_min_s: float = Field(0.5, gt=0)
    store_retry_max_s: float = Field(30.0, gt=0)


class DeadLetterSettings(BaseModel):
    # Dead letters written per device per minute; beyond it they are counted by device and reason and
    # summarised in one `dead_letter_overflow` dead letter per device when the minute ends. 0 = no cap.
    max_per_device_per_minute: int = Field(100, ge=0)
    # Dead letters written per minute over all devices (topics naming ever new devices). 0 = no cap.
    max_per_minute: int = Field(2000, ge=0)
    # Dead letters older than this many days are deleted by the running service. 0 = kept forever.
    retention_days: float = Field(90.0, ge=0)
    # Seconds between two retention passes, and rows deleted per statement of a pass.
    purge_interval_s: float = Field(600.0, gt=0)
    purge_batch_rows: int = Field(5000, ge=1)


class ValidationSettings(BaseModel):
    max_future_skew_s: float = Field(300.0, ge=0)
    max_age_days: float = Field(400.0, gt=0)
    oil_fume_max_mg_m3: float = 200.0
    pm_max_mg_m3: float = 500.0
    nmhc_max_mg_m3: float = 1000.0
    flow_max_m3_h: float = 500_000.0


class GB18483Settings(BaseModel):
    # GB 18483-2001: reference exhaust volume per reference stove head, m3/h.
    reference_flow_per_head_m3_h: float = Field(2000.0, gt=0)


class InfluxSettings(BaseModel):
    url: str = ""
    token: SecretStr = SecretStr("")
    org: str = "fumewatch"
    bucket: str = "fumewatch"
    # InfluxQL database for reads on /query; empty = the bucket name up to a '/'.
    database: str = ""
    measurement: str = "fume_reading"
    batch_size: int = 5000
    flush_interval_ms: int = 1000
    timeout_ms: int = 10_000
    ca_file: str = ""
    verify_ssl: bool = True
    # Client certificate and key for mutual TLS (https:// InfluxDB behind a proxy that requires them).
    cert_file: str = ""
    key_file: str = ""
    # Disk-backed buffer: points are durable on disk (and acknowledged) before InfluxDB sees them, and
    # drain in order when it answers; an outage loses nothing. At buffer_max_points ingest stops
    # acknowledging and the broker holds the messages.
    buffer: bool = True
    # "" = influx-buffer.db next to the state database.
    buffer_file: str = ""
    buffer_max_points: int = Field(2_000_000, ge=1000)
    # The drain's back-off ceiling while InfluxDB is unreachable (1 s doubling up to this).
    buffer_retry_max_s: float = Field(30.0, gt=0)
    # First stored value wins (ingest/store/first_wins.py): the measured values admitted per (device,
    # time) are remembered this long in a small SQLite file; older readings are checked against InfluxDB.
    first_wins_hours: float = Field(48.0, gt=0)
    # "" = influx-first-wins.db next to the state database.
    first_wins_file: str = ""

    @property
    def query_database(self) -> str:
        return self.database or self.bucket.split("/", 1)[0]


class HJ212Settings(BaseModel):
    # Time zone of the monitors' clocks (HJ 212 DataTime is local time).
    timezone: str = "Asia/Shanghai"
    # Site-wide factor code -> reading field, applied on top of every device's dialect (ingest/dialects;
    # the registry's dialect column, default hj212-2017, already maps the usual codes).
    factors: dict[str, str] = Field(default_factory=dict)
    # Optional multipliers per factor code (e.g. 3600 for a vendor sending flow in m3/s).
    scale: dict[str, float] = Field(default_factory=dict)
    # Directory of user dialect files (*.toml, the layout of ingest/dialects); "" = packaged ones only.
    dialects_dir: str = ""
    # A sub-packet (PNUM/PNO) whose set is not complete this long after its first part is a dead letter.
    subpacket_timeout_s: float = Field(60.0, gt=0, le=3600)

    @field_validator("factors")
    @classmethod
    def _targets_known(cls, v: dict[str, str]) -> dict[str, str]:
        allowed = {"oil_fume", "pm", "nmhc", "flow", "flue_temp", "humidity", "fan", "purifier"}
        bad = {k: t for k, t in v.items() if t not in allowed}
        if bad:
            raise ValueError(f"unknown mapping target(s) {bad}; allowed: {sorted(allowed)}")
        return v


class MetricsSettings(BaseModel):
    # GET /healthz and /metrics (Prometheus) of the running service; port 0 = off.
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    # /healthz 503: a store made no progress this long while readings wait for it.
    store_stall_s: float = Field(60.0, gt=0)
    # /healthz 503: the broker has been unreachable this long.
    broker_unreachable_s: float = Field(60.0, gt=0)


class LoggingSettings(BaseModel):
    level: str = "INFO"
    format: Literal["kv", "json"] = "kv"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FUMEWATCH_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    display_tz: str = "Asia/Shanghai"
    mqtt: MqttSettings = MqttSettings()
    ingest: IngestSettings = IngestSettings()
    deadletters: DeadLetterSettings = DeadLetterSettings()
    validation: ValidationSettings = ValidationSettings()
    gb18483: GB18483Settings = GB18483Settings()
    influx: InfluxSettings = InfluxSettings()
    hj212: HJ212Settings = HJ212Settings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    gateway: GatewaySettings = GatewaySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [env_settings, dotenv_settings, init_settings]
        if _TOML_PATH is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_TOML_PATH))
        return tuple(sources)


_TOML_PATH: Path | None = None


def load_settings(
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    cls: type[Settings] | None = None,
    flag_names: dict[tuple[str, ...], str] | None = None,
) -> Settings:
    """Load settings from ``config`` (TOML, optional) with ``overrides`` (from CLI flags) on top.

    ``overrides`` is nested by section, e.g. ``{"ingest": {"store": "x.db"}}``; None values are ignored.
    FUMEWATCH_* environment variables (and a .env file in the working directory) win over both.
    ``cls`` may be a subclass that adds sections (the alerts package adds [alerts] and [notify]).
    ``flag_names`` ((section, key) -> "--flag") lets a message name the flag that set a bad value.

    Strict: an unknown key or section in the file, an unknown FUMEWATCH_<SECTION>_<KEY>, a value of the
    wrong type and an unknown time zone are each a :class:`ConfigError` (a ValueError) of one line naming
    the file or variable, the key and the problem (see :mod:`ingest.config_check`).
    """
    global _TOML_PATH
    model = cls or Settings
    toml: dict[str, Any] = {}
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        toml = config_check.read_toml(path)
        config_check.check_toml_keys(model, toml, str(config))
    env = config_check.env_values(model.model_config.get("env_file"))
    config_check.check_env_keys(model, env)
    clean = _drop_none(overrides or {})
    toml_name = str(config) if config is not None else None
    sources = config_check.Sources(toml, toml_name, env, clean, flag_names or {})
    # pydantic-settings deep-merges the sources, so a flag replaces one key, not a whole TOML section.
    _TOML_PATH = Path(config) if config is not None else None
    try:
        settings = model(**clean)
    except ValidationError as exc:
        raise config_check.explain_validation(exc, sources) from None
    finally:
        _TOML_PATH = None
    config_check.check_timezones(settings, sources)
    return settings


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            sub = _drop_none(v)
            if sub:
                out[k] = sub
        elif v is not None:
            out[k] = v
    return out
