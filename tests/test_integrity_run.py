"""suspect_replay, suspect_clone, suspect_clock and suspect_flow through the real ``fumewatch run`` over a
real Mosquitto, with real webhook receivers (docs/integrity.md). Six kitchens, two days of business
hours; on day 1's lunch E1 replays its day-0 lunch shifted by +0.05, E3 (another restaurant) sends E2's
series, E4's logger clock is set back 10 minutes every half hour, and E5's flow falls to 40 % whenever
the fume is high. E6 is an honest kitchen, and so is every other service of the five: none is flagged.
The hand-made checks are in tests/test_integrity_checks.py."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from servers import publish_mqtt as publish
from servers import wait_for
from test_alerts_e2e import ALERTS_ENV

from alerts.ledger import Ledger

REPO = Path(__file__).resolve().parent.parent
MIN = 60_000
DAY = 86_400_000
T0 = 1795651200000 - 8 * 3600_000 - 10 * DAY  # 2026-11-16 00:00 Asia/Shanghai
DEVICES = ["E1", "E2", "E3", "E4", "E5", "E6"]
LUNCH = (10 * 60, 14 * 60)
DINNER = (16 * 60 + 30, 21 * 60 + 30)
COOK = ((11 * 60, 13 * 60 + 30), (17 * 60, 20 * 60 + 30))


def cooking(m: int) -> bool:
    return any(lo <= m < hi for lo, hi in COOK)


def honest(rng: random.Random, m: int) -> float:
    """A cooking curve (high mid-service) with a real sensor's noise in the last digits."""
    lo, hi = next((lo, hi) for lo, hi in COOK if lo <= m < hi)
    return round(0.3 + 1.4 * math.sin(math.pi * (m - lo) / (hi - lo)) ** 2 + rng.uniform(0, 0.15), 3)


