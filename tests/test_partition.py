"""alerts/partition.py: ownership by hash, topics, the partition lock (SQLite flock, PostgreSQL advisory
lock, against the real server), the registry watch, and a partitioned service following an edited
registry on a real broker."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from servers import publish_mqtt, wait_for

from alerts.ledger import Ledger
from alerts.partition import (
    Fence,
    Partition,
    PartitionError,
    PartitionLock,
    RegistryWatch,
    device_topics,
    partition_of,
)
from alerts.service import AlertsService
from fumewatch.settings import AppSettings
from ingest.config import load_settings
from ingest.registry import Registry

HEADER = "restaurant_id,name,district,device_id,stove_heads\n"


def registry_text(devices: list[str]) -> str:
    return HEADER + "".join(f"R{d},店{d},朝阳区,{d},2\n" for d in devices)


# ----------------------------------------------------------------------------------------- ownership


def test_parse_and_its_one_line_errors():
    assert Partition.parse("1/4") == Partition(1, 4) and str(Partition(1, 4)) == "1/4"
    assert Partition(0, 2).slug == "0-of-2"
    for bad, says in (
        ("2", "expected K/N"),
        ("a/b", "expected K/N"),
        ("2/2", "K must be 0 .. 1"),
        ("-1/2", "K must be"),
        ("0/0", "N must be 1 .. 4096"),
        ("0/5000", "N must be"),
    ):
        with pytest.raises(PartitionError, match=says):
            Partition.parse(bad)


def test_hash_is_stable_and_spreads_devices_evenly():
    # pinned: a device must never move to another partition between releases (same N)
    pinned = {d: partition_of(d, 16) for d in ("D1", "MN-0001", "厨房一号")}
    assert pinned == {"D1": 8, "MN-0001": 13, "厨房一号": 12}
    assert [partition_of(f"D{i}", 2) for i in range(1, 10)] == [0, 0, 1, 1, 1, 1, 0, 0, 0]
    counts = Counter(partition_of(f"dev-{i:06d}", 8) for i in range(80_000))
    assert set(counts) == set(range(8))
    assert max(counts.values()) / min(counts.values()) < 1.05
    reg = Registry.parse(registry_text([f"D{i}" for i in range(100)]))
    parts = [Partition(k, 3).select(reg) for k in range(3)]
    assert sum(len(p) for p in parts) == 100
    assert {d.device_id for p in parts for d in p} == {d.device_id for d in reg}
    assert Partition(0, 3).owns("") and not Partition(1, 3).owns("")  # device-less rows: partition 0


def test_topics_skip_ids_that_are_not_a_topic_level(caplog):
    assert device_topics("fume/v1/", ["D1", "a+b", "x/y", "D#", "D2"]) == [
        "fume/v1/D1/reading",
        "fume/v1/D1/hj212",
        "fume/v1/D2/reading",
        "fume/v1/D2/hj212",
    ]
    assert caplog.text.count("event=partition_topic_skipped") == 3


# ----------------------------------------------------------------------------------------- lock


def test_sqlite_lock_one_holder_per_partition(tmp_path: Path):
    state = str(tmp_path / "state.db")
    a, b = PartitionLock(state, Partition(0, 2)), PartitionLock(state, Partition(0, 2))
    other = PartitionLock(state, Partition(1, 2))
    assert a.try_acquire() and a.check()
    assert not b.try_acquire()
    assert other.try_acquire()
    a.release()
    assert b.try_acquire()
    b.release()
    other.release()


def test_standby_waits_until_the_holder_releases(tmp_path: Path):
    state = str(tmp_path / "state.db")
    holder = PartitionLock(state, Partition(0, 1))
    assert holder.try_acquire()
    standby = PartitionLock(state, Partition(0, 1))
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(standby.acquire(threading.Event())))
    t.start()
    time.sleep(0.5)
    assert not got
    holder.release()
    t.join(10)
    assert got == [True]
    standby.release()
    stop = threading.Event()
    stop.set()
    holder2 = PartitionLock(state, Partition(0, 1))
    assert holder2.try_acquire()
    assert PartitionLock(state, Partition(0, 1)).acquire(stop) is False  # stopped while waiting
    holder2.release()


def test_pg_advisory_lock_layout_and_loss(pg_empty_url: str):
    import psycopg

    a, b = PartitionLock(pg_empty_url, Partition(0, 2)), PartitionLock(pg_empty_url, Partition(0, 2))
    c = PartitionLock(pg_empty_url, Partition(1, 2))
    try:
        assert a.try_acquire() and a.check()
        assert not b.try_acquire() and not b.try_acquire()  # a standby asks again on its session
        assert c.try_acquire()
        with pytest.raises(PartitionError, match=r"N=2 partitions are running .* layout of N=3"):
            PartitionLock(pg_empty_url, Partition(0, 3)).try_acquire()
        # the lock's session ends (the server restarted, the network dropped it): the holder sees it ...
        with psycopg.connect(pg_empty_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = %s AND objid = 0 AND objsubid = 2",
                (0x66770001,),
            )
        wait_for(lambda: b.try_acquire(), 10, "standby takes the freed lock")
        assert not a.check()
        exits: list[int] = []
        Fence(a, exit=exits.append)()  # ... and its fence ends the process before the next commit
        assert exits == [3]
        Fence(b, exit=exits.append)()
        assert exits == [3]
    finally:
        for lock in (a, b, c):
            lock.release()


# ----------------------------------------------------------------------------------------- registry


def test_registry_watch_follows_edits_and_keeps_the_last_good_one(tmp_path: Path, caplog):
    p = tmp_path / "registry.csv"
    p.write_text(registry_text(["D1"]))
    watch = RegistryWatch(p, Registry.load(p))
    assert watch.poll() is None
    p.write_text(registry_text(["D1", "D2"]))
    new = watch.poll()
    assert new is not None and "D2" in new
    p.write_text("restaurant_id,name\nbroken\n")
    assert watch.poll() is None and "event=registry_reload_failed" in caplog.text
    assert "D2" in watch.current


def test_partitioned_service_subscribes_new_devices_of_an_edited_registry(mosquitto, tmp_path: Path):
    """One partition of 1 (owns everything, subscribes device by device): a device added to the registry
    is judged once the service took the edited registry; a removed one is unsubscribed."""
    settings = load_settings(
        None,
        {
            "mqtt": {"broker": mosquitto.url},
            "ingest": {"state": str(tmp_path / "state.db")},
            "alerts": {"client_id": f"part-{tmp_path.name}", "clock": "event", "warmup_hours": 0},
        },
        AppSettings,
    )
    ledger = Ledger(tmp_path / "state.db")
    svc = AlertsService(
        settings, Registry.parse(registry_text(["D1"])), ledger, subscribe=True, partition=Partition(0, 1)
    )
    t0 = 1_795_651_200_000

    def send(dev: str, k: int) -> None:
        doc = {"ts": t0 + k * 60_000, "oil_fume": 0.5, "flow": 4000.0, "fan": True, "purifier": True}
        publish_mqtt(mosquitto.url, [(f"fume/v1/{dev}/reading", orjson.dumps(doc))])

    svc.start()
    try:
        wait_for(lambda: svc.client.is_connected(), 10, "connected")
        time.sleep(0.5)
        send("D1", 0)
        send("D2", 0)  # not subscribed yet
        wait_for(lambda: svc.detector.readings == 1, 10, "D1 judged")
        assert svc.reload_registry(Registry.parse(registry_text(["D1", "D2"])))
        time.sleep(0.5)
        send("D2", 1)
        wait_for(lambda: svc.detector.readings == 2, 10, "D2 judged after the edit")
        assert svc.reload_registry(Registry.parse(registry_text(["D2"])))
        time.sleep(0.5)
        send("D1", 2)
        send("D2", 2)
        wait_for(lambda: svc.detector.readings == 3, 10, "D2 judged")
        time.sleep(0.5)
        assert svc.detector.readings == 3 and svc.detector.unregistered == 0  # D1's topic unsubscribed
        # a registry the profiles refuse is not taken
        bad = Registry.parse(
            "restaurant_id,name,district,device_id,stove_heads,profile\nR9,店,朝阳区,D9,2,nope\n"
        )
        assert not svc.reload_registry(bad)
        assert "D2" in svc.registry
    finally:
        svc.stop()
    # the removed device's state row is gone with it; the partition's rows are under its own name
    assert svc.state_name == "detector:0-of-1"
    assert [dev for dev, _ in ledger.load_devices(svc.state_name)] == ["D2"]
    ledger.close()
