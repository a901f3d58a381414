"""``fumewatch devices`` over real components: HJ 212 frames published on a real Mosquitto, the real
``fumewatch ingest`` process (or the in-process service), the state database on SQLite and PostgreSQL,
then the real ``fumewatch devices`` command and /metrics. What a person connecting a vendor would see:
CRC failures counted, an unregistered device listed, times local with +08:00."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from servers import free_port, publish_mqtt, run_fumewatch, wait_for

from ingest import hj212
from ingest.config import load_settings
from ingest.device_stats import DeviceStats
from ingest.pipeline import Pipeline
from ingest.registry import Device, Registry
from ingest.timeutil import format_display, now_ms

pytestmark = pytest.mark.integration

MINUTE = 60_000
SHANGHAI = ZoneInfo("Asia/Shanghai")
REGISTRY_CSV = (
    "restaurant_id,name,district,device_id,stove_heads,hj212_pw,dialect,interval_s\n"
    "R1,老王牛肉面,朝阳区,DEV-1,2,,,\n"
    "R2,川味小厨,海淀区,DEV-2,4,,modbus-crc,\n"
)


def local(ms: int) -> datetime:
    """The monitor's clock (HJ 212 DataTime is local time, Asia/Shanghai by default)."""
    return datetime.fromtimestamp(ms / 1000, SHANGHAI).replace(tzinfo=None)


def frame(t: int, device: str = "DEV-2", **kw) -> str:
    values = kw.pop("values", {"a34041": 0.8, "a00000": 4000})
    return hj212.build_data_frame(mn=device, data_time_local=local(t), values=values, pw="", **kw)


def bad_crc(text: str) -> str:
    """``text`` with a CRC that is off by one (the frame is otherwise intact)."""
    crc = int(text[-6:-2], 16)
    return text[:-6] + f"{(crc + 1) & 0xFFFF:04X}\r\n"


