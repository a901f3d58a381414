"""``fumewatch hj212-gateway``: the TCP server HJ 212 data loggers connect to (docs/gateway.md)."""

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
from ingest import logs

log = logging.getLogger("fumewatch.gateway")


def cmd_gateway(args: argparse.Namespace) -> int:
    from ingest.gateway.runner import GatewayRunner

    s = settings_from(args)
    logs.setup(s.logging.level, s.logging.format)
    listen = args.listen or s.gateway.listen or "127.0.0.1:9212"
    registry = load_registry(s)
    reach_broker(s, args.connect_timeout)
    try:
        runner = GatewayRunner(s, registry, listen)
        runner.start()
    except (ValueError, OSError) as exc:
        raise CLIError(f"cannot listen on {listen}: {exc}") from None
    stop = threading.Event()
    install_signal_handlers(stop)
    log.info("event=gateway_start listen=%s:%d devices=%d", *runner.address, len(registry))  # type: ignore[misc]
    try:
        stop.wait()
    finally:
        runner.stop()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "hj212-gateway",
        help="HJ 212 over TCP: data loggers connect here; frames go to the broker, answered with 9014",
    )
    add_common(sp, broker=True, registry=True, connect_timeout=True)
    sp.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to listen on (default [gateway] listen, else 127.0.0.1:9212: localhost only)",
    )
    sp.set_defaults(func=cmd_gateway)
