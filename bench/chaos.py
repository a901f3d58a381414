"""Chaos run (issue 11's done-criterion): readings and notices reconcile through SIGKILLs.

``make chaos`` (or ``python bench/chaos.py --minutes 10 --restaurants 50 --seed 1``): the real
``fumewatch simulate`` publishes ``--restaurants`` simulated kitchens at ``--speed`` simulated seconds per
second for ``--minutes`` while the real ``fumewatch ingest``, the real ``fumewatch alerts`` (event clock,
notices to a local webhook receiver and the MQTT alert topic) and the Mosquitto broker are SIGKILLed and
restarted at seeded random moments, each with a short downtime. Store: the embedded SQLite store (see
BENCHMARKS.md, "Chaos run", for why not InfluxDB here).

At the end the processes are left to catch up, then stopped, and the run is reconciled: readings published
(acknowledged by the broker, as the simulator counts them) against rows stored, dead letters, duplicates
and missing; transitions in the outbox against notices per channel (sent/failed/pending/skipped) and what
the webhook receiver and the MQTT alert subscriber got (distinct ``notice_key``, duplicates). The table is
printed and saved as JSON under bench/results/. Exit status 0 only if nothing was lost and nothing
doubled after de-duplication.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(REPO), str(REPO / "tests")) if p not in sys.path]

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from receivers import Webhook  # noqa: E402
from servers import InfluxDB1Server, MosquittoServer, V2WriteRelay  # noqa: E402

RESULTS = REPO / "bench" / "results"
DAY_MS = 86_400_000
TZ_OFFSET_MS = 8 * 3600_000  # Asia/Shanghai, the default display/simulation zone

#: The chaos broker: persistence saved on every change (a SIGKILLed broker loses what it had not saved),
#: no queue limit for a stalled session (the default 1000 drops messages).
BROKER_CONF = """\
autosave_on_changes true
max_inflight_messages 1000
max_queued_messages 0
max_queued_bytes 0
message_size_limit 0
"""


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def fumewatch(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fumewatch", *argv],
        env=base_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        **kw,
    )


class Service:
    """One real ``fumewatch ingest|alerts`` process that can be SIGKILLed and started again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name, self.argv, self.env, self.workdir = name, argv, env, workdir
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"{name}.log"
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fumewatch", *self.argv],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class BrokerProc:
    """The chaos broker with a SIGKILL (tests/servers.py's MosquittoServer only terminates)."""

    def __init__(self, workdir: Path) -> None:
        self.server = MosquittoServer(workdir, persistence=True, extra_conf=BROKER_CONF)
        self.starts = 0

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start(timeout=20)
        self.starts += 1

    def alive(self) -> bool:
        return self.server.is_running

    def kill(self) -> None:
        proc = self.server._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.server.stop(timeout=1)  # forgets the reaped process

    def stop(self) -> None:
        self.server.stop()


class InfluxProc:
    """influxd 1.6 behind tests/servers.py's /api/v2/write relay; the relay stays up, influxd is killed."""

    DB = "chaos"

    def __init__(self, workdir: Path) -> None:
        self.server = InfluxDB1Server(workdir)
        self.relay: V2WriteRelay | None = None
        self.starts = 0

    def start(self) -> None:
        self.server.start(timeout=60)
        self.starts += 1
        if self.relay is None:
            self.server.create_database(self.DB)
            self.relay = V2WriteRelay(self.server.url).start()

    def alive(self) -> bool:
        return self.server.is_running

    def kill(self) -> None:
        proc = self.server._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.server.stop(timeout=1)

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        self.server.stop()

    def count(self) -> int:
        try:
            rows = self.server.points(self.DB, 'SELECT COUNT("oil_fume_mg_m3") FROM "fume_reading"')
        except (OSError, RuntimeError, KeyError):
            return 0
        return int(rows[0]["count"]) if rows else 0


