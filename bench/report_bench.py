"""Benchmark: the inspector report for one month of 1,000 restaurants at 1-minute data.

Generates a state database like the alerts service leaves behind (10-minute oil-fume windows for every
device around the clock: 1,000 x 30 x 144 = 4.32 million windows; exceedance, purifier-off, offline and
late-data events with ladder levels and evidence; sent notices), a registry, and a reading store holding
the 1-minute readings around every exceedance (what the charts read). Then it times ``build_report`` and
each output format, prints a table and a final ratio line (slowest format, build included, against the
60-second requirement: "well under a minute" means a ratio well under 1).

    python bench/report_bench.py            # 1,000 restaurants x 30 days (about 25 s to generate)
    python bench/report_bench.py --restaurants 100 --days 7 --keep /tmp/rb

Not a timed test: it prints figures for people to read.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # run as a script from anywhere

from alerts.ledger import Ledger  # noqa: E402
from alerts.reports.build import build_report  # noqa: E402
from alerts.reports.config import ReportSettings  # noqa: E402
from alerts.reports.formats import render  # noqa: E402
from ingest.registry import Device, Registry  # noqa: E402
from ingest.store.sqlite import SQLiteStore  # noqa: E402
from ingest.timeutil import zone  # noqa: E402

DISTRICTS = (
    "东城区",
    "西城区",
    "朝阳区",
    "海淀区",
    "丰台区",
    "石景山区",
    "通州区",
    "昌平区",
    "大兴区",
    "顺义区",
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
DISHES = ("川菜馆", "火锅店", "烧烤店", "面馆", "饺子馆", "湘菜馆", "粤菜酒家", "麻辣烫", "快餐店", "烤鸭店")
WINDOW_MS = 600_000
MIN = 60_000
HOUR = 3_600_000


def make_registry(n: int, rng: np.random.Generator) -> Registry:
    devices = []
    for i in range(n):
        name = f"{SURNAMES[i % len(SURNAMES)]}记{DISHES[(i // len(SURNAMES)) % len(DISHES)]}{i // 200 or ''}"
        devices.append(
            Device(
                restaurant_id=f"R{i:05d}",
                name=name,
                district=DISTRICTS[i % len(DISTRICTS)],
                device_id=f"D{i:05d}",
                stove_heads=int(rng.integers(1, 9)),
            )
        )
    return Registry(devices)


def business_mask(starts_ms: np.ndarray, tz: str = "Asia/Shanghai") -> np.ndarray:
    """True for windows starting in 10:00-14:00 or 16:30-21:30 local time (fan on)."""
    offset = int(datetime.now(zone(tz)).utcoffset().total_seconds() * 1000)
    minute = ((starts_ms + offset) % (24 * HOUR)) // MIN
    return ((minute >= 600) & (minute < 840)) | ((minute >= 990) & (minute < 1290))


def generate(
    dirpath: Path, n_rest: int, days: int, since_ms: int, seed: int
) -> tuple[Path, Path, Path, dict]:
    rng = np.random.default_rng(seed)
    registry = make_registry(n_rest, rng)
    reg_path = dirpath / "registry.csv"
    registry.write_csv(reg_path)
    state = dirpath / "state.db"
    Ledger(state).close()  # the real schema
    conn = sqlite3.connect(state, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("DROP INDEX windows_by_start")  # rebuilt after the bulk insert
    n_win = days * 24 * 6
    starts = since_ms + np.arange(n_win, dtype=np.int64) * WINDOW_MS
    busy = business_mask(starts)
    counts = {"windows": 0, "events": 0, "notices": 0, "readings": 0}
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    for dev in registry:
        incomplete = rng.random(n_win) < 0.03
        valid = busy & ~incomplete
        base = rng.gamma(2.0, 0.45, n_win)
        exceeds = valid & (base > 2.0)
        samples = np.where(incomplete, rng.integers(2, 7, n_win), 10)
        reason = np.where(valid, "", np.where(incomplete, "incomplete", "fan_off"))
        mean = np.round(np.where(busy, base, base * 0.05), 4)
        mx = np.round(mean * 1.3, 4)
        rows = zip(
            [dev.device_id] * n_win,
            ["oil_fume"] * n_win,
            starts.tolist(),
            (starts + WINDOW_MS).tolist(),
            samples.tolist(),
            [10] * n_win,
            valid.astype(int).tolist(),
            reason.tolist(),
            mean.tolist(),
            mx.tolist(),
            exceeds.astype(int).tolist(),
            strict=True,
        )
        conn.executemany("INSERT INTO windows VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        counts["windows"] += n_win
    conn.execute("COMMIT")
    conn.execute("CREATE INDEX IF NOT EXISTS windows_by_start ON windows (start_ms)")
    t_win = time.perf_counter() - t0

    # events, notices, readings around the exceedances
    busy_starts = starts[busy]
    ev_rows, notice_rows, around = [], [], []
    levels = ("education", "warning", "enforcement")
    for dev in registry:
        occurrence = 0
        for kind, lam in (("exceedance", 4.0), ("purifier_off", 1.5), ("offline", 0.5), ("late_data", 0.3)):
            for _ in range(int(rng.poisson(lam))):
                start = int(rng.choice(busy_starts))
                if kind == "exceedance":
                    n = int(rng.integers(3, 19))
                    end = start + n * WINDOW_MS
                    means = np.round(2.0 + rng.gamma(2.0, 0.6, n), 4)
                    evidence = [
                        {
                            "start_ms": start + k * WINDOW_MS,
                            "end_ms": start + (k + 1) * WINDOW_MS,
                            "mean_mg_m3": float(m),
                            "max_mg_m3": float(round(m * 1.4, 4)),
                            "samples": 10,
                        }
                        for k, m in enumerate(means)
                    ]
                    level = levels[min(occurrence, 2)]
                    occurrence += 1
                    peak, avg, limit = float(means.max()), float(means.mean()), 2.0
                    around.append((dev, start, end, float(means.mean())))
                else:
                    end = start + int(rng.integers(10, 240)) * MIN
                    evidence, level, peak, avg, limit = [], "", None, None, None
                eid = f"{kind}:{dev.device_id}:{'oil_fume' if kind == 'exceedance' else ''}:{start}"
                state_ = "open" if rng.random() < 0.02 else "closed"
                ev_rows.append(
                    (
                        eid,
                        kind,
                        dev.restaurant_id,
                        dev.device_id,
                        dev.district,
                        start,
                        None if state_ == "open" else end,
                        "oil_fume" if kind == "exceedance" else "",
                        peak,
                        avg,
                        limit,
                        "gb18483" if kind == "exceedance" else "",
                        level,
                        occurrence if level else None,
                        state_,
                        json.dumps(evidence),
                        start,
                        end,
                    )
                )
                if kind in ("exceedance", "purifier_off", "offline"):
                    for action in ("opened", "closed"):
                        for channel, target in (
                            ("owner", "json://owner.example"),
                            ("mqtt", f"mqtt:fume/v1/alerts/{dev.restaurant_id}"),
                        ):
                            status = "sent" if rng.random() < 0.95 else "failed"
                            notice_rows.append(
                                (
                                    f"{eid}:{action}",
                                    target,
                                    eid,
                                    action,
                                    channel,
                                    dev.restaurant_id,
                                    dev.device_id,
                                    status,
                                    1,
                                    "",
                                    "{}",
                                    start,
                                    start,
                                )
                            )
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT OR IGNORE INTO events (event_id, kind, restaurant_id, device_id, district, start_ms, end_ms, "
        "pollutant, peak_mg_m3, mean_mg_m3, limit_mg_m3, profile, level, occurrence, state, evidence, "
        "created_ms, updated_ms) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        ev_rows,
    )
    conn.executemany("INSERT OR IGNORE INTO notices VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", notice_rows)
    conn.execute("COMMIT")
    conn.close()
    counts["events"], counts["notices"] = len(ev_rows), len(notice_rows)

    store_path = dirpath / "readings.db"
    store = SQLiteStore(str(store_path))
    store.close()
    sconn = sqlite3.connect(store_path, isolation_level=None)
    sconn.execute("PRAGMA synchronous=OFF")
    sconn.execute("BEGIN")
    for dev, start, end, level_ in around:
        t = np.arange(start - HOUR, end + HOUR, MIN, dtype=np.int64)
        inside = (t >= start) & (t < end)
        vals = np.round(np.where(inside, level_, 0.8) * rng.lognormal(0, 0.25, len(t)), 4)
        flow = 2000.0 * dev.stove_heads
        sconn.executemany(
            "INSERT OR REPLACE INTO readings VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                (
                    dev.device_id,
                    int(ti),
                    dev.restaurant_id,
                    dev.district,
                    float(v),
                    float(v),
                    1,
                    None,
                    None,
                    flow,
                    1,
                    1,
                    "bench",
                )
                for ti, v in zip(t, vals, strict=True)
            ),
        )
        counts["readings"] += len(t)
    sconn.execute("COMMIT")
    sconn.close()
    counts["generate_s"] = round(time.perf_counter() - t0, 1)
    counts["windows_insert_s"] = round(t_win, 1)
    return state, reg_path, store_path, counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--restaurants", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--keep", metavar="DIR", help="generate into (or reuse) DIR instead of a temporary folder"
    )
    ap.add_argument("--formats", default="csv,xlsx,html,pdf,json")
    ap.add_argument(
        "--target-s", type=float, default=60.0, help="the requirement the ratio line compares with"
    )
    args = ap.parse_args(argv)

    tz = "Asia/Shanghai"
    since_ms = int(datetime(2026, 11, 1, tzinfo=zone(tz)).timestamp() * 1000)
    until_ms = since_ms + args.days * 24 * HOUR
    tmp = None
    if args.keep:
        d = Path(args.keep)
        d.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="report-bench-")
        d = Path(tmp.name)
    try:
        if (d / "state.db").exists() and (d / "registry.csv").exists():
            state, reg_path, store_path, counts = (
                d / "state.db",
                d / "registry.csv",
                d / "readings.db",
                {"reused": str(d)},
            )
        else:
            print(f"generating {args.restaurants} restaurants x {args.days} days into {d} ...", flush=True)
            state, reg_path, store_path, counts = generate(
                d, args.restaurants, args.days, since_ms, args.seed
            )
        print(
            "data:", ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in counts.items())
        )

        registry = Registry.load(reg_path)
        settings = ReportSettings()
        rows: list[tuple[str, float, str]] = []
        with Ledger(state) as ledger, SQLiteStore(str(store_path)) as store:
            t0 = time.perf_counter()
            plain = build_report(ledger, registry, since_ms, until_ms, display_tz=tz, max_charts=0)
            t_plain = time.perf_counter() - t0
            rows.append(
                (
                    "build (tables only: csv/xlsx/json)",
                    t_plain,
                    f"{len(plain.events):,} events, {len(plain.summary):,} restaurants",
                )
            )
            t0 = time.perf_counter()
            charted = build_report(
                ledger,
                registry,
                since_ms,
                until_ms,
                display_tz=tz,
                store=store,
                max_charts=settings.max_charts,
            )
            t_charted = time.perf_counter() - t0
            rows.append(
                (
                    "build (+ chart data: html/pdf)",
                    t_charted,
                    f"{len(charted.charts)} charts from "
                    f"{charted.charts[0].source if charted.charts else '-'}",
                )
            )
            totals = {}
            for fmt in args.formats.split(","):
                report, t_build = (charted, t_charted) if fmt in ("html", "pdf") else (plain, t_plain)
                t0 = time.perf_counter()
                data = render(report, fmt, settings=settings)
                size = len(data)
                if fmt == "csv":
                    size += len(render(report, "csv", table="summary"))
                dt = time.perf_counter() - t0
                totals[fmt] = t_build + dt
                (d / f"report.{fmt}").write_bytes(data)
                rows.append((f"render {fmt}", dt, f"{size / 1e6:.2f} MB"))
        rows.append(("", 0.0, ""))
        for fmt, total in totals.items():
            rows.append((f"total {fmt} (build + render)", total, ""))
        w = max(len(r[0]) for r in rows)
        print(f"\n{'phase':<{w}}  {'seconds':>8}  detail")
        print(f"{'-' * w}  {'-' * 8}  {'-' * 30}")
        for name, sec, detail in rows:
            print(f"{name:<{w}}  {sec:>8.2f}  {detail}" if name else "")
        slowest = max(totals, key=totals.get)
        print(
            f"\nratio: slowest format ({slowest}) {totals[slowest]:.1f} s / {args.target_s:.0f} s "
            "requirement = "
            f"{totals[slowest] / args.target_s:.2f}  ({args.restaurants} restaurants x {args.days} days)"
        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
