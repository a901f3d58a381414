"""Records of the alerts side: finalised windows, events and their transitions.

Times are epoch milliseconds UTC, like :class:`ingest.model.Reading`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: Event kinds.
EXCEEDANCE = "exceedance"
PURIFIER_OFF = "purifier_off"
OFFLINE = "offline"
LATE_DATA = "late_data"
#: A maintenance reminder (清洗提醒, alerts/maintenance): service given, never an offence or on the ladder.
MAINTENANCE_REMINDER = "maintenance_reminder"
#: A data-integrity finding (alerts/integrity: suspect_zero, suspect_flatline): for inspectors only, never
#: an offence, never on the ladder, never an owner notice.
DATA_INTEGRITY = "data_integrity"
EVENT_KINDS = (EXCEEDANCE, PURIFIER_OFF, OFFLINE, LATE_DATA, MAINTENANCE_REMINDER, DATA_INTEGRITY)

#: Enforcement ladder levels (一次教育劝导、二次告诫、三次运用执法手段).
EDUCATION = "education"
WARNING = "warning"
ENFORCEMENT = "enforcement"
LEVELS = (EDUCATION, WARNING, ENFORCEMENT)

#: Columns of ``fumewatch events --format csv``.
EVENT_CSV_COLUMNS = (
    "kind",
    "restaurant_id",
    "device_id",
    "start",
    "end",
    "peak_mg_m3",
    "mean_mg_m3",
    "limit_mg_m3",
    "profile",
    "rule",
    "level",
)


@dataclass(slots=True)
class WindowResult:
    """One finalised tumbling window of one device for one pollutant."""

    device_id: str
    start_ms: int
    end_ms: int
    samples: int
    #: Samples expected of this device in this window (from its reporting interval,
    #: :mod:`alerts.detection.window`).
    expected: int
    valid: bool
    invalid_reason: str  # "" when valid; "fan_off" | "incomplete" | "excluded"
    mean_mg_m3: float | None  # mean of the reference-converted concentration; None without samples
    max_mg_m3: float | None
    exceeds: bool
    pollutant: str = "oil_fume"
    #: Samples whose oil-fume value is the measured concentration, not the reference one (flow unknown,
    #: ``Reading.ref_converted`` False). 0 for pm/nmhc (judged as measured) and for fully converted windows.
    unconverted: int = 0
    #: Readings of the window that were not judged, by ``Reading.excluded`` reason (``{"flag_C": 7}``);
    #: empty when none. ``samples`` and ``expected`` leave them out, so a short window with exclusions
    #: is invalid as ``excluded`` (calibration, maintenance), not ``incomplete`` (data missing).
    excluded: dict[str, int] = field(default_factory=dict)
    #: Oil-fume samples above the instrument's range (HJ 212 flag ``T``): the true value is at least the
    #: one judged. 0 for pm/nmhc.
    lower_bound: int = 0


@dataclass(slots=True)
class Event:
    """An exceedance or other incident. ``event_id`` is deterministic so replays are idempotent."""

    event_id: str
    kind: str
    restaurant_id: str
    device_id: str
    district: str
    start_ms: int
    end_ms: int | None = None
    pollutant: str = ""
    peak_mg_m3: float | None = None
    mean_mg_m3: float | None = None
    limit_mg_m3: float | None = None
    profile: str = ""
    level: str = ""
    state: str = "open"  # open | closed
    evidence: list[dict] = field(default_factory=list)  # window summaries
    #: The judgement rule that decided the event (:mod:`alerts.rules`): gb18483 | consecutive for
    #: exceedances, bypass for purifier_off, offline, late_data, maintenance for maintenance_reminder, the
    #: check (suspect_zero, suspect_flatline) for data_integrity.
    rule: str = ""
    #: How the rule decided, beyond the windows in ``evidence``: for ``gb18483`` the judged groups
    #: (``{"groups": [{"start_ms", "end_ms", "mean_mg_m3", "kept", "dropped", "exceeds"}, ...]}``).
    judgement: dict = field(default_factory=dict)
    #: The ladder episode it belongs to (set by the ladder; the detector leaves it empty).
    episode_id: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class Transition:
    """Something happened to an event: ``opened`` or ``closed``. Notices are sent per transition."""

    event: Event
    action: str  # "opened" | "closed"
    at_ms: int

    @property
    def key(self) -> str:
        return f"{self.event.event_id}:{self.action}"