class AlertSink:
    """Subscriber of fume/v1/alerts/# on a persistent session (QoS 1), so broker restarts lose nothing."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.keys: list[str] = []
        self.lock = threading.Lock()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="chaos-alert-sink", protocol=mqtt.MQTTv5
        )
        self.c.on_connect = lambda c, *a: c.subscribe("fume/v1/alerts/#", qos=1)
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.5, 2)
        self.c.connect(host, int(port), clean_start=True, properties=props)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        try:
            key = str(json.loads(msg.payload).get("notice_key", ""))
        except ValueError:
            key = "<unparseable>"
        with self.lock:
            self.keys.append(key)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def write_registry(work: Path, n: int, seed: int, hook: Webhook) -> Path:
    reg = work / "registry.csv"
    out = fumewatch("simulate", "--write-registry", str(reg), "--restaurants", str(n), "--seed", str(seed))
    if out.returncode != 0:
        raise SystemExit(f"simulate --write-registry failed: {out.stderr[-500:]}")
    with open(reg, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["owner_notify"] = hook.url(f"/owner/{r['restaurant_id']}")
    with open(reg, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return reg


def sqlite_rows(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as c:
            return c.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []


def stored_count(store: Path) -> int:
    rows = sqlite_rows(store, "SELECT COUNT(*) FROM readings")
    return rows[0][0] if rows else 0


def dead_count(state: Path) -> int:
    rows = sqlite_rows(state, "SELECT COUNT(*) FROM dead_letters")
    return rows[0][0] if rows else 0


def parse_sim(stdout: str) -> tuple[int, int, int]:
    """(readings, messages, faults) from the simulator's last line."""
    line = [ln for ln in stdout.splitlines() if ln.startswith("sent ")][-1]
    w = line.replace(";", "").split()
    return int(w[1]), int(w[4]), int(w[-1])


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fumewatch-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"workdir {work}")
    hook = Webhook()
    broker = BrokerProc(work / "broker")
    broker.start()
    reg = write_registry(work, args.restaurants, args.seed, hook)
    store, state = work / "fume.db", work / "state.db"
    influx = InfluxProc(work / "influxdb") if args.store == "influx" else None
    env = base_env()
    if influx is not None:
        influx.start()
        store_arg = influx.relay.url
        env.update(FUMEWATCH_INFLUX_BUCKET=InfluxProc.DB, FUMEWATCH_INFLUX_ORG="chaos")
    else:
        store_arg = str(store)
    inspector = hook.url("/inspector")
    common = ["--broker", broker.url, "--store", store_arg, "--registry", str(reg), "--state", str(state)]
    # default file layout: ingest's buffer and first-wins index next to the state, alerts' *-derived.db
    ingest = Service("ingest", ["ingest", *common, "--client-id", "chaos-ingest"], env, work)
    alerts_env = {
        **env,
        "FUMEWATCH_ALERTS_CLOCK": "event",
        "FUMEWATCH_ALERTS_COMMIT_INTERVAL_S": "0.5",
        "FUMEWATCH_ALERTS_ADVANCE_INTERVAL_S": "0.5",
        "FUMEWATCH_ALERTS_WARMUP_HOURS": "0",
        "FUMEWATCH_NOTIFY_TIMEOUT_S": "10",
        "FUMEWATCH_NOTIFY_INSPECTOR_TARGETS": json.dumps([inspector]),
    }
    alerts = Service("alerts", ["alerts", *common, "--client-id", "chaos-alerts"], alerts_env, work)
    sink = AlertSink(broker.url)
    victims: dict[str, Service | BrokerProc | InfluxProc] = {
        "ingest": ingest,
        "alerts": alerts,
        "broker": broker,
    }
    if influx is not None:
        victims["influxd"] = influx
    count_stored = influx.count if influx is not None else lambda: stored_count(store)
    chosen = sorted(args.victims.split(",")) if args.victims else sorted(victims)
    if unknown := set(chosen) - set(victims):
        raise SystemExit(f"--victims: unknown {sorted(unknown)} (choose from {sorted(victims)})")
    kills: list[dict] = []
    sim: subprocess.Popen | None = None
    t_start = time.monotonic()
    try:
        ingest.start()
        alerts.start()
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # both sessions subscribed (persistent: later downtime is queued at the broker)
        if not (ingest.alive() and alerts.alive()):
            raise SystemExit(f"a service did not start; see {work}/*.log")

        hours = args.minutes * 60 * args.speed / 3600
        now_ms = int(time.time() * 1000)
        day0 = (now_ms - int(hours * 3600_000) - 2 * DAY_MS + TZ_OFFSET_MS) // DAY_MS * DAY_MS - TZ_OFFSET_MS
        start_ms = day0 + int(args.start_hour * 3600_000)  # local time of day: services come early
        start_iso = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC).isoformat()
        sim_argv = [
            "simulate", "--broker", broker.url, "--registry", str(reg), "--start", str(start_ms),
            "--hours", f"{hours:g}", "--speed", f"{args.speed:g}", "--seed", str(args.seed),
            "--connect-timeout", "30",
        ] + (["--inject-faults"] if args.inject_faults else [])  # fmt: skip
        log(f"simulate {args.restaurants} restaurants, {hours:g} h at speed {args.speed:g} from {start_iso}")
        sim_log = open(work / "simulate.log", "w", encoding="utf-8")  # noqa: SIM115
        sim = subprocess.Popen(
            [sys.executable, "-m", "fumewatch", *sim_argv],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=sim_log,
            text=True,
        )
        sim_out: list[str] = []
        reader = threading.Thread(target=lambda: sim_out.append(sim.stdout.read()), daemon=True)
        reader.start()

        # ---- chaos: SIGKILL a random victim at random moments while the simulator runs
        chaos_end = time.monotonic() + args.minutes * 60 - 5
        while sim.poll() is None and time.monotonic() < chaos_end:
            gap = rng.uniform(args.min_gap_s, args.max_gap_s)
            slept = 0.0
            while slept < gap and sim.poll() is None:
                time.sleep(0.25)
                slept += 0.25
            if sim.poll() is not None or time.monotonic() >= chaos_end:
                break
            if args.max_kills is not None and len(kills) >= args.max_kills:
                continue
            name = rng.choice(chosen)
            down = rng.uniform(args.min_down_s, args.max_down_s)
            at = round(time.monotonic() - t_start, 1)
            victims[name].kill()
            log(f"SIGKILL {name}, down {down:.1f} s")
            time.sleep(down)
            victims[name].start()
            kills.append({"t_s": at, "victim": name, "down_s": round(down, 1)})
        rc_sim = sim.wait(timeout=max(60, args.minutes * 60 + 120))
        reader.join(10)
        sim_log.close()
        if rc_sim != 0:
            log(f"simulate exited {rc_sim}: {(work / 'simulate.log').read_text()[-800:]}")
            return 2
        readings, _messages, faults = parse_sim("".join(sim_out))
        log(f"simulator: {readings} readings + {faults} fault messages, all acknowledged")

        # ---- catch up: every published message stored or dead-lettered, outbox drained, notices quiet
        for s in (ingest, alerts):
            if not s.alive():
                s.start()
        quiet_deadline = time.monotonic() + args.settle_s
        last, last_change = None, time.monotonic()
        while time.monotonic() < quiet_deadline:
            if influx is not None and not influx.alive():
                influx.start()
            snap = (
                count_stored(),
                dead_count(state),
                sqlite_rows(state, "SELECT status, COUNT(*) FROM outbox GROUP BY status"),
                sqlite_rows(state, "SELECT status, COUNT(*) FROM notices GROUP BY status"),
                len(hook.received),
                len(sink.keys),
            )
            if snap != last:
                last, last_change = snap, time.monotonic()
            pending = any(st == "pending" for st, _ in snap[2]) or any(st == "pending" for st, _ in snap[3])
            if (
                snap[0] + snap[1] >= readings + faults
                and not pending
                and time.monotonic() - last_change > args.quiet_s
            ):
                break
            time.sleep(1)
        wall = time.monotonic() - t_start
        stored_final = count_stored()
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
        rc = {"ingest": ingest.stop(), "alerts": alerts.stop()}
        time.sleep(1)
        sink.close()
        broker.stop()
        if influx is not None:
            influx.stop()
        hook.close()
    log(f"stopped: {rc}")
    table = reconcile(store if influx is None else None, stored_final, state, hook, sink, readings, faults)
    table["run"] = {
        "minutes": args.minutes,
        "restaurants": args.restaurants,
        "seed": args.seed,
        "speed": args.speed,
        "simulated_hours": round(hours, 2),
        "inject_faults": args.inject_faults,
        "store": args.store,
        "wall_s": round(wall, 1),
        "kills": kills,
        "kills_by_victim": {v: sum(k["victim"] == v for k in kills) for v in sorted(victims)},
        "workdir": str(work),
    }
    ok = table["ok"]
    print(render(table))
    out = Path(args.json) if args.json else RESULTS / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=2, ensure_ascii=False), encoding="utf-8")
    log(f"saved {out}")
    return 0 if ok else 1


