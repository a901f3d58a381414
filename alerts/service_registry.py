"""The alerts service's registry side (a part of :class:`alerts.service.AlertsService`): what it
subscribes to (every device's topics, or a partition's own, :mod:`alerts.partition`), the limits of its
devices, and an edited registry taken without a restart (``fumewatch alerts`` polls the file every
``[alerts] registry_poll_s``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from alerts.partition import Partition, subscribe_devices
from alerts.profiles import check_registry
from ingest.pipeline import Pipeline
from ingest.registry import Registry

log = logging.getLogger("fumewatch.alerts")


class RegistryFollower:
    """:class:`~alerts.service.AlertsService` provides the attributes below."""

    settings: Any
    profiles: Any
    partition: Partition | None
    full_registry: Registry
    registry: Registry
    detector: Any
    client: Any
    _cfg: Any
    _lock: threading.RLock
    _limits: dict
    _pipeline: Pipeline | None
    _dash: Any
    _subscribe: bool

    def _subscribe_readings(self, client: Any, prefix: str) -> None:
        """On each connect: the readings topics of every device, or (partitioned) of its own devices one by
        one (a persistent session keeps them; subscribing again is harmless)."""
        if self.partition is None:
            client.subscribe([(f"{prefix}/+/reading", 1), (f"{prefix}/+/hj212", 1)])
            return
        n = subscribe_devices(client, prefix, self.registry)
        log.info(
            "event=partition_subscribed partition=%s devices=%d topics=%d",
            self.partition,
            len(self.registry),
            n,
        )

    def _limits_of(self, registry: Registry) -> dict:
        return {
            (d.device_id, pol): lim
            for d in registry
            for pol, lim in self.profiles.for_device(d, self._cfg.default_profile)
            .limits_for(d.stove_heads)
            .items()
        }

    def reload_registry(self, registry: Registry) -> bool:
        """Take an edited registry (``fumewatch alerts`` polls the file): devices are judged, notified and
        (partitioned) subscribed by the new one. A registry the limit profiles or dialects refuse is
        logged and not taken (False)."""
        owned = self.partition.select(registry) if self.partition is not None else registry
        problems = check_registry(self.profiles, owned, self._cfg.default_profile)
        try:
            pipeline = Pipeline(self.settings, owned) if self._pipeline is not None else None
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            log.error("event=registry_reload_refused problems=%s", "; ".join(problems)[:500])
            return False
        with self._lock:
            old = self.registry
            self.full_registry, self.registry = registry, owned
            self.detector.use_registry(owned)
            self._limits = self._limits_of(owned)
            if pipeline is not None:
                self._pipeline = pipeline
            if self._dash is not None:
                self._dash.restaurants.registry = registry
            for judge in (getattr(self, "maintenance", None), getattr(self, "integrity", None)):
                if judge is not None:
                    judge.set_registry(owned)
        added = [d for d in owned if d.device_id not in old]
        removed = [d for d in old if d.device_id not in owned]
        log.info(
            "event=registry_reloaded devices=%d added=%d removed=%d", len(owned), len(added), len(removed)
        )
        client = self.client
        if self.partition is not None and self._subscribe and client is not None and client.is_connected():
            prefix = self.settings.mqtt.topic_prefix.strip("/")
            if added:
                subscribe_devices(client, prefix, added)
            if removed:
                subscribe_devices(client, prefix, removed, unsubscribe=True)
        return True
