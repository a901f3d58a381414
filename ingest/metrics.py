"""Health and Prometheus metrics over HTTP: ``GET /healthz`` (JSON) and ``GET /metrics``.

Metrics are read from the services' counters when Prometheus scrapes (a custom collector), so the
message hot path pays nothing for them. Off unless ``[metrics] port`` is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("fumewatch.metrics")

HealthCheck = Callable[[], tuple[bool, dict]]


class IngestCollector(Collector):
    def __init__(self, service) -> None:  # ingest.service.IngestService
        self.svc = service

    def collect(self) -> Iterable:
        st = self.svc.stats
        yield CounterMetricFamily("fumewatch_messages_received", "MQTT messages received", value=st.messages)
        yield CounterMetricFamily(
            "fumewatch_readings_received", "Valid readings decoded", value=st.readings_received
        )
        yield CounterMetricFamily(
            "fumewatch_readings_stored",
            "Readings the store accepted (then acknowledged)",
            value=st.readings_stored,
        )
        dead = CounterMetricFamily("fumewatch_dead_letters", "Refused input by reason", labels=["reason"])
        for reason, n in sorted(dict(st.dead_by_reason).items()):
            dead.add_metric([reason], n)
        yield dead
        yield CounterMetricFamily(
            "fumewatch_hj212_ignored_frames", "HJ 212 frames of other CN codes", value=st.ignored_frames
        )
        yield GaugeMetricFamily(
            "fumewatch_buffered_readings",
            "Readings received but not yet durable in the store (service buffer + store backlog)",
            value=buffered(self.svc),
        )
        yield GaugeMetricFamily(
            "fumewatch_mqtt_connected", "1 when connected to the broker", value=int(self.svc.connected)
        )


class AlertsCollector(Collector):
    def __init__(self, service) -> None:  # alerts.service.AlertsService
        self.svc = service

    def collect(self) -> Iterable:
        c = self.svc.detector.counters
        yield CounterMetricFamily(
            "fumewatch_detector_readings", "Readings counted into windows", value=c["readings"]
        )
        yield CounterMetricFamily(
            "fumewatch_late_readings", "Readings for already finalised windows", value=c["late_readings"]
        )
        yield CounterMetricFamily(
            "fumewatch_windows_finalised", "Windows finalised", value=c["windows_finalised"]
        )
        yield CounterMetricFamily(
            "fumewatch_transitions", "Event transitions", value=self.svc.transitions_total
        )
        open_ = GaugeMetricFamily("fumewatch_events_open", "Open events by kind", labels=["kind"])
        counts: dict[str, int] = {}
        for e in self.svc.detector.open_events():
            counts[e.kind] = counts.get(e.kind, 0) + 1
        for kind in ("exceedance", "purifier_off", "offline", "late_data"):
            open_.add_metric([kind], counts.get(kind, 0))
        yield open_
        notices = CounterMetricFamily("fumewatch_notices", "Notices by outcome", labels=["status"])
        for status in ("sent", "failed", "skipped", "already_sent"):
            notices.add_metric([status], self.svc.notices.get(status, 0))
        yield notices


class MetricsServer:
    """A tiny HTTP server for /healthz and /metrics (loopback by default)."""

    def __init__(self, host: str, port: int, health: HealthCheck, collectors: Iterable[Collector]) -> None:
        self.registry = CollectorRegistry()
        for c in collectors:
            self.registry.register(c)
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif path == "/healthz":
                    ok, detail = health()
                    body = orjson.dumps({"status": "ok" if ok else "degraded", **detail})
                    ctype, code = "application/json", 200 if ok else 503
                else:
                    body, ctype, code = b'{"error": "not found"}', "application/json", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("event=metrics_listening port=%d", self.port)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def buffered(service) -> int:
    """Readings received but not yet durable: the service's own count when it has one, else the store's."""
    value = getattr(service, "buffered", None)
    return int(value) if value is not None else int(service.store.backlog)


def ingest_health(service) -> HealthCheck:
    def check() -> tuple[bool, dict]:
        return service.connected, {
            "mqtt_connected": service.connected,
            "buffered_readings": buffered(service),
            "readings_stored": service.stats.readings_stored,
        }

    return check
