"""/metrics and /healthz of the HJ 212 gateway (``fumewatch hj212-gateway``, and ``fumewatch run`` with
``[gateway] listen``): :class:`GatewayCollector` reads ``Gateway.totals``, the open connections and the
broker session of a running :class:`~ingest.gateway.runner.GatewayRunner` when Prometheus scrapes (the
frames' path pays nothing for it); :func:`gateway_health` answers 503 while the gateway does not listen or
its broker session has been away for longer than ``[metrics] broker_unreachable_s`` (as ingest's).

Served by :class:`ingest.metrics.MetricsServer` (``fumewatch.services.start_metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.metrics import HealthCheck, describe_problem

#: Why the HJ 212 gateway refuses a frame (ingest/gateway/server.py), each a series from the start; others
#: (each hj212_<reason> of a frame that does not parse) appear when they happen.
GATEWAY_REFUSALS = (
    "bad_pw",
    "broker_timeout",
    "garbage",
    "hj212_bad_crc",
    "mn_switch",
    "oversize",
    "rate_limited",
    "unknown_device",
)
GATEWAY_LIMITS = ("max_connections", "max_connections_per_peer")


def _counts(counter) -> dict:
    """A copy of a Counter another thread (the gateway's loop) adds to."""
    for _ in range(5):
        try:
            return dict(counter)
        except RuntimeError:  # it grew a key while being copied
            continue
    return {}


class GatewayCollector(Collector):
    """The HJ 212 gateway's counters (``Gateway.totals``, its open connections and its broker session),
    read from a running ingest.gateway.runner.GatewayRunner when Prometheus scrapes."""

    def __init__(self, runner) -> None:  # ingest.gateway.runner.GatewayRunner
        self.runner = runner

    def collect(self) -> Iterable:
        gw = self.runner.gateway
        t = _counts(gw.totals) if gw is not None else {}
        yield GaugeMetricFamily(
            "fumewatch_gateway_connections_open",
            "HJ 212 data loggers' connections open now",
            value=len(gw.connections) if gw is not None else 0,
        )
        yield CounterMetricFamily(
            "fumewatch_gateway_connections_accepted",
            "HJ 212 connections accepted since start",
            value=t.get("connections", 0),
        )
        limits = CounterMetricFamily(
            "fumewatch_gateway_connections_refused",
            "HJ 212 connections closed at once by a limit ([gateway] max_connections, "
            "max_connections_per_peer)",
            labels=["limit"],
        )
        for limit in GATEWAY_LIMITS:
            limits.add_metric([limit], t.get(f"refused_connection:{limit}", 0))
        yield limits
        yield CounterMetricFamily(
            "fumewatch_gateway_frames",
            "HJ 212 frames accepted and acknowledged by the broker",
            value=t.get("frames", 0),
        )
        yield CounterMetricFamily(
            "fumewatch_gateway_acks",
            "Answers sent to data loggers (9014 data responses, 1012 set-time commands)",
            value=t.get("acks", 0),
        )
        yield CounterMetricFamily(
            "fumewatch_gateway_time_set",
            "1012 set-time commands sent in answer to a time-calibration request (1013)",
            value=t.get("time_set", 0),
        )
        refused = CounterMetricFamily(
            "fumewatch_gateway_refused",
            "HJ 212 frames and pieces the gateway refused (never answered), by reason",
            labels=["reason"],
        )
        reasons = {k.split(":", 1)[1]: n for k, n in t.items() if k.startswith("refused:")}
        for reason in sorted(set(GATEWAY_REFUSALS) | set(reasons)):
            refused.add_metric([reason], reasons.get(reason, 0))
        yield refused
        yield CounterMetricFamily(
            "fumewatch_gateway_idle_timeouts",
            "HJ 212 connections closed for silence ([gateway] idle_timeout_s)",
            value=t.get("idle_timeouts", 0),
        )
        dropped = CounterMetricFamily(
            "fumewatch_gateway_dropped_bytes",
            "Bytes dropped from the loggers' streams: garbage between frames, oversize frames",
            labels=["kind"],
        )
        for kind in ("garbage", "oversize"):
            dropped.add_metric([kind], t.get(f"{kind}_bytes", 0))
        yield dropped
        yield GaugeMetricFamily(
            "fumewatch_gateway_listening",
            "1 while the gateway accepts connections",
            value=int(self.runner.listening()),
        )
        pub = self.runner.publisher
        yield GaugeMetricFamily(
            "fumewatch_gateway_broker_connected",
            "1 while the gateway's broker session is up",
            value=int(pub is not None and pub.connected.is_set()),
        )
        writer = self.runner.status_writer
        if writer is not None:
            yield CounterMetricFamily(
                "fumewatch_gateway_status_rows_written",
                "Rows of gateway_connections written to the state database (fumewatch devices reads them)",
                value=writer.rows_written,
            )
            yield CounterMetricFamily(
                "fumewatch_gateway_status_write_failures",
                "Failed writes of gateway_connections (retried every second)",
                value=writer.failures,
            )


def gateway_problems(runner, broker_unreachable_s: float) -> list[dict]:
    """Why the gateway cannot take frames right now: not listening, or its broker session away for longer
    than ``broker_unreachable_s`` (the same grace as ingest's)."""
    out: list[dict] = []
    if not runner.listening():
        out.append({"check": "not_listening", "listen": runner.listen_text})
    down = runner.broker_down_for()
    if down > broker_unreachable_s:
        out.append({"check": "broker_unreachable", "for_s": round(down, 1)})
    return out


def gateway_health(runner, broker_unreachable_s: float) -> HealthCheck:
    def check() -> tuple[bool, dict]:
        problems = gateway_problems(runner, broker_unreachable_s)
        gw, pub, writer = runner.gateway, runner.publisher, runner.status_writer
        t = _counts(gw.totals) if gw is not None else {}
        return not problems, {
            "reason": "; ".join(describe_problem(p) for p in problems),
            "problems": problems,
            "listen": runner.listen_text,
            "listening": runner.listening(),
            "broker_connected": pub is not None and pub.connected.is_set(),
            "connections_open": len(gw.connections) if gw is not None else 0,
            "frames": t.get("frames", 0),
            "acks": t.get("acks", 0),
            "status": None
            if writer is None
            else {
                "state": writer.state,
                "rows_written": writer.rows_written,
                "pending": writer.pending,
                "failures": writer.failures,
                "last_error": writer.last_error,
            },
        }

    return check
