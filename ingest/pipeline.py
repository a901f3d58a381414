"""Message -> Readings and DeadLetters. Pure: no I/O, never raises on bad input.

Topic contract (docs/protocol.md): ``{prefix}/{device_id}/reading`` carries JSON (one object or an
array), ``{prefix}/{device_id}/hj212`` carries one or more HJ 212-2017 frames. What is refused, and why, is
a :class:`ingest.untrusted.Reject`.
"""

from __future__ import annotations

import math

import orjson

from ingest.config import Settings
from ingest.model import NUMERIC_FIELDS as _NUMERIC
from ingest.model import SWITCH_FIELDS as _SWITCH
from ingest.model import DeadLetter, Outcome, Reading
from ingest.pipeline_hj212 import HJ212Frames
from ingest.registry import Device, Registry
from ingest.untrusted import (
    _INVALID,
    Reject,
    _item_excerpt,
    _json_time,
    _lenient_json,
    _short,
    _topic_device,
)


class Pipeline(HJ212Frames):
    """Decode, validate and enrich one MQTT message."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        v = settings.validation
        self._max = {
            "oil_fume": v.oil_fume_max_mg_m3,
            "pm": v.pm_max_mg_m3,
            "nmhc": v.nmhc_max_mg_m3,
            "flow": v.flow_max_m3_h,
        }
        self._max_values = tuple(self._max[k] for k in _NUMERIC)
        self._future_ms = int(v.max_future_skew_s * 1000)
        self._age_ms = int(v.max_age_days * 86_400_000)
        self._ref_flow = settings.gb18483.reference_flow_per_head_m3_h
        self._prefix = settings.mqtt.topic_prefix.strip("/")
        self._prefix_parts = len(self._prefix.split("/")) if self._prefix else 0
        self._topic_head = f"{self._prefix}/" if self._prefix else ""
        self._max_payload = settings.ingest.max_payload_bytes
        self._max_batch = settings.ingest.max_batch_readings
        self._excerpt = settings.ingest.dead_letter_excerpt_bytes
        self._init_hj212(settings, registry)

    # ---------------------------------------------------------------- entry point
    def handle(self, topic: str, payload: bytes, received_ms: int) -> Outcome:
        out = Outcome()
        try:
            device_id, kind = self._parse_topic(topic)
            if len(payload) > self._max_payload:
                raise Reject(
                    "payload_too_large", f"{len(payload)} bytes exceeds the {self._max_payload} byte limit"
                )
            device = self.registry.get(device_id)
            if device is None:
                raise Reject("unknown_device", f"device {device_id!r} is not in the registry")
            if kind == "reading":
                self._handle_json(device, topic, payload, received_ms, out)
            else:
                self._handle_hj212(device, topic, payload, received_ms, out)
        except Reject as r:
            out.dead.append(self._dead(topic, payload, received_ms, r, device_id=_topic_device(topic)))
        return out

    def _parse_topic(self, topic: str) -> tuple[str, str]:
        if topic.startswith(self._topic_head):
            # "{prefix}/{device_id}/{kind}": the same test as below without building lists
            device_id, _, kind = topic[len(self._topic_head) :].partition("/")
            if device_id and (kind == "reading" or kind == "hj212"):
                return device_id, kind
        parts = topic.split("/")
        n = self._prefix_parts
        if (
            len(parts) != n + 2
            or "/".join(parts[:n]) != self._prefix
            or parts[n + 1] not in ("reading", "hj212")
            or not parts[n]
        ):
            raise Reject(
                "bad_topic", f"topic {topic[:120]!r} is not {self._prefix}/<device_id>/reading|hj212"
            )
        return parts[n], parts[n + 1]

    def _dead(
        self, topic: str, payload: bytes, received_ms: int, r: Reject, device_id: str = "", **detail
    ) -> DeadLetter:
        excerpt = payload[: self._excerpt].decode("utf-8", errors="backslashreplace")
        return DeadLetter(
            received_ms=received_ms,
            topic=topic[:256],
            reason=r.reason,
            payload_excerpt=excerpt,
            device_id=device_id[:128],
            detail={"message": r.message, **detail},
        )

    # ---------------------------------------------------------------- JSON
    def _handle_json(
        self, device: Device, topic: str, payload: bytes, received_ms: int, out: Outcome
    ) -> None:
        head = payload[:1]
        if head.isspace():
            head = payload.lstrip()[:1]
        if head == b"[" and payload.count(b"{") > self._max_batch * 8:
            # Checked before parsing: an array with far too many objects is refused without building it
            # (generous bound: items may hold nested objects); the exact count is checked after parsing.
            raise Reject("batch_too_large", f"more than {self._max_batch} readings in one message")
        lenient = False
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            # orjson refuses NaN/Infinity tokens and numbers beyond a double (1e400): parse those once
            # more leniently, so that the one bad item of a batch is refused alone (not_finite), not all.
            doc, lenient = _lenient_json(payload), True
            if doc is _INVALID:
                raise Reject("invalid_json", f"not valid JSON: {exc}") from None
        items = doc if isinstance(doc, list) else [doc]
        if len(items) > self._max_batch:
            raise Reject("batch_too_large", f"{len(items)} readings exceed the {self._max_batch} limit")
        if not items:
            raise Reject("empty_batch", "empty JSON array")
        fast = None if lenient else self._json_fast(device, items, received_ms)
        if fast is not None:
            out.readings.extend(fast)
            return
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise Reject("not_an_object", f"item {index} is {type(item).__name__}, not an object")
                claimed = item.get("device_id")
                if claimed is not None and claimed != device.device_id:
                    raise Reject(
                        "device_mismatch",
                        f"payload device_id {_short(claimed, 64)!r} differs from topic device {device.device_id!r}",
                    )
                time_ms = _json_time(item.get("ts"))
                values = {k: item.get(k) for k in _NUMERIC}
                switches = {k: item.get(k) for k in _SWITCH}
                out.readings.append(self._reading(device, time_ms, values, switches, received_ms, "json"))
            except Reject as r:
                excerpt = _item_excerpt(item, lenient, payload)[: self._excerpt]
                out.dead.append(
                    self._dead(topic, excerpt, received_ms, r, device_id=device.device_id, index=index)
                )

    def _json_fast(self, device: Device, items: list, received_ms: int) -> list[Reading] | None:
        """The common case in straight-line code: every item an object with an integer ``ts`` in range,
        numbers in range and switches true/false/absent. None as soon as one item is anything else; the
        general path below then takes the whole message and accepts or refuses each item with its
        reason. Gives exactly the Readings the general path gives (same conversions and arithmetic)."""
        lo, hi = received_ms - self._age_ms, received_ms + self._future_ms
        max_oil, max_pm, max_nmhc, max_flow = self._max_values
        device_id, restaurant_id, district = device.device_id, device.restaurant_id, device.district
        ref_flow = device.stove_heads * self._ref_flow  # the denominator of _reading()'s conversion
        out: list[Reading] = []
        append = out.append
        for item in items:
            if type(item) is not dict:
                return None
            get = item.get
            claimed = get("device_id")
            if claimed is not None and claimed != device_id:
                return None
            ts = get("ts")
            if type(ts) is not int or not lo <= ts <= hi:
                return None
            oil, pm, nmhc, flow = get("oil_fume"), get("pm"), get("nmhc"), get("flow")
            fan, purifier = get("fan"), get("purifier")
            # orjson gives exactly int or float for numbers (a bool is not an int here; JSON has no NaN or
            # infinity); the general path converts ints with float() too.
            if type(oil) is int:
                oil = float(oil)
            if type(oil) is not float or not 0.0 <= oil <= max_oil:
                return None
            if pm is not None:
                if type(pm) is int:
                    pm = float(pm)
                if type(pm) is not float or not 0.0 <= pm <= max_pm:
                    return None
            if nmhc is not None:
                if type(nmhc) is int:
                    nmhc = float(nmhc)
                if type(nmhc) is not float or not 0.0 <= nmhc <= max_nmhc:
                    return None
            if flow is not None:
                if type(flow) is int:
                    flow = float(flow)
                if type(flow) is not float or not 0.0 <= flow <= max_flow:
                    return None
            if not (fan is None or fan is True or fan is False) or not (
                purifier is None or purifier is True or purifier is False
            ):
                return None
            if flow is not None and flow > 0:
                ref, converted = oil * flow / ref_flow, True
            else:
                ref, converted = oil, False
            append(
                Reading(
                    ts, device_id, restaurant_id, district, oil, ref, converted, pm, nmhc, flow, fan, purifier,
                    "json",
                )
            )  # fmt: skip
        return out

    # ---------------------------------------------------------------- HJ 212
    def _reading(
        self,
        device: Device,
        time_ms: int,
        values: dict[str, object],
        switches: dict[str, object],
        received_ms: int,
        source: str,
    ) -> Reading:
        if time_ms > received_ms + self._future_ms:
            raise Reject(
                "future_ts",
                f"timestamp {(time_ms - received_ms) / 1000:.0f} s ahead of the receiver clock "
                f"(allowed skew {self._future_ms / 1000:.0f} s)",
            )
        if time_ms < received_ms - self._age_ms:
            raise Reject("too_old", f"timestamp older than {self._age_ms // 86_400_000} days")
        nums: dict[str, float | None] = {}
        for name in _NUMERIC:
            v = values.get(name)
            if v is None:
                if name == "oil_fume":
                    raise Reject("missing_field", "oil_fume is required")
                nums[name] = None
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise Reject("not_a_number", f"{name} is {type(v).__name__} {_short(v, 20)!r}, not a number")
            f = float(v)
            if not math.isfinite(f):
                raise Reject("not_finite", f"{name} is {f}")
            if f < 0:
                raise Reject("negative", f"{name} is negative ({f})")
            if f > self._max[name]:
                raise Reject("implausible", f"{name} {f} exceeds the plausible maximum {self._max[name]}")
            nums[name] = f
        flags: dict[str, bool | None] = {}
        for name in _SWITCH:
            v = switches.get(name)
            if v is None:
                flags[name] = None
            elif v is True or v is False:
                flags[name] = v
            elif isinstance(v, int | float) and v in (0, 1):
                flags[name] = bool(v)
            else:
                raise Reject("bad_switch", f"{name} must be true/false or 0/1, got {_short(v, 20)!r}")
        oil = nums["oil_fume"]
        flow = nums["flow"]
        if flow is not None and flow > 0:
            # GB 18483-2001: C_ref = C * Q / (n * 2000): extra dilution air does not hide emissions.
            # A zero flow is not converted (it would turn any concentration into 0, hiding a stuck
            # flow sensor): the measured value is kept, flagged unconverted.
            ref = oil * flow / (device.stove_heads * self._ref_flow)
            converted = True
        else:
            ref, converted = oil, False
        return Reading(
            time_ms=time_ms,
            device_id=device.device_id,
            restaurant_id=device.restaurant_id,
            district=device.district,
            oil_fume_mg_m3=oil,
            oil_fume_ref_mg_m3=ref,
            ref_converted=converted,
            pm_mg_m3=nums["pm"],
            nmhc_mg_m3=nums["nmhc"],
            flow_m3_h=flow,
            fan_on=flags["fan"],
            purifier_on=flags["purifier"],
            source=source,
        )