def series() -> dict[tuple[str, int], list[dict]]:
    """(device, day) -> that day's readings of the business hours, in time order as sent."""
    rng = random.Random(1616)
    out: dict[tuple[str, int], list[dict]] = {}
    for day in (0, 1):
        for d in DEVICES:
            rows = []
            for lo, hi in (LUNCH, DINNER):
                for m in range(lo, hi):
                    on = cooking(m)
                    rows.append(
                        {
                            "ts": T0 + day * DAY + m * MIN,
                            "oil_fume": honest(rng, m) if on else 0.05,
                            "flow": round(4000.0 * (1 + rng.uniform(-0.03, 0.03)), 1) if on else 0.0,
                            "fan": on,
                            "purifier": True,
                        }
                    )
            out[(d, day)] = rows
    lunch = lambda rows: [r for r in rows if r["ts"] % DAY < (14 * 60 - 8 * 60) * MIN]  # noqa: E731
    # E1 replays its day-0 lunch, shifted by +0.05
    for now, then in zip(lunch(out[("E1", 1)]), lunch(out[("E1", 0)]), strict=True):
        if now["fan"]:
            now["oil_fume"] = round(then["oil_fume"] + 0.05, 3)
    # E3 sends E2's day-1 lunch
    for e3, e2 in zip(lunch(out[("E3", 1)]), lunch(out[("E2", 1)]), strict=True):
        e3["oil_fume"], e3["fan"], e3["flow"] = e2["oil_fume"], e2["fan"], e2["flow"]
    # E4's clock is set back 10 minutes every half hour of day 1's cooking at lunch
    for r in out[("E4", 1)]:
        m = (r["ts"] - T0 - DAY) // MIN
        if COOK[0][0] <= m < 14 * 60:
            r["ts"] -= 10 * MIN * ((m - COOK[0][0]) // 30)
    # E5's flow falls to 40 % whenever the fume is in the day's top quarter
    on = sorted(r["oil_fume"] for r in lunch(out[("E5", 1)]) if r["fan"])
    cut = on[int(len(on) * 0.75)]
    for r in lunch(out[("E5", 1)]):
        if r["fan"] and r["oil_fume"] >= cut:
            r["flow"] = round(r["flow"] * 0.4, 1)
    return out


def messages(per_message: int = 10) -> list[tuple[str, bytes]]:
    """10 minutes of one device per message, the devices interleaved (few messages: see test_integrity)."""
    data = series()
    out = []
    for day in (0, 1):
        n = len(data[(DEVICES[0], day)])
        for i in range(0, n, per_message):
            for d in DEVICES:
                out.append((f"fume/v1/{d}/reading", orjson.dumps(data[(d, day)][i : i + per_message])))
    return out


@contextlib.contextmanager
def fumewatch_run(mosquitto, tmp_path: Path, reg: Path, inspector_url: str, tag: str) -> Iterator[Path]:
    """The real ``fumewatch run`` (ingest and alerts in one process) on ``reg``, subscribed and ready:
    yields its log; stopped afterwards, and its log must hold no traceback. The event clock (the data's
    own time), quick commits, no warm-up, notices to ``inspector_url``; a message may hold 10 minutes of
    one device, so the others' readings of those minutes come after it (allowed lateness 20 min)."""
    env = {
        **os.environ,
        **ALERTS_ENV,
        "FUMEWATCH_INGEST_FLUSH_INTERVAL_S": "0.05",
        "FUMEWATCH_ALERTS_ALLOWED_LATENESS_S": "1200",
        "FUMEWATCH_MQTT_CLIENT_ID": f"run-{tag}-{tmp_path.name}"[:60],
        "FUMEWATCH_ALERTS_CLIENT_ID": f"run-{tag}-alerts-{tmp_path.name}"[:60],  # unique on the shared broker
        "FUMEWATCH_NOTIFY_INSPECTOR_TARGETS": json.dumps([inspector_url]),
    }
    log = tmp_path / "run.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fumewatch",
                "run",
                *("--broker", mosquitto.url, "--store", str(tmp_path / "fume.db")),
                *("--registry", str(reg), "--state", str(tmp_path / "state.db")),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            # ingest's own connect line (the alerts side's publishing client logs one too): subscribed
            wait_for(lambda: "topics=fume/v1/+/reading" in log.read_text(), 30, "fumewatch run subscribed")
            time.sleep(1.0)  # the SUBSCRIBE went out before that line; let the broker take it
            yield log
        finally:
            proc.terminate()
            proc.wait(30)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.mark.integration
def test_replay_clone_clock_flow_through_fumewatch_run(mosquitto, tmp_path, webhook):
    reg = tmp_path / "registry.csv"
    reg.write_text(
        "restaurant_id,name,district,device_id,stove_heads,owner_notify\n"
        + "".join(f"R{d[1]},店{d[1]},海淀区,{d},2,{webhook.url(f'/owner/{d}')}\n" for d in DEVICES),
        encoding="utf-8",
    )
    with fumewatch_run(mosquitto, tmp_path, reg, webhook.url("/inspector"), "integrity2"):
        publish(mosquitto.url, messages(), timeout_s=60)
        wait_for(
            lambda: sum("数据可信性核查" in b.get("title", "") for b in webhook.bodies("/inspector")) >= 5,
            120,
            "five data-integrity notices to the inspectors",
        )
        time.sleep(2.0)  # nothing more comes
    state = tmp_path / "state.db"
    with Ledger(str(state)) as ledger:
        found = ledger.list_events(kind="data_integrity")
        notices = ledger.notices_for_events([e.event_id for e in found])
        episodes = ledger.list_episodes()
    assert sorted((e.device_id, e.rule) for e in found) == [
        ("E1", "suspect_replay"),
        ("E2", "suspect_clone"),
        ("E3", "suspect_clone"),
        ("E4", "suspect_clock"),
        ("E5", "suspect_flow"),
    ]
    lunch1 = T0 + DAY + 10 * 3600_000
    assert all(e.judgement["service_start_ms"] == lunch1 for e in found)
    by = {e.device_id: e for e in found}
    replay = by["E1"].judgement
    assert replay["shift_mg_m3"] == 0.05 and replay["minutes"] >= 150
    assert replay["other_start_ms"] == T0 + (11 * 60) * MIN
    assert by["E3"].judgement["other_device_id"] == "E2" and by["E2"].judgement["other_device_id"] == "E3"
    assert by["E3"].judgement["shift_mg_m3"] == 0 and by["E3"].judgement["minutes"] >= 150
    clock = by["E4"].judgement
    assert clock["reasons"] == ["backwards"] and clock["backwards"] == 5 and clock["drift_judged"] is False
    flow = by["E5"].judgement
    assert flow["reasons"] == ["flow_drops_when_high"]
    assert flow["high_median_flow_m3_h"] < 0.5 * flow["low_median_flow_m3_h"]
    assert episodes == [] and all(e.level == "" for e in found)
    assert sorted({n.channel for n in notices}) == ["inspector", "mqtt"]
    assert sum(n.channel == "inspector" for n in notices) == 5
    for d in DEVICES:
        assert not any("数据可信性" in b.get("title", "") for b in webhook.bodies(f"/owner/{d}"))
    text = "\n".join(b["message"] for b in webhook.bodies("/inspector") if "数据可信性核查" in b["title"])
    assert "疑似数据回放" in text and "整体相差 +0.050 mg/m³" in text
    assert "另一家餐饮单位 R2 的设备 E2" in text and "数据时间倒退 5 次" in text
    assert "油烟浓度高时" in text and "登记灶头 2 个，基准风量 4000 m³/h" in text


@pytest.mark.integration
def test_simulated_hj212_logger_with_a_clock_set_back_through_fumewatch_run(mosquitto, tmp_path, webhook):
    """The simulator's --inject clock over HJ 212 (the QN numbered from the logger's clock), through the
    real ``fumewatch simulate`` and ``fumewatch run``: the logger's lunch is flagged suspect_clock for its
    steps back and its repeated QNs; the honest kitchens are not flagged."""
    reg = tmp_path / "registry.csv"
    cli = [sys.executable, "-m", "fumewatch"]
    subprocess.run(
        [*cli, "simulate", "--write-registry", str(reg), "--restaurants", "4", "--broker", ""],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )
    with fumewatch_run(mosquitto, tmp_path, reg, webhook.url("/inspector"), "integrity3"):
        sim = subprocess.run(
            [
                *cli,
                "simulate",
                *("--broker", mosquitto.url, "--registry", str(reg), "--format", "hj212"),
                *("--inject", "clock", "--start", "2026-11-28T00:00:00+08:00", "--hours", "16"),
                *("--batch", "10"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sim.returncode == 0, sim.stderr
        faulty = sim.stdout.strip().splitlines()[-1].split(": ")[-1]
        assert sim.stdout.strip().splitlines()[-1].startswith("data-integrity fault clock: ")
        wait_for(
            lambda: any("数据可信性核查" in b.get("title", "") for b in webhook.bodies("/inspector")),
            90,
            "a data-integrity notice to the inspectors",
        )
        time.sleep(2.0)
    state = tmp_path / "state.db"
    with Ledger(str(state)) as ledger:
        found = ledger.list_events(kind="data_integrity")
    assert [(e.device_id, e.rule) for e in found] == [(faulty, "suspect_clock")]
    j = found[0].judgement
    assert j["reasons"] == ["backwards", "qn_repeated"] and j["backwards"] >= 3 and j["qn_repeats"] >= 3
    assert j["qn_examples"] and all(q.startswith("20261128") for q in j["qn_examples"])
    text = "\n".join(b["message"] for b in webhook.bodies("/inspector") if "数据可信性核查" in b["title"])
    assert "数据时间倒退" in text and "请求编号 QN 重复" in text
