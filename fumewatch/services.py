"""Service wiring shared by the commands: health and metrics endpoints of a running service, and the
alerts worker's life (standby, active, registry edits)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ingest.config import Settings

log = logging.getLogger("fumewatch.alerts.cli")


def run_alerts_worker(s, open_all: Callable, stop: threading.Event, part) -> int:
    """``fumewatch alerts``: (partitioned: wait as a standby until partition ``part``'s lock is ours, then)
    ``open_all()`` -> (registry, ledger, store) and run the alerts service until ``stop``, taking registry
    edits; a lost lock ends the process (exit 3). Raises :class:`alerts.partition.PartitionError` when
    workers of another partition count are running."""
    from alerts.partition import Fence, PartitionLock, RegistryWatch
    from alerts.service import AlertsService

    lock = PartitionLock(s.ingest.state, part) if part is not None else None
    metrics = store = None
    try:
        if lock is not None:
            # A standby: nothing restored, no MQTT session, until the active worker of K ends.
            metrics = start_metrics(s, standby=part)
            if not lock.acquire(stop):
                return 0
            if metrics is not None:
                metrics.stop()
            log.info("event=partition_active partition=%s lock=%r", part, lock.describe())
        registry, ledger, store = open_all()  # a standby opens nothing (the store's buffer has one drain)
        fence = Fence(lock) if lock is not None else None
        svc = AlertsService(s, registry, ledger, store=store, subscribe=True, partition=part, fence=fence)
        metrics = start_metrics(s, alerts=svc)
        poll_s = s.alerts.registry_poll_s
        watch = RegistryWatch(s.ingest.registry, registry) if poll_s else None
        svc.start()
        next_poll = time.monotonic() + poll_s
        while not stop.wait(1.0):
            if fence is not None:
                fence()
            if watch is not None and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + poll_s
                new = watch.poll()
                if new is not None:
                    svc.reload_registry(new)
        svc.stop()
    finally:
        if metrics is not None:
            metrics.stop()
        if store is not None:
            store.close()
        if lock is not None:
            lock.release()
    return 0


def start_metrics(s: Settings, *, ingest=None, alerts=None, standby=None, gateway=None):
    """Start /healthz + /metrics when ``[metrics] port`` is set; None otherwise. ``standby``: the partition
    (alerts/partition.py) a standby alerts worker waits for; healthy, and it says so. ``gateway``: a
    running HJ 212 GatewayRunner (``fumewatch hj212-gateway``, or ``fumewatch run`` with ``[gateway]
    listen``): its /metrics families, and /healthz fails while it does not listen or its broker session is
    away (beside ingest's, under ``gateway``, in ``fumewatch run``)."""
    if not s.metrics.port:
        return None
    from ingest.metrics import IngestCollector, MetricsServer, ingest_health

    collectors = []
    if ingest is not None:
        collectors.append(IngestCollector(ingest))
    if alerts is not None:
        from ingest.metrics import AlertsCollector

        collectors.append(AlertsCollector(alerts))
    if ingest is not None:
        health = ingest_health(ingest)
    elif standby is not None:

        def health() -> tuple[bool, dict]:
            return True, {"role": "standby", "partition": str(standby)}

    elif alerts is not None:

        def health() -> tuple[bool, dict]:
            ok = alerts.client is None or alerts.client.is_connected()
            out = {"mqtt_connected": ok, "transitions": alerts.transitions_total}
            if getattr(alerts, "partition", None) is not None:
                out |= {"role": "active", "partition": str(alerts.partition), "devices": len(alerts.registry)}
            return ok, out

    else:
        health = None
    if gateway is not None:
        health = _with_gateway(s, gateway, health, collectors)
    return MetricsServer(s.metrics.host, s.metrics.port, health, collectors).start()


def _with_gateway(s: Settings, gateway, health, collectors: list):
    """Add the gateway's collector; its health alone, or the service's with the gateway's under
    ``gateway`` (both must be healthy)."""
    from ingest.gateway.metrics import GatewayCollector, gateway_health

    collectors.append(GatewayCollector(gateway))
    own = gateway_health(gateway, s.metrics.broker_unreachable_s)
    if health is None:
        return own

    def both() -> tuple[bool, dict]:
        ok, detail = health()
        gw_ok, gw = own()
        if not gw_ok:
            gw_reason = f"gateway: {gw['reason']}"
            detail["reason"] = f"{detail['reason']}; {gw_reason}" if detail.get("reason") else gw_reason
        return ok and gw_ok, {**detail, "gateway": gw}

    return both
