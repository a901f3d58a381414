"""Cadence per device (issue 13): a monitor uploading 10-minute averages (HJ 212 CN 2051) forms valid
windows and raises an exceedance after 50 minutes over the limit, through the real ingest and alerts
services over a real Mosquitto; the same frames from a device the registry says reports every minute
leave every window incomplete; readings flagged in calibration are kept and never judged."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from servers import publish_mqtt, wait_for

from alerts.ledger import Ledger
from alerts.service import AlertsService
from fumewatch.settings import AppSettings
from ingest import hj212
from ingest.config import load_settings
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store import open_store

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:'imghdr' is deprecated")]

BEIJING = ZoneInfo("Asia/Shanghai")
MIN = 60_000
LUNCH = datetime(2026, 11, 26, 11, 0, tzinfo=BEIJING)
LUNCH_MS = int(LUNCH.timestamp() * 1000)

REGISTRY = """restaurant_id,name,district,device_id,stove_heads,dialect,interval_s
R10,十分钟面馆,朝阳区,D10,2,,600
R11,学习面馆,朝阳区,D11,2,,
R12,一分钟面馆,朝阳区,D12,2,,60
R13,校准面馆,朝阳区,D13,2,,600
"""


def frames(device: str, oil: list[float], flag: str = "N") -> list[tuple[str, bytes]]:
    """One CN 2051 frame every 10 minutes from 11:00 Beijing time, fan and purifier running (SB1/SB2-RS=1)."""
    out = []
    for i, value in enumerate(oil):
        t = datetime.fromtimestamp((LUNCH_MS + i * 10 * MIN) / 1000, BEIJING).replace(tzinfo=None)
        seg = (
            f"QN={t:%Y%m%d%H%M%S}000;ST=22;CN=2051;PW=123456;MN={device};Flag=5;CP=&&DataTime={t:%Y%m%d%H%M%S};"
            f"a34041-Avg={value},a34041-Flag={flag};a00000-Avg=4000,a00000-Flag=N;SB1-RS=1;SB2-RS=1&&"
        )
        out.append((f"fume/v1/{device}/hj212", hj212.encode_frame(seg).encode()))
    return out


def test_ten_minute_data_raises_an_exceedance_after_fifty_minutes_over(mosquitto, tmp_path: Path) -> None:
    (tmp_path / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    s: AppSettings = load_settings(
        None,
        {
            "mqtt": {"broker": mosquitto.url, "client_id": f"ingest-{tmp_path.name[-12:]}"},
            "ingest": {
                "store": str(tmp_path / "fume.db"),
                "state": str(tmp_path / "state.db"),
                "registry": str(tmp_path / "registry.csv"),
                "flush_interval_s": 0.05,
            },
            "alerts": {
                "client_id": f"alerts-{tmp_path.name[-12:]}",
                "clock": "event",
                "commit_interval_s": 0.2,
                "advance_interval_s": 0.5,
            },
        },
        AppSettings,
    )  # type: ignore[assignment]
    registry = Registry.load(tmp_path / "registry.csv")
    store = open_store(s.ingest.store, s)
    state = StateDB(s.ingest.state)
    ingest = IngestService(s, registry, store, state)
    ledger = Ledger(s.ingest.state)
    alerts = AlertsService(s, registry, ledger, store=store, subscribe=True)
    # 50 minutes over (C_ref = 3.0 * 4000 / (2 * 2000) = 3.0 > 2.0), then compliant until 13:30
    over = [3.0] * 5 + [0.5] * 10
    msgs = frames("D10", over) + frames("D11", [0.5] + over) + frames("D12", over) + frames("D13", over, "C")
    ingest.start()
    alerts.start()
    try:
        wait_for(lambda: alerts.client.is_connected(), 10, "alerts connected")
        publish_mqtt(mosquitto.url, sorted(msgs, key=lambda m: m[1][6:40]))  # time order, as monitors send
        wait_for(lambda: {e.device_id for e in ledger.list_events() if e.kind == "exceedance"} >= {"D10", "D11"},
                 30, "exceedances of the 10-minute devices")  # fmt: skip
        assert ingest.wait_idle(quiet_s=1.0, timeout_s=30)
        alerts.commit()
        events = [e for e in ledger.list_events() if e.kind == "exceedance"]
    finally:
        alerts.stop()
        ingest.stop()
    by_dev = {e.device_id: e for e in events}
    assert set(by_dev) == {"D10", "D11"}, events  # D12: expected every minute, D13: in calibration
    e = by_dev["D10"]
    assert (e.rule, e.start_ms) == ("gb18483", LUNCH_MS)
    assert [w["samples"] for w in e.evidence][:5] == [1, 1, 1, 1, 1]
    # learned: D11's interval was known (600 s) by the time its first window was finalised, so that
    # window counts too
    d11 = by_dev["D11"]
    d11 = by_dev["D11"]
    assert d11.start_ms == LUNCH_MS and d11.judgement["groups"][0]["start_ms"] == LUNCH_MS
    assert (d11.evidence[0]["samples"], d11.evidence[0]["mean_mg_m3"]) == (1, 0.5)  # a valid window
    # GB 18483-2001 §6 data treatment drops the outlying 0.5 of that first group: 4 kept, mean 3.0
    assert (d11.judgement["groups"][0]["kept"], d11.judgement["groups"][0]["mean_mg_m3"]) == (4, 3.0)
    windows = store.query(device_id="D13")
    assert len(windows) == 15 and {r["excluded"] for r in windows} == {"flag_C"}  # kept, not judged
    ledger.close()
    store.close()
    state.close()
