"""Incremental detector state (issue 14): a commit writes the rows of the devices that changed only, the
detector restores per device exactly as from the whole snapshot, and a whole version-3 document from
before revision 0007 migrates on the first commit. Through the real ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import time

import pytest
from detectdata import MIN, T0

from alerts import detector_store
from alerts.detection.detector import Detector
from alerts.ledger import Ledger
from alerts.profiles import load_profiles
from alerts.service import STATE_NAME, AlertsService
from fumewatch.settings import AppSettings
from ingest.config import load_settings
from ingest.model import Reading
from ingest.registry import Device, Registry

PROFILES = load_profiles()
WIN = 10 * MIN


def registry(n: int) -> Registry:
    return Registry([Device(f"R{i}", f"店{i}", "朝阳区", f"D{i}", 2) for i in range(n)])


def reading(dev: str, t: int, oil: float = 0.6, purifier: bool = True) -> Reading:
    return Reading(t, dev, "", "朝阳区", oil, oil, True, flow_m3_h=4000.0, fan_on=True, purifier_on=purifier)


def service(state: str, reg: Registry) -> AlertsService:
    settings = load_settings(
        None,
        {
            "ingest": {"state": state},
            "alerts": {"clock": "event", "warmup_hours": 0, "advance_interval_s": 1e9},
        },
        AppSettings,
    )
    return AlertsService(settings, reg, Ledger(state), subscribe=False, publish_notices=False)


def written_since(led: Ledger, since_ms: int) -> set[str]:
    from sqlalchemy import select

    from alerts.ledger.schema import detector_devices as d

    rows = led._read(select(d.c.device_id).where(d.c.name == STATE_NAME, d.c.updated_ms >= since_ms))
    return {r[0] for r in rows}


def test_a_detector_tracks_the_devices_it_changed() -> None:
    reg = registry(50)
    det = Detector(reg, PROFILES)
    det.process_many([reading(f"D{i}", T0 + k * MIN) for k in range(3) for i in range(50)])
    first = det.take_changes()
    assert len(first.changed) == 50 and first.rewrite  # a fresh detector replaces whatever was stored
    det.advance(T0 + 3 * MIN)  # the watermark moves, nothing is due: no device changed
    assert det.take_changes().changed == set()
    det.process(reading("D1", T0 + 4 * MIN))
    det.process(reading("D1", T0 + 4 * MIN))  # a duplicate
    det.process(reading("D2", T0 + 4 * MIN))
    assert det.take_changes().changed == {"D1", "D2"}
    det.process(reading("D2", T0 + 4 * MIN))  # only a duplicate: nothing changed
    assert det.take_changes().changed == set()
    det.advance(T0 + WIN + 3 * MIN)  # the first window of every device is due now
    ch = det.take_changes()
    assert len(ch.changed) == 50 and not ch.rewrite
    det.process(reading("D3", T0 + 2 * MIN))  # late: the late_data episode is state too
    assert det.take_changes().changed == {"D3"}
    det.requeue_changes(ch)  # a failed save gives them back
    assert len(det.take_changes().changed) == 50


def test_a_commit_writes_only_the_changed_devices(state_url: str) -> None:
    reg = registry(1000)
    svc = service(state_url, reg)
    led = svc.ledger
    try:
        for k in range(3):
            svc.feed([reading(d.device_id, T0 + k * MIN) for d in reg])
        svc.commit()
        assert led.count_devices(STATE_NAME) == 1000
        header = led.load_state(STATE_NAME)
        assert header["version"] == 4 and "devices" not in header
        time.sleep(0.01)
        since = int(time.time() * 1000)
        svc.feed([reading(d, T0 + 3 * MIN) for d in ("D7", "D500", "D999")])
        svc.advance(T0 + 3 * MIN)  # moves every watermark, finds nothing due
        svc.commit()
        assert written_since(led, since) == {"D7", "D500", "D999"}
        assert led.load_state(STATE_NAME)["counters"]["readings"] == 3003
        rows = dict(led.load_devices(STATE_NAME))
        assert (
            len(rows) == 1000 and rows["D7"]["max_t"] == T0 + 3 * MIN and rows["D8"]["max_t"] == T0 + 2 * MIN
        )
    finally:
        svc.stop()
        led.close()


def _run(det: Detector, steps: list) -> list:
    out = []
    for step in steps:
        out += det.advance(step) if isinstance(step, int) else det.process_many(step)
    return out


def _trace(trs: list) -> list:
    return [(t.action, t.event.event_id, t.at_ms, t.event.end_ms, len(t.event.evidence)) for t in trs]


def _steps(reg: Registry) -> list:
    """Readings of 20 devices over an hour and a half, with advance() between: D0 exceeds (an open
    exceedance), D1 bypasses its purifier (an open purifier_off), D2..D4 go quiet (offline-free: their
    windows finalise through advance()), D19 first reports after an advance (its watermark is below the
    advance watermark), and a late reading."""
    steps: list = []
    for k in range(95):
        t = T0 + k * MIN
        batch = [
            reading(d.device_id, t, 3.0 if d.device_id == "D0" else 0.6, purifier=d.device_id != "D1")
            for d in reg
            if not (d.device_id in ("D2", "D3", "D4") and k > 30) and not (d.device_id == "D19" and k < 61)
        ]
        steps.append(batch)
        if k % 20 == 19:
            steps.append(t)  # advance to this minute (event clock)
    steps.insert(70, [reading("D5", T0 + 5 * MIN)])  # late
    return steps


@pytest.mark.parametrize("cut", [21, 63, 71])
def test_restore_per_device_equals_the_whole_snapshot(state_url: str, cut: int) -> None:
    reg = registry(20)
    steps = _steps(reg)
    whole = Detector(reg, PROFILES)
    t_whole = _run(whole, steps)
    # the same stream through the service, committed (as rows) at every step, then a restart
    svc = service(state_url, reg)
    try:
        trs = []
        for step in steps[:cut]:
            if isinstance(step, int):
                trs += svc.detector.advance(step)
            else:
                trs += svc.detector.process_many(step)
            svc._dirty = True
            svc.commit()
        live = svc.detector
        snap = json.loads(json.dumps(live.snapshot()))
    finally:
        svc.ledger.close()
    led = Ledger(state_url)
    try:
        restored, ok = detector_store.restore_or_new(led, STATE_NAME, reg, PROFILES, live.config)
    finally:
        led.close()
    assert ok
    assert restored.snapshot() == snap  # device by device what the whole snapshot holds
    from_whole = Detector.restore(reg, PROFILES, None, snap)
    rest = steps[cut:]
    assert _trace(trs + _run(restored, rest)) == _trace(t_whole) == _trace(trs + _run(from_whole, rest))
    restored.drain_windows(), whole.drain_windows()  # the service drained (and stored) the first part's
    assert restored.snapshot() == whole.snapshot()


def test_a_version_3_document_migrates_on_the_first_commit(state_url: str) -> None:
    reg = registry(30)
    steps = _steps(registry(30))
    det = Detector(reg, PROFILES)
    t1 = _run(det, steps[:50])
    doc = copy.deepcopy(det.snapshot())  # what the release before 0007 stored: one document, version 3
    doc["version"] = 3
    del doc["advance_wm"]
    for s in doc["devices"].values():
        del s["adv"]
    doc["devices"]["GONE"] = doc["devices"]["D0"]  # a device since removed from the registry
    led = Ledger(state_url)
    led.save_devices(STATE_NAME, [("STALE", {"wm": 0})])  # a row no document knows of
    led.save_state(STATE_NAME, doc)
    led.close()
    svc = service(state_url, reg)
    try:
        held = len(doc["devices"]) - 1  # all but GONE (D19 has not reported yet)
        assert svc._restored and len(svc.detector.device_ids()) == held == 29
        svc.commit()  # nothing fed: the migration alone makes it write
        assert svc.ledger.count_devices(STATE_NAME) == held
        rows = dict(svc.ledger.load_devices(STATE_NAME))
        assert "STALE" not in rows and "GONE" not in rows
        header = svc.ledger.load_state(STATE_NAME)
        assert header["version"] == 4 and "devices" not in header
        t2 = _run(svc.detector, steps[50:])
    finally:
        svc.stop()
        svc.ledger.close()
    whole = Detector(reg, PROFILES)
    assert _trace(t1 + t2) == _trace(_run(whole, steps))


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_a_fresh_detector_replaces_rows_left_behind(state_url: str) -> None:
    led = Ledger(state_url)
    led.save_devices(STATE_NAME, [("D1", {"wm": 0}), ("D2", {"wm": 0})])  # rows with no header
    led.close()
    reg = registry(3)
    svc = service(state_url, reg)
    try:
        assert not svc._restored
        svc.feed([reading("D0", T0)])
        svc.commit()
        assert set(dict(svc.ledger.load_devices(STATE_NAME))) == {"D0"}
    finally:
        svc.stop()
        svc.ledger.close()


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_a_device_gone_from_the_registry_loses_its_row(state_url: str) -> None:
    svc = service(state_url, registry(3))
    try:
        svc.feed([reading(f"D{i}", T0) for i in range(3)])
        svc.commit()
    finally:
        svc.stop()
        svc.ledger.close()
    svc = service(state_url, registry(2))  # D2 left the registry
    try:
        assert svc._restored and sorted(svc.detector.device_ids()) == ["D0", "D1"]
        svc.commit()
        assert set(dict(svc.ledger.load_devices(STATE_NAME))) == {"D0", "D1"}
    finally:
        svc.stop()
        svc.ledger.close()


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_a_failed_commit_keeps_everything_for_the_next(state_url: str) -> None:
    import sqlite3

    reg = registry(5)
    svc = service(state_url, reg)
    svc.ledger.close()
    svc.ledger = Ledger(state_url, busy_timeout_s=0.2)
    try:
        svc.feed([reading(f"D{i}", T0 + k * MIN) for k in range(13) for i in range(5)])  # 1st windows final
        blocker = sqlite3.connect(state_url, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database: the commit fails
        with pytest.raises(Exception, match="locked"):
            svc.commit()
        blocker.execute("ROLLBACK")
        blocker.close()
        assert svc.ledger.count_devices(STATE_NAME) == 0 and svc.ledger.load_state(STATE_NAME) is None
        svc.commit()
        assert svc.ledger.count_devices(STATE_NAME) == 5
        assert len(svc.ledger.list_windows()) == 5  # the first window of each device, drained before
    finally:
        svc.stop()
        svc.ledger.close()
