"""Data-integrity checks (alerts/integrity, docs/integrity.md): suspect_zero and suspect_flatline.

- each check on hand-made windows and readings, positive and negative: a genuinely quiet kitchen (its
  past services were as quiet) is not flagged as zero; a constant-but-noisy reading is not a flatline
- through the real ``fumewatch run`` over a real Mosquitto, with real webhook receivers: the findings are
  data_integrity events, inspectors get one notice each, owners none, nothing goes on the ladder
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from servers import publish_mqtt as publish
from servers import wait_for
from test_integrity_run import fumewatch_run

from alerts.integrity.checks import suspect_flatline, suspect_zero
from alerts.ledger import Ledger
from alerts.model import WindowResult

REPO = Path(__file__).resolve().parent.parent
MIN = 60_000
DAY = 86_400_000
T0 = 1795651200000 - 8 * 3600_000 - 10 * DAY  # 2026-11-16 00:00 Asia/Shanghai


def window(start: int, mx: float, valid: bool = True) -> WindowResult:
    return WindowResult(
        "D1", start, start + 10 * MIN, 10, 10, valid, "" if valid else "fan_off", mx, mx, False
    )


def service(day: int, maxima: list[float]) -> tuple[tuple[int, int], list[WindowResult]]:
    lunch = T0 + day * DAY + 10 * 3600_000
    start = lunch + 3600_000
    return (lunch, lunch + 4 * 3600_000), [window(start + i * 10 * MIN, m) for i, m in enumerate(maxima)]


def test_suspect_zero_needs_a_long_zero_run_unlike_the_past():
    normal = [0.9] * 12
    history = dict(service(d, normal) for d in range(3))
    _, now = service(3, [0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.9, 0.9])
    f = suspect_zero(now, history, min_minutes=30, limit=0.0, history_services=3)
    assert f is not None and f.minutes == 40 and f.detail["zero_windows"] == 4
    assert [h["zero_min"] for h in f.detail["history"]] == [0.0, 0.0, 0.0]
    # 20 minutes is not enough
    _, short = service(3, [0.9, 0.0, 0.0, 0.9])
    assert suspect_zero(short, history, min_minutes=30, limit=0.0, history_services=3) is None
    # a genuinely quiet kitchen: its past services were as quiet
    quiet = dict(service(d, [0.0] * 12) for d in range(3))
    assert suspect_zero(now, quiet, min_minutes=30, limit=0.0, history_services=3) is None
    # no history: a new monitor is not suspected on its first service
    assert suspect_zero(now, {}, min_minutes=30, limit=0.0, history_services=3) is None
    # below the detection limit counts as zero when the limit is set
    _, low = service(3, [0.9, 0.02, 0.01, 0.03, 0.02, 0.9])
    assert suspect_zero(low, history, min_minutes=30, limit=0.0, history_services=3) is None
    assert suspect_zero(low, history, min_minutes=30, limit=0.05, history_services=3) is not None
    # the fan may stop in between: the zero windows of the service add up
    _, split = service(3, [0.0, 0.9, 0.0, 0.9, 0.0, 0.9])
    split[1] = window(split[1].start_ms, 0.0, valid=False)  # fan off: neither zero nor counted
    f = suspect_zero(split, history, min_minutes=30, limit=0.0, history_services=3)
    assert f is not None and f.detail["zero_windows"] == 3 and f.start_ms == split[0].start_ms


def rows(start: int, values: list[float | None], fan: bool = True, step_s: int = 60) -> list[dict]:
    return [
        {"time_ms": start + i * step_s * 1000, "oil_fume_mg_m3": v, "fan_on": 1 if fan else 0}
        for i, v in enumerate(values)
    ]


def test_suspect_flatline_is_the_same_value_for_an_hour_with_the_fan_on():
    t = T0 + 11 * 3600_000
    f = suspect_flatline(rows(t, [1.234] * 61), min_minutes=60, zero_limit=0.0)
    assert (
        f is not None and f.minutes == 61 and f.detail["value_mg_m3"] == 1.234 and f.detail["readings"] == 61
    )
    assert suspect_flatline(rows(t, [1.234] * 55), min_minutes=60, zero_limit=0.0) is None
    # constant but noisy: the last digit moves, as real sensors do
    rng = random.Random(3)
    noisy = [round(1.2 + rng.choice((-0.01, 0.0, 0.01)), 2) for _ in range(120)]
    assert suspect_flatline(rows(t, noisy), min_minutes=60, zero_limit=0.0) is None
    # zeros are the zero check's business; fan off breaks the run; so does a gap over 5 minutes
    assert suspect_flatline(rows(t, [0.0] * 90), min_minutes=60, zero_limit=0.0) is None
    assert suspect_flatline(rows(t, [1.234] * 90, fan=False), min_minutes=60, zero_limit=0.0) is None
    gapped = rows(t, [1.234] * 40) + rows(t + 50 * MIN, [1.234] * 40)
    assert suspect_flatline(gapped, min_minutes=60, zero_limit=0.0) is None
    # 10-minute data: 7 equal values cover 70 minutes
    f = suspect_flatline(rows(t, [0.5] * 7, step_s=600), min_minutes=60, zero_limit=0.0)
    assert f is not None and f.minutes == 70


# -- through the real process -------------------------------------------------------------------------------


def value(device: str, day: int, minute: int, rng: random.Random) -> float:
    noise = round(0.8 + rng.uniform(-0.08, 0.08), 3)
    if device == "D1" and day == 3 and 11 * 60 + 30 <= minute < 12 * 60 + 10:
        return 0.0  # the sensor unplugged for 40 minutes of lunch
    if device == "D2":
        return 0.0  # a kitchen whose readings always were zero (a quiet one, or always broken: not new)
    if device == "D3" and day == 3 and 11 * 60 + 10 <= minute < 12 * 60 + 20:
        return 1.234  # 70 minutes of one value
    if device == "D4":
        return round(1.2 + rng.choice((-0.01, 0.0, 0.01)), 2)  # constant but noisy
    return noise


def messages(devices: list[str], days: range, per_message: int = 10) -> list[tuple[str, bytes]]:
    """Business hours of each day, a reading a minute per device, ``per_message`` minutes a message (a
    JSON array), the devices interleaved message by message; the fan runs 11:00-13:30 and 17:00-20:30
    (2 heads at 4,000 m3/h: C = C_ref). Few messages: the broker queues at most 1,000 for a subscriber
    that falls behind (mosquitto's max_queued_messages), and a loaded CI machine falls behind."""
    rng = random.Random(16)
    out = []
    for day in days:
        for lo, hi in ((10 * 60, 14 * 60), (16 * 60 + 30, 21 * 60 + 30)):
            for m0 in range(lo, hi, per_message):
                for d in devices:
                    rows = []
                    for m in range(m0, min(m0 + per_message, hi)):
                        cooking = 11 * 60 <= m < 13 * 60 + 30 or 17 * 60 <= m < 20 * 60 + 30
                        rows.append(
                            {
                                "ts": T0 + day * DAY + m * MIN,
                                "oil_fume": value(d, day, m, rng) if cooking else 0.05,
                                "flow": 4000.0 if cooking else 0.0,
                                "fan": cooking,
                                "purifier": True,
                            }
                        )
                    out.append((f"fume/v1/{d}/reading", orjson.dumps(rows)))
    return out


@pytest.mark.integration
def test_zero_and_flatline_through_fumewatch_run(mosquitto, tmp_path, webhook):
    devices = ["D1", "D2", "D3", "D4"]
    reg = tmp_path / "registry.csv"
    reg.write_text(
        "restaurant_id,name,district,device_id,stove_heads,owner_notify\n"
        + "".join(f"R{d[1]},店{d[1]},朝阳区,{d},2,{webhook.url(f'/owner/{d}')}\n" for d in devices),
        encoding="utf-8",
    )
    with fumewatch_run(mosquitto, tmp_path, reg, webhook.url("/inspector"), "integrity"):
        publish(mosquitto.url, messages(devices, range(4)), timeout_s=60)
        inspector = lambda: webhook.bodies("/inspector")  # noqa: E731
        wait_for(
            lambda: sum("数据可信性核查" in b.get("title", "") for b in inspector()) >= 2,
            90,
            "two data-integrity notices to the inspectors",
        )
    state = tmp_path / "state.db"
    with Ledger(str(state)) as ledger:
        found = ledger.list_events(kind="data_integrity")
        episodes = ledger.list_episodes()
        notices = ledger.notices_for_events([e.event_id for e in found])
    assert sorted((e.device_id, e.rule) for e in found) == [
        ("D1", "suspect_zero"),
        ("D3", "suspect_flatline"),
    ]
    zero = next(e for e in found if e.rule == "suspect_zero")
    assert zero.start_ms == T0 + 3 * DAY + (11 * 60 + 30) * MIN and zero.end_ms == zero.start_ms + 40 * MIN
    flat = next(e for e in found if e.rule == "suspect_flatline")
    assert flat.judgement["value_mg_m3"] == 1.234 and flat.judgement["minutes"] == 70
    assert all(e.level == "" and e.episode_id == "" for e in found) and episodes == []
    # inspectors only: one notice each (and the MQTT alert), never the owner
    assert (
        sorted((n.channel, n.status) for n in notices) == [("inspector", "sent")] * 2 + [("mqtt", "sent")] * 2
    )
    for d in devices:
        assert not any("数据可信性" in b.get("title", "") for b in webhook.bodies(f"/owner/{d}"))
    bodies = [b for b in webhook.bodies("/inspector") if "数据可信性核查" in b.get("title", "")]
    text = "\n".join(b["message"] for b in bodies)
    assert "共有 40 分钟为零" in text and "连续 70 分钟保持同一数值 1.234 mg/m³" in text
    assert "不是违法认定" in text and "北京时间 UTC+08:00" in text

    out = subprocess.run(
        [sys.executable, "-m", "fumewatch", "events", "--state", str(state), "--kind", "data_integrity"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and all("+08:00" in line for line in lines[1:])


# -- evidence under review -------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_case_on_doubted_data_is_marked_evidence_under_review(tmp_path, state_url):
    """A data_integrity finding overlapping a case's event marks the case "证据待核实" in the console (the
    real `fumewatch api`) and in the case file's PDF; the other case is not marked."""
    import io
    import shutil
    import urllib.parse
    import zipfile

    from test_console import INSPECTOR, serving, sign_in

    from alerts.casework import Casework
    from alerts.casework.case_zip import build_case_zip
    from alerts.model import Event

    with serving(tmp_path, state_url) as (srv, ids, url):
        with Ledger(url) as led:
            lead = led.get_event(ids["lead_event"])
            assert lead is not None
            led.upsert_event(
                Event(
                    event_id=f"integrity:suspect_zero:D1:{lead.start_ms}",
                    kind="data_integrity",
                    restaurant_id="R1",
                    device_id="D1",
                    district="朝阳区",
                    start_ms=lead.start_ms + 10 * MIN,
                    end_ms=lead.start_ms + 50 * MIN,
                    pollutant="oil_fume",
                    state="closed",
                    rule="suspect_zero",
                    judgement={"check": "suspect_zero", "minutes": 40.0},
                )
            )
            view = Casework(led, "Asia/Shanghai").view(ids["case_id"])
            other = Casework(led, "Asia/Shanghai").view(ids["other_case_id"])
            assert view is not None and other is not None
            assert [f["check"] for f in view["integrity"]] == ["suspect_zero"] and other["integrity"] == []
            _, data = build_case_zip(view, led, store=None, tz="Asia/Shanghai", names={"R1": "老王牛肉面"})
        client, _ = sign_in(srv.url, INSPECTOR)
        page = client.get(f"/console/cases/{urllib.parse.quote(ids['case_id'], safe='')}")
        assert (
            page.status_code == 200
            and 'id="evidence-under-review"' in page.text
            and "证据待核实" in page.text
        )
        assert "+08:00" in page.text.split('id="integrity"')[1].split("</section>")[0]
        page2 = client.get(f"/console/cases/{urllib.parse.quote(ids['other_case_id'], safe='')}")
        assert "证据待核实" not in page2.text
        # the restaurant carries a badge too
        r1 = client.get("/console/restaurants/R1")
        assert 'id="data-integrity"' in r1.text and "数据可信性存疑 1" in r1.text
        assert 'id="data-integrity"' not in client.get("/console/restaurants/R2").text
    exe = shutil.which("pdftotext")
    if exe is not None:  # poppler-utils: .ci/run installs it
        pdf = zipfile.ZipFile(io.BytesIO(data)).read("case.pdf")
        text = subprocess.run([exe, "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True)
        assert "证据待核实" in text.stdout.decode() and "integrity:suspect_zero:D1" in text.stdout.decode()
