"""Health and Prometheus metrics over HTTP: ``GET /healthz`` (JSON) and ``GET /metrics``.

Metrics are read from the services' counters when Prometheus scrapes (a custom collector), so the
message hot path pays nothing for them. Off unless ``[metrics] port`` is set.

Ingest's /healthz answers 503 when it cannot make progress (:func:`ingest_problems`, docs/reliability.md):
``store_stalled`` (the writer has failed or hung for ``[metrics] store_stall_s`` while messages wait),
``buffer_full`` / ``buffer_stuck`` (the InfluxDB disk buffer), ``worker_dead`` (a thread that must run is
gone) and ``broker_unreachable`` (for longer than ``[metrics] broker_unreachable_s``).
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
#: The data-integrity checks (alerts.rules; ingest may not import alerts), each a series from the start.
INTEGRITY_CHECKS = (
    "suspect_zero",
    "suspect_flatline",
    "suspect_replay",
    "suspect_clone",
    "suspect_clock",
    "suspect_flow",
)

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
        state = self.svc.state
        dropped = CounterMetricFamily(
            "fumewatch_dead_letters_dropped",
            "Dead letters held back by the rate caps (summarised in dead_letter_overflow rows), by reason",
            labels=["reason"],
        )
        for reason, n in sorted(dict(getattr(state, "dropped_by_reason", {})).items()):
            dropped.add_metric([reason], n)
        yield dropped
        yield CounterMetricFamily(
            "fumewatch_dead_letters_redelivered",
            "Dead letters of redelivered messages (MQTT DUP) not written again: the first delivery's exist",
            value=getattr(state, "redelivered", 0),
        )
        yield CounterMetricFamily(
            "fumewatch_dead_letters_purged",
            "Dead letters deleted by retention",
            value=getattr(state, "purged", 0),
        )
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
        problems = ingest_problems(self.svc)
        store_ok = not any(p["check"] in STORE_CHECKS for p in problems)
        yield GaugeMetricFamily(
            "fumewatch_store_healthy", "1 while the stores make progress (see /healthz)", value=int(store_ok)
        )
        yield GaugeMetricFamily("fumewatch_healthy", "1 when /healthz answers 200", value=int(not problems))
        errors = CounterMetricFamily(
            "fumewatch_store_write_errors", "Store write errors by writer and kind", labels=["writer", "kind"]
        )
        rejected = CounterMetricFamily(
            "fumewatch_store_rejected_points",
            "Readings a store rejected for good (kept as dead letters)",
            labels=["writer"],
        )
        stuck = GaugeMetricFamily(
            "fumewatch_store_stuck_seconds",
            "How long a writer has failed or hung (0 = progressing)",
            labels=["writer"],
        )
        for h in writers(self.svc):
            for kind in ("permanent", "transient"):
                errors.add_metric([h.name, kind], h.errors.get(kind, 0))
            rejected.add_metric([h.name], h.rejected_points)
            stuck.add_metric([h.name], h.stuck_for())
        yield errors
        yield rejected
        yield stuck
        first = getattr(self.svc.store, "_first", None)  # InfluxDB's first-wins index (store/first_wins.py)
        if first is not None:
            yield CounterMetricFamily(
                "fumewatch_first_wins_lookups",
                "Readings older than the first-wins index checked against InfluxDB",
                value=first.looked_up,
            )
            yield CounterMetricFamily(
                "fumewatch_first_wins_unchecked",
                "Readings that needed that check while InfluxDB could not answer (judged by the index alone)",
                value=first.unchecked,
            )
        alive = GaugeMetricFamily("fumewatch_worker_alive", "1 while the thread runs", labels=["thread"])
        for name, ok in sorted(workers(self.svc).items()):
            alive.add_metric([name], int(ok))
        yield alive
        devices = getattr(self.svc, "devices", None)
        if devices is not None:
            yield from device_metrics(devices.totals())


def device_metrics(t: dict) -> Iterable:
    """The per-device counters' totals since start (ingest.device_stats; ``fumewatch devices`` has them
    per device and hour). Label sets are capped there; what is beyond a cap is counted as ``other``."""
    unknown = CounterMetricFamily(
        "fumewatch_hj212_unknown_codes",
        "HJ 212 factor entries the device's dialect does not know, by device and factor code (at most "
        "1000 device/code series: beyond, device=other,code=other; fumewatch devices lists each device's)",
        labels=["device", "code"],
    )
    for (device, code), n in sorted(t["unknown_codes"].items()):
        unknown.add_metric([device, code], n)
    yield unknown
    flags = CounterMetricFamily(
        "fumewatch_hj212_flags",
        "HJ 212 data flags of the values of accepted readings, by flag (at most 20 flags: beyond, flag=other)",
        labels=["flag"],
    )
    for flag, n in sorted(t["flags"].items()):
        flags.add_metric([flag], n)
    yield flags
    variants = CounterMetricFamily(
        "fumewatch_hj212_crc_variant",
        "HJ 212 frames admitted by their dialect's opt-in CRC variant, by variant (at most 20: beyond, "
        "variant=other)",
        labels=["variant"],
    )
    for variant, n in sorted(t["crc_variants"].items()):
        variants.add_metric([variant], n)
    yield variants
    notes = t["notes"]
    subpackets = CounterMetricFamily(
        "fumewatch_hj212_subpackets",
        "HJ 212 sub-packets: held (waiting for the rest of their message), done (a message completed)",
        labels=["kind"],
    )
    for kind in ("held", "done"):
        subpackets.add_metric([kind], notes.get(f"subpacket_{kind}", 0))
    yield subpackets
    by_kind = CounterMetricFamily(
        "fumewatch_ingest_notes",
        "Facts about accepted input the pipeline noted, by kind (crc_variant, subpacket_held, "
        "subpacket_done, ...; at most 20 kinds: beyond, kind=other)",
        labels=["kind"],
    )
    for kind, n in sorted(notes.items()):
        by_kind.add_metric([kind], n)
    yield by_kind
    yield CounterMetricFamily(
        "fumewatch_device_stats_dropped",
        "Hours of device counters given up while the state database could not take them for long",
        value=t["dropped_buckets"],
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
        yield CounterMetricFamily(
            "fumewatch_maintenance_reminders",
            "Maintenance reminders (清洗提醒) stored since start",
            value=getattr(self.svc, "reminders_total", 0),
        )
        integrity = CounterMetricFamily(
            "fumewatch_data_integrity",
            "Data-integrity findings stored since start, by check (docs/integrity.md)",
            labels=["check"],
        )
        by_check = getattr(self.svc, "integrity_by_check", {})
        for check in sorted(set(INTEGRITY_CHECKS) | set(by_check)):
            integrity.add_metric([check], by_check.get(check, 0))
        yield integrity
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


STORE_CHECKS = {"store_stalled", "buffer_full", "buffer_stuck"}


def writers(service) -> list:
    """The WriteHealth of the service's writer and of the store's own writers (the InfluxDB drain)."""
    own = getattr(service, "writer", None)
    return ([own.health] if own is not None else []) + list(service.store.write_health())


def workers(service) -> dict[str, bool]:
    fn = getattr(service, "workers", None)
    return fn() if fn is not None else {}


def ingest_problems(service) -> list[dict]:
    """Why ingest cannot make progress right now; [] when it can."""
    m = service.settings.metrics
    out: list[dict] = [{"check": "worker_dead", "thread": n} for n, ok in workers(service).items() if not ok]
    down = service.broker_down_for() if hasattr(service, "broker_down_for") else 0.0
    if down > m.broker_unreachable_s:
        out.append({"check": "broker_unreachable", "for_s": round(down, 1)})
    writer = getattr(service, "writer", None)
    if writer is not None:
        stuck = writer.health.stuck_for()
        waiting = writer.holding + buffered(service)
        if waiting and stuck > m.store_stall_s:
            out.append(
                {
                    "check": "store_stalled",
                    "store": service.store.kind,
                    "stuck_for_s": round(stuck, 1),
                    "waiting_messages": waiting,
                    "error": writer.health.last_error,
                }
            )
    out.extend({"store": service.store.kind, **p} for p in service.store.problems(m.store_stall_s))
    return out


def describe_problem(p: dict) -> str:
    """A problem of /healthz in words: ``check (key=value, ...)``."""
    extra = ", ".join(f"{k}={v}" for k, v in p.items() if k != "check" and v not in ("", None))
    return f"{p['check']} ({extra})" if extra else p["check"]


def ingest_health(service) -> HealthCheck:
    def check() -> tuple[bool, dict]:
        problems = ingest_problems(service)
        return not problems, {
            "reason": "; ".join(describe_problem(p) for p in problems),
            "problems": problems,
            "mqtt_connected": service.connected,
            "buffered_readings": buffered(service),
            "store_backlog": int(service.store.backlog),
            "readings_stored": service.stats.readings_stored,
            "workers": workers(service),
            "writers": [h.snapshot() for h in writers(service)],
        }

    return check
