"""``fumewatch hj212-gateway``: the TCP server HJ 212 data loggers connect to (docs/gateway.md).

Its connections go to the state database (``--state``, table ``gateway_connections``, every ``[gateway]
status_interval_s``) for ``fumewatch devices``; /healthz and /metrics when ``[metrics] port`` is set.
:func:`start_gateway` is what ``fumewatch run`` uses too.
"""

from __future__ import annotations

import argparse
import logging
import threading

from fumewatch.cli.common import (
    CLIError,
    add_common,
    install_signal_handlers,
    load_registry,
    reach_broker,
    settings_from,
)
from fumewatch.services import start_metrics
from ingest import logs
from ingest.db import display

log = logging.getLogger("fumewatch.gateway")


def start_gateway(s, registry, listen: str, state: str | None):
    """A started GatewayRunner on ``listen`` writing its connections to ``state`` (None: nowhere), or a
    one-line CLIError; logs ``event=gateway_start`` with the address it listens on."""
    from ingest.gateway.runner import GatewayRunner

    try:
        runner = GatewayRunner(s, registry, listen, state=state)
        runner.start()
    except (ValueError, OSError, TimeoutError) as exc:
        raise CLIError(f"cannot listen on {listen}: {exc}") from None
    log.info(
        "event=gateway_start listen=%s devices=%d status=%s",
        runner.listen_text,
        len(registry),
        display(runner.state) if runner.state else "off",
    )
    return runner


def cmd_gateway(args: argparse.Namespace) -> int:
    from fumewatch.db import prepare_for_service

    s = settings_from(args)
    logs.setup(s.logging.level, s.logging.format)
    listen = args.listen or s.gateway.listen or "127.0.0.1:9212"
    registry = load_registry(s)
    reach_broker(s, args.connect_timeout)
    state = s.ingest.state if s.gateway.status_interval_s else None
    if state is not None:
        prepare_for_service(state)  # SQLite: upgraded in place; PostgreSQL: refused when not current
    stop = threading.Event()
    install_signal_handlers(stop)
    runner = start_gateway(s, registry, listen, state)
    metrics = None
    try:
        metrics = start_metrics(s, gateway=runner)
        stop.wait()
    finally:
        if metrics is not None:
            metrics.stop()
        runner.stop()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "hj212-gateway",
        help="HJ 212 over TCP: data loggers connect here; frames go to the broker, answered with 9014",
    )
    add_common(sp, broker=True, registry=True, state=True, connect_timeout=True)
    sp.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to listen on (default [gateway] listen, else 127.0.0.1:9212: localhost only)",
    )
    sp.set_defaults(func=cmd_gateway)
