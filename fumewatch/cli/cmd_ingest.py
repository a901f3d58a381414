"""``fumewatch ingest | readings | dead-letters | simulate | demo | config``."""

from __future__ import annotations

import argparse
import logging
import threading

import orjson

from fumewatch.cli.common import (
    CLIError,
    add_common,
    add_utc,
    existing_state,
    install_signal_handlers,
    load_registry,
    open_ingest,
    open_read_store,
    output_tz,
    period_args,
    present_times,
    reach_broker,
    settings_from,
    time_arg,
    write_rows,
)
from fumewatch.services import start_metrics
from ingest import logs
from ingest.model import READING_CSV_COLUMNS, round_for_display

log = logging.getLogger("fumewatch.cli")


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.service import IngestService

    s = settings_from(args)
    logs.setup(s.logging.level, s.logging.format)
    registry, store, state = open_ingest(s, args.connect_timeout)
    stop = threading.Event()
    install_signal_handlers(stop)
    svc = IngestService(s, registry, store, state)
    log.info("event=registry_loaded devices=%d path=%s", len(registry), s.ingest.registry)
    metrics = start_metrics(s, ingest=svc)
    try:
        svc.run_forever(stop)
    finally:
        if metrics is not None:
            metrics.stop()
        store.close()
        state.close()
    return 0


def _fmt_bool(v: object) -> object:
    if v is None:
        return None
    return "true" if v else "false"


def cmd_readings(args: argparse.Namespace) -> int:
    """Stored readings; ``time`` is in the display time zone with its offset, or UTC with ``--utc`` (JSON
    adds ``time_ms``)."""
    s = settings_from(args)
    tz = output_tz(args, s)
    since_ms, until_ms = period_args(args, s.display_tz)
    store = open_read_store(s)
    try:
        rows = store.query(
            restaurant_id=args.restaurant,
            device_id=args.device,
            since_ms=since_ms,
            until_ms=until_ms,
        )
    finally:
        store.close()
    for r in rows:
        present_times(r, tz)
        round_for_display(r)
        if args.format == "csv":
            r["fan_on"] = _fmt_bool(r["fan_on"])
            r["purifier_on"] = _fmt_bool(r["purifier_on"])
        if args.format != "json":  # HJ 212 data flags, exclusion and unknown entries, as k=v;k=v
            for k in ("flags", "extra"):
                r[k] = ";".join(f"{a}={b}" for a, b in (r.get(k) or {}).items())
    # The wire contract's columns, then what HJ 212 adds (docs/protocol.md "Data flags").
    columns = [*READING_CSV_COLUMNS, "flags", "excluded", "extra"]
    if args.format == "json":
        rows = [
            {
                **{c: r.get(c) for c in columns},
                "time_ms": r["time_ms"],
                "ref_converted": r["ref_converted"],
                "source": r["source"],
            }
            for r in rows
        ]
    write_rows(rows, columns, args.format)
    return 0


DEAD_LETTER_COLUMNS = ("received", "reason", "topic", "device_id", "message", "payload_excerpt")


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """Refused input; ``received`` in the display zone with offset, or UTC with ``--utc`` (JSON adds
    ``received_ms``)."""
    from ingest.state import StateDB

    s = settings_from(args)
    tz = output_tz(args, s)
    since_ms, until_ms = period_args(args, s.display_tz)
    st = StateDB(existing_state(s))
    try:
        items = st.dead_letters(since_ms, until_ms, args.reason)
    finally:
        st.close()
    rows = [
        present_times(
            {
                "received": "",
                "reason": d.reason,
                "topic": d.topic,
                "device_id": d.device_id,
                "message": d.detail.get("message", ""),
                "payload_excerpt": d.payload_excerpt,
                "received_ms": d.received_ms,
            },
            tz,
        )
        for d in items
    ]
    if args.format == "csv":
        rows = [{c: r[c] for c in DEAD_LETTER_COLUMNS} for r in rows]
    write_rows(rows, DEAD_LETTER_COLUMNS, args.format)
    return 0