def start_ingest(tmp_path: Path, broker_url: str, state: str, metrics_port: int) -> subprocess.Popen:
    reg = tmp_path / "registry.csv"
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    base["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    argv = [
        "ingest",
        "--broker",
        broker_url,
        "--registry",
        str(reg),
        "--client-id",
        f"dev-{tmp_path.name[-16:]}",
    ]
    argv += ["--store", str(tmp_path / "fume.db"), "--state", state]
    env = {**base, "FUMEWATCH_INGEST_FLUSH_INTERVAL_S": "0.1", "FUMEWATCH_METRICS_PORT": str(metrics_port)}
    return subprocess.Popen(
        [sys.executable, "-m", "fumewatch", *argv], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def devices(tmp_path: Path, state: str, *more: str) -> list[dict]:
    r = run_fumewatch(
        tmp_path, "devices", "--state", state, "--registry", "registry.csv", "--format", "json", *more
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_ingest_process_counts_crc_failures_and_lists_an_unregistered_device(
    mosquitto, tmp_path: Path, state_url: str
) -> None:
    (tmp_path / "registry.csv").write_text(REGISTRY_CSV, encoding="utf-8")
    t = (now_ms() // MINUTE - 30) * MINUTE
    good = [frame(t + i * MINUTE) for i in range(4)]
    port = free_port()
    proc = start_ingest(tmp_path, mosquitto.url, state_url, port)
    try:
        wait_for(lambda: _answers(port), timeout=30, what="ingest /metrics up")
        time.sleep(1.0)  # subscribed
        publish_mqtt(
            mosquitto.url,
            [
                *[("fume/v1/DEV-2/hj212", f.encode()) for f in good[:3]],
                ("fume/v1/DEV-2/hj212", bad_crc(good[3]).encode()),
                ("fume/v1/GHOST-9/hj212", frame(t, "GHOST-9").encode()),
                ("fume/v1/GHOST-9/hj212", frame(t + MINUTE, "GHOST-9").encode()),
                ("fume/v1/DEV-1/reading", b'{"ts": %d, "oil_fume": 0.5}' % t),
            ],
        )
        wait_for(lambda: "fumewatch_readings_stored_total 4.0" in scrape(port), timeout=30, what="4 stored")
        wait_for(
            lambda: 'fumewatch_dead_letters_total{reason="unknown_device"} 2.0' in scrape(port),
            timeout=30,
            what="the unregistered device's dead letters",
        )
        text = scrape(port)
        for family in ("unknown_codes", "flags", "crc_variant", "subpackets"):
            assert f"# TYPE fumewatch_hj212_{family}_total counter" in text, family
        assert 'fumewatch_dead_letters_total{reason="hj212_bad_crc"} 1.0' in text
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop writes the counters still pending
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    rows = {r["device_id"]: r for r in devices(tmp_path, state_url)}
    two = rows["DEV-2"]
    assert (two["dialect"], two["readings"], two["crc_failures"]) == ("modbus-crc", 3, 1)
    assert two["dead_letter_reasons"] == {"hj212_bad_crc": 1}
    assert two["interval"] == "60 s (observed)" and two["observed_interval_s"] == 60
    assert two["last_seen"] == format_display(t + 2 * MINUTE, "Asia/Shanghai")
    assert two["last_seen"].endswith("+08:00") and two["last_received"].endswith("+08:00")
    assert rows["DEV-1"]["readings"] == 1 and rows["DEV-1"]["dialect"] == "hj212-2017"
    [ghost] = devices(tmp_path, state_url, "--unregistered")
    assert (ghost["device_id"], ghost["topic"], ghost["count"]) == ("GHOST-9", "fume/v1/GHOST-9/hj212", 2)
    assert ghost["first_seen"].endswith("+08:00") and ghost["last_seen"].endswith("+08:00")
    table = run_fumewatch(tmp_path, "devices", "--state", state_url, "--registry", "registry.csv").stdout
    [line] = [x for x in table.splitlines() if x.startswith("DEV-2")]
    assert (
        "modbus-crc" in line
        and "+08:00" in line
        and "60 s (observed)" in line
        and "1 (hj212_bad_crc 1)" in line
    )


def _answers(port: int) -> bool:
    try:
        scrape(port)
        return True
    except OSError:
        return False


def test_service_counts_flags_unknown_codes_and_notes_end_to_end(mosquitto, tmp_path: Path) -> None:
    """Real broker, the in-process service and state database, the real command: frames with data flags,
    an unknown factor code and the CRC variant that DEV-2's dialect (modbus-crc) admits."""
    from ingest.metrics import IngestCollector, MetricsServer, ingest_health
    from ingest.service import IngestService
    from ingest.state import StateDB
    from ingest.store import open_store

    (tmp_path / "registry.csv").write_text(REGISTRY_CSV, encoding="utf-8")
    settings = load_settings(
        None,
        {
            "mqtt": {"broker": mosquitto.url, "client_id": f"dev-{tmp_path.name[-16:]}"},
            "ingest": {"state": str(tmp_path / "state.db"), "flush_interval_s": 0.1},
        },
    )
    store = open_store(str(tmp_path / "fume.db"), settings)
    state = StateDB(settings.ingest.state)
    svc = IngestService(settings, Registry.load(tmp_path / "registry.csv"), store, state)
    values = {"a34041": 9.9, "a00000": 4000, "a99001": 3.2}

    def swapped_crc(text: str) -> str:  # the CRC-16/MODBUS with its bytes swapped, as some firmware sends
        seg = text[6:-6].encode()
        return text[:-6] + f"{hj212.CRC_VARIANTS['modbus_swapped'](seg):04X}\r\n"

    metrics = MetricsServer("127.0.0.1", 0, ingest_health(svc), [IngestCollector(svc)]).start()
    t = (now_ms() // MINUTE - 30) * MINUTE
    svc.start()
    try:
        publish_mqtt(
            mosquitto.url,
            [
                (
                    "fume/v1/DEV-2/hj212",
                    swapped_crc(frame(t + i * MINUTE, values=values, flags={"a34041": "T"})).encode(),
                )
                for i in range(5)
            ],
        )
        assert svc.wait_idle(quiet_s=0.5, timeout_s=30)
        text = scrape(metrics.port)
    finally:
        svc.stop()
        metrics.stop()
        store.close()
        state.close()
    assert 'fumewatch_hj212_unknown_codes_total{code="a99001",device="DEV-2"} 5.0' in text
    assert (
        'fumewatch_hj212_flags_total{flag="T"} 5.0' in text
        and 'fumewatch_hj212_flags_total{flag="N"} 5.0' in text
    )
    assert 'fumewatch_hj212_crc_variant_total{variant="modbus_swapped"} 5.0' in text
    [two] = [r for r in devices(tmp_path, "state.db") if r["device_id"] == "DEV-2"]
    assert two["flags"] == {"T": 5, "N": 5} and two["unknown_codes"] == {"a99001": 5}
    assert two["crc_variants"] == {"modbus_swapped": 5}
    assert two["notes"] == {"crc_variant": 5}
    assert two["readings"] == 5 and two["last_seen"] == format_display(t + 4 * MINUTE, "Asia/Shanghai")


def test_pipeline_fills_what_the_counters_count() -> None:
    """The contract with the dialect pipeline: a frame's data flags and its unknown factor codes reach the
    counters."""
    reg = Registry([Device("R2", "川味小厨", "海淀区", "DEV-2", 4)])
    received = now_ms()
    t = (received // MINUTE - 5) * MINUTE
    text = frame(t, values={"a34041": 9.9, "a00000": 4000, "a99001": 3.2}, flags={"a34041": "T"})
    out = Pipeline(load_settings(None), reg).handle("fume/v1/DEV-2/hj212", text.encode(), received)
    assert len(out.readings) == 1, out.dead
    counters = DeviceStats(reg.__contains__)
    counters.observe(out.readings, out.notes, received)
    b = counters.take()[("DEV-2", received - received % 3_600_000)]
    assert b.flags.get("T") == 1
    assert b.unknown_codes == {"a99001": 1}
