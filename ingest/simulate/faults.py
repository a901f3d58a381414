"""The fault messages the simulator mixes in (:func:`ingest.simulate.runner.run_simulation` schedules them).

Fault injection (``inject_faults=True``): about ``faults_per_device_day`` extra messages per device and
simulated day (at least one of each kind): garbage bytes, invalid JSON, NaN, negative values, a reading
from the unknown device ``FW-UNKNOWN-9``, a timestamp 2 days in the future, and for HJ 212 a frame with a
wrong CRC and a truncated frame. Fault messages are extras: every valid reading is still sent.

:class:`FaultPlan` is the schedule both transports share (MQTT, :mod:`ingest.simulate.runner`; HJ 212 over
TCP, :mod:`ingest.simulate.gateway_client`): the same seed gives the same faults after the same readings.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import orjson

from ingest.registry import Registry
from ingest.simulate.encode import _json_obj, _rfc3339, encode_hj212, encode_json
from ingest.simulate.kitchen import behaviours
from ingest.simulate.model import FAULT_KINDS_HJ212, FAULT_KINDS_JSON, UNKNOWN_DEVICE_ID, KitchenModel
from ingest.simulate.series import SimReading
from ingest.timeutil import now_ms


def _fault_message(
    kind: str,
    r: SimReading,
    *,
    fmt: str,
    topic_prefix: str,
    factors: dict[str, str],
    tz: str,
    pw: str,
    rng: random.Random,
    model: KitchenModel,
    nth: int,
) -> tuple[str, bytes]:
    """Topic and payload of one fault message built around reading ``r`` (already moved to t + 30 s)."""
    suffix = "hj212" if fmt == "hj212" else "reading"
    dev = UNKNOWN_DEVICE_ID if kind == "unknown_device" else r.device_id
    topic = f"{topic_prefix}/{dev}/{suffix}"
    if kind == "garbage":
        # 0xFF never occurs in UTF-8, so this can never be mistaken for a valid message.
        return topic, b"\xff" + bytes(rng.randrange(256) for _ in range(rng.randint(8, 64)))
    if kind == "nan":
        r = replace(r, oil_fume=math.nan)
    elif kind == "negative":
        r = replace(r, oil_fume=-round(rng.uniform(0.1, 2.0), 3))
    elif kind == "unknown_device":
        r = replace(r, device_id=UNKNOWN_DEVICE_ID)
    elif kind == "clock_skew":
        # Future relative to the wall clock as well, so a validator's skew check always sees it.
        skewed_s = max(r.time_ms, now_ms()) // 1000 + model.clock_skew_s
        r = replace(r, time_ms=skewed_s * 1000)
    if fmt == "hj212":
        frame = encode_hj212(r, factors=factors, tz=tz, pw=pw)
        if kind == "bad_crc":
            crc = int(frame[-6:-2], 16) ^ (1 + rng.randrange(0xFFFE))
            frame = frame[:-6] + f"{crc:04X}".encode("ascii") + b"\r\n"
        elif kind == "truncated":
            frame = frame[: len(frame) * 3 // 5]
        return topic, frame
    if kind == "nan":
        # JSON has no NaN: alternate the non-standard literal token and a string.
        token = b"NaN" if nth % 2 == 0 else b'"NaN"'
        obj = _json_obj(r, _rfc3339(r.time_ms, tz))
        obj["oil_fume"] = "__NAN__"
        return topic, orjson.dumps(obj).replace(b'"__NAN__"', token)
    payload = encode_json(r, tz=tz)
    if kind == "invalid_json":
        payload = payload[: len(payload) // 2] if nth % 2 == 0 else payload.replace(b",", b";", 2)
    return topic, payload


class FaultPlan:
    """Which fault messages follow which reading: after the reading with index ``i`` (in the order of
    :func:`~ingest.simulate.series.generate`) come the faults planned at ``i`` (:meth:`after`).

    About ``faults_per_device_day`` per device and simulated day, at least one of each kind; none when
    ``enabled`` is false or nothing is sent. ``flaky`` devices send the invalid values (NaN, negative)
    when there are any; other faults come from the device that just sent (so an offline one stays silent).
    """

    def __init__(
        self,
        *,
        registry: Registry,
        enabled: bool,
        total: int,
        hours: float,
        seed: int,
        fmt: str,
        model: KitchenModel,
    ) -> None:
        self.schedule: dict[int, list[str]] = {}
        self.counts: dict[str, int] = {}
        self.rng = random.Random(f"fumewatch-faults:{seed}:{fmt}")
        self.fmt, self.model = fmt, model
        beh = behaviours(registry, seed, model=model)
        self.flaky = [d for d, b in beh.items() if b == "flaky_sensor"]
        if enabled and total > 0:
            kinds = FAULT_KINDS_HJ212 if fmt == "hj212" else FAULT_KINDS_JSON
            self.counts = dict.fromkeys(kinds, 0)
            device_days = len(registry) * hours / 24
            n_faults = max(len(kinds), round(model.faults_per_device_day * device_days))
            planned = list(kinds) + [self.rng.choice(kinds) for _ in range(n_faults - len(kinds))]
            self.rng.shuffle(planned)
            for kind in planned:
                self.schedule.setdefault(self.rng.randrange(total), []).append(kind)

    def after(
        self,
        i: int,
        r: SimReading,
        *,
        topic_prefix: str,
        factors: dict[str, str],
        tz: str,
        pws: dict[str, str],
    ) -> list[tuple[str, str, bytes]]:
        """(device the message names, topic, payload) of the faults planned after reading ``i`` (``r``)."""
        out = []
        for kind in self.schedule.get(i, ()):
            target = r.device_id
            if kind in ("nan", "negative") and self.flaky:
                target = self.flaky[self.counts[kind] % len(self.flaky)]
            base = replace(r, device_id=target, time_ms=r.time_ms + self.model.fault_offset_s * 1000)
            topic, payload = _fault_message(
                kind,
                base,
                fmt=self.fmt,
                topic_prefix=topic_prefix,
                factors=factors,
                tz=tz,
                pw=pws.get(target, "123456"),
                rng=self.rng,
                model=self.model,
                nth=self.counts[kind],
            )
            self.counts[kind] += 1
            out.append((UNKNOWN_DEVICE_ID if kind == "unknown_device" else target, topic, payload))
        return out