# ---------------------------------------------------------------------- simulate / demo
def cmd_simulate(args: argparse.Namespace) -> int:
    from ingest import simulate
    from ingest.simulate import inject

    gateway = None
    if args.gateway:
        if args.format != "hj212":
            raise CLIError("--gateway speaks HJ 212 over TCP: add --format hj212 (JSON goes over MQTT)")
        try:
            gateway = simulate.parse_gateway(args.gateway)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if args.write_registry:
        reg = simulate.write_registry(args.write_registry, args.restaurants, seed=args.seed)
        print(f"wrote {len(reg)} devices to {args.write_registry}")
        if not args.broker and gateway is None:
            return 0
    s = settings_from(args)
    logs.setup(s.logging.level, s.logging.format)
    registry_path = args.registry or args.write_registry or s.ingest.registry
    registry = load_registry(s, registry_path)
    start_ms = time_arg(args.start, s.display_tz) if args.start else simulate.default_start_ms(s.display_tz)
    timeout_s = DEFAULT_SIMULATE_CONNECT_TIMEOUT_S if args.connect_timeout is None else args.connect_timeout
    try:
        args.inject = inject.parse(args.inject or "")
        injected = inject.assign(registry, simulate.behaviours(registry, args.seed), args.inject)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if gateway is not None:
        try:
            gw = _simulate_gateway(args, s, simulate, registry, start_ms, timeout_s, gateway)
        except ConnectionError as exc:  # the gateway cannot be reached
            raise CLIError(str(exc)) from None
        print(
            f"sent {gw.frames} frames ({gw.readings} readings, {sum(gw.faults.values())} faults injected) "
            f"from {gw.devices} devices to the HJ 212 gateway {args.gateway} in {gw.elapsed_s:.1f} s: "
            f"{gw.answered} answered (9014), {gw.resent} resent, {gw.unanswered} unanswered; "
            f"{gw.connections} connections (at most {gw.peak_open} open at once)"
        )
    else:
        reach_broker(s, timeout_s)
        try:
            stats = _simulate(args, s, simulate, registry, start_ms, timeout_s)
        except (ConnectionError, TimeoutError) as exc:  # refused after connecting, or acks stalled
            raise CLIError(str(exc)) from None
        print(
            f"sent {stats.readings} readings in {stats.messages} messages from {stats.devices} devices "
            f"in {stats.elapsed_s:.1f} s; faults injected: {sum(stats.faults.values())}"
        )
    for dev, (fault, source) in injected.items():
        print(f"data-integrity fault {fault}: {dev}" + (f" (copies {source})" if source else ""))
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


#: ``fumewatch simulate`` is a one-off command: without --connect-timeout it gives up after this long.
DEFAULT_SIMULATE_CONNECT_TIMEOUT_S = 10.0


def _sim_options(args: argparse.Namespace, s, start_ms: int, timeout_s: float) -> dict:
    """What both paths of ``simulate`` (MQTT, the TCP gateway) take from the command line and settings."""
    from dataclasses import replace

    from ingest.simulate.model import DEFAULT_MODEL

    return {
        "start_ms": start_ms,
        "hours": args.hours,
        "speed": args.speed,
        "seed": args.seed,
        "batch": args.batch,
        "inject_faults": args.inject_faults,
        "topic_prefix": s.mqtt.topic_prefix,
        "factors": s.hj212.factors,
        "tz": s.hj212.timezone,
        "connect_timeout_s": timeout_s,
        "model": replace(DEFAULT_MODEL, inject=args.inject),
    }


def _simulate(args: argparse.Namespace, s, simulate, registry, start_ms: int, timeout_s: float):
    return simulate.run_simulation(
        s.mqtt.broker, registry, fmt=args.format, **_sim_options(args, s, start_ms, timeout_s)
    )