def reconcile(
    store: Path | None, stored: int, state: Path, hook: Webhook, sink: AlertSink, readings: int, faults: int
) -> dict:
    """``store``: the SQLite store (rows counted again, distinct device+time); None for InfluxDB, where
    ``stored`` is the point count (a point with the same series and time overwrites: duplicates cannot
    exist there, so they are not counted)."""
    published = readings + faults
    if store is not None:
        stored = stored_count(store)
        q = "SELECT COUNT(*) FROM (SELECT DISTINCT device_id, time_ms FROM readings)"
        distinct = sqlite_rows(store, q)[0][0]
    else:
        distinct = stored
    dead = dead_count(state)
    dead_dup = sqlite_rows(
        state,
        "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM dead_letters "
        "GROUP BY topic, payload_excerpt, reason HAVING n > 1)",
    )[0][0]
    r = {
        "published": published,
        "published_readings": readings,
        "published_fault_messages": faults,
        "stored": distinct,
        "dead_lettered": dead,
        "duplicated_rows": stored - distinct if store is not None else None,  # InfluxDB: n/a
        "duplicated_dead_letters": dead_dup,
        "missing": published - distinct - dead,
    }
    outbox = dict(sqlite_rows(state, "SELECT status, COUNT(*) FROM outbox GROUP BY status"))
    actions = dict(sqlite_rows(state, "SELECT action, COUNT(*) FROM outbox GROUP BY action"))
    notices = sqlite_rows(state, "SELECT key, channel, target, status FROM notices")
    received: dict[str, list[str]] = {"owner": [], "inspector": [], "mqtt": list(sink.keys)}
    for path, headers, body in hook.received:
        ch = "owner" if path.startswith("/owner/") else "inspector" if path == "/inspector" else "other"
        received.setdefault(ch, []).append(str(body.get("notice_key") or headers.get("Idempotency-Key", "")))
    channels = {}
    for ch in sorted({c for _, c, _, _ in notices} | set(received)):
        rows = [n for n in notices if n[1] == ch]
        by_status: dict[str, int] = {}
        for n in rows:
            by_status[n[3]] = by_status.get(n[3], 0) + 1
        # the webhook's notice_key is KEY:CHANNEL (delivery.py); the MQTT alert's is the transition key
        sent_keys = {k if c == "mqtt" else f"{k}:{c}" for k, c, _, st in rows if st == "sent"}
        got = received.get(ch, [])
        got_set = set(got)
        channels[ch] = {
            "notices": len(rows),
            "sent": by_status.get("sent", 0),
            "failed": by_status.get("failed", 0),
            "pending": by_status.get("pending", 0),
            "other": {k: v for k, v in by_status.items() if k not in ("sent", "failed", "pending")},
            "received_distinct": len(got_set),
            "received_duplicates": len(got) - len(got_set),
            "sent_not_received": len(sent_keys - got_set),
            "received_not_sent": len(got_set - sent_keys),
        }
    t = {
        "transitions": sum(outbox.values()),
        "outbox_by_status": outbox,
        "outbox_by_action": actions,
    }
    problems = []
    if r["missing"] != 0:
        problems.append(f"readings missing: {r['missing']}")
    if r["duplicated_rows"]:
        problems.append(f"duplicated rows: {r['duplicated_rows']}")
    if outbox.get("pending"):
        problems.append(f"outbox pending: {outbox['pending']}")
    for ch, c in channels.items():
        if c["pending"]:
            problems.append(f"{ch}: {c['pending']} notices pending")
        if c["sent_not_received"]:
            problems.append(f"{ch}: {c['sent_not_received']} sent but never received")
        if c["received_not_sent"]:
            problems.append(f"{ch}: {c['received_not_sent']} received but not recorded sent")
    return {"readings": r, "transitions": t, "channels": channels, "problems": problems, "ok": not problems}


