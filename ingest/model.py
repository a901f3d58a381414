"""The records that flow through fumewatch: a validated Reading and a DeadLetter.

Times are integers in epoch milliseconds, UTC (cheap to compare, exact to store). Convert for display
with :func:`ingest.timeutil.format_local`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: Column order of ``fumewatch readings --format csv`` (the wire contract in docs/protocol.md).
READING_CSV_COLUMNS = (
    "time",
    "restaurant_id",
    "device_id",
    "oil_fume_mg_m3",
    "oil_fume_ref_mg_m3",
    "pm_mg_m3",
    "nmhc_mg_m3",
    "flow_m3_h",
    "fan_on",
    "purifier_on",
)

#: Decimal places shown to people and in listings (``fumewatch readings``, reports): the resolution of the
#: instruments, so a stored 0.39945400000000003 reads 0.399. Concentrations (mg/m3) to 0.001, exhaust flow
#: (m3/h) to 0.1. Stored values keep full precision; only what is printed is rounded, here in one place.
DISPLAY_DECIMALS = {
    "oil_fume_mg_m3": 3,
    "oil_fume_ref_mg_m3": 3,
    "pm_mg_m3": 3,
    "nmhc_mg_m3": 3,
    "flow_m3_h": 1,
}


def round_for_display(row: dict) -> dict:
    """``row`` with each measured value rounded to :data:`DISPLAY_DECIMALS` (None stays None)."""
    for key, places in DISPLAY_DECIMALS.items():
        v = row.get(key)
        if isinstance(v, float):
            row[key] = round(v, places)
    return row


#: Fields a monitor may report, as named on the wire (JSON keys and ``[hj212.factors]`` targets).
WIRE_FIELDS = ("oil_fume", "pm", "nmhc", "flow", "fan", "purifier")
#: The measured ones and the on/off ones among them.
NUMERIC_FIELDS = WIRE_FIELDS[:4]
SWITCH_FIELDS = WIRE_FIELDS[4:]


@dataclass(slots=True)
class Reading:
    """One validated, enriched measurement from one monitor.

    ``oil_fume_ref_mg_m3`` is the GB 18483-2001 reference concentration
    ``C_ref = C * Q / (n_heads * 2000)``; when the flow is unknown it equals the measured value and
    ``ref_converted`` is False.
    """

    time_ms: int
    device_id: str
    restaurant_id: str
    district: str
    oil_fume_mg_m3: float
    oil_fume_ref_mg_m3: float
    ref_converted: bool
    pm_mg_m3: float | None = None
    nmhc_mg_m3: float | None = None
    flow_m3_h: float | None = None
    fan_on: bool | None = None
    purifier_on: bool | None = None
    source: str = "json"  # "json" | "hj212"
    # 0 for samples (JSON, HJ 212 CN 2011/2051); 3600 for HJ 212 hourly averages (CN 2061), which the
    # stores keep apart so an hourly mean never overwrites the minute sample stamped at the same time.
    interval_s: int = 0
    #: HJ 212 data flag of each value, by wire field (``{"oil_fume": "T", "pm": "N"}``); None for JSON.
    #: ``T`` (above the instrument's range) keeps the value, which is then a lower bound.
    flags: dict[str, str] | None = None
    #: Factor entries the device's dialect does not know, kept as sent (``{"a99001-Rtd": "3.2"}``).
    extra: dict[str, str] | None = None
    #: Non-empty: the reading is stored but not judged, and this says why (``flag_D`` fault, ``flag_M``
    #: maintenance, ``flag_C`` calibration, ``flag_F`` stopped, ``rs_2`` calibrating, ``rs_3`` maintenance).
    excluded: str = ""
    #: HJ 212 request number (``QN``) of the frame; "" for JSON and frames without one. Not stored: the
    #: clock check (ingest/clock.py) looks for a QN repeated with another DataTime.
    qn: str = ""

    @property
    def lower_bound(self) -> bool:
        """The oil-fume value is above the instrument's range (flag ``T``): the true value is higher."""
        return bool(self.flags) and self.flags.get("oil_fume") == "T"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class DeadLetter:
    """Input that could not become a Reading, kept with the reason so nothing disappears silently."""

    received_ms: int
    topic: str
    reason: str
    payload_excerpt: str
    device_id: str = ""
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class Outcome:
    """What one MQTT message became (ingest.pipeline)."""

    readings: list[Reading] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    ignored: int = 0  # HJ 212 frames of other CN codes (acknowledged, not stored)
    #: Facts about accepted input worth counting per device: ``(device_id, kind, key)``, e.g.
    #: ``("MN1", "crc_variant", "modbus_swapped")`` for a frame admitted by its dialect's CRC variant, or
    #: ``("MN1", "subpacket_held", "QN")`` for a sub-packet waiting for the others.
    notes: list[tuple[str, str, str]] = field(default_factory=list)
