"""``fumewatch demo`` / ``make demo``: the whole pipeline on embedded defaults, in about a minute.

Works in its own directory (``data/demo/`` by default; see :mod:`fumewatch.demo.workspace`): it never
overwrites or deletes a file it did not create. Starts a broker (Mosquitto if installed, else amqtt in-process), writes a registry of simulated
restaurants, runs ingest and the alerts service in-process, replays a simulated
day at high speed, then prints what a duty officer would want to see.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from dataclasses import replace

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alerts.integrity.settings import IntegritySettings
from fumewatch.db import prepare_for_service
from fumewatch.demo import alerts as demo_alerts
from fumewatch.demo import console_hint, history, loggers, workspace
from ingest import logs
from ingest.broker import EmbeddedBroker
from ingest.clock import ClockWatch
from ingest.config import load_settings, parse_broker_url
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store import open_store
from ingest.timeutil import format_local

log = logging.getLogger("fumewatch.demo")

#: ``--broker`` values that start a broker in-process; anything else is the URL of a running one.
EMBEDDED_BROKERS = ("auto", "amqtt", "mosquitto")


def run_demo(args: argparse.Namespace) -> int:
    from ingest import simulate
    from ingest.simulate import inject

    console = Console()
    logs.setup("WARNING")
    external = args.broker not in EMBEDDED_BROKERS
    if external:
        parse_broker_url(args.broker)  # any accepted form (mqtt://, tcp://, host:port ...), else ValueError
    # its own directory: never touches files it did not make (DemoDirError, a ValueError, otherwise)
    data = workspace.prepare(args.data_dir)
    store_path, state_path = data / workspace.STORE, data / workspace.STATE
    registry_path = data / workspace.REGISTRY

    registry = simulate.write_registry(registry_path, args.restaurants, seed=args.seed)
    # data-integrity faults for the simulated day (--inject): a ValueError (one line) before anything starts
    faults = inject.parse(getattr(args, "inject", "") or "")
    for dev, (fault, source) in inject.assign(
        registry, simulate.behaviours(registry, args.seed), faults
    ).items():
        console.print(f"data-integrity fault {fault}: {dev}" + (f" (copies {source})" if source else ""))
    broker = None
    if external:
        broker_url, protocol, broker_kind = args.broker, "5", "external"
    else:
        broker = EmbeddedBroker(prefer=args.broker).start()
        broker_url, protocol, broker_kind = broker.url, broker.protocol, broker.kind
    console.print(
        f"[bold]fumewatch demo[/] - {len(registry)} restaurants, {args.hours:g} simulated hours, "
        f"broker: {broker_kind} at {broker_url} (MQTT {protocol})"
    )
    settings = load_settings(
        None,
        {
            "mqtt": {"broker": broker_url, "protocol": protocol, "client_id": "fumewatch-demo-ingest"},
            "ingest": {"store": str(store_path), "state": str(state_path), "registry": str(registry_path)},
        },
    )
    store = open_store(str(store_path), settings)
    prepare_for_service(str(state_path))  # an embedded SQLite file: created at the newest revision
    state = StateDB(state_path)
    # One kitchen with a worn purifier has no owner notice channel in the registry (common before owners
    # register one): its notices reach nobody, so the ladder opens an owner_unreachable case for inspectors.
    worn = sorted(d for d, b in simulate.behaviours(registry, args.seed).items() if b == "worn_purifier")
    no_channel = {registry.get(worn[0]).restaurant_id} if worn else set()
    start_ms = simulate.default_start_ms(settings.display_tz)
    model = history.model_for(start_ms, settings.display_tz)
    route: list = []  # the alerts context the readings go to (the history's first, then the day's)
    # what ingest sees of each clock, for the day's alerts service (suspect_clock; its [integrity] defaults)
    clock = ClockWatch(IntegritySettings().clock_backwards_s)
    svc = IngestService(
        settings,
        registry,
        store,
        state,
        on_readings=lambda rs: route and route[0].on_readings(rs),
        clock=clock,
    )
    svc.start()
    past = None
    silting = history.silting_devices(registry, args.seed)
    if silting:
        console.print(
            f"first the {history.DAYS} days before, for the kitchen whose purifier silts up "
            f"({', '.join(registry.get(d).restaurant_id for d in silting)}; cleaned on the simulated day)"
        )
        past = history.replay(
            settings,
            registry,
            silting,
            state_path,
            broker_url,
            store,
            svc,
            route,
            start_ms=start_ms,
            seed=args.seed,
            model=model,
            fmt=args.format,
        )
    alerts_ctx = demo_alerts.start(
        settings, registry, state_path, broker_url, store, no_owner_channel=no_channel
    )
    alerts_ctx.service.use_clock(clock)
    route[:] = [alerts_ctx]
    speed = args.hours * 3600 / max(1.0, args.duration)
    t0 = time.monotonic()
    tcp_readings = 0
    try:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("stored {task.fields[stored]:,}  dead letters {task.fields[dead]:,}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("simulating", total=None, stored=0, dead=0)

            def on_progress(done: int, total: int) -> None:
                progress.update(
                    task,
                    completed=done,
                    total=total,
                    stored=svc.stats.readings_stored,
                    dead=svc.stats.dead_letters,
                )

            sim = simulate.run_simulation(
                broker_url,
                registry,
                start_ms=start_ms,
                hours=args.hours,
                speed=speed,
                fmt=args.format,
                seed=args.seed,
                inject_faults=True,
                progress=on_progress,
                factors=settings.hj212.factors,
                tz=settings.hj212.timezone,
                model=replace(model, inject=faults),
            )
            progress.update(task, description="draining")
            done = threading.Event()

            def drain() -> None:
                svc.wait_idle(quiet_s=1.0, timeout_s=60)
                done.set()

            threading.Thread(target=drain, daemon=True).start()
            while not done.wait(0.2):
                progress.update(task, stored=svc.stats.readings_stored, dead=svc.stats.dead_letters)
            progress.update(task, stored=svc.stats.readings_stored, dead=svc.stats.dead_letters)
        if alerts_ctx:
            alerts_ctx.finish(end_ms=start_ms + int(args.hours * 3600_000))
        route[:] = []  # the day is judged; the loggers' hour after it only goes to the store
        tcp_readings = loggers.over_tcp(
            console,
            settings,
            registry,
            store,
            svc,
            after_ms=start_ms + int(args.hours * 3600_000),
            seed=args.seed,
        )
    finally:
        svc.stop()
        if alerts_ctx:
            alerts_ctx.close()
        if broker is not None:
            broker.stop()
    elapsed = time.monotonic() - t0

    counts = store.counts_by_restaurant()
    total = sum(counts.values())
    dead_counts = state.dead_letter_counts()
    behaviours = simulate.behaviours(registry, args.seed)
    _summary(console, registry, store, counts, behaviours, settings.display_tz, start_ms, args.hours)
    dl = Table(title="Dead letters (refused input, kept with its reason)", title_justify="left", min_width=60)
    dl.add_column("reason")
    dl.add_column("count", justify="right")
    for reason, n in dead_counts.items():
        dl.add_row(reason, str(n))
    console.print(dl)
    store.close()
    state.close()
    if alerts_ctx:
        alerts_ctx.report(console)
        console_hint.print_hint(console, state_path, registry_path)
    console.print(
        f"[bold green]{total:,} readings stored[/] from {len(counts)} restaurants "
        f"({sim.readings + (past.readings if past else 0) + tcp_readings:,} sent, "
        f"{sum(dead_counts.values())} dead letters; "
        f"{sum(sim.faults.values())} faults injected) in {elapsed:.0f} s."
    )
    console.print(
        f"Files: {store_path} (readings), {state_path} (dead letters, events, notices), {registry_path}.\n"
        f"Try:  fumewatch readings --store {store_path} --restaurant R0001 --format csv | head\n"
        f"      fumewatch dead-letters --state {state_path} --format csv"
    )
    missing = sim.readings + (past.readings if past else 0) + tcp_readings - total
    if missing > 0:
        console.print(f"[bold red]{missing} readings sent but not stored[/]")
        return 1
    return 0


def _summary(
    console: Console,
    registry: Registry,
    store,
    counts: dict[str, int],
    behaviours: dict[str, str],
    tz: str,
    start_ms: int,
    hours: float,
) -> None:
    t = Table(
        title=f"Readings per restaurant, {format_local(start_ms, tz)} + {hours:g} h ({tz})",
        title_justify="left",
    )
    for col, just in (
        ("restaurant", "left"),
        ("name", "left"),
        ("district", "left"),
        ("heads", "right"),
        ("readings", "right"),
        ("max C_ref mg/m3", "right"),
        ("simulated as", "left"),
    ):
        t.add_column(col, justify=just)
    maxima = _max_ref(store)
    for rid, devices in sorted(registry.restaurants().items()):
        d = devices[0]
        peak = maxima.get(rid)
        style = "red" if peak is not None and peak > 2.0 else None
        t.add_row(
            rid,
            d.name,
            d.district,
            str(d.stove_heads),
            f"{counts.get(rid, 0):,}",
            "-" if peak is None else f"{peak:.2f}",
            behaviours.get(d.device_id, ""),
            style=style,
        )
    console.print(t)


def _max_ref(store) -> dict[str, float]:
    conn = getattr(store, "_conn", None)
    if conn is None:
        return {}
    rows = conn.execute("SELECT restaurant_id, MAX(oil_fume_ref_mg_m3) FROM readings GROUP BY restaurant_id")
    return {r[0]: r[1] for r in rows}