def render(table: dict) -> str:
    r, t, ch = table["readings"], table["transitions"], table["channels"]
    run = table.get("run", {})
    lines = [
        f"Chaos run: {run.get('restaurants')} restaurants, {run.get('minutes')} min "
        f"(speed {run.get('speed')}, {run.get('simulated_hours')} simulated h, seed {run.get('seed')}), "
        f"store {run.get('store')}, wall {run.get('wall_s')} s",
        f"kills: {len(run.get('kills', []))} {run.get('kills_by_victim')}",
        "",
        "readings    published  stored  dead-lettered  duplicated  missing",
        f"            {r['published']:>9}  {r['stored']:>6}  {r['dead_lettered']:>13}  "
        f"{'n/a' if r['duplicated_rows'] is None else r['duplicated_rows']:>10}  {r['missing']:>7}",
        f"            ({r['published_readings']} readings + {r['published_fault_messages']} fault messages; "
        f"repeated dead letters {r['duplicated_dead_letters']})",
        "",
        f"transitions (outbox rows): {t['transitions']} {t['outbox_by_status']} {t['outbox_by_action']}",
        "",
        "channel     notices  sent  failed  pending  skip+  received  dup@receiver  sent-not-recv  recv-not-sent",
    ]
    for name, c in ch.items():
        other = sum(c["other"].values())
        lines.append(
            f"{name:<10}  {c['notices']:>7}  {c['sent']:>4}  {c['failed']:>6}  {c['pending']:>7}  {other:>5}  "
            f"{c['received_distinct']:>8}  {c['received_duplicates']:>12}  {c['sent_not_received']:>13}  "
            f"{c['received_not_sent']:>13}"
        )
    lines += [
        "",
        "OK: nothing lost, nothing doubled" if table["ok"] else "FAIL: " + "; ".join(table["problems"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--restaurants", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speed", type=float, default=150.0, help="simulated seconds per second")
    p.add_argument(
        "--store", choices=("sqlite", "influx"), default="sqlite", help="influx: influxd 1.6 via the relay"
    )
    p.add_argument("--start-hour", type=float, default=10.0, help="simulated start, local hour of day")
    p.add_argument("--no-faults", dest="inject_faults", action="store_false", help="no --inject-faults")
    p.add_argument("--min-gap-s", type=float, default=10.0, help="shortest time between two kills")
    p.add_argument("--max-gap-s", type=float, default=30.0)
    p.add_argument("--min-down-s", type=float, default=1.0, help="shortest downtime of a killed process")
    p.add_argument("--max-down-s", type=float, default=5.0)
    p.add_argument("--settle-s", type=float, default=180.0, help="longest catch-up after the simulator")
    p.add_argument("--quiet-s", type=float, default=15.0, help="catch-up ends after this long without change")
    p.add_argument("--victims", default="", help="comma list of ingest,alerts,broker,influxd (default: all)")
    p.add_argument("--max-kills", type=int, default=None, help="stop killing after this many")
    p.add_argument("--workdir", default="", help="keep the run's files here (default: a new temp dir)")
    p.add_argument("--json", default="", help="save the table here (default: bench/results/chaos-*.json)")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
