"""detector_replay, alert_latency, memory: the alerts side."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import child_env, device_ids, make_registry, servers
from ingest.model import Reading

MIN_MS = 60_000
#: An hour boundary in November 2026 (window starts line up with it).
T0 = 1_795_651_200_000 - 8 * 3_600_000


# ----------------------------------------------------------------------------------------- replay


def replay_frame_data(n_readings: int, n_devices: int, seed: int = 7) -> pd.DataFrame:
    """``n_readings`` one-minute readings of ``n_devices`` kitchens, time-major (every device at t, then
    t + 1 min), as ingest stores them. About 2 % of the kitchens exceed 2.0 mg/m3 for an hour at each
    peak (events), 1 % run the fan with the purifier off for a while (purifier_off), a few values are
    missing; fan off at night makes those windows invalid. ``oil_fume_mg_m3`` and ``flow_m3_h`` are the
    store's columns the data-integrity checks read: the flow is stove heads x 2000 m3/h (the registry of
    :func:`bench.common.make_registry`), so the measured concentration equals the reference one. With the
    dinner in the frame, 0.1 % of the kitchens carry a data-integrity fault (:func:`_integrity_faults`)."""
    rng = np.random.default_rng(seed)
    steps = -(-n_readings // n_devices)
    i = np.arange(n_readings, dtype=np.int64)
    step, code = i // n_devices, (i % n_devices).astype(np.int32)
    t = T0 + (10 * 60 + 30 + step) * MIN_MS  # from 10:30 local time (T0 is local midnight, UTC+8)
    minute_of_day = (10 * 60 + 30 + step) % 1440
    peak = ((minute_of_day >= 11 * 60) & (minute_of_day < 13 * 60)) | (
        (minute_of_day >= 18 * 60) & (minute_of_day < 20 * 60)
    )
    oil = rng.gamma(2.0, 0.35, n_readings)
    violator = code % 50 == 0
    oil = np.where(violator & peak, oil + 2.5, oil)
    oil[rng.random(n_readings) < 0.002] = np.nan
    fan = (minute_of_day >= 9 * 60) & (minute_of_day < 22 * 60)
    purifier = ~((code % 100 == 7) & peak)
    dev = pd.Categorical.from_codes(code, categories=device_ids(n_devices))
    flow = (1 + code % 7) * 2000.0
    ref = _integrity_faults(oil, flow, n_devices, steps)
    del i, step, minute_of_day
    return pd.DataFrame(
        {
            "time_ms": t,
            "device_id": dev,
            "oil_fume_ref_mg_m3": ref,
            "oil_fume_mg_m3": oil,
            "flow_m3_h": flow,
            "fan_on": fan,
            "purifier_on": purifier,
        }
    ).iloc[: steps * n_devices]


def _integrity_faults(oil: np.ndarray, flow: np.ndarray, n_devices: int, steps: int) -> np.ndarray:
    """Plant one data-integrity fault (alerts/integrity) each in every 1000th kitchen from kitchen 3, 5,
    11, 13 and 17 (none of them a violator or a bypass) when the frame holds the dinner (10:30 to 21:30):
    a flatline (18:00-19:10 at 1.234), a replay (17:00-20:00 = its 10:30-13:30 + 0.05), a clone of kitchen
    n - 1 (17:00-20:00), a zero (19:00-19:40 at 0.0), a flow halved for the dinner's top quarter of
    concentrations. In place; returns the reference concentration (the flow's fault lowers it)."""
    if steps < 660 or len(oil) != steps * n_devices:
        return oil
    o, q = oil.reshape(steps, n_devices), flow.reshape(steps, n_devices)

    def k(minute: int) -> int:
        return minute - (10 * 60 + 30)  # the frame's step at this local minute of the first day

    c = np.arange(n_devices)
    o[k(1080) : k(1150), c % 1000 == 3] = 1.234
    replay, clone = c[c % 1000 == 5], c[c % 1000 == 11]
    o[k(1020) : k(1200), replay] = o[k(630) : k(810), replay] + 0.05
    o[k(1020) : k(1200), clone] = o[k(1020) : k(1200), clone - 1]
    o[k(1140) : k(1180), c % 1000 == 13] = 0.0
    ref = oil.copy()
    fl = c[c % 1000 == 17]
    dinner = o[k(990) : k(1290), fl]
    high = dinner > np.nanquantile(dinner, 0.75, axis=0)
    q[k(990) : k(1290), fl] = np.where(high, 0.5, 1.0) * q[k(990) : k(1290), fl]
    ref.reshape(steps, n_devices)[k(990) : k(1290), fl] = np.where(high, 0.5, 1.0) * dinner
    return ref


def detector_replay(n_readings: int, n_devices: int = 10_000, repeats: int = 1) -> dict:
    """readings/s of :func:`alerts.detection.replay.replay_frame` over an in-memory frame (generation not
    timed), without and with the data-integrity checks: each repeat times ``replay_frame``, then
    :func:`alerts.integrity.frame.integrity_frame` on the same frame and replay_frame's windows;
    ``readings_s_checks`` is the readings over both times together."""
    from alerts.detection.replay import replay_frame
    from alerts.detection.window import DetectorConfig
    from alerts.integrity.frame import integrity_frame
    from alerts.integrity.settings import IntegritySettings
    from alerts.profiles import load_profiles

    registry = make_registry(n_devices)
    profiles = load_profiles()
    config, integrity = DetectorConfig(), IntegritySettings()
    df = replay_frame_data(n_readings, n_devices)
    times, checked, integrity_s = [], [], []
    events: list = []
    windows = None
    findings: list = []
    for _ in range(repeats):
        t = time.perf_counter()
        events, windows = replay_frame(df, registry, profiles, config)
        t1 = time.perf_counter()
        findings = integrity_frame(df, registry, integrity, config, windows)
        t2 = time.perf_counter()
        times.append(t1 - t)
        integrity_s.append(t2 - t1)
        checked.append(t2 - t)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    checks: dict[str, int] = {}
    for _, f in findings:
        checks[f.check] = checks.get(f.check, 0) + 1
    return {
        "readings": len(df),
        "devices": n_devices,
        "seconds": times,
        "readings_s": [len(df) / s for s in times],
        "integrity_seconds": integrity_s,
        "seconds_checks": checked,
        "readings_s_checks": [len(df) / s for s in checked],
        "events": kinds,
        "findings": checks,
        "windows": 0 if windows is None else len(windows),
        "load_avg": list(os.getloadavg()),
    }


# ----------------------------------------------------------------------------------------- state DB

#: The PostgreSQL server the benchmarks create their private databases on (the tests' default).
PG_ADMIN = os.environ.get("FUMEWATCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def state_db(workdir: Path, backend: str) -> Iterator[str]:
    """A state database at the newest revision: ``workdir/state.db`` (``sqlite``), or a private
    PostgreSQL database on :data:`PG_ADMIN` (``postgresql``, what production runs), dropped after."""
    from fumewatch.db import upgrade

    if backend == "sqlite":
        workdir.mkdir(parents=True, exist_ok=True)
        path = str(workdir / "state.db")
        upgrade(path)
        yield path
        return
    with servers.private_pg_database(PG_ADMIN, prefix="fumewatch_bench") as url:
        upgrade(url)
        yield url


# ----------------------------------------------------------------------------------------- latency


def _reading(dev: str, t: int, oil: float) -> Reading:
    return Reading(t, dev, "", "", oil, oil, False, fan_on=True, purifier_on=True)


def alert_latency(
    workdir: Path,
    *,
    n_devices: int = 2000,
    n_events: int = 100,
    spacing_s: float = 0.05,
    backend: str = "sqlite",
) -> dict:
    """Time from the ``feed()`` whose reading moves a device's watermark past the end of the window that
    opens an exceedance, to the notice row in the state DB (claimed, then sent to a real local webhook
    through apprise ``json://``).

    Every device gets K 10-minute windows of readings, K = 5 under the default gb18483 rule (a group of 5
    valid windows decides) or N under the consecutive rule; ``n_events`` of them exceed 2.0 mg/m3 in all
    K. The trigger reading of an exceeding device, at window end + allowed lateness, is fed together with
    a batch of ordinary readings of other devices, one trigger every ``spacing_s``. The state database
    is ``backend`` (:func:`state_db`).

    In-process (``AlertsService`` fed directly, no MQTT): the real ``fumewatch alerts`` process would
    add the broker hop and the pipeline's decoding, which this figure does not include."""
    import receivers  # tests/receivers.py (bench.common puts tests/ on sys.path)

    from alerts.ledger import Ledger
    from alerts.service import AlertsService
    from fumewatch.settings import AppSettings
    from ingest.config import load_settings
    from ingest.timeutil import now_ms

    workdir.mkdir(parents=True, exist_ok=True)
    hook = receivers.Webhook()
    with state_db(workdir, backend) as state, contextlib.closing(hook):
        registry = make_registry(n_devices, owner_notify=hook.url("/owner"))
        settings = load_settings(
            None,
            {
                "ingest": {"state": state},
                # event clock, and no periodic advance(): with the event clock it would move every
                # device's watermark to the newest reading seen, deciding all the exceedances at once at
                # the first trigger. Each one is decided by the feed() of its own trigger reading here
                # (offline detection, the other thing advance() does, is not measured).
                "alerts": {"clock": "event", "advance_interval_s": 1e9, "warmup_hours": 0},
                "notify": {"retries": 0},
            },
            AppSettings,
        )
        ledger = Ledger(state)
        svc = AlertsService(settings, registry, ledger, subscribe=False, publish_notices=False)
        cfg = svc._cfg
        W, late = cfg.window_ms, cfg.lateness_ms
        devs = device_ids(n_devices)
        step = max(1, n_devices // n_events)
        hot = devs[::step][:n_events]
        hot_set = set(hot)
        svc.start()
        k_windows = 5 if cfg.rule == "gb18483" else cfg.open_after_windows
        # K full windows for everybody, plus window K+1 up to just before the deciding watermark
        t_setup = time.perf_counter()
        for k in range(k_windows * 10 + 2):
            t = T0 + k * MIN_MS
            svc.feed([_reading(d, t, 3.5 if d in hot_set and k < k_windows * 10 else 0.6) for d in devs])
        t_full = time.perf_counter()
        svc.commit()  # every device changed: the first commit writes them all
        full_commit_s = time.perf_counter() - t_full
        setup_s = time.perf_counter() - t_setup
        svc.wait_notices()
        trigger_t = T0 + k_windows * W + late  # watermark = trigger_t - lateness = end of window K
        others = [d for d in devs if d not in hot_set]
        fed_ms: dict[str, int] = {}
        for j, d in enumerate(hot):
            batch = [_reading(d, trigger_t, 0.6)]
            # ordinary traffic in the same batch: other devices' readings still inside window 4
            batch += [
                _reading(o, T0 + k_windows * 10 * MIN_MS + (j % 2) * MIN_MS + 1 + j, 0.6)
                for o in others[j::n_events][:50]
            ]
            fed_ms[d] = now_ms()
            svc.feed(batch)
            time.sleep(spacing_s)
        svc.wait_notices(60)
        svc.stop()
        rows = ledger.list_notices()
        ledger.close()
    claimed, sent = [], []
    early = [r.key for r in rows if r.device_id in fed_ms and r.created_ms < fed_ms[r.device_id]]
    if early:
        raise RuntimeError(f"notices before their trigger reading (harness bug): {early[:3]}")
    for rec in rows:
        if rec.action != "opened" or rec.device_id not in fed_ms:
            continue
        claimed.append(rec.created_ms - fed_ms[rec.device_id])
        if rec.status == "sent":
            sent.append(rec.updated_ms - fed_ms[rec.device_id])
    return {
        "devices": n_devices,
        "backend": backend,
        "setup_s": round(setup_s, 1),
        "full_commit_s": round(full_commit_s, 2),
        "events": len(hot),
        "notices_sent": len(sent),
        "webhook_received": len(hook.bodies("/owner")),
        "claimed_ms": _percentiles(claimed),
        "sent_ms": _percentiles(sent),
    }


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    return {
        "n": len(a),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


# ----------------------------------------------------------------------------------------- memory


def memory(
    workdir: Path,
    *,
    n_devices: int = 100_000,
    readings_per_device: int = 5,
    backend: str = "sqlite",
    timeout_s: float = 600,
) -> dict:
    """Peak RSS of a separate process holding an AlertsService with detector state for ``n_devices``
    and committing it (:func:`memory_child`), the state database being ``backend``."""
    workdir.mkdir(parents=True, exist_ok=True)
    with state_db(workdir, backend) as state:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.children", "memory", str(workdir), str(n_devices), str(readings_per_device), state],
            cwd=workdir,  # not the repository: `-m` puts the working directory first on sys.path
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=child_env(),
        )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed: {proc.stderr[-2000:]}")
    return {"backend": backend, **json.loads(proc.stdout.strip().splitlines()[-1])}


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc/self/status."""
    cur = peak = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cur, peak


#: Devices touched between the small commits of :func:`memory_child` (commit cost vs idle devices).
TOUCHED = 10


def memory_child(workdir: Path, n_devices: int, per_device: int, state: str, rounds: int = 7) -> dict:
    """Runs in the child process: registry -> AlertsService -> a partial window per device -> the first
    commit (every device changed: all of them written) -> then ``rounds`` commits with :data:`TOUCHED`
    devices changed each (the cost of a commit against the number of idle devices). ``rss_peak_mb`` is
    the process's VmHWM at the end: everything, the commits included."""
    import gc

    from alerts.ledger import Ledger
    from alerts.service import AlertsService
    from fumewatch.settings import AppSettings
    from ingest.config import load_settings

    out: dict = {"devices": n_devices, "readings_per_device": per_device}
    out["rss_start_mb"] = rss_mb()[0]
    registry = make_registry(n_devices)
    settings = load_settings(
        None,
        {"ingest": {"state": state}, "alerts": {"clock": "event", "warmup_hours": 0}},
        AppSettings,
    )
    ledger = Ledger(state)
    svc = AlertsService(settings, registry, ledger, subscribe=False, publish_notices=False)
    out["rss_registry_mb"] = rss_mb()[0]
    devs = [d.device_id for d in registry]
    t = time.perf_counter()
    for k in range(per_device):  # time-major, inside one window: a partial window per device
        ts = T0 + k * MIN_MS
        svc.feed([_reading(d, ts, 0.8) for d in devs])
    out["feed_s"] = time.perf_counter() - t
    gc.collect()
    out["rss_fed_mb"] = rss_mb()[0]
    t = time.perf_counter()
    svc.commit()
    out["commit_s"] = time.perf_counter() - t
    gc.collect()
    out["rss_after_commit_mb"] = rss_mb()[0]
    small = []
    step = max(1, n_devices // TOUCHED)
    for r in range(rounds):  # TOUCHED devices changed, the rest idle
        ts = T0 + (per_device + r) * MIN_MS
        svc.feed([_reading(d, ts, 0.8) for d in devs[r::step][:TOUCHED]])
        t = time.perf_counter()
        svc.commit()
        small.append((time.perf_counter() - t) * 1000)
    out["commit_touched_ms"] = sorted(small)[len(small) // 2]
    out["commit_touched_all_ms"] = [round(x, 2) for x in small]
    # advance(), O(devices): the watermarks move with nothing due (every tick), then past the window's
    # end (once per window: every device finalises its window)
    last = T0 + (per_device + rounds - 1) * MIN_MS
    t = time.perf_counter()
    svc.advance(last + 30_000)
    out["advance_ms"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    svc.advance(T0 + 10 * MIN_MS + svc._cfg.lateness_ms)
    out["advance_due_ms"] = (time.perf_counter() - t) * 1000
    out["rss_peak_mb"] = rss_mb()[1]
    out["detector_readings"] = svc.detector.readings
    count = getattr(ledger, "count_devices", None)  # absent before revision 0007 (a base tree)
    out["device_rows"] = count("detector") if count else None
    out["state_bytes"] = len(json.dumps(ledger.load_state("detector") or {}))
    if count:
        out["state_bytes"] += sum(len(json.dumps(s)) for _, s in ledger.load_devices("detector"))
    ledger.close()
    del svc
    return out


__all__ = ["alert_latency", "detector_replay", "memory", "memory_child"]
