"""The demo's history: the two weeks before the simulated day for the kitchen whose purifier silts up.

``make demo`` replays one day, but a purifier silting up takes two weeks, and a maintenance reminder
(清洗提醒, alerts/maintenance) needs the services before it. So before the day, the silting kitchen's
last cleaning cycle (14 days, published over MQTT at high speed like the day itself) goes through
ingest into the store and through an alerts service of its own, for that kitchen only, with its own
detector state (``detector:demo-history``) in the same ledger: the other kitchens' monitors are not
taken for offline while they are silent. The kitchen's purifier is cleaned on the simulated day
(``KitchenModel.silting_cleaned_ordinal``), so the day shows what followed the reminder.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from fumewatch.demo import alerts as demo_alerts
from ingest import simulate
from ingest.config import Settings
from ingest.registry import Registry
from ingest.simulate import KitchenModel, SimStats
from ingest.store.base import Store
from ingest.timeutil import zone

DAYS = 14
STATE_NAME = "detector:demo-history"


def model_for(start_ms: int, tz: str) -> KitchenModel:
    """The kitchen model of the demo: the silting purifier was cleaned on the simulated day."""
    day = datetime.fromtimestamp(start_ms / 1000, zone(tz)).date()
    return dataclasses.replace(simulate.DEFAULT_MODEL, silting_cleaned_ordinal=day.toordinal())


def silting_devices(registry: Registry, seed: int) -> list[str]:
    return sorted(d for d, b in simulate.behaviours(registry, seed).items() if b == "silting_purifier")


def replay(
    settings: Settings,
    registry: Registry,
    devices: list[str],
    state_path: Path,
    broker_url: str,
    store: Store,
    ingest,  # noqa: ANN001 - ingest.service.IngestService
    route: list,
    *,
    start_ms: int,
    seed: int,
    model: KitchenModel,
    fmt: str,
) -> SimStats:
    """Publish ``devices``' last ``DAYS`` days before ``start_ms`` and judge them; ``route`` (a one-item
    list the ingest service's hook reads) points the readings at the history's alerts service meanwhile."""
    sub = Registry(d for d in registry if d.device_id in devices)
    model = dataclasses.replace(model, behaviour_of=tuple((d, "silting_purifier") for d in devices))
    ctx = demo_alerts.DemoAlerts(settings, sub, state_path, broker_url, store, state_name=STATE_NAME)
    route[:] = [ctx]
    try:
        since = start_ms - DAYS * 86_400_000
        sim = simulate.run_simulation(
            broker_url,
            sub,
            start_ms=since,
            hours=DAYS * 24,
            speed=DAYS * 86_400 / 6.0,  # about 6 s
            fmt=fmt,
            seed=seed,
            inject_faults=False,
            factors=settings.hj212.factors,
            tz=settings.hj212.timezone,
            model=model,
        )
        ingest.wait_idle(quiet_s=0.5, timeout_s=60)
        ctx.finish(end_ms=start_ms)
    finally:
        route[:] = []
        ctx.close()
    return sim
