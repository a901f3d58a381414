"""Child processes of the benchmarks: ``python -m bench.children memory|ingest-worker ...``.

``memory WORKDIR DEVICES PER_DEVICE STATE``: prints one JSON line (see
:func:`bench.alerts_bench.memory_child`; STATE is the state database, an SQLite path or a PostgreSQL URL).

``ingest-worker PORT CLIENT_ID WORKDIR REGISTRY GROUP``: builds an IngestService on the shared
subscription ``$share/GROUP/...``, prints ``ready``, waits for a line on stdin, runs until the queued
messages are drained (1 s without a message, everything stored) and prints one JSON line with its first
receive and last commit times (``time.monotonic()``, comparable across processes on Linux).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


def ingest_worker(port: int, client_id: str, workdir: Path, registry: Path, group: str) -> dict:
    from bench.ingest_bench import ingest_settings
    from ingest.registry import Registry
    from ingest.service import IngestService
    from ingest.state import StateDB
    from ingest.store import open_store

    workdir.mkdir(parents=True, exist_ok=True)
    s = ingest_settings(port, client_id, workdir, registry, shared_group=group)
    store = open_store(s.ingest.store, s)
    state = StateDB(s.ingest.state)
    svc = IngestService(s, Registry.load(s.ingest.registry), store, state)
    times = {"first": 0.0, "last": 0.0}
    got_first = threading.Event()
    handler = svc.client.on_message

    def first_message(client, userdata, msg) -> None:
        times["first"] = time.monotonic()
        got_first.set()
        client.on_message = handler
        handler(client, userdata, msg)

    svc.client.on_message = first_message
    on_durable = svc._on_durable

    def timed_durable(tokens: list) -> None:
        on_durable(tokens)
        times["last"] = time.monotonic()

    store.set_on_durable(timed_durable)
    print("ready", flush=True)
    sys.stdin.readline()
    svc.start()
    if not got_first.wait(60):
        raise SystemExit("no message within 60 s")
    svc.wait_idle(quiet_s=1.0, timeout_s=600)
    svc.stop()
    out = {"first": times["first"], "last": times["last"], "rows": store.count(), **svc.stats.as_dict()}
    store.close()
    state.close()
    return out


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "memory":
        from bench.alerts_bench import memory_child

        out = memory_child(Path(argv[1]), int(argv[2]), int(argv[3]), argv[4])
    elif cmd == "ingest-worker":
        out = ingest_worker(int(argv[1]), argv[2], Path(argv[3]), Path(argv[4]), argv[5])
    else:
        raise SystemExit(f"unknown child {cmd!r}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
