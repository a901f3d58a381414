"""Service wiring shared by the commands: health and metrics endpoints of a running service."""

from __future__ import annotations

from ingest.config import Settings


def start_metrics(s: Settings, *, ingest=None, alerts=None):
    """Start /healthz + /metrics when ``[metrics] port`` is set; None otherwise."""
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
    else:

        def health() -> tuple[bool, dict]:
            ok = alerts.client is None or alerts.client.is_connected()
            return ok, {"mqtt_connected": ok, "transitions": alerts.transitions_total}

    return MetricsServer(s.metrics.host, s.metrics.port, health, collectors).start()
