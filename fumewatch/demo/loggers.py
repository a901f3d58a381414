"""The demo's HJ 212 data loggers over TCP: a few of the simulated kitchens connect to the HJ 212 gateway
(ingest/gateway, started here on a free localhost port beside the embedded broker) the way a city's
installed loggers do, and send the hour after the simulated day as HJ 212 frames, each answered with a
9014 once the broker has it. Those monitors never speak MQTT; their readings reach the store through the
gateway, the broker and ingest like any other."""

from __future__ import annotations

from rich.console import Console

from ingest.config import Settings
from ingest.registry import Registry

#: How many of the kitchens send over TCP, and for how long after the day.
LOGGERS = 5
HOURS = 1.0


def over_tcp(
    console: Console, settings: Settings, registry: Registry, store, svc, *, after_ms: int, seed: int
) -> int:
    """Run the loggers; the readings they sent (for the demo's sent-versus-stored check)."""
    from ingest import simulate
    from ingest.gateway.runner import GatewayRunner

    loggers = Registry(list(registry)[:LOGGERS])
    runner = GatewayRunner(settings, registry, "127.0.0.1:0")  # no state database: the demo shows it here
    runner.start()
    try:
        assert runner.address is not None
        stats = simulate.run_gateway_simulation(
            runner.address,
            loggers,
            start_ms=after_ms,
            hours=HOURS,
            speed=0.0,
            seed=seed,
            batch=10,
            factors=settings.hj212.factors,
            tz=settings.hj212.timezone,
        )
        svc.wait_idle(quiet_s=1.0, timeout_s=60)
    finally:
        runner.stop()
    stored = sum(
        len(store.query(device_id=d.device_id, since_ms=after_ms, until_ms=after_ms + int(HOURS * 3600_000)))
        for d in loggers
    )
    host, port = runner.address
    console.print(
        f"HJ 212 over TCP (docs/gateway.md): {len(loggers)} data loggers connected to the gateway at "
        f"{host}:{port} and sent the hour after the day: {stats.frames} frames, {stats.answered} answered "
        f"with a 9014 once the broker had them, {stats.unanswered} unanswered; {stored} readings stored "
        f"({', '.join(d.device_id for d in loggers)})"
    )
    return stats.readings
