"""Maintenance reminders (清洗提醒, alerts/maintenance, docs/reminders.md).

- the rule on hand-made service values: level, trend, the floor, a service over the limit
- a slow drift through the real ``fumewatch alerts`` process (real Mosquitto, real webhook receiver, the
  state on SQLite and on PostgreSQL): one reminder, sent once to the owner only, days before the first
  exceedance, never on the ladder
- the same drift judged twice (a restart replaying it) still gives one reminder and one notice
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest
from servers import publish_mqtt as publish
from servers import wait_for
from test_alerts_e2e import ALERTS_ENV

from alerts.detection.hours import BusinessHours
from alerts.ledger import Ledger
from alerts.maintenance.rule import LEVEL, TREND, ReminderRule, ServiceValue, judge, service_values
from alerts.model import WindowResult
from alerts.service import AlertsService
from fumewatch.settings import AppSettings
from ingest.config import load_settings
from ingest.pipeline import Pipeline
from ingest.registry import Registry

REPO = Path(__file__).resolve().parent.parent
MIN = 60_000
DAY = 86_400_000
T0 = 1795651200000 - 8 * 3600_000 - 20 * DAY  # 2026-11-06 00:00 Asia/Shanghai


def sv(day: float, value: float) -> ServiceValue:
    start = T0 + int(day * DAY) + 10 * 3600_000
    return ServiceValue(start, start + 4 * 3600_000, value, 15, 11)


# -- the rule -----------------------------------------------------------------------------------------------


def test_level_rule_needs_the_mean_of_the_last_services_above_the_share():
    rule = ReminderRule(trend_days=0)
    assert judge([sv(0, 1.5), sv(1, 1.6), sv(2, 1.7)], 2.0, rule) is None  # mean 1.6 is not above 1.6
    f = judge([sv(0, 1.0), sv(1, 1.6), sv(2, 1.7), sv(3, 1.75)], 2.0, rule)
    assert f is not None and f.basis == LEVEL
    assert f.threshold_mg_m3 == pytest.approx(1.6) and f.mean_mg_m3 == pytest.approx(1.6833, abs=1e-3)
    assert [s.value_mg_m3 for s in f.services] == [1.6, 1.7, 1.75]  # the 3 it looked at
    assert judge([sv(0, 1.9), sv(1, 1.9)], 2.0, rule) is None  # fewer than 3 valid services


def test_a_service_over_the_limit_is_the_ladders_not_a_reminder():
    rule = ReminderRule()
    assert judge([sv(0, 1.7), sv(1, 2.3), sv(2, 1.8)], 2.0, rule) is None
    rising = [sv(d / 2, 1.2 + 0.1 * d) for d in range(5)] + [sv(3, 2.1)]
    assert judge(rising, 2.0, rule) is None


def test_trend_rule_projects_the_crossing_and_has_a_floor():
    rule = ReminderRule()
    # 0.14 mg/m3 a day from 0.8: after three days the line reaches 2.0 within 7 days -> trend
    values = [sv(d / 2, 0.8 + 0.07 * d) for d in range(7)]
    f = judge(values, 2.0, rule)
    assert f is not None and f.basis == TREND
    assert f.slope_mg_m3_per_day == pytest.approx(0.14, abs=1e-3)
    days = (f.projected_cross_ms - values[-1].end_ms) / DAY
    assert days == pytest.approx((2.0 - 1.22) / 0.14, abs=0.05)
    assert len(f.services) == 6 and f.judgement()["service_values"][0]["value_mg_m3"] == pytest.approx(0.87)
    # the same rise below the floor (60 % of the limit) is no reason to write
    low = [sv(d / 2, 0.3 + 0.07 * d) for d in range(7)]
    assert judge(low, 2.0, rule) is None
    # a slow rise that needs longer than trend_days
    slow = [sv(d / 2, 1.25 + 0.01 * d) for d in range(7)]
    assert judge(slow, 2.0, rule) is None
    assert judge(values, 2.0, ReminderRule(trend_days=0)) is None  # trend off


def window(start: int, mean: float | None, valid: bool = True) -> WindowResult:
    return WindowResult(
        "D1", start, start + 10 * MIN, 10, 10, valid, "" if valid else "fan_off", mean, mean, False
    )


def test_service_value_is_the_highest_gb18483_group_of_the_service():
    hours = BusinessHours("10:00-14:00,16:30-21:30", "Asia/Shanghai")
    lunch = T0 + 11 * 3600_000
    means = [1.0, 1.0, 1.0, 1.0, 1.0, 1.8, 1.8, 1.8, 1.8, 1.8, 0.2]
    ws = [window(lunch + i * 10 * MIN, m) for i, m in enumerate(means)]
    ws.append(window(lunch + 12 * 10 * MIN, None, valid=False))  # fan off: not counted
    dinner = T0 + 17 * 3600_000
    ws += [window(dinner + i * 10 * MIN, 0.9) for i in range(4)]  # 4 valid windows: no group, no value
    (only,) = service_values(ws, hours)
    assert only.value_mg_m3 == pytest.approx(1.8)
    assert only.valid_windows == 11 and only.groups == 7
    assert (only.start_ms, only.end_ms) == (T0 + 10 * 3600_000, T0 + 14 * 3600_000)


# -- a slow drift through the real process ------------------------------------------------------------------


def drift_value(day: int) -> float:
    """The reference concentration while cooking on ``day``: a purifier silting up, 0.8 mg/m3 on the day
    it was cleaned, +0.14 a day: over the 2.0 limit from day 9."""
    return round(0.8 + 0.14 * day, 3)


def drift_messages(
    days: range, device: str = "D1", value=drift_value, per_message: int = 60
) -> list[tuple[str, bytes]]:
    """Business hours (10:00-14:00, 16:30-21:30) of each day, one reading a minute, ``per_message`` a message:
    the fan runs 11:00-13:30 and 17:00-20:30 at 4,000 m3/h (2 heads: C = C_ref = ``value(day)``)."""
    out = []
    for day in days:
        base = T0 + day * DAY
        rows = []
        for lo, hi in ((10 * 60, 14 * 60), (16 * 60 + 30, 21 * 60 + 30)):
            for m in range(lo, hi):
                cooking = 11 * 60 <= m < 13 * 60 + 30 or 17 * 60 <= m < 20 * 60 + 30
                rows.append(
                    {
                        "ts": base + m * MIN,
                        "oil_fume": value(day) if cooking else 0.05,
                        "flow": 4000.0 if cooking else 0.0,
                        "fan": cooking,
                        "purifier": True,
                    }
                )
        for i in range(0, len(rows), per_message):
            out.append((f"fume/v1/{device}/reading", orjson.dumps(rows[i : i + per_message])))
    return out


def write_registry(tmp_path: Path, owner_url: str) -> Path:
    p = tmp_path / "registry.csv"
    p.write_text(
        "restaurant_id,name,district,device_id,stove_heads,owner_notify\n"
        f"R1,老王牛肉面,朝阳区,D1,2,{owner_url}\n",
        encoding="utf-8",
    )
    return p


@pytest.mark.integration
def test_slow_drift_gives_one_reminder_before_any_exceedance(mosquitto, tmp_path, webhook, state_url):
    from servers import free_port

    reg = write_registry(tmp_path, webhook.url("/owner/R1"))
    metrics_port = free_port()
    env = {
        **os.environ,
        **ALERTS_ENV,  # event clock, quick commits, no warm-up, no retries
        "FUMEWATCH_METRICS_PORT": str(metrics_port),
        "FUMEWATCH_NOTIFY_INSPECTOR_TARGETS": json.dumps([webhook.url("/inspector")]),
        "FUMEWATCH_OWNER_PUBLIC_URL": "https://fume.example.gov.cn",
        "FUMEWATCH_OWNER_LINK_SECRET": "maintenance-test-secret-0123456789abcdefgh",
    }
    log = tmp_path / "alerts.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fumewatch",
                "alerts",
                "--broker",
                mosquitto.url,
                "--store",
                str(tmp_path / "fume.db"),
                "--registry",
                str(reg),
                "--state",
                state_url,
                "--client-id",
                f"alerts-drift-{tmp_path.name}"[:60],
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            wait_for(lambda: "event=broker_connected" in log.read_text(), 30, "alerts connected")
            publish(mosquitto.url, drift_messages(range(11)), timeout_s=30)  # days 0-10: over from day 9
            owner = lambda: webhook.bodies("/owner/R1")  # noqa: E731
            wait_for(
                lambda: (
                    any("清洗提醒" in b.get("title", "") for b in owner())
                    and any("教育" in b.get("title", "") or "超标" in b.get("title", "") for b in owner())
                ),
                60,
                "the reminder and the first exceedance's notice",
            )
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
                metrics = r.read().decode()
            assert "fumewatch_maintenance_reminders_total 1.0" in metrics  # counted, not silent
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]

    with Ledger(state_url) as ledger:
        (rem,) = ledger.list_events(kind="maintenance_reminder")
        exceedances = ledger.list_events(kind="exceedance")
        episodes = ledger.list_episodes()
        on_ladder = ledger.episode_events([p.episode_id for p in episodes])
        notices = ledger.notices_for_events([rem.event_id])
    assert exceedances, "the drift went over the limit"
    first = min(e.start_ms for e in exceedances)
    # days before the first exceedance (day 9): the trend rule saw it coming on day 3
    assert rem.start_ms < first - 5 * DAY
    assert rem.judgement["basis"] == "trend" and rem.rule == "maintenance"
    assert rem.start_ms == T0 + 3 * DAY + 14 * 3600_000  # the end of day 3's lunch service
    assert rem.level == "" and rem.episode_id == "" and rem.state == "closed"
    assert rem.event_id not in {e.event_id for e in on_ladder}
    assert episodes and {e.kind for e in on_ladder} == {"exceedance"}  # the first step: education
    assert {e.level for e in exceedances} == {"education"}
    # sent once, to the owner only (no inspector copy: it is no offence), and its MQTT copy
    assert sorted((n.channel, n.status) for n in notices) == [("mqtt", "sent"), ("owner", "sent")]
    reminders = [b for b in webhook.bodies("/owner/R1") if "清洗提醒" in b.get("title", "")]
    assert len(reminders) == 1
    body = reminders[0]["message"]
    assert "不是处罚通知" in body and "不计入违法记录" in body
    assert "1.22 mg/m³" in body and "北京时间 UTC+08:00" in body  # day 3's value, times in local time
    # the owner's page link, offering the data only: a reminder has no step, so the page has no forms
    assert "贵店专属页面（查看近 7 天监测数据，无需注册）：https://fume.example.gov.cn/o/" in body
    assert "在线提交" not in body
    assert not any("清洗" in b.get("title", "") for b in webhook.bodies("/inspector"))

    out = subprocess.run(
        [sys.executable, "-m", "fumewatch", "events", "--state", state_url, "--kind", "maintenance_reminder"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "maintenance_reminder" in out.stdout and "+08:00" in out.stdout


def in_process(tmp_path: Path, state: str, owner_url: str, **maintenance) -> tuple[AlertsService, Ledger]:
    reg = write_registry(tmp_path, owner_url)
    s = load_settings(
        None,
        {
            "ingest": {"registry": str(reg), "state": state, "store": str(tmp_path / "fume.db")},
            "alerts": {"clock": "event", "warmup_hours": 0},
            "notify": {"retries": 0},
            "maintenance": maintenance,
        },
        AppSettings,
    )
    registry = Registry.load(reg)
    ledger = Ledger(state)
    svc = AlertsService(s, registry, ledger, subscribe=False, publish_notices=False)
    svc.start()
    return svc, ledger


def feed_days(svc: AlertsService, days: range) -> None:
    pipe = Pipeline(svc.settings, svc.registry)
    for topic, payload in drift_messages(days):
        svc.feed(pipe.handle(topic, payload, T0 + 40 * DAY).readings)
        svc.advance()
    svc.finish()


def test_level_rule_alone_and_a_replay_still_one_reminder(tmp_path, webhook):
    state = str(tmp_path / "state.db")
    svc, ledger = in_process(tmp_path, state, webhook.url("/owner/R1"), trend_days=0)
    try:
        feed_days(svc, range(8))
    finally:
        svc.stop()
    (rem,) = ledger.list_events(kind="maintenance_reminder")
    assert rem.judgement["basis"] == "level"
    # day 7's lunch: the last 3 services 1.64, 1.64, 1.78 -> mean 1.69 > 1.6
    assert rem.start_ms == T0 + 7 * DAY + 14 * 3600_000
    assert rem.mean_mg_m3 == pytest.approx((1.64 + 1.64 + 1.78) / 3, abs=0.01)
    ledger.close()
    # the same readings judged again by a fresh service on the same ledger (state lost): still one
    (tmp_path / "again").mkdir()
    svc, ledger = in_process(tmp_path / "again", state, webhook.url("/owner/R1"), trend_days=0)
    try:
        feed_days(svc, range(8))
    finally:
        svc.stop()
    assert len(ledger.list_events(kind="maintenance_reminder")) == 1
    assert [n.status for n in ledger.notices_for_events([rem.event_id])] == ["sent"]
    assert sum("清洗提醒" in b.get("title", "") for b in webhook.bodies("/owner/R1")) == 1
    ledger.close()


def test_disabled_sends_nothing(tmp_path, webhook):
    svc, ledger = in_process(tmp_path, str(tmp_path / "state.db"), webhook.url("/owner/R1"), enabled=False)
    try:
        feed_days(svc, range(8))
    finally:
        svc.stop()
    assert ledger.list_events(kind="maintenance_reminder") == []
    ledger.close()


# -- the report and the city dashboard: the same figure ------------------------------------------------------


@pytest.mark.integration
def test_report_and_city_dashboard_count_the_same_service(tmp_path, webhook, influx_db):
    """R1 silts up, is reminded on day 3, cleans its purifier on day 5 (back under); R2 is reminded and goes
    on to exceed from day 9; R3 stays clean (no reminder). The report's figures and the city dashboard's
    stats (real InfluxDB 1.6, the dashboards' own queries) agree: 2 reminders, 1 back under, 1 exceeded."""
    from alerts.reports import build_report, render
    from dashboards import ALL, fill
    from dashboards import reminders as dash
    from dashboards.common import Options
    from ingest.store import open_store

    reg = tmp_path / "registry.csv"
    reg.write_text(
        "restaurant_id,name,district,device_id,stove_heads,owner_notify\n"
        + "".join(f"R{i},店{i},朝阳区,D{i},2,{webhook.url(f'/owner/R{i}')}\n" for i in (1, 2))
        + f"R3,店3,海淀区,D3,2,{webhook.url('/owner/R3')}\n",
        encoding="utf-8",
    )
    s = load_settings(
        None,
        {
            "ingest": {
                "registry": str(reg),
                "state": str(tmp_path / "state.db"),
                "store": influx_db.relay_url,
            },
            "influx": {"bucket": influx_db.name, "org": "fumewatch", "flush_interval_ms": 100},
            "alerts": {"clock": "event", "warmup_hours": 0},
            "notify": {"retries": 0},
        },
        AppSettings,
    )
    registry = Registry.load(reg)
    store = open_store(influx_db.relay_url, s, readings=False)
    ledger = Ledger(str(tmp_path / "state.db"))
    svc = AlertsService(s, registry, ledger, store=store, subscribe=False, publish_notices=False)
    svc.start()
    cleaned = lambda day: drift_value(day) if day < 5 else 0.8  # noqa: E731
    pipe = Pipeline(s, registry)
    kitchens = (("D1", cleaned), ("D2", drift_value), ("D3", lambda d: 0.5))
    per_device = [drift_messages(range(12), dev, fn, per_message=10) for dev, fn in kitchens]
    try:
        for group in zip(*per_device, strict=True):  # the three kitchens 10 minutes at a time, in time order
            rs = [r for topic, payload in group for r in pipe.handle(topic, payload, T0 + 40 * DAY).readings]
            svc.feed(sorted(rs, key=lambda r: r.time_ms))
            svc.advance()
        svc.finish()
        until = T0 + 12 * DAY
        assert svc._dash is not None and svc._dash.reminders.sync(time_ms=until) == 2
        store.flush()
    finally:
        svc.stop()

    report = build_report(ledger, registry, T0, until, now=until)
    sv = report.totals()["service"]
    assert (sv["reminders"], sv["back_under"], sv["exceeded"], sv["still_above"], sv["pending"]) == (
        2,
        1,
        1,
        0,
        0,
    )
    by = report.reminders.set_index("restaurant_id")
    assert by.loc["R1", "outcome"] == "back_under" and by.loc["R2", "outcome"] == "exceeded"
    assert by.loc["R1", "delivered"] == "yes" and by.loc["R1", "mean_after_mg_m3"] == pytest.approx(0.8)
    summary = report.summary.set_index("restaurant_id")
    assert (
        summary.loc["R1", "maintenance_reminder_events"] == 1
        and summary.loc["R3", "maintenance_reminder_events"] == 0
    )

    o = Options()
    q = lambda query, d=ALL: influx_db.points(fill(query, {"district": d}, T0, until, "1h"))  # noqa: E731
    assert [r["reminders"] for r in q(dash.q_sent(o))] == [2]
    assert [r["back_under"] for r in q(dash.q_outcome(o, "back_under"))] == [1]
    assert [r["exceeded"] for r in q(dash.q_outcome(o, "exceeded"))] == [1]
    assert [r["back_under_share"] for r in q(dash.q_back_under_share(o))] == [0.5]
    assert q(dash.q_sent(o), ["海淀区"]) == []  # R3 got none

    # every format carries the section; the csv table and the json list agree with the totals
    html = render(report, "html").decode()
    assert "优服务：清洗提醒" in html and "已回落（不再接近限值）" in html and "此后仍发生超标" in html
    csv_text = render(report, "csv", table="reminders").decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("restaurant_id,name,district,device_id,time,basis")
    assert "+08:00" in csv_text.splitlines()[1]
    doc = json.loads(render(report, "json"))
    assert [r["outcome"] for r in doc["reminders"]] == ["back_under", "exceeded"]
    assert doc["totals"]["service"]["back_under"] == 1
    assert render(report, "xlsx")[:2] == b"PK" and render(report, "pdf")[:4] == b"%PDF"
    (tmp_path / "report.pdf").write_bytes(render(report, "pdf"))
    ledger.close()


# -- what followed a reminder -------------------------------------------------------------------------------


def lunch_windows(day: int, value: float) -> list[WindowResult]:
    start = T0 + day * DAY + 11 * 3600_000
    return [window(start + i * 10 * MIN, value) for i in range(5)]


def test_outcome_follows_the_rule_it_was_judged_by():
    from casedata import reminder

    from alerts.maintenance.outcomes import outcome_of

    hours = BusinessHours("10:00-14:00,16:30-21:30", "Asia/Shanghai")
    rising = [w for d in range(6) for w in lunch_windows(d, 0.8 + 0.14 * d)]
    f = judge(service_values(rising, hours), 2.0, ReminderRule())
    assert f is not None and f.basis == TREND
    at = T0 + 5 * DAY + 14 * 3600_000
    rem = reminder(at, f.judgement())

    def outcome(later: dict[int, float], exceedances=()) -> str:
        ws = rising + [w for d, v in later.items() for w in lunch_windows(d, v)]
        return outcome_of(rem, ws, exceedances, hours).outcome

    assert outcome({6: 1.5, 7: 1.6}) == "pending"  # 2 services since: too few
    assert outcome({6: 1.5, 7: 1.62, 8: 1.76}) == "still_above"  # still rising towards the limit
    assert outcome({6: 0.8, 7: 0.75, 8: 0.8}) == "back_under"  # cleaned: low and flat
    assert outcome({6: 0.8, 7: 0.75, 8: 0.8}, [T0 + 9 * DAY]) == "exceeded"
    assert outcome({6: 0.8, 7: 0.75, 8: 0.8}, [T0]) == "back_under"  # an exceedance before it does not count


def test_a_profile_may_remind_at_its_own_share(tmp_path):
    from alerts.detection.window import DetectorConfig
    from alerts.maintenance.settings import MaintenanceSettings
    from alerts.maintenance.watch import MaintenanceWatch
    from alerts.profiles import ProfileError, load_profiles

    f = tmp_path / "profiles.toml"
    f.write_text('[city-early]\nextends = "gb18483"\nmaintenance_share_of_limit = 0.6\n', encoding="utf-8")
    profiles = load_profiles(f)
    assert profiles.get("city-early").maintenance_share_of_limit == 0.6
    assert profiles.get("gb18483").maintenance_share_of_limit is None
    with Ledger(str(tmp_path / "s.db")) as ledger:
        watch = MaintenanceWatch(ledger, Registry([]), profiles, MaintenanceSettings(), DetectorConfig())
        assert watch.rule_for("city-early").share_of_limit == 0.6
        assert watch.rule_for("gb18483").share_of_limit == 0.8  # [maintenance] share_of_limit
    bad = tmp_path / "bad.toml"
    bad.write_text('[x]\nextends = "gb18483"\nmaintenance_share_of_limit = 1.5\n', encoding="utf-8")
    with pytest.raises(ProfileError, match="maintenance_share_of_limit"):
        load_profiles(bad)
