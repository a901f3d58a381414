"""fumewatch benchmarks (issue 5): ``python bench/run.py [--quick] [--only NAME,...]``.

Prints a table, saves the results as JSON under bench/results/ (timestamped) and ends with the line
``ingest_ratio=<x>``: the ``fumewatch ingest`` process's msg/s over the faster of bare paho's MQTT 3.1.1
and 5 (paho_ceiling), per round of this run, median of the rounds (bench/ingest_process.py). Method and
recorded figures: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    # run as a script: make `bench` importable without shadowing an `ingest` found earlier on the path
    sys.path.append(str(REPO))

from bench import alerts_bench, common, influx_bench, ingest_bench, ingest_process, partition_bench  # noqa: E402

NAMES = (
    "paho_ceiling",
    "ingest_single",
    "ingest_batched",
    "ingest_influx",
    "influx_write",
    "detector_replay",
    "alert_latency",
    "memory",
    "scale_out",
    "alerts_partitions",
    "hj212_gateway",
)


@dataclass(frozen=True)
class Sizes:
    single_messages: int
    single_rounds: int
    batched_messages: int
    batched_rounds: int
    influx_points: int
    replay_readings: int
    replay_repeats: int
    latency_devices: int
    latency_events: int
    latency_devices_large: int  # a second latency run at city scale (0 = skip)
    memory_devices: int
    memory_per_device: int
    scale_messages: int
    latency_devices_province: int = 0  # the 100k-device latency run (issue 14), PostgreSQL ledger (0 = skip)
    memory_idle_devices: tuple[int, ...] = ()  # smaller memory runs: commit cost vs idle devices
    # the ingest process into InfluxDB: messages of BATCHED_PER_MESSAGE readings, and single-reading ones
    influx_process_messages: int = 1_000
    influx_single_messages: int = 20_000
    # alerts_partitions: queued single-reading messages drained by 1, then N real alerts workers
    partition_messages: int = 60_000
    partition_devices: int = 2_000


#: Readings per message of ingest_batched and of the batched InfluxDB run (issue 14: 100).
BATCHED_PER_MESSAGE = 100
#: The issue's targets: the process at >= 0.80 of bare paho's faster protocol, >= 150,000 readings/s.
RATIO_TARGET = 0.80
BATCHED_TARGET = 150_000

FULL = Sizes(
    60_000, 3, 3_000, 3, 300_000, 10_000_000, 3, 5_000, 200, 20_000, 100_000, 5, 60_000,
    latency_devices_province=100_000, memory_idle_devices=(1_000, 10_000),
    influx_process_messages=1_000, influx_single_messages=20_000,
)  # fmt: skip
QUICK = Sizes(
    15_000, 2, 600, 1, 50_000, 1_000_000, 1, 1_000, 30, 0, 100_000, 2, 10_000,
    influx_process_messages=200, influx_single_messages=5_000, partition_messages=10_000, partition_devices=500,
)  # fmt: skip


@dataclass
class Result:
    name: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    spread: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    error: str = ""
    notes: str = ""


def _spread(values: list[float]) -> dict:
    return ingest_bench.summarize(values) if values else {}


# ----------------------------------------------------------------------------------------- benchmarks


def run_single(work: Path, sz: Sizes, want: set[str]) -> list[Result]:
    """paho_ceiling and ingest_single: bare paho over MQTT 3.1.1 and 5, and the ``fumewatch ingest``
    process, draining the same queued single-reading messages in every round (bench/ingest_process.py)."""
    bare = "paho_ceiling" in want
    out = ingest_process.process_rounds(
        work / "single", n_messages=sz.single_messages, rounds=sz.single_rounds, bare=bare
    )
    rounds = out.pop("rounds")
    res = []
    others = _spread([_others(r, k) for r in rounds for k in ("bare3", "bare5", "process") if k in r])
    load = f"others {others['median']:.1f} cores" if others else ""
    if bare:
        v = [r["ceiling_msg_s"] for r in rounds]
        m3 = _spread([r["bare3"]["msg_s"] for r in rounds])["median"]
        m5 = _spread([r["bare5"]["msg_s"] for r in rounds])["median"]
        cpu3 = _spread([r["bare3"]["cpu_us_per_msg"] for r in rounds])["median"]
        cpu5 = _spread([r["bare5"]["cpu_us_per_msg"] for r in rounds])["median"]
        res.append(
            Result(
                "paho_ceiling", _spread(v)["median"], "msg/s", "(the faster protocol)", None, _spread(v),
                {**out, "rounds": rounds, "mqtt311_msg_s": m3, "mqtt5_msg_s": m5},
                notes=f"3.1.1 {m3:,.0f} ({cpu3:.0f} us/msg), 5 {m5:,.0f} ({cpu5:.0f} us/msg); {load}",
            )
        )  # fmt: skip
    if "ingest_single" in want:
        v = [r["process"]["msg_s"] for r in rounds]
        detail: dict = {**out, "rounds": rounds}
        ok = None
        if bare:
            detail["ratio"] = _spread([r["ratio"] for r in rounds])
            ok = detail["ratio"]["median"] >= RATIO_TARGET
        cpu = _spread([r["process"]["cpu_us_per_reading"] for r in rounds])["median"]
        lossless = all(r["process"]["lossless"] for r in rounds)
        res.append(
            Result(
                "ingest_single", _spread(v)["median"], "msg/s", f"ratio >= {RATIO_TARGET}", ok, _spread(v),
                detail, notes=f"process; cpu {cpu:.0f} us/msg; lossless {lossless}; {load}",
            )
        )  # fmt: skip
    return res


def _others(r: dict, kind: str) -> float:
    """Cores used by everything but the measured client and the broker (the process is a child of this
    one, so its own CPU is taken out of /proc/stat's "others")."""
    load = r[kind]["load"]
    others = load["others_cpu_cores"] or 0.0
    if kind == "process" and load["wall_s"]:
        others = max(0.0, others - r[kind]["cpu_total_s"] / load["wall_s"])
    return others


def run_batched(work: Path, sz: Sizes) -> Result:
    out = ingest_process.process_rounds(
        work / "batched", n_messages=sz.batched_messages, per_message=BATCHED_PER_MESSAGE,
        rounds=sz.batched_rounds, bare=False,
    )  # fmt: skip
    v = [r["process"]["readings_s"] for r in out["rounds"]]
    med = _spread(v)["median"]
    cpu = _spread([r["process"]["cpu_us_per_reading"] for r in out["rounds"]])["median"]
    others = _spread([_others(r, "process") for r in out["rounds"]])["median"]
    lossless = all(r["process"]["lossless"] for r in out["rounds"])
    notes = f"process, {BATCHED_PER_MESSAGE}/msg; cpu {cpu:.1f} us/reading; lossless {lossless}; others {others:.1f} cores"
    ok = med >= BATCHED_TARGET and lossless
    return Result(
        "ingest_batched", med, "readings/s", f">= {BATCHED_TARGET:,}", ok, _spread(v), out, notes=notes
    )


def run_ingest_influx(work: Path, sz: Sizes) -> Result:
    """The process with its store in InfluxDB 1.6 (through the test relay): batched and single messages."""
    influx = common.servers.InfluxDB1Server(work / "influxdb").start()
    try:
        batched = ingest_process.process_rounds(
            work / "influx-batched", n_messages=sz.influx_process_messages, per_message=BATCHED_PER_MESSAGE,
            rounds=1, bare=False, influx=influx,
        )  # fmt: skip
        single = ingest_process.process_rounds(
            work / "influx-single", n_messages=sz.influx_single_messages, rounds=1, bare=False, influx=influx
        )
    finally:
        influx.stop()
    b, s1 = batched["rounds"][0]["process"], single["rounds"][0]["process"]
    ok = b["lossless"] and s1["lossless"]
    notes = (
        f"process, {BATCHED_PER_MESSAGE}/msg, {b['cpu_us_per_reading']:.1f} us/reading; single-reading "
        f"messages {s1['readings_s']:,.0f} readings/s; lossless {ok}"
    )
    return Result(
        "ingest_influx", b["readings_s"], "readings/s", "lossless", ok, {"single readings/s": s1["readings_s"]},
        {"batched": batched, "single": single}, notes=notes,
    )  # fmt: skip


def run_influx(work: Path, sz: Sizes) -> Result:
    out = influx_bench.influx_write(work / "influx", n_points=sz.influx_points)
    buf = influx_bench.influx_write(work / "influx-buffered", n_points=sz.influx_points, disk_buffer=True)
    # what ingest runs: the disk buffer and the first-wins index; recent readings (the index decides) and a
    # 30-day-old backfill (each batch also checked against InfluxDB with InfluxQL)
    fw = influx_bench.influx_write(
        work / "influx-first-wins", n_points=sz.influx_points, disk_buffer=True, first_wins=True, age_days=0
    )
    fw_old = influx_bench.influx_write(
        work / "influx-first-wins-old", n_points=sz.influx_points, disk_buffer=True, first_wins=True
    )
    ok = all(o["stored"] == o["points"] and o["failed"] == 0 for o in (out, buf, fw, fw_old))
    notes = (
        f"via the disk buffer (the default): {buf['points_s']:,.0f} points/s; with the first-wins index "
        f"(what ingest runs): {fw['points_s']:,.0f} points/s recent, {fw_old['points_s']:,.0f} backfill"
    )
    return Result(
        "influx_write",
        out["points_s"],
        "points/s",
        "all stored",
        ok,
        {},
        {**out, "disk_buffer": buf, "first_wins": fw, "first_wins_backfill": fw_old},
        notes=notes,
    )


def run_replay(work: Path, sz: Sizes) -> Result:
    """Judged with the data-integrity checks on (issue 16); the detector alone is in the notes."""
    out = alerts_bench.detector_replay(sz.replay_readings, repeats=sz.replay_repeats)
    v, bare = out["readings_s_checks"], _spread(out["readings_s"])
    med = _spread(v)["median"]
    notes = (
        f"checks on (flatline, flow, replay, clone, zero; not clock): {sum(out['findings'].values())} findings; "
        f"without: {_fmt(bare['median'])} ({_fmt(bare['min'])} .. {_fmt(bare['max'])}); "
        f"load {out['load_avg'][0]:.2f}"
    )
    ok = med >= 1_000_000
    return Result(
        "detector_replay", med, "readings/s", ">= 1,000,000 checks on", ok, _spread(v), out, notes=notes
    )


def run_latency(work: Path, sz: Sizes) -> list[Result]:
    res = []
    runs = [("alert_latency", sz.latency_devices, sz.latency_events, "sqlite")]
    if sz.latency_devices_large:
        runs.append(
            (f"alert_latency_{sz.latency_devices_large // 1000}k", sz.latency_devices_large, 20, "sqlite")
        )
    if sz.latency_devices_province:
        n = sz.latency_devices_province
        runs.append((f"alert_latency_{n // 1000}k_pg", n, 20, "postgresql"))
    for name, devices, events, backend in runs:
        out = alerts_bench.alert_latency(work / name, n_devices=devices, n_events=events, backend=backend)
        sent = out["sent_ms"]
        p99 = sent.get("p99")
        ok = p99 is not None and p99 <= 1000 and out["notices_sent"] == out["events"]
        spread = {"p50": sent.get("p50"), "p99": p99, "max": sent.get("max"), "n": sent.get("n")}
        notes = (
            f"{devices:,} devices, {backend}, in-process; claimed p99 {out['claimed_ms'].get('p99', 0):.0f} ms; "
            f"first commit {out['full_commit_s']:.1f} s"
        )
        res.append(Result(name, p99, "ms p99", "p99 <= 1000 ms", ok, spread, out, notes=notes))
    return res


def run_memory(work: Path, sz: Sizes) -> list[Result]:
    """Peak RSS at ``memory_devices`` (PostgreSQL ledger, as production; and SQLite), and the commit cost
    with 10 devices changed at each size of ``memory_idle_devices`` and ``memory_devices``."""
    big = {
        backend: alerts_bench.memory(
            work / f"memory-{backend}", n_devices=sz.memory_devices, readings_per_device=sz.memory_per_device,
            backend=backend,
        )
        for backend in ("postgresql", "sqlite")
    }  # fmt: skip
    res = []
    for backend, out in big.items():
        peak = out["rss_peak_mb"]
        spread = {"after_commit_mb": out["rss_after_commit_mb"], "fed_mb": out["rss_fed_mb"]}
        notes = (
            f"{out['devices']:,} devices, {backend}; first commit (every device) {out['commit_s']:.1f} s; "
            f"{alerts_bench.TOUCHED} changed: {out['commit_touched_ms']:.1f} ms; advance {out['advance_ms']:.0f} ms "
            f"({out['advance_due_ms']:.0f} ms finalising every window)"
        )
        name = "memory" if backend == "postgresql" else "memory_sqlite"
        res.append(Result(name, peak, "MB peak RSS", "<= 300 MB", peak <= 300, spread, out, notes=notes))
    per_size = {sz.memory_devices: big["postgresql"]["commit_touched_ms"]}
    for n in sz.memory_idle_devices:
        out = alerts_bench.memory(
            work / f"memory-{n}", n_devices=n, readings_per_device=sz.memory_per_device, backend="postgresql"
        )
        per_size[n] = out["commit_touched_ms"]
    sizes = sorted(per_size)
    ratio = per_size[sizes[-1]] / per_size[sizes[0]] if len(sizes) > 1 and per_size[sizes[0]] else None
    spread = {f"{n // 1000}k devices ms": per_size[n] for n in sizes}
    res.append(
        Result(
            "commit_vs_idle", ratio, f"x ({sizes[-1] // 1000}k vs {sizes[0] // 1000}k)", "independent of idle devices",
            None, spread, {"commit_touched_ms": per_size},
            notes=f"commit with {alerts_bench.TOUCHED} devices changed, postgresql",
        )
    )  # fmt: skip
    return res


def run_scale(work: Path, sz: Sizes) -> Result:
    out = ingest_bench.scale_out(work / "scale", n_messages=sz.scale_messages)
    two = out["runs"][2]
    ok = two["lost"] == 0 and two["duplicated"] == 0
    spread = {"1 worker msg/s": out["runs"][1]["msg_s"], "2 workers msg/s": two["msg_s"]}
    return Result("scale_out", out.get("ratio"), "x (2 vs 1)", "nothing lost/duplicated", ok, spread, out)


def run_partitions(work: Path, sz: Sizes) -> Result:
    out = partition_bench.alerts_partitions(
        work / "partitions", n_messages=sz.partition_messages, n_devices=sz.partition_devices
    )
    one, two = out["runs"][1], out["runs"][2]
    spread = {"1 worker readings/s": one["readings_s"], "2 workers readings/s": two["readings_s"]}
    notes = f"real processes, PostgreSQL ledger; CPU {one['cpu_us_per_reading']:.0f} us/reading (1 worker)"
    return Result(
        "alerts_partitions", out.get("ratio"), "x (2 vs 1)", "(the scaling)", None, spread, out, notes=notes
    )


def run_gateway(work: Path, sz: Sizes) -> Result:
    """HJ 212 over TCP through the real gateway, 1,000 loggers connected, against MQTT (bench/gateway_bench.py)."""
    from bench import gateway_bench

    out = gateway_bench.gateway_vs_mqtt(
        work / "gateway", **gateway_bench.SIZES["quick" if sz is QUICK else "full"]
    )
    g, m, ratio = out["gateway_frames_s"], out["mqtt_readings_s"], out["ratio"]
    r0 = out["rounds"][0]["gateway"]
    notes = (
        f"{r0['peak_open']:,} connections, {out['frames']:,} frames; MQTT {m['median']:,.0f} readings/s; ratio "
        f"{ratio['median']:.2f}; gateway CPU {r0['cpu_us_per_frame']['gateway']:.0f} us/frame"
    )
    spread = {"mqtt readings/s": m["median"], "ratio": ratio["median"]}
    return Result("hj212_gateway", g["median"], "frames/s", "(ratio to MQTT)", None, spread, out, notes=notes)


# ----------------------------------------------------------------------------------------- output


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def _spread_text(r: Result) -> str:
    s = r.spread
    if {"min", "max", "n"} <= s.keys():
        return f"{_fmt(s['min'])} .. {_fmt(s['max'])} (n={s['n']})"
    return ", ".join(f"{k} {_fmt(v)}" for k, v in s.items() if isinstance(v, int | float))


def print_table(results: list[Result], ratio: dict | None, meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"fumewatch benchmarks ({meta['mode']}, {meta['machine']['nproc']} cores, {meta['machine']['cpu']})"
    )
    for col in ("benchmark", "result", "unit", "spread", "target", "ok", "notes"):
        t.add_column(col, justify="right" if col in ("result",) else "left")
    for r in results:
        ok = "-" if r.ok is None else ("yes" if r.ok else "NO")
        t.add_row(
            r.name, "error" if r.error else _fmt(r.value), r.unit, r.error[:60] or _spread_text(r), r.target, ok,
            r.notes,
        )  # fmt: skip
    if ratio:
        t.add_row(
            "ratio single/ceiling", _fmt(ratio["median"]), "x", f"{_fmt(ratio['min'])} .. {_fmt(ratio['max'])} "
            f"(n={ratio['n']})", f">= {RATIO_TARGET}", "yes" if ratio["median"] >= RATIO_TARGET else "NO",
            "process / faster bare paho, per round",
        )  # fmt: skip
    Console(width=max(160, shutil.get_terminal_size().columns)).print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(NAMES)}")
    ap.add_argument("--results", default=str(REPO / "bench" / "results"), help="where the JSON goes")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (brokers' logs, databases)")
    args = ap.parse_args(argv)
    want = set(NAMES) if not args.only else {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = want - set(NAMES)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    sz = QUICK if args.quick else FULL
    meta = {
        "mode": "quick" if args.quick else "full",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": common.machine(),
        "sizes": asdict(sz),
    }
    work = Path(tempfile.mkdtemp(prefix="fumewatch-bench-"))
    steps: list[tuple[str, Callable[[], Result | list[Result]]]] = []
    if want & {"paho_ceiling", "ingest_single"}:
        steps.append(("paho_ceiling+ingest_single", lambda: run_single(work, sz, want)))
    table: dict[str, Callable[[], Result | list[Result]]] = {
        "ingest_batched": lambda: run_batched(work, sz),
        "ingest_influx": lambda: run_ingest_influx(work, sz),
        "influx_write": lambda: run_influx(work, sz),
        "detector_replay": lambda: run_replay(work, sz),
        "alert_latency": lambda: run_latency(work, sz),
        "memory": lambda: run_memory(work, sz),
        "scale_out": lambda: run_scale(work, sz),
        "alerts_partitions": lambda: run_partitions(work, sz),
        "hj212_gateway": lambda: run_gateway(work, sz),
    }
    steps += [(n, fn) for n, fn in table.items() if n in want]
    results: list[Result] = []
    t_start = time.monotonic()
    try:
        for name, fn in steps:
            t = time.monotonic()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                got = fn()
                results.extend(got if isinstance(got, list) else [got])
            except Exception as exc:  # one failing benchmark does not hide the others
                traceback.print_exc()
                for n in name.split("+"):
                    if n in want:
                        results.append(Result(n, None, "", error=f"{type(exc).__name__}: {exc}"))
            print(f"  {name}: {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["seconds"] = round(time.monotonic() - t_start, 1)
    single = next((r for r in results if r.name == "ingest_single"), None)
    ratio = single.detail.get("ratio") if single else None
    print_table(results, ratio, meta)
    out_dir = Path(args.results)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{meta['mode']}.json"
    doc = {**meta, "ingest_ratio": ratio, "results": [asdict(r) for r in results]}
    path.write_text(json.dumps(doc, indent=1, default=str))
    print(f"saved {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({meta['seconds']} s)")
    print(f"ingest_ratio={ratio['median']:.3f}" if ratio else "ingest_ratio=nan")
    return 0 if all(not r.error for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
