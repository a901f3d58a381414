"""Publishing: :func:`run_simulation` paces the generated readings, encodes them, mixes in faults and
publishes them over MQTT.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest.config import DEFAULT_FACTORS, MqttSettings
from ingest.registry import Registry
from ingest.simulate.encode import encode_hj212, encode_json, encode_json_batch
from ingest.simulate.faults import FaultPlan
from ingest.simulate.model import DEFAULT_MODEL, KitchenModel
from ingest.simulate.publisher import _ProtocolRefused, _Publisher
from ingest.simulate.series import SimReading, count_readings, generate
from ingest.timeutil import zone


@dataclass
class SimStats:
    """What :func:`run_simulation` sent. ``messages`` counts every MQTT message, faults included;
    ``readings`` counts valid readings; ``faults`` counts fault messages by kind."""

    messages: int
    readings: int
    faults: dict[str, int] = field(default_factory=dict)
    devices: int = 0
    elapsed_s: float = 0.0

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_simulation(
    broker_url: str,
    registry: Registry,
    *,
    start_ms: int,
    hours: float,
    speed: float,
    fmt: str = "json",
    seed: int = 1,
    interval_s: int = 60,
    batch: int = 1,
    inject_faults: bool = False,
    topic_prefix: str = "fume/v1",
    factors: dict[str, str] | None = None,
    tz: str = "Asia/Shanghai",
    progress: Callable[[int, int], None] | None = None,
    qos: int = 1,
    username: str = "",
    password: str = "",
    max_in_flight: int = 1000,
    protocol: str = "auto",
    model: KitchenModel = DEFAULT_MODEL,
    connect_timeout_s: float = 10.0,
) -> SimStats:
    """Publish :func:`generate`'s readings to ``broker_url`` (mqtt://[user:pass@]host:port).

    ``speed`` is simulated seconds per wall second (2000: a day in ~43 s); ``speed <= 0`` sends as fast
    as the broker acknowledges. Pacing follows simulated time per time step. ``fmt`` "json" publishes to
    ``{prefix}/{device}/reading`` (single objects with RFC 3339 ``ts``, or arrays of up to ``batch``
    readings of one device with epoch-ms ``ts``), "hj212" to ``{prefix}/{device}/hj212`` (CN 2051 frames,
    ``batch`` frames concatenated per message). At most ``max_in_flight`` messages are unacknowledged at
    a time; returns once the broker has acknowledged every message (TimeoutError if acknowledgements
    stall for 30 s). ``protocol`` "5" or "3.1.1"; "auto" tries MQTT 5 and falls back to 3.1.1 when the
    broker refuses it (amqtt speaks 3.1.1 only).
    ``progress(done_readings, total_readings)`` is called at most 20 times a second and once at the end.
    """
    if fmt not in ("json", "hj212"):
        raise ValueError(f"fmt {fmt!r}: use 'json' or 'hj212'")
    if batch < 1:
        raise ValueError("batch must be >= 1")
    factors = dict(factors or DEFAULT_FACTORS)
    host, port, tls, user, pw = MqttSettings(
        broker=broker_url, username=username, password=password
    ).endpoint()
    pws = {d.device_id: (d.hj212_pw or "123456") for d in registry}
    total = count_readings(registry, start_ms, hours, seed=seed, interval_s=interval_s, model=model)
    devices = list(registry)

    faults = FaultPlan(
        registry=registry, enabled=inject_faults, total=total, hours=hours, seed=seed, fmt=fmt, model=model
    )

    def topic_for(dev: str) -> str:
        return f"{topic_prefix}/{dev}/{'hj212' if fmt == 'hj212' else 'reading'}"

    def encode_many(rs: list[SimReading]) -> bytes:
        if fmt == "hj212":
            return b"".join(encode_hj212(r, factors=factors, tz=tz, pw=pws[r.device_id]) for r in rs)
        return encode_json(rs[0], tz=tz) if len(rs) == 1 else encode_json_batch(rs)

    client_id = f"fumewatch-sim-{seed}-{os.getpid()}-{random.getrandbits(24):06x}"
    pub = None
    for proto in ("5", "3.1.1") if protocol == "auto" else (protocol,):
        try:
            pub = _Publisher(
                host,
                port,
                tls=tls,
                username=user,
                password=pw,
                client_id=client_id,
                qos=qos,
                max_in_flight=max_in_flight,
                protocol=proto,
                connect_timeout_s=connect_timeout_s,
            )
            break
        except _ProtocolRefused:
            if protocol != "auto" or proto == "3.1.1":
                raise
    assert pub is not None
    messages = 0
    done = 0
    buffers: dict[str, list[SimReading]] = {}
    wall0 = time.monotonic()
    last_progress = 0.0
    step_t = None
    try:
        for r in generate(registry, start_ms, hours, seed=seed, interval_s=interval_s, model=model):
            if speed > 0 and r.time_ms != step_t:
                step_t = r.time_ms
                wait = wall0 + (r.time_ms - start_ms) / 1000 / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            if batch == 1:
                pub.publish(topic_for(r.device_id), encode_many([r]))
                messages += 1
            else:
                buf = buffers.setdefault(r.device_id, [])
                buf.append(r)
                if len(buf) >= batch:
                    pub.publish(topic_for(r.device_id), encode_many(buf))
                    messages += 1
                    buffers[r.device_id] = []
            for _dev, topic, payload in faults.after(
                done, r, topic_prefix=topic_prefix, factors=factors, tz=tz, pws=pws
            ):
                pub.publish(topic, payload)
                messages += 1
            done += 1
            if progress is not None:
                now = time.monotonic()
                if now - last_progress >= 0.05:
                    last_progress = now
                    progress(done, total)
        for dev, buf in buffers.items():
            if buf:
                pub.publish(topic_for(dev), encode_many(buf))
                messages += 1
        pub.wait_all()
    finally:
        pub.close()
    if progress is not None:
        progress(done, total)
    return SimStats(
        messages=messages,
        readings=done,
        faults=faults.counts,
        devices=len(devices),
        elapsed_s=time.monotonic() - wall0,
    )


def default_start_ms(tz: str) -> int:
    """Midnight (display time zone) of yesterday: a full simulated day that is entirely in the past."""
    today = datetime.now(zone(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - timedelta(days=1)).timestamp() * 1000)