def _simulate_gateway(args: argparse.Namespace, s, simulate, registry, start_ms, timeout_s, gateway):
    return simulate.run_gateway_simulation(
        gateway,
        registry,
        answer_timeout_s=args.answer_timeout,
        resends=args.resends,
        **_sim_options(args, s, start_ms, timeout_s),
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from fumewatch.demo import run_demo

    return run_demo(args)


def cmd_config(args: argparse.Namespace) -> int:
    """Every section's effective settings; secrets masked (tokens, passwords, credentials in URLs)."""
    from alerts.ledger import mask_target
    from ingest.masking import mask_tree

    s = settings_from(args)
    doc = orjson.loads(s.model_dump_json())  # SecretStr fields dump as '**********'
    # notice targets are apprise URLs: only scheme + host, as the ledger stores them
    if "notify" in doc:
        doc["notify"]["inspector_targets"] = [mask_target(t) for t in doc["notify"]["inspector_targets"]]
    # every other string (broker, store, influx url, district targets...): passwords in URLs, secret
    # query values and apprise tokens masked
    doc = mask_tree(doc)
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("ingest", help="run the ingest service (MQTT -> store)")
    add_common(sp, broker=True, store=True, registry=True, state=True, connect_timeout=True)
    sp.add_argument("--client-id", help="MQTT client id (fixed: the broker keeps the session)")
    sp.add_argument("--shared-group", help="subscribe as $share/GROUP/... to split load across workers")
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser("readings", help="print stored readings as CSV or JSON")
    add_common(sp, store=True)
    sp.add_argument("--restaurant", metavar="R")
    sp.add_argument("--device", metavar="D")
    sp.add_argument("--since", metavar="T", help="RFC 3339, a date (display time zone) or epoch ms")
    sp.add_argument("--until", metavar="T")
    sp.add_argument("--format", choices=("csv", "json"), default="csv")
    add_utc(sp)
    sp.set_defaults(func=cmd_readings)

    sp = sub.add_parser("dead-letters", help="list input that was refused, with the reason")
    add_common(sp, state=True)
    sp.add_argument("--since", metavar="T")
    sp.add_argument("--until", metavar="T")
    sp.add_argument("--reason", help="only this reason code")
    sp.add_argument("--format", choices=("csv", "json"), default="csv")
    add_utc(sp)
    sp.set_defaults(func=cmd_dead_letters)

    sp = sub.add_parser("simulate", help="simulate restaurant kitchens publishing readings")
    add_common(sp, broker=True, registry=True, connect_timeout=True)
    sp.add_argument("--start", metavar="T", help="simulated start time (default: yesterday 00:00)")
    sp.add_argument("--hours", type=float, default=24.0)
    sp.add_argument("--speed", type=float, default=0.0, help="simulated seconds per second (<=0: flat out)")
    sp.add_argument("--format", choices=("json", "hj212"), default="json")
    sp.add_argument("--batch", type=int, default=1, help="readings per message (JSON array / frames)")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--inject-faults", action="store_true", help="also send broken input (dead-letter demo)")
    sp.add_argument(
        "--inject",
        metavar="FAULTS",
        default="",
        help="data-integrity faults, one kitchen each: a comma-separated list of flatline, zero, replay, "
        "clone, clock, flow (docs/integrity.md)",
    )
    sp.add_argument(
        "--write-registry", metavar="FILE", help="write a registry CSV for the simulated kitchens"
    )
    sp.add_argument("--restaurants", type=int, default=50, help="with --write-registry: how many")
    sp.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="with --format hj212: the monitors connect to this HJ 212 gateway over TCP (fumewatch "
        "hj212-gateway), one connection each, instead of publishing over MQTT",
    )
    sp.add_argument(
        "--answer-timeout",
        metavar="SECONDS",
        type=_positive,
        default=10.0,
        help="with --gateway: wait this long for each write's 9014 answers before resending (default 10)",
    )
    sp.add_argument(
        "--resends",
        metavar="N",
        type=int,
        choices=range(0, 11),
        default=3,
        help="with --gateway: resend an unanswered frame at most N times, then count it (default 3)",
    )
    sp.set_defaults(func=cmd_simulate)

    sp = sub.add_parser("demo", help="the whole pipeline on embedded defaults, in about a minute")
    sp.add_argument("--restaurants", type=int, default=50)
    sp.add_argument("--hours", type=float, default=24.0)
    sp.add_argument("--duration", type=float, default=40.0, help="wall seconds for the simulated period")
    sp.add_argument(
        "--broker",
        default="auto",
        help="auto | amqtt | mosquitto (started in-process), or the URL of a running broker (mqtt://host:port)",
    )
    sp.add_argument(
        "--data-dir",
        default="data/demo",
        help="the demo's own directory (default data/demo): created and marked by the demo; a directory "
        "with other files is refused, never overwritten",
    )
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--format", choices=("json", "hj212"), default="json")
    sp.add_argument(
        "--inject",
        metavar="FAULTS",
        default="",
        help="data-integrity faults for the simulated day, one kitchen each: flatline, zero, clone, clock, "
        "flow (replay needs a second day: fumewatch simulate --hours 48)",
    )
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("config", help="print the effective settings (secrets masked)")
    add_common(sp, broker=True, store=True, registry=True, state=True)
    sp.set_defaults(func=cmd_config)
