"""An open event is kept up to date in the ledger as it grows, and an older snapshot never replaces it
(the bug where an exceedance was saved with the end it had when it opened)."""

from __future__ import annotations

from pathlib import Path

from alerts.ledger import Ledger
from alerts.service import AlertsService
from fumewatch.settings import AppSettings
from ingest.config import load_settings
from ingest.model import Reading
from ingest.registry import Device, Registry

MIN = 60_000
T0 = 1795651200000 - 8 * 3600_000 + 17 * 3600_000  # 2026-11-26 17:00 Asia/Shanghai (dinner)


def reading(t: int, oil: float) -> Reading:
    return Reading(t, "D1", "R1", "朝阳区", oil, oil, True, flow_m3_h=4000.0, fan_on=True, purifier_on=True)


def test_open_event_grows_in_the_ledger_and_never_goes_back(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "ingest": {"state": str(tmp_path / "state.db")},
            "alerts": {"clock": "event", "warmup_hours": 0, "advance_interval_s": 1e9},
        },
        AppSettings,
    )
    registry = Registry([Device("R1", "老王面馆", "朝阳区", "D1", 2)])
    ledger = Ledger(tmp_path / "state.db")
    svc = AlertsService(settings, registry, ledger, subscribe=False, publish_notices=False)
    svc.start()
    try:
        svc.feed([reading(T0 + i * MIN, 3.0) for i in range(53)])  # 5 windows over: the event opens
        svc.commit()
        svc.wait_notices()
        [opened] = ledger.list_events(kind="exceedance")
        assert opened.state == "open" and len(opened.evidence) == 5
        svc.feed([reading(T0 + i * MIN, 3.0) for i in range(53, 93)])  # 4 more windows over
        svc.commit()
        svc.wait_notices()
        [grown] = ledger.list_events(kind="exceedance")
        assert grown.state == "open" and len(grown.evidence) == 9
        assert grown.judgement["groups"][-1]["end_ms"] == T0 + 90 * MIN
        # the snapshot handed out when it opened reaches the ledger late: it does not take it back
        ledger.upsert_event(opened)
        [still] = ledger.list_events(kind="exceedance")
        assert len(still.evidence) == 9 and still.level == "education" and still.episode_id
    finally:
        svc.stop()
        ledger.close()
