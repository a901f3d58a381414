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
import servers
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
        # another ledger on the same server (another city) has its own layout and its own locks
        with servers.private_pg_database() as other_city:
            elsewhere = PartitionLock(other_city, Partition(0, 3))
            try:
                assert elsewhere.try_acquire() and elsewhere.check()
            finally:
                elsewhere.release()
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


def test_a_new_layout_continues_open_events_from_the_store(tmp_path: Path, webhook) -> None:
    """Changing N (1 -> 2): the new partitions have no saved state, warm up from the store's readings and
    continue the open exceedance under its id; the owner is told once that it opened and once that it
    ended, as if nothing had changed (docs/scaling.md, "Layout")."""
    from alerts.partition import Partition as P
    from ingest.model import Reading
    from ingest.registry import Device
    from ingest.store import open_store

    t0 = 1795651200000 - 8 * 3600_000 + 11 * 3600_000  # 2026-11-26 11:00 Asia/Shanghai (lunch)
    settings = load_settings(
        None,
        {
            "ingest": {"state": str(tmp_path / "state.db"), "store": str(tmp_path / "fume.db")},
            "alerts": {"clock": "event", "warmup_hours": 3, "advance_interval_s": 1e9},
            "notify": {"retries": 0},
        },
        AppSettings,
    )
    devices = [f"D{i}" for i in range(1, 7)]
    registry = Registry(
        [Device(f"R{d}", f"店{d}", "朝阳区", d, 2, owner_notify=webhook.url(f"/owner/{d}")) for d in devices]
    )
    hot = devices[0]
    store = open_store(str(tmp_path / "fume.db"), settings)

    def minutes(a: int, b: int, over: bool) -> list[Reading]:
        rs = [
            Reading(
                t0 + i * 60_000,
                d,
                f"R{d}",
                "朝阳区",
                v,
                v,
                True,
                flow_m3_h=4000.0,
                fan_on=True,
                purifier_on=True,
            )
            for i in range(a, b)
            for d in devices
            for v in [2.6 if over and d == hot else 0.5]
        ]
        store.write([(i, [r]) for i, r in enumerate(rs)])
        return rs

    def service(part: P) -> AlertsService:
        svc = AlertsService(
            settings, registry, Ledger(tmp_path / "state.db"), store=store, subscribe=False,
            publish_notices=False, partition=part,
        )  # fmt: skip
        svc.start()
        return svc

    one = service(P(0, 1))
    one.feed(minutes(0, 55, True))
    one.commit()
    one.wait_notices()
    one.stop()
    [ev] = one.ledger.list_events(kind="exceedance")
    assert ev.state == "open"
    later = minutes(55, 65, True) + minutes(65, 125, False)  # while no worker runs; the store keeps them
    workers = [service(P(k, 2)) for k in range(2)]
    for w in workers:
        assert not w._restored
        w.warm_up(until_ms=t0 + 125 * 60_000)
        w.finish()
        w.stop()
    assert len([r for r in later if r.device_id == hot]) == 70
    ledger = Ledger(tmp_path / "state.db")
    got = [(e.event_id, e.state) for e in ledger.list_events(kind="exceedance")]
    assert got == [(ev.event_id, "closed")]
    owner = [(n.action, n.status) for n in ledger.list_notices() if n.channel == "owner"]
    assert sorted(owner) == [("closed", "skipped"), ("episode_closed", "sent"), ("opened", "sent")]
    bodies = webhook.bodies(f"/owner/{hot}")
    assert len(bodies) == 2 and len({b["notice_key"] for b in bodies}) == 2  # opened, ended: once each
    assert all(not webhook.bodies(f"/owner/{d}") for d in devices[1:])
    ledger.close()
    store.close()
