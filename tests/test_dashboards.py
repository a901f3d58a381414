"""Dashboards as code: SDK round trip, provisioning, CLI, and every panel's InfluxQL against real data.

The data test loads a real InfluxDB (1.6.7 behind the /api/v2/write relay, fixture ``influx_db``) through
the real ingest path (readings published on a real Mosquitto, IngestService with the InfluxDB store),
writes ``fume_window`` / ``fume_event`` points as line protocol the way alerts/influx_sink.py does, then
fills in every query of both dashboards exactly as Grafana would (variables in regex form, $timeFilter,
$__interval) and checks the rows against what pandas computes from the same readings.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pandas as pd
import pytest
import yaml

import dashboards
from alerts.influx_sink import case_line, restaurant_lines, restaurant_tombstone
from alerts.influx_sink import event_line as sink_event_line
from alerts.model import Event
from dashboards import (
    ALL,
    Raw,
    cases,
    city,
    citymap,
    fill,
    grafana_interval,
    integrity,
    names,
    queries,
    reminders,
    restaurant,
    roster,
)
from dashboards.common import (
    DISTRICT,
    INTEGRITY_KIND,
    NOT_OFFENCE_KINDS,
    OFFENCES_ONLY,
    REMINDER_KIND,
    Options,
    district_variable,
    restaurant_variable,
)
from dashboards.influxql import ANNOTATION_ONLY_KEYS, InfluxQLQuery
from dashboards.queries import panel_range, parse_duration_ms, regex_escape, round_interval
from ingest.config import load_settings
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store import open_store
from ingest.timeutil import now_ms

REPO = Path(__file__).resolve().parent.parent
OPTS = Options()

# ================================================================================ structure (no server)


def test_build_has_uids_titles_variables_and_panels():
    docs = dashboards.build_all()
    assert set(docs) == {"fumewatch-city", "fumewatch-restaurant"}
    cdoc, rdoc = docs["fumewatch-city"], docs["fumewatch-restaurant"]
    assert cdoc["title"] == "城市餐饮油烟监控总览 / City cooking-fume overview"
    assert rdoc["title"] == "餐饮单位油烟监控 / Restaurant compliance"
    assert [v["name"] for v in cdoc["templating"]["list"]] == ["datasource", "district"]
    assert [v["name"] for v in rdoc["templating"]["list"]] == ["datasource", "district", "restaurant"]
    district = cdoc["templating"]["list"][1]
    assert district["multi"] and district["includeAll"] and district["allValue"] == ".*"
    assert district["query"] == 'SHOW TAG VALUES FROM "fume_reading" WITH KEY = "district"'
    ds_var = cdoc["templating"]["list"][0]
    assert ds_var["type"] == "datasource" and ds_var["query"] == "influxdb"
    assert ds_var["current"]["value"] == "fumewatch-influxdb"
    assert [p["type"] for p in cdoc["panels"]] == [
        "geomap",  # first: the big screen's map
        "stat",
        "stat",
        "stat",
        "stat",
        "table",  # every restaurant, today
        "table",  # enforcement cases
        "bargauge",
        "bargauge",
        "table",
        "timeseries",
        "row",  # 优服务 / Service before penalty
        *["stat"] * 6,
        "table",
        "row",  # 数据可信性 / Data integrity
        "stat",
        "table",
    ]
    assert [p["type"] for p in rdoc["panels"]] == [
        "stat",
        "stat",
        "stat",
        "timeseries",
        "timeseries",
        "state-timeline",
        "timeseries",
        "table",
        "table",  # the restaurant's maintenance reminders
    ]
    assert [a["name"] for a in rdoc["annotations"]["list"]] == [
        "超标事件 / Exceedance events",
        "净化器关闭 / Purifier off",
        "设备离线 / Device offline",
    ]
    for doc in docs.values():
        assert doc["timezone"] == "Asia/Shanghai"
        ids = [p["id"] for p in doc["panels"]]
        assert len(set(ids)) == len(ids)
        for p in doc["panels"]:
            zh, sep, en = p["title"].partition(" / ")
            assert sep and zh and en.isascii(), p["title"]  # "中文 / English"
            if p["type"] == "row":
                assert p["collapsed"] is False and p["panels"] == []  # its panels follow it
                continue
            assert p["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
            for t in p["targets"]:
                assert t["rawQuery"] is True and t["query"].startswith("SELECT ")
                # the panel's range, or a fixed look-back for what is shown "now" whatever the range
                assert "$timeFilter" in t["query"] or "time > now() - " in t["query"], t["query"]
    # the limit is drawn as a second series on the oil-fume panel, styled as a red dashed line
    oil = next(p for p in rdoc["panels"] if p["title"].startswith("折算油烟浓度"))
    assert [t["refId"] for t in oil["targets"]] == ["A", "B"]
    assert "limit_mg_m3" in oil["targets"][1]["query"]
    limit_override = oil["fieldConfig"]["overrides"][0]
    assert limit_override["matcher"] == {"id": "byFrameRefID", "options": "B"}
    # the table is sorted by severity, highest first
    tbl = next(p for p in cdoc["panels"] if p["title"].startswith("餐饮单位最新事件"))
    assert tbl["options"]["sortBy"] == [{"displayName": "严重度 / Severity", "desc": True}]
    daily = next(p for p in rdoc["panels"] if p["title"].startswith("日达标率"))
    assert "GROUP BY time(1d) fill(none) tz('Asia/Shanghai')" in daily["targets"][0]["query"]


def test_offence_queries_leave_out_reminders_and_integrity_findings():
    """Maintenance reminders (fume_event kind maintenance_reminder) and data-integrity findings (kind
    data_integrity) are not offences: every query of the events measurement selects an offence kind or
    leaves both out, but the events-over-time chart, where each is a series of its own with a name that
    says so, and the panels that select the findings themselves (:data:`OWN_PANEL_QUERIES`)."""
    assert (REMINDER_KIND, INTEGRITY_KIND) == NOT_OFFENCE_KINDS == ("maintenance_reminder", "data_integrity")
    assert OFFENCES_ONLY == "\"kind\" != 'maintenance_reminder' AND \"kind\" != 'data_integrity'"
    own = {city.q_events_over_time(OPTS), *own_panel_queries(OPTS)}
    selects_kind = re.compile(r"\"kind\" = '(exceedance|purifier_off|offline)'")
    seen = 0
    for doc in dashboards.build_all(OPTS).values():
        for pq in queries(doc):
            if '"fume_event"' not in pq.query or pq.query in own:
                continue
            seen += 1
            assert OFFENCES_ONLY in pq.query or selects_kind.search(pq.query), (pq.panel, pq.query)
    # city: the map (3), 2 stats, the table of every restaurant (2), peaks, latest event; restaurant: the
    # open-events stat, the events table, 3 annotations
    assert seen == 14
    for q in (city.q_latest_event(OPTS), roster.q_open_events(OPTS), roster.q_ladder(OPTS)):
        assert OFFENCES_ONLY in q
    for q in (restaurant.q_open_events(OPTS), restaurant.q_events(OPTS)):
        assert OFFENCES_ONLY in q
    for q in own_panel_queries(OPTS):  # the findings' own panels select them
        assert "\"kind\" = 'data_integrity'" in q, q
    cdoc = dashboards.build_all(OPTS)["fumewatch-city"]
    chart = next(p for p in cdoc["panels"] if p["title"].startswith("事件趋势"))
    assert chart["targets"][0]["alias"] == "$tag_kind"
    for kind, name in (
        (REMINDER_KIND, "清洗提醒（非违法） / Maintenance reminder (not an offence)"),
        (INTEGRITY_KIND, "数据可信性存疑（待核查） / Data integrity in doubt (not an offence)"),
    ):
        [series] = [o for o in chart["fieldConfig"]["overrides"] if o["matcher"]["options"] == kind]
        assert series["matcher"]["id"] == "byName"
        assert {"id": "displayName", "value": name} in series["properties"]


def own_panel_queries(o: Options) -> list[str]:
    """The queries of the panels that show data-integrity findings on their own (dashboards/integrity.py)."""
    return [integrity.q_count(o), integrity.q_table(o)]


def row_panels(doc: dict, title: str) -> tuple[dict, list[dict]]:
    """A row of a dashboard and the panels under it (up to the next row)."""
    panels = doc["panels"]
    start = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == title)
    end = next((i for i, p in enumerate(panels) if p["type"] == "row" and i > start), len(panels))
    return panels[start], panels[start + 1 : end]


def test_service_before_penalty_row_on_the_city_dashboard():
    """The 优服务 row: six stats over the range and the reminders table, all on fume_reminder by $district."""
    cdoc = dashboards.build_all(OPTS)["fumewatch-city"]
    row, group = row_panels(cdoc, "优服务 / Service before penalty")
    assert [p["title"] for p in group] == [
        "清洗提醒（时段内） / Reminders sent in range",
        "提醒后已回落 / Back under after reminder",
        "回落率 / Back-under share",
        "提醒后超标 / Went on to exceed",
        "仍偏高 / Still above",
        "待观察 / Pending",
        "清洗提醒明细 / Maintenance reminders in range",
    ]
    # under the row, side by side: the stats fill one line of the grid, the table the next
    y = row["gridPos"]["y"] + 1
    assert [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in group[:6]] == [(x, y) for x in range(0, 24, 4)]
    assert group[6]["gridPos"] == {"x": 0, "y": y + 4, "w": 24, "h": 8}
    queries_by_title = {p["title"]: [t["query"] for t in p["targets"]] for p in group}
    for title, qs in queries_by_title.items():
        assert '"fume_reminder"' in qs[0] and DISTRICT in qs[0] and "$timeFilter" in qs[0], title
    assert [queries_by_title[p["title"]][0] for p in group[:6]] == [
        reminders.q_sent(OPTS),
        reminders.q_outcome(OPTS, "back_under"),
        reminders.q_back_under_share(OPTS),
        reminders.q_outcome(OPTS, "exceeded"),
        reminders.q_outcome(OPTS, "still_above"),
        reminders.q_outcome(OPTS, "pending"),
    ]
    assert reminders.q_sent(OPTS) == (
        'SELECT count("event_id") AS "reminders" FROM "fume_reminder" '
        'WHERE "district" =~ /^$district$/ AND $timeFilter'
    )
    assert reminders.q_outcome(OPTS, "exceeded") == (
        'SELECT sum("exceeded") AS "exceeded" FROM "fume_reminder" WHERE "district" =~ /^$district$/ AND $timeFilter'
    )
    # the share: back_under / (sent - pending), as one mean over the reminders whose outcome is known
    assert reminders.q_back_under_share(OPTS) == (
        'SELECT mean("back_under") AS "back_under_share" FROM "fume_reminder" '
        'WHERE "pending" = 0 AND "district" =~ /^$district$/ AND $timeFilter'
    )
    share = group[2]
    assert share["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert share["fieldConfig"]["defaults"]["noValue"] == "—"  # no known outcome yet: no share, not 0 %
    assert all(p["fieldConfig"]["defaults"]["noValue"] == "0" for p in group[:6] if p is not share)
    with pytest.raises(ValueError):
        reminders.q_outcome(OPTS, "served")
    # the table: the registry joined for the name, the outcome in words, the time in the display zone
    tbl = group[6]
    assert [t["refId"] for t in tbl["targets"]] == ["A", names.REGISTRY_REF]
    assert tbl["targets"][1]["query"] == names.q_restaurants(OPTS)
    assert tbl["transformations"][1]["options"] == {"byField": "restaurant_id", "mode": "outerTabular"}
    organize = tbl["transformations"][-1]["options"]["indexByName"]
    assert list(organize) == ["Time", "name", "district", "mean_mg_m3", "threshold_mg_m3", "outcome"]
    overrides = {
        o["matcher"]["options"]: {x["id"]: x["value"] for x in o["properties"]}
        for o in tbl["fieldConfig"]["overrides"]
    }
    assert overrides["Time"]["unit"] == "time:YYYY-MM-DDTHH:mm:ssZ"
    assert overrides["name"]["links"][0]["url"].startswith("/d/fumewatch-restaurant/")
    [mapping] = overrides["outcome"]["mappings"]
    assert {k: v["text"] for k, v in mapping["options"].items()} == {
        "pending": "待观察 / pending",
        "back_under": "已回落 / back under",
        "exceeded": "后续超标 / went on to exceed",
        "still_above": "仍偏高 / still above",
    }
    assert tbl["options"]["sortBy"] == [{"displayName": "提醒时间 / Reminded at", "desc": True}]
    # the measurement's name is an option, as the others
    rdoc = dashboards.build_all(OPTS)["fumewatch-restaurant"]
    mine = rdoc["panels"][-1]
    assert mine["title"] == "清洗提醒 / Maintenance reminders"
    assert [t["query"] for t in mine["targets"]] == [restaurant.q_reminders(OPTS)]
    assert '"restaurant_id" =~ /^$restaurant$/' in restaurant.q_reminders(OPTS)
    renamed = Options(reminder_measurement="svc_reminder")
    assert '"svc_reminder"' in reminders.q_sent(renamed) and '"svc_reminder"' in reminders.q_table(renamed)


def test_data_integrity_row_on_the_city_dashboard():
    """The 数据可信性 row, last: the count of findings of the range and their table, on fume_event kind
    data_integrity by $district; both say the findings are screening findings, not offences."""
    cdoc = dashboards.build_all(OPTS)["fumewatch-city"]
    assert cdoc["panels"][-3]["title"] == "数据可信性 / Data integrity"
    row, group = row_panels(cdoc, "数据可信性 / Data integrity")
    assert [(p["type"], p["title"]) for p in group] == [
        ("stat", "数据可信性存疑（时段内） / Data-integrity findings in range"),
        ("table", "数据可信性存疑（待核查） / Data integrity in doubt (to check)"),
    ]
    count, tbl = group
    y = row["gridPos"]["y"] + 1
    assert (count["gridPos"], tbl["gridPos"]) == (
        {"x": 0, "y": y, "w": 4, "h": 8},
        {"x": 4, "y": y, "w": 20, "h": 8},
    )
    where = '"kind" = \'data_integrity\' AND "district" =~ /^$district$/ AND $timeFilter'
    assert (
        integrity.q_count(OPTS) == f'SELECT count("event_id") AS "findings" FROM "fume_event" WHERE {where}'
    )
    assert integrity.q_table(OPTS) == (
        'SELECT "rule", "duration_s" / 60 AS "minutes", "event_id", "device_id", "restaurant_id", "district" '
        f'FROM "fume_event" WHERE {where}'
    )
    assert [t["query"] for t in count["targets"]] == [integrity.q_count(OPTS)]
    assert count["fieldConfig"]["defaults"]["noValue"] == "0"
    for p in group:  # for inspectors, not offences
        assert "不是违法认定" in p["description"] and "not offences" in p["description"], p["title"]
        assert "screening findings for inspectors" in p["description"]
    # the table: the registry joined for the name, the check in words, the time in the display zone
    assert [t["refId"] for t in tbl["targets"]] == ["A", names.REGISTRY_REF]
    assert [t["query"] for t in tbl["targets"]] == [integrity.q_table(OPTS), names.q_restaurants(OPTS)]
    organize = tbl["transformations"][-1]["options"]["indexByName"]
    assert list(organize) == ["Time", "district", "name", "device_id", "rule", "minutes"]
    overrides = {
        o["matcher"]["options"]: {x["id"]: x["value"] for x in o["properties"]}
        for o in tbl["fieldConfig"]["overrides"]
    }
    assert overrides["Time"] == {"displayName": "开始 / Start", "unit": "time:YYYY-MM-DDTHH:mm:ssZ"}
    assert cdoc["timezone"] == "Asia/Shanghai"  # Grafana formats the unit in the dashboard's zone
    assert overrides["name"]["links"][0]["url"].startswith("/d/fumewatch-restaurant/")
    assert overrides["device_id"]["displayName"] == "设备 / Device"
    assert overrides["minutes"] == {"displayName": "持续（分钟） / Minutes", "decimals": 0}
    assert overrides["rule"]["displayName"] == "检查项 / Check"
    [mapping] = overrides["rule"]["mappings"]
    assert mapping["type"] == "value"
    assert {k: v["text"] for k, v in mapping["options"].items()} == {
        "suspect_zero": "疑似零值 / suspect zero",
        "suspect_flatline": "疑似恒值 / suspect flatline",
        "suspect_replay": "疑似数据回放 / suspect replay",
        "suspect_clone": "疑似数据克隆 / suspect clone",
        "suspect_clock": "疑似时钟异常 / suspect clock",
        "suspect_flow": "疑似流量异常 / suspect flow",
    }
    assert tbl["options"]["sortBy"] == [{"displayName": "开始 / Start", "desc": True}]
    renamed = Options(event_measurement="svc_event")
    assert '"svc_event"' in integrity.q_count(renamed) and '"svc_event"' in integrity.q_table(renamed)


def contains(big: object, small: object, path: str = "") -> None:
    """Every key and value of ``small`` is in ``big`` (the SDK may add its defaults, never drop ours)."""
    if isinstance(small, dict):
        assert isinstance(big, dict), path
        for k, v in small.items():
            assert k in big, f"{path}/{k} lost"
            contains(big[k], v, f"{path}/{k}")
    elif isinstance(small, list):
        assert isinstance(big, list) and len(big) == len(small), path
        for n, (b, s) in enumerate(zip(big, small, strict=True)):
            contains(b, s, f"{path}[{n}]")
    else:
        assert big == small, f"{path}: {big!r} != {small!r}"


def test_json_round_trips_through_the_sdk_models():
    from grafana_foundation_sdk.models.dashboard import Dashboard

    for doc in dashboards.build_all().values():
        again = dashboards.validate(doc)
        # everything survives except the InfluxQL keys of annotation targets, which the SDK's
        # AnnotationTarget model does not have (documented in dashboards.influxql)
        stripped = json.loads(json.dumps(doc))
        for a in stripped["annotations"].get("list", []):
            for k in ANNOTATION_ONLY_KEYS:
                a["target"].pop(k, None)
        contains(again, stripped)
        assert dashboards.validate(again) == again  # stable
        model = Dashboard.from_json(doc)
        targets = [t for p in model.panels for t in getattr(p, "targets", None) or []]  # rows have none
        assert targets and all(isinstance(t, InfluxQLQuery) for t in targets)
        assert model.uid == doc["uid"] and model.title == doc["title"]


def test_provisioning_yaml(tmp_path):
    from dashboards import provisioning

    written = provisioning.write(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "provisioning/datasources/fumewatch.yaml",
        "provisioning/dashboards/fumewatch.yaml",
    ]
    ds_doc = yaml.safe_load(written[0].read_text(encoding="utf-8"))
    assert ds_doc["apiVersion"] == 1
    (ds,) = ds_doc["datasources"]
    assert ds["uid"] == "fumewatch-influxdb" and ds["type"] == "influxdb" and ds["access"] == "proxy"
    assert ds["url"] == "${INFLUX_URL}"
    assert ds["jsonData"]["version"] == "InfluxQL"
    assert ds["jsonData"]["dbName"] == "${INFLUX_DATABASE}"
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUX_TOKEN}"
    dash_doc = yaml.safe_load(written[1].read_text(encoding="utf-8"))
    (prov,) = dash_doc["providers"]
    assert prov["type"] == "file" and prov["options"]["path"] == "/var/lib/grafana/dashboards/fumewatch"
    assert prov["folder"] == "FumeWatch 油烟监控"


def run_module(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fumewatch", "dashboards", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_cli_build_writes_dashboards_and_provisioning(tmp_path):
    out = tmp_path / "grafana"
    res = run_module("build", "--out", str(out), "--dashboards-path", "/dash")
    assert res.returncode == 0, res.stderr
    expected = [
        out / "dashboards" / "fumewatch-city.json",
        out / "dashboards" / "fumewatch-restaurant.json",
        out / "provisioning" / "datasources" / "fumewatch.yaml",
        out / "provisioning" / "dashboards" / "fumewatch.yaml",
    ]
    assert res.stdout.splitlines() == [f"wrote {p}" for p in expected]
    docs = dashboards.build_all()
    for uid in docs:
        on_disk = json.loads((out / "dashboards" / f"{uid}.json").read_text(encoding="utf-8"))
        assert on_disk == docs[uid]
    prov = yaml.safe_load((out / "provisioning/dashboards/fumewatch.yaml").read_text(encoding="utf-8"))
    assert prov["providers"][0]["options"]["path"] == "/dash"
    # the same through the `fumewatch` command
    res2 = subprocess.run(
        [
            sys.executable,
            "-c",
            "from fumewatch.cli import main; raise SystemExit(main())",
            "dashboards",
            "queries",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert res2.returncode == 0, res2.stderr
    rows = res2.stdout.splitlines()
    assert rows[0] == "uid\tsource\tpanel\trefId\tquery"
    assert len(rows) - 1 == sum(len(queries(d)) for d in docs.values())


def test_cli_push_errors_say_why_and_never_print_the_token():
    from servers import free_port

    secret = "glsa_TOPSECRET_0123456789"
    res = run_module(
        "push",
        "--grafana",
        f"http://127.0.0.1:{free_port()}",
        "--timeout",
        "3",
        env={"FUMEWATCH_GRAFANA_TOKEN": secret},
    )
    assert res.returncode == 2
    assert "Grafana unreachable" in res.stderr
    assert secret not in res.stderr + res.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_GRAFANA")}
    res = subprocess.run(
        [sys.executable, "-m", "fumewatch", "dashboards", "push", "--grafana", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env=env,
    )
    assert res.returncode == 2 and "no Grafana credentials" in res.stderr


def test_fill_substitutes_like_grafana():
    q = 'SELECT mean("x") FROM "m" WHERE "district" =~ /^$district$/ AND "r" =~ /^${restaurant}$/ AND $timeFilter GROUP BY time($__interval)'
    out = fill(q, {"district": ["朝阳区", "海淀区"], "restaurant": "R.1"}, 1_000, 2_000, "5m")
    assert out == (
        'SELECT mean("x") FROM "m" WHERE "district" =~ /^(朝阳区|海淀区)$/ AND "r" =~ /^R\\.1$/ '
        "AND time >= 1000ms and time <= 2000ms GROUP BY time(5m)"
    )
    assert fill("/^$district$/", {"district": ALL}, 0, 1, "1m") == "/^.*$/"
    assert fill("/^$district$/", {"district": ["a/b"]}, 0, 1, "1m") == "/^a\\/b$/"
    assert fill(
        "$__interval_ms $interval [[restaurant]] $unknown", {"restaurant": Raw("R1")}, 0, 1, "1h"
    ) == ("3600000 1h R1 $unknown")
    assert fill("${__from} ${__to}", {}, 5, 6, 60_000) == "5 6"
    assert regex_escape("a.b*c(d)|e") == "a\\.b\\*c\\(d\\)\\|e"
    # Grafana's interval: range / max data points, at least the minimum, rounded to its steps
    six_h = 6 * 3_600_000
    assert grafana_interval(0, six_h, 100, "1m") == "5m"  # 216 s -> 5m
    assert grafana_interval(0, six_h, 1500, "1m") == "1m"  # 14.4 s < 1m
    assert grafana_interval(0, 7 * 86_400_000, 1000, None) == "10m"  # 604.8 s -> 10m
    assert grafana_interval(0, six_h, 100, "1h") == "1h"
    assert round_interval(45_000) == 30_000 and round_interval(86_400_000) == 43_200_000
    assert parse_duration_ms("30d") == 30 * 86_400_000
    # a panel's relative time: "30d" back from now, or "Today so far" from the local midnight
    now = 1_795_700_000_000  # 2026-11-26T21:33:20+08:00
    assert panel_range("30d", now, "Asia/Shanghai") == (now - 30 * 86_400_000, now)
    assert panel_range("now/d", now, "Asia/Shanghai") == (1_795_651_200_000 - 8 * 3_600_000, now)
    assert panel_range("now/d", now, "UTC") == (now - now % 86_400_000, now)


# ================================================================================ data (real servers)

REGISTRY_CSV = """restaurant_id,name,district,device_id,stove_heads
R1,老王牛肉面,朝阳区,DEV-1,2
R2,川味小厨,朝阳区,DEV-2,4
R3,湘菜馆,海淀区,DEV-3,3
R3,湘菜馆,海淀区,DEV-3B,3
"""
DISTRICTS = {"R1": "朝阳区", "R2": "朝阳区", "R3": "海淀区"}
MINUTES = 360  # six hours of 1-minute data around a Shanghai midnight
WINDOW_MS = 600_000
LIMITS = {"oil_fume": 2.0, "pm": 5.0, "nmhc": 10.0}  # GB 18483 oil fume; DB11/1488-style PM, NMHC
MAX_DATA_POINTS = 100  # 6 h / 100 -> Grafana's $__interval = 5m
SHANGHAI = "Asia/Shanghai"


def reading_docs(d0: int) -> dict[str, list[dict]]:
    """Known 1-minute values per device. R1 (flow 5000, 2 heads: x1.25) exceeds for two hours."""
    out: dict[str, list[dict]] = {"DEV-1": [], "DEV-2": [], "DEV-3": []}
    for i in range(MINUTES):
        t = d0 + i * 60_000
        oil1 = 2.2 + 0.05 * ((i % 5) - 2) if 120 <= i < 240 else 0.9 + 0.01 * (i % 7)
        out["DEV-1"].append(
            {
                "ts": t,
                "oil_fume": round(oil1, 4),
                "pm": round(1.0 + 0.1 * (i % 3), 4),
                "nmhc": round(4.0 + 0.2 * (i % 4), 4),
                "flow": 5000.0,
                "fan": True,
                "purifier": True,
            }
        )
        out["DEV-2"].append(
            {
                "ts": t,
                "oil_fume": round(1.2 + 0.02 * (i % 6), 4),
                "flow": 8000.0,
                "fan": not (302 <= i < 333),  # fan off ~30 min: those windows are invalid
                "purifier": 0 if 62 <= i < 88 else 1,  # purifier off 26 min (not on bucket edges)
            }
        )
        if not (200 <= i < 215):  # a 15-minute gap: one empty window, one incomplete
            out["DEV-3"].append({"ts": t, "oil_fume": round(0.7 + 0.03 * (i % 4), 4), "pm": 0.8, "fan": 1})
    return out


def publish_readings(broker_url: str, docs: dict[str, list[dict]]) -> None:
    host, port = broker_url.removeprefix("mqtt://").split(":")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dash-pub-{time.monotonic_ns()}")
    c.connect(host, int(port))
    c.loop_start()
    try:
        infos = []
        for dev, items in docs.items():
            for k in range(0, len(items), 60):
                infos.append(c.publish(f"fume/v1/{dev}/reading", orjson.dumps(items[k : k + 60]), qos=1))
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        c.loop_stop()
        c.disconnect()


def ingest_into_influx(tmp_path: Path, broker_url: str, influx_db, docs: dict[str, list[dict]]) -> int:
    registry_file = tmp_path / "registry.csv"
    registry_file.write_text(REGISTRY_CSV, encoding="utf-8")
    settings = load_settings(
        None,
        {
            "mqtt": {"broker": broker_url, "client_id": f"dash-ingest-{tmp_path.name}"},
            "ingest": {
                "store": influx_db.relay_url,
                "state": str(tmp_path / "state.db"),
                "registry": str(registry_file),
                "flush_interval_s": 0.1,
            },
            "influx": {"bucket": influx_db.name, "org": "fumewatch", "flush_interval_ms": 200},
        },
    )
    store = open_store(influx_db.relay_url, settings)
    state = StateDB(settings.ingest.state)
    svc = IngestService(settings, Registry.load(registry_file), store, state)
    total = sum(len(v) for v in docs.values())
    svc.start()
    try:
        publish_readings(broker_url, docs)
        deadline = time.monotonic() + 30
        while svc.stats.readings_stored < total and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        svc.stop()
        store.close()
        state.close()
    assert svc.stats.readings_stored == total
    assert svc.stats.dead_letters == 0
    return total


def escape_tag(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def line(measurement: str, tags: dict[str, str], fields: dict[str, object], t_ms: int) -> str:
    tag_s = "".join(f",{k}={escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    parts = []
    for k, v in fields.items():
        if v is None:
            continue
        if isinstance(v, bool):
            raise TypeError(k)
        if isinstance(v, int):
            parts.append(f"{k}={v}i")
        elif isinstance(v, float):
            parts.append(f"{k}={v!r}")
        else:
            parts.append(f'{k}="{v}"')
    return f"{measurement}{tag_s} {','.join(parts)} {t_ms}"


def write_lines(influx_db, lines: list[str]) -> None:
    """POST line protocol through the test relay's /api/v2/write (as influxdb-client would)."""
    qs = urllib.parse.urlencode({"bucket": influx_db.name, "org": "fumewatch", "precision": "ms"})
    req = urllib.request.Request(
        f"{influx_db.relay_url}/api/v2/write?{qs}", data="\n".join(lines).encode(), method="POST"
    )
    req.add_header("Authorization", "Token test")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=30) as resp:
        assert resp.status == 204


def windows_from(readings: pd.DataFrame) -> pd.DataFrame:
    """10-minute windows per device and pollutant, as alerts/window.py defines them."""
    rows = []
    for dev, g in readings.groupby("device_id"):
        g = g.assign(win=g["time"] - g["time"] % WINDOW_MS)
        for win, w in g.groupby("win"):
            fan = w["fan_on"].fillna(1)
            fan_ok = (fan > 0).sum() * 2 > len(w)
            for pol, col in (("oil_fume", "oil_fume_ref_mg_m3"), ("pm", "pm_mg_m3"), ("nmhc", "nmhc_mg_m3")):
                vals = w[col].dropna()
                if vals.empty:
                    continue
                mean = float(vals.mean())
                valid = bool(fan_ok and len(vals) >= math.ceil(0.75 * 10))
                exceeds = mean > LIMITS[pol]
                rows.append(
                    dict(
                        time=int(win),
                        restaurant_id=w["restaurant_id"].iloc[0],
                        device_id=dev,
                        district=w["district"].iloc[0],
                        pollutant=pol,
                        mean_mg_m3=mean,
                        max_mg_m3=float(vals.max()),
                        limit_mg_m3=LIMITS[pol],
                        samples=len(vals),
                        expected=10,
                        valid=int(valid),
                        exceeds=int(exceeds),
                        compliant=int(valid and not exceeds),
                    )
                )
    return pd.DataFrame(rows)


def window_lines(windows: pd.DataFrame, empty: list[dict]) -> list[str]:
    out = []
    fields = (
        "mean_mg_m3",
        "max_mg_m3",
        "limit_mg_m3",
        "samples",
        "expected",
        "valid",
        "exceeds",
        "compliant",
    )
    for r in windows.to_dict("records") + empty:
        tags = {k: r[k] for k in ("restaurant_id", "device_id", "district", "pollutant")}
        vals = {
            k: (int(r[k]) if k in ("samples", "expected", "valid", "exceeds", "compliant") else r.get(k))
            for k in fields
        }
        out.append(line("fume_window", tags, vals, int(r["time"])))
    return out


SEVERITY = {"enforcement": 3, "warning": 2, "education": 1}


def event(rid, dev, kind, pollutant, start, *, end=None, level="", peak=None, mean=None, eid):
    is_open = end is None
    return dict(
        time=start,
        restaurant_id=rid,
        device_id=dev,
        district=DISTRICTS[rid],
        kind=kind,
        pollutant=pollutant,
        event_id=eid,
        state="open" if is_open else "closed",
        open=1 if is_open else 0,
        end_ms=0 if is_open else end,
        duration_s=0 if is_open else (end - start) // 1000,
        peak_mg_m3=peak,
        mean_mg_m3=mean,
        limit_mg_m3=LIMITS[pollutant] if kind == "exceedance" else None,
        profile="GB18483-2001",
        level=level,
        severity=SEVERITY.get(level, 0),
    )


def reminder_event(r: dict) -> dict:
    """A reminder's ``fume_event`` point: kind maintenance_reminder, open 0, level "" (severity 0)."""
    e = event(
        r["restaurant_id"],
        r["device_id"],
        REMINDER_KIND,
        "oil_fume",
        r["time"],
        end=r["time"],
        eid=r["event_id"],
    )
    return {**e, "state": "sent", "mean_mg_m3": r["mean_mg_m3"], "limit_mg_m3": r["threshold_mg_m3"]}


def world_reminders(d0: int) -> list[dict]:
    """Maintenance reminders, as the alerts service records them (each also a ``fume_event`` point).

    In the range: R1's at 01:40 went on to exceed (R1's exceedance follows), R2's two came back under,
    R3's are still above and pending. R1's from two days before is outside every range but the look-backs.
    """
    m = 60_000

    def rem(rid, dev, t, outcome, n):
        return dict(
            time=t,
            restaurant_id=rid,
            device_id=dev,
            district=DISTRICTS[rid],
            event_id=f"RM-{rid}-{n}",
            outcome=outcome,
            threshold_mg_m3=1.6 if rid == "R1" else 1.2,
            mean_mg_m3=round(1.65 + 0.01 * n, 4),
        )

    return [
        rem("R1", "DEV-1", d0 - 2 * 86_400_000, "back_under", 0),
        rem("R1", "DEV-1", d0 + 100 * m, "exceeded", 1),
        rem("R2", "DEV-2", d0 + 150 * m, "back_under", 1),
        rem("R3", "DEV-3", d0 + 250 * m, "still_above", 1),
        rem("R2", "DEV-2", d0 + 330 * m, "back_under", 2),
        rem("R3", "DEV-3", d0 + 350 * m, "pending", 2),
    ]


def reminder_line(r: dict) -> str:
    """A ``fume_reminder`` point: the outcome as a string and as four 0/1 integers (exactly one is 1)."""
    tags = {k: r[k] for k in ("restaurant_id", "device_id", "district")}
    fields = {"event_id": r["event_id"], "outcome": r["outcome"]}
    fields |= {k: int(r["outcome"] == k) for k in reminders.OUTCOMES}
    fields |= {"threshold_mg_m3": r["threshold_mg_m3"], "mean_mg_m3": r["mean_mg_m3"]}
    return line("fume_reminder", tags, fields, r["time"])


def world_findings(d0: int) -> list[Event]:
    """Data-integrity findings as alerts/integrity/watch.py makes them: closed, no level, rule = the check.

    R1's stuck value comes after its latest offence (it must not hide the offence in the latest-event
    table); R3's zeros are in the range too; R2's, two days before, is outside every range.
    """
    m = 60_000

    def finding(rid: str, dev: str, check: str, start: int, minutes: float) -> Event:
        return Event(
            event_id=f"integrity:{check}:{dev}:{start}",
            kind=INTEGRITY_KIND,
            restaurant_id=rid,
            device_id=dev,
            district=DISTRICTS[rid],
            start_ms=start,
            end_ms=start + int(minutes * m),
            pollutant="oil_fume",
            state="closed",
            rule=check,
        )

    return [
        finding("R1", "DEV-1", "suspect_flatline", d0 + 280 * m, 70.5),  # the minutes are not whole
        finding("R3", "DEV-3", "suspect_zero", d0 + 240 * m, 40),
        finding("R2", "DEV-2", "suspect_zero", d0 - 2 * 86_400_000, 30),
    ]


def finding_record(e: Event) -> dict:
    """A finding as the pandas side expects its ``fume_event`` point."""
    assert e.end_ms is not None
    return dict(
        time=e.start_ms,
        restaurant_id=e.restaurant_id,
        device_id=e.device_id,
        district=e.district,
        kind=e.kind,
        pollutant=e.pollutant,
        event_id=e.event_id,
        state=e.state,
        open=0,
        end_ms=e.end_ms,
        duration_s=(e.end_ms - e.start_ms) // 1000,
        profile="",
        level="",
        severity=0,
        rule=e.rule,
    )


def event_line(e: dict) -> str:
    tags = {k: e[k] for k in ("restaurant_id", "device_id", "district", "kind", "pollutant")}
    names = ("event_id", "state", "open", "end_ms", "duration_s", "peak_mg_m3", "mean_mg_m3", "limit_mg_m3")
    fields = {k: e[k] for k in (*names, "profile", "level", "severity")}
    return line("fume_event", tags, fields, e["time"])


@dataclass
class World:
    db: object
    d0: int
    t_from: int
    t_to: int
    now: int
    readings: pd.DataFrame
    windows: pd.DataFrame
    events: pd.DataFrame
    cases: pd.DataFrame
    reminders: pd.DataFrame

    def range_for(self, pq) -> tuple[int, int]:
        if pq.time_from:
            return panel_range(pq.time_from, self.now, OPTS.timezone)
        return self.t_from, self.t_to

    def interval_for(self, pq) -> str:
        t0, t1 = self.range_for(pq)
        return grafana_interval(t0, t1, MAX_DATA_POINTS, pq.min_interval or OPTS.min_interval)

    def run(self, pq, variables: dict) -> tuple[list[dict], str]:
        t0, t1 = self.range_for(pq)
        q = fill(pq.query, variables, t0, t1, self.interval_for(pq))
        return self.db.points(q, epoch="ms"), q


@pytest.fixture
def world(mosquitto, influx_db, tmp_path) -> World:
    # the latest Shanghai midnight (16:00 UTC) with three hours of data after it, all in the past
    latest = now_ms() - 3 * 3_600_000 - 60_000
    midnight = (latest - 16 * 3_600_000) // 86_400_000 * 86_400_000 + 16 * 3_600_000
    d0 = midnight - 3 * 3_600_000
    docs = reading_docs(d0)
    total = ingest_into_influx(tmp_path, mosquitto.url, influx_db, docs)
    stored = pd.DataFrame(influx_db.points('SELECT * FROM "fume_reading"', epoch="ms"))
    assert len(stored) == total
    # GB 18483 conversion by the ingest path: DEV-1 5000 m3/h / (2 x 2000) = x1.25, DEV-3 has no flow
    dev1 = stored[stored["device_id"] == "DEV-1"]
    assert (dev1["oil_fume_ref_mg_m3"] - dev1["oil_fume_mg_m3"] * 1.25).abs().max() < 1e-9
    for col in ("pm_mg_m3", "nmhc_mg_m3", "fan_on", "purifier_on"):
        if col not in stored:
            stored[col] = float("nan")
    windows = windows_from(stored)
    empty = [  # DEV-3's window with no sample at all: no mean, no max, invalid
        dict(time=d0 + 200 * 60_000, restaurant_id="R3", device_id="DEV-3", district="海淀区", pollutant=p)
        | dict(limit_mg_m3=LIMITS[p], samples=0, expected=10, valid=0, exceeds=0, compliant=0)
        for p in ("oil_fume", "pm")
    ]
    write_lines(influx_db, window_lines(windows, empty))
    windows = pd.concat([windows, pd.DataFrame(empty)], ignore_index=True)
    m = 60_000
    r1_over = windows[
        (windows.device_id == "DEV-1") & (windows.pollutant == "oil_fume") & (windows.exceeds == 1)
    ]
    first_over = int(r1_over["time"].min())
    events = [
        event(
            "R1",
            "DEV-1",
            "exceedance",
            "oil_fume",
            d0 + 20 * m,
            end=d0 + 60 * m,
            level="education",
            peak=2.31,
            mean=2.1,
            eid="E-R1-1",
        ),
        # the open event is written twice (as the alerts service rewrites it): the newest state wins
        event(
            "R1",
            "DEV-1",
            "exceedance",
            "oil_fume",
            first_over,
            level="warning",
            peak=2.5,
            mean=2.4,
            eid="E-R1-2",
        ),
        event(
            "R1",
            "DEV-1",
            "exceedance",
            "oil_fume",
            first_over,
            level="enforcement",
            peak=float(r1_over["mean_mg_m3"].max()),
            mean=float(r1_over["mean_mg_m3"].mean()),
            eid="E-R1-2",
        ),
        event("R2", "DEV-2", "purifier_off", "", d0 + 60 * m, end=d0 + 90 * m, eid="E-R2-1"),
        event(
            "R2",
            "DEV-2",
            "exceedance",
            "oil_fume",
            d0 + 100 * m,
            end=d0 + 140 * m,
            level="enforcement",
            peak=2.2,
            mean=2.05,
            eid="E-R2-2",
        ),
        event("R3", "DEV-3B", "offline", "", d0 - 10 * 86_400_000, eid="E-R3-1"),  # open since 10 days
        event("R3", "DEV-3", "offline", "", d0 + 200 * m, end=d0 + 215 * m, eid="E-R3-2"),
        event("R3", "DEV-3", "late_data", "", d0 + 230 * m, end=d0 + 231 * m, eid="E-R3-3"),
        # maintenance reminders (not offences): R2's and R3's come after their latest offence
        *(reminder_event(r) for r in world_reminders(d0)),
    ]
    write_lines(influx_db, [event_line(e) for e in events])
    # data-integrity findings (not offences), written by alerts/influx_sink.py itself
    findings = world_findings(d0)
    write_lines(influx_db, [sink_event_line(f) for f in findings])
    events += [finding_record(f) for f in findings]
    # each reminder is written pending first, then rewritten in place with its outcome (the newest wins)
    reminder_records = world_reminders(d0)
    write_lines(influx_db, [reminder_line({**r, "outcome": "pending"}) for r in reminder_records])
    write_lines(influx_db, [reminder_line(r) for r in reminder_records])
    ev = pd.DataFrame(events).drop_duplicates(subset=["device_id", "kind", "pollutant", "time"], keep="last")
    # the registry and the case ledger's copy, as alerts/case_sync.py writes them (alerts/influx_sink.py)
    registry = Registry.parse(REGISTRY_CSV)
    t_reg = now_ms() - 3_600_000
    gone = Registry.parse("restaurant_id,name,district,device_id,stove_heads\nR9,已注销餐馆,朝阳区,DEV-9,2\n")
    write_lines(influx_db, restaurant_lines(gone, t_reg - 60_000) + restaurant_lines(registry, t_reg))
    write_lines(influx_db, [restaurant_tombstone("R9", "朝阳区", t_reg)])  # R9 left the registry
    case_records = world_cases(d0, first_over)
    for c in case_records:  # each case written twice, as the sync rewrites a changed case: the last wins
        write_lines(influx_db, [case_line({**c, "status": "open", "outcome": "x", "updated_ms": 1})])
        write_lines(influx_db, [case_line(c)])
    return World(
        influx_db,
        d0,
        d0,
        d0 + MINUTES * m,
        now_ms(),
        stored,
        windows,
        ev.reset_index(drop=True),
        pd.DataFrame(case_records).rename(columns={"start_ms": "time"}),
        pd.DataFrame(reminder_records),
    )


def world_cases(d0: int, r1_start: int) -> list[dict]:
    """Case ledger records: R1's open enforcement event has an assigned case, R2's a closed one; R3 has an
    inspected case from 40 days ago (open, and older than every dashboard range)."""
    m = 60_000

    def case(cid, rid, dev, start, status, updated, **extra):
        return dict(
            case_id=cid,
            event_id=f"E-{cid}",
            restaurant_id=rid,
            device_id=dev,
            district=DISTRICTS[rid],
            kind="exceedance",
            pollutant="oil_fume",
            start_ms=start,
            status=status,
            updated_ms=updated,
            **extra,
        )

    return [
        case("C-R1", "R1", "DEV-1", r1_start, "assigned", d0 + 300 * m, assignee="李执法"),
        case("C-R2", "R2", "DEV-2", d0 + 100 * m, "closed", d0 + 200 * m, outcome="rectified"),
        case("C-R3", "R3", "DEV-3", d0 - 40 * 86_400_000, "inspected", d0 - 39 * 86_400_000),
    ]


# ---------------------------------------------------------------------------- expectations (pandas)


def in_range(df: pd.DataFrame, t0: int, t1: int) -> pd.DataFrame:
    return df[(df["time"] >= t0) & (df["time"] <= t1)]


def district_filter(df: pd.DataFrame, districts) -> pd.DataFrame:
    return df if districts is ALL else df[df["district"].isin(districts)]


def bucket_means(df: pd.DataFrame, cols: dict[str, str], interval_ms: int, how: str = "mean") -> dict:
    """{(device_id, bucket start): {alias: value}} for non-empty buckets (InfluxDB aligns to the epoch)."""
    out: dict = {}
    g = df.assign(bucket=df["time"] - df["time"] % interval_ms)
    for (dev, b), part in g.groupby(["device_id", "bucket"]):
        vals = {}
        for alias, col in cols.items():
            s = part[col].dropna()
            vals[alias] = (
                None if s.empty else float(getattr(s, how if isinstance(how, str) else how[alias])())
            )
        out[(dev, int(b))] = vals
    return out


def approx_rows(actual: dict, expected: dict, what: str) -> None:
    assert set(actual) == set(expected), f"{what}: keys differ: {sorted(set(actual) ^ set(expected))[:6]}"
    for k, exp in expected.items():
        got = actual[k]
        for name, v in exp.items():
            if v is None:
                assert got.get(name) is None, (what, k, name)
            else:
                assert got.get(name) == pytest.approx(v, rel=1e-9, abs=1e-12), (what, k, name, got, exp)


# ---------------------------------------------------------------------------- per-query checks


def check_exceeding_restaurants(w: World, pq, ran: Callable) -> None:
    rows, _ = ran({"district": ALL})
    t0, t1 = w.range_for(pq)
    ev = in_range(w.events, t0, t1)
    expected = ev[(ev.kind == "exceedance") & (ev.open == 1)]["restaurant_id"].nunique()
    assert expected == 1
    assert [r["restaurants"] for r in rows] == [expected]
    rows, _ = ran({"district": ["海淀区"]})
    assert rows == []  # count of nothing: no row, the stat shows its noValue "0"


def check_offline_devices(w: World, pq, ran) -> None:
    t0, t1 = w.range_for(pq)
    ev = in_range(w.events, t0, t1)
    expected = ev[(ev.kind == "offline") & (ev.open == 1)]["device_id"].nunique()
    assert expected == 1  # DEV-3B, offline since before the dashboard range (found via the 30d lookback)
    rows, _ = ran({"district": ALL})
    assert [r["devices"] for r in rows] == [expected]
    rows, _ = ran({"district": ["海淀区"]})
    assert [r["devices"] for r in rows] == [expected]


def open_cases(w: World, districts) -> pd.DataFrame:
    c = district_filter(w.cases, districts)
    return c[c.status != "closed"]


def check_open_cases(w: World, pq, ran) -> None:
    """Open cases of the case ledger, whatever their age (R3's is 40 days old), not open events."""
    for districts, n in ((ALL, 2), (["朝阳区", "海淀区"], 2), (["海淀区"], 1), (["朝阳区"], 1)):
        assert len(open_cases(w, districts)) == n
        rows, q = ran({"district": districts})
        assert [r["cases"] for r in rows] == [n], q
    rows, _ = ran({"district": ["丰台区"]})
    assert rows == []  # the stat shows its noValue "0"


def check_cases_in_range(w: World, pq, ran) -> None:
    c = in_range(w.cases, w.t_from, w.t_to)
    assert sorted(c["case_id"]) == ["C-R1", "C-R2"]
    rows, _ = ran({"district": ALL})
    assert [r["cases"] for r in rows] == [len(c)]


def check_case_table(w: World, pq, ran) -> None:
    """Open cases, and every case that changed since the range started (R2's, closed in it)."""
    rows, q = ran({"district": ALL})
    c = w.cases[(w.cases.status != "closed") | (w.cases.updated_ms >= w.t_from)]
    assert sorted(r["case_id"] for r in rows) == sorted(c["case_id"]) == ["C-R1", "C-R2", "C-R3"], q
    by_id = c.set_index("case_id")
    for r in rows:
        e = by_id.loc[r["case_id"]]
        assert (r["time"], r["status"], r["updated_ms"], r["restaurant_id"], r["district"]) == (
            e["time"],
            e["status"],
            e["updated_ms"],
            e["restaurant_id"],
            e["district"],
        )
        assert r["case_type"] == "enforcement"  # the records here predate case types
        # every field is rewritten: the stale outcome "x" of the first write is gone
        assert r["outcome"] == ("" if pd.isna(e["outcome"]) else e["outcome"])
        assert r["assignee"] == ("" if pd.isna(e["assignee"]) else e["assignee"])
    rows, _ = ran({"district": ["海淀区"]})
    assert [r["case_id"] for r in rows] == ["C-R3"]


def registry_names() -> dict[str, tuple[str, str]]:
    return {d.restaurant_id: (d.name, d.district) for d in Registry.parse(REGISTRY_CSV)}


def check_registry(w: World, pq, ran) -> None:
    """One row per restaurant of the current registry: R3's two devices make one row; R9 left."""
    rows, q = ran({"district": ALL})
    assert {r["restaurant_id"]: (r["name"], r["district"]) for r in rows} == registry_names(), q
    r3 = next(r for r in rows if r["restaurant_id"] == "R3")
    assert (r3["devices"], r3["stove_heads"], r3["active"]) == (2, 6, 1)
    assert r3["lat"] is None and r3["lon"] is None  # this registry has no positions
    rows, _ = ran({"district": ["朝阳区"]})
    assert sorted(r["restaurant_id"] for r in rows) == ["R1", "R2"]


def check_restaurant_registry(w: World, pq, ran) -> None:
    for rid in ("R1", "R3"):
        rows, _ = ran(restaurant_vars(rid))
        assert [(r["restaurant_id"], r["name"]) for r in rows] == [(rid, registry_names()[rid][0])]
    rows, _ = ran(restaurant_vars("R9"))
    assert rows == []  # a restaurant that left the registry has no name row


def check_compliance_by_district(w: World, pq, ran) -> None:
    for districts in (ALL, ["朝阳区"], ["朝阳区", "海淀区"]):
        rows, q = ran({"district": districts})
        win = district_filter(in_range(w.windows, w.t_from, w.t_to), districts)
        valid = win[win.valid == 1]
        expected = (
            valid.groupby("district")["compliant"].sum() / valid.groupby("district")["valid"].sum()
        ).to_dict()
        got = {r["district"]: r["compliance"] for r in rows}
        assert got == pytest.approx(expected), q
    assert 0 < expected["朝阳区"] < 1 and expected["海淀区"] == 1.0


def check_exceeding_peaks(w: World, pq, ran) -> None:
    rows, _ = ran({"district": ALL})
    t0, t1 = w.range_for(pq)
    ev = in_range(w.events, t0, t1)
    ev = ev[(ev.kind == "exceedance") & (ev.open == 1)]
    expected = ev.groupby("restaurant_id")["peak_mg_m3"].max().to_dict()
    assert {r["restaurant_id"]: r["peak"] for r in rows} == pytest.approx(expected)
    assert expected["R1"] > LIMITS["oil_fume"]


def offences(events: pd.DataFrame) -> pd.DataFrame:
    """Events that are offences: neither maintenance reminders nor data-integrity findings."""
    return events[~events.kind.isin([REMINDER_KIND, INTEGRITY_KIND])]


def check_latest_event(w: World, pq, ran) -> None:
    rows, _ = ran({"district": ALL})
    every = in_range(w.events, w.t_from, w.t_to).sort_values("time")
    # R1's latest event is a data-integrity finding, R2's and R3's a reminder: the table shows their latest
    # offence instead
    latest_any = every.groupby("restaurant_id").tail(1).set_index("restaurant_id")["kind"].to_dict()
    assert latest_any == {"R1": INTEGRITY_KIND, "R2": REMINDER_KIND, "R3": REMINDER_KIND}
    ev = offences(every)
    last = ev.groupby("restaurant_id").tail(1).set_index("restaurant_id")
    assert {r["restaurant_id"] for r in rows} == set(last.index) == {"R1", "R2", "R3"}
    for r in rows:
        e = last.loc[r["restaurant_id"]]
        assert r["time"] == e["time"] and r["district"] == e["district"]
        assert (r["kind"], r["level"], r["state"], r["severity"]) == (
            e["kind"],
            e["level"],
            e["state"],
            e["severity"],
        )
        assert r["event_id"] == e["event_id"]
        assert (r["pollutant"] or "") == e["pollutant"]
        for col in ("peak_mg_m3", "limit_mg_m3"):
            assert r[col] == (None if pd.isna(e[col]) else pytest.approx(e[col]))
    # sorted by severity as the table does: R1 / R2 enforcement (3) above R3's late data (0)
    ranked = sorted(rows, key=lambda r: -r["severity"])
    assert ranked[-1]["restaurant_id"] == "R3" and ranked[0]["severity"] == 3


def check_events_over_time(w: World, pq, ran) -> None:
    interval = parse_duration_ms(w.interval_for(pq))
    assert interval == 3_600_000  # the panel's minimum interval
    rows, _ = ran({"district": ALL})
    ev = in_range(w.events, w.t_from, w.t_to)
    ev = ev.assign(bucket=ev["time"] - ev["time"] % interval)
    expected = ev.groupby(["kind", "bucket"]).size().to_dict()
    got = {(r["kind"], r["time"]): r["events"] for r in rows if r["events"]}
    assert got == expected
    assert sum(r["events"] for r in rows) == len(ev)
    # the reminders and the findings are each a series of their own (its display name says: not an offence)
    assert sum(r["events"] for r in rows if r["kind"] == REMINDER_KIND) == 5
    assert sum(r["events"] for r in rows if r["kind"] == INTEGRITY_KIND) == 2


def check_roster_open_events(w: World, pq, ran) -> None:
    """Open events of the table of every restaurant (30 days back): offences only."""
    ev = offences(w.events[w.events.time > w.now - parse_duration_ms(OPTS.open_lookback)])
    expected = ev[ev.open == 1].groupby("restaurant_id").size().to_dict()
    assert expected == {"R1": 1, "R3": 1}
    rows, q = ran({"district": ALL})
    assert {r["restaurant_id"]: r["open_events"] for r in rows} == expected, q
    rows, _ = ran({"district": ["朝阳区"]})
    assert {r["restaurant_id"]: r["open_events"] for r in rows} == {"R1": 1}


def check_roster_ladder(w: World, pq, ran) -> None:
    """Ladder level: the latest ladder step of the restaurant's events; a later reminder changes nothing."""
    ev = offences(w.events[w.events.severity > 0]).sort_values("time")
    expected = ev.groupby("restaurant_id")["severity"].last().to_dict()
    assert expected == {"R1": 3, "R2": 3}
    rows, q = ran({"district": ALL})
    assert {r["restaurant_id"]: r["ladder"] for r in rows} == expected, q
    rows, _ = ran({"district": ["海淀区"]})
    assert rows == []


def reminders_in(w: World, districts) -> pd.DataFrame:
    return district_filter(in_range(w.reminders, w.t_from, w.t_to), districts)


def check_reminders_sent(w: World, pq, ran) -> None:
    """One point per reminder (the rewrite is the same point); the one two days back is out of range."""
    assert len(w.reminders) == 6
    for districts, n in ((ALL, 5), (["朝阳区"], 3), (["海淀区"], 2), (["朝阳区", "海淀区"], 5)):
        assert len(reminders_in(w, districts)) == n
        rows, q = ran({"district": districts})
        assert [r["reminders"] for r in rows] == [n], q
    rows, _ = ran({"district": ["丰台区"]})
    assert rows == []  # the stat shows its noValue "0"


def _reminder_outcome(outcome: str):
    def check(w: World, pq, ran) -> None:
        for districts in (ALL, ["朝阳区"], ["海淀区"]):
            rem = reminders_in(w, districts)
            rows, q = ran({"district": districts})
            assert [r[outcome] for r in rows] == [int((rem.outcome == outcome).sum())], q
        expected = {"back_under": 2, "exceeded": 1, "still_above": 1, "pending": 1}[outcome]
        rows, _ = ran({"district": ALL})
        assert [r[outcome] for r in rows] == [expected]

    return check


def check_back_under_share(w: World, pq, ran) -> None:
    """back_under / (sent - pending): 2 / (5 - 1) = 50 % over all districts."""
    for districts, share in ((ALL, 0.5), (["朝阳区"], 2 / 3), (["海淀区"], 0.0)):
        rem = reminders_in(w, districts)
        known = len(rem) - int((rem.outcome == "pending").sum())
        assert int((rem.outcome == "back_under").sum()) / known == pytest.approx(share)
        rows, q = ran({"district": districts})
        assert [r["back_under_share"] for r in rows] == [pytest.approx(share)], q
    rows, _ = ran({"district": ["丰台区"]})
    assert rows == []  # nothing known: no share (the stat shows "—"), never a division by zero


def check_reminder_table(w: World, pq, ran) -> None:
    rows, q = ran({"district": ALL})
    rem = reminders_in(w, ALL).set_index("event_id")
    assert sorted(r["event_id"] for r in rows) == sorted(rem.index), q
    for r in rows:
        e = rem.loc[r["event_id"]]
        assert (r["time"], r["restaurant_id"], r["district"], r["device_id"]) == (
            e["time"],
            e["restaurant_id"],
            e["district"],
            e["device_id"],
        )
        assert r["outcome"] == e["outcome"]  # the rewrite in place: the newest outcome, not "pending"
        assert (r["mean_mg_m3"], r["threshold_mg_m3"]) == (e["mean_mg_m3"], e["threshold_mg_m3"])
    assert sorted(r["outcome"] for r in rows) == [
        "back_under",
        "back_under",
        "exceeded",
        "pending",
        "still_above",
    ]
    rows, _ = ran({"district": ["海淀区"]})
    assert sorted(r["event_id"] for r in rows) == ["RM-R3-1", "RM-R3-2"]


def findings_in(w: World, districts) -> pd.DataFrame:
    ev = in_range(w.events, w.t_from, w.t_to)
    return district_filter(ev[ev.kind == INTEGRITY_KIND], districts)


def check_integrity_count(w: World, pq, ran) -> None:
    """The findings of the range (R2's of two days before is out), by district."""
    assert len(w.events[w.events.kind == INTEGRITY_KIND]) == 3
    for districts, n in ((ALL, 2), (["朝阳区"], 1), (["海淀区"], 1), (["朝阳区", "海淀区"], 2)):
        assert len(findings_in(w, districts)) == n
        rows, q = ran({"district": districts})
        assert [r["findings"] for r in rows] == [n], q
    rows, _ = ran({"district": ["丰台区"]})
    assert rows == []  # the stat shows its noValue "0"


def check_integrity_table(w: World, pq, ran) -> None:
    """Each finding of the range with its check and its span in minutes; no offence, no reminder."""
    rows, q = ran({"district": ALL})
    found = findings_in(w, ALL).set_index("event_id")
    assert sorted(r["event_id"] for r in rows) == sorted(found.index), q
    for r in rows:
        e = found.loc[r["event_id"]]
        assert (r["time"], r["restaurant_id"], r["district"], r["device_id"], r["rule"]) == (
            e["time"],
            e["restaurant_id"],
            e["district"],
            e["device_id"],
            e["rule"],
        )
        assert r["minutes"] == pytest.approx(e["duration_s"] / 60)
    assert sorted((r["rule"], r["minutes"]) for r in rows) == [
        ("suspect_flatline", 70.5),
        ("suspect_zero", 40),
    ]
    rows, _ = ran({"district": ["海淀区"]})
    assert [(r["restaurant_id"], r["rule"]) for r in rows] == [("R3", "suspect_zero")]


def restaurant_vars(rid: str) -> dict:
    return {"restaurant": rid, "district": ALL}


def check_restaurant_reminders(w: World, pq, ran) -> None:
    """The restaurant's reminders in the range, with their outcome (R1's of two days before is out)."""
    for rid, ids in (("R1", ["RM-R1-1"]), ("R2", ["RM-R2-1", "RM-R2-2"]), ("R3", ["RM-R3-1", "RM-R3-2"])):
        rows, q = ran(restaurant_vars(rid))
        rem = in_range(w.reminders, w.t_from, w.t_to)
        rem = rem[rem.restaurant_id == rid].set_index("event_id")
        assert sorted(r["event_id"] for r in rows) == sorted(rem.index) == ids, q
        for r in rows:
            e = rem.loc[r["event_id"]]
            assert (r["time"], r["outcome"], r["device_id"]) == (e["time"], e["outcome"], e["device_id"])
            assert (r["mean_mg_m3"], r["threshold_mg_m3"]) == (e["mean_mg_m3"], e["threshold_mg_m3"])
    rows, _ = ran(restaurant_vars("R-none"))
    assert rows == []


def check_compliance_in_range(w: World, pq, ran) -> None:
    for rid in ("R1", "R2", "R3"):
        rows, _ = ran(restaurant_vars(rid))
        win = in_range(w.windows, w.t_from, w.t_to)
        win = win[(win.restaurant_id == rid) & (win.valid == 1)]
        assert [r["compliance"] for r in rows] == [pytest.approx(win["compliant"].mean())]


def check_peak(w: World, pq, ran) -> None:
    rows, _ = ran(restaurant_vars("R1"))
    rd = in_range(w.readings, w.t_from, w.t_to)
    expected = rd[rd.restaurant_id == "R1"]["oil_fume_ref_mg_m3"].max()
    assert [r["peak"] for r in rows] == [pytest.approx(expected)]


def check_open_events(w: World, pq, ran) -> None:
    t0, t1 = w.range_for(pq)
    for rid, n in (("R1", 1), ("R2", 0), ("R3", 1)):
        ev = offences(in_range(w.events, t0, t1))
        assert int(((ev.restaurant_id == rid) & (ev.open == 1)).sum()) == n
        rows, _ = ran(restaurant_vars(rid))
        assert [r["open"] for r in rows] == ([n] if n else [])


def _bucketed(w: World, pq, ran, rid: str, cols: dict[str, str], how="mean") -> None:
    interval = parse_duration_ms(w.interval_for(pq))
    assert interval == 300_000
    rows, q = ran(restaurant_vars(rid))
    rd = in_range(w.readings, w.t_from, w.t_to)
    expected = bucket_means(rd[rd.restaurant_id == rid], cols, interval, how)
    expected = {k: v for k, v in expected.items() if any(x is not None for x in v.values())}
    got = {
        (r["device_id"], r["time"]): {a: r[a] for a in cols}
        for r in rows
        if any(r[a] is not None for a in cols)
    }
    approx_rows(got, expected, q)
    return got


def check_oil_fume(w: World, pq, ran) -> None:
    got = _bucketed(w, pq, ran, "R1", {"ref": "oil_fume_ref_mg_m3", "measured": "oil_fume_mg_m3"})
    assert max(v["ref"] for v in got.values()) > LIMITS["oil_fume"]
    _bucketed(w, pq, ran, "R3", {"ref": "oil_fume_ref_mg_m3", "measured": "oil_fume_mg_m3"})


def check_pm_nmhc(w: World, pq, ran) -> None:
    got = _bucketed(w, pq, ran, "R1", {"pm": "pm_mg_m3", "nmhc": "nmhc_mg_m3"})
    assert got
    got3 = _bucketed(w, pq, ran, "R3", {"pm": "pm_mg_m3", "nmhc": "nmhc_mg_m3"})
    assert all(v["nmhc"] is None for v in got3.values())  # R3 reports PM only
    rows, _ = ran(restaurant_vars("R2"))
    assert all(r["pm"] is None and r["nmhc"] is None for r in rows)  # R2 reports neither


def check_fan_purifier(w: World, pq, ran) -> None:
    got = _bucketed(
        w, pq, ran, "R2", {"fan": "fan_on", "purifier": "purifier_on"}, how={"fan": "max", "purifier": "min"}
    )
    assert {v["fan"] for v in got.values()} == {0, 1} and {v["purifier"] for v in got.values()} == {0, 1}


def _limit_series(w: World, pq, ran, rid: str, pollutants: tuple[str, ...], by_pollutant: bool) -> None:
    interval = parse_duration_ms(w.interval_for(pq))
    rows, q = ran(restaurant_vars(rid))
    win = in_range(w.windows, w.t_from, w.t_to)
    win = win[(win.restaurant_id == rid) & win.pollutant.isin(pollutants)]
    first_bucket = w.t_from - w.t_from % interval
    buckets = range(first_bucket, w.t_to + 1, interval)
    keys = sorted(set(win.pollutant)) if by_pollutant else [None]
    expected = {}
    for key in keys:
        part = win if key is None else win[win.pollutant == key]
        per = part.assign(b=part["time"] - part["time"] % interval).groupby("b")["limit_mg_m3"].max()
        series = per.reindex(list(buckets)).ffill()  # fill(previous)
        for b, v in series.items():
            expected[(key, int(b))] = None if pd.isna(v) else float(v)
    got = {((r.get("pollutant") if by_pollutant else None), r["time"]): {"limit": r["limit"]} for r in rows}
    approx_rows(got, {k: {"limit": v} for k, v in expected.items()}, q)
    assert any(v is not None for v in expected.values())


def check_oil_fume_limit(w: World, pq, ran) -> None:
    _limit_series(w, pq, ran, "R1", ("oil_fume",), by_pollutant=False)


def check_pm_nmhc_limit(w: World, pq, ran) -> None:
    _limit_series(w, pq, ran, "R1", ("pm", "nmhc"), by_pollutant=True)
    _limit_series(w, pq, ran, "R3", ("pm", "nmhc"), by_pollutant=True)


def check_daily_compliance(w: World, pq, ran) -> None:
    for rid in ("R1", "R2", "R3"):
        rows, q = ran(restaurant_vars(rid))
        win = in_range(w.windows, w.t_from, w.t_to)
        win = win[(win.restaurant_id == rid) & (win.valid == 1)]
        local_day = pd.to_datetime(win["time"], unit="ms", utc=True).dt.tz_convert(SHANGHAI).dt.floor("D")
        day_ms = local_day.map(lambda ts: int(ts.timestamp() * 1000))
        expected = win.groupby(day_ms.values)["compliant"].mean().to_dict()
        got = {r["time"]: r["compliance"] for r in rows}
        assert got == pytest.approx(expected), q
        assert len(expected) == 2  # the data straddles a Shanghai midnight


def check_events_table(w: World, pq, ran) -> None:
    for rid in ("R1", "R2", "R3"):
        rows, _ = ran(restaurant_vars(rid))
        ev = in_range(w.events, w.t_from, w.t_to)
        ev = ev[ev.restaurant_id == rid]
        assert (ev.kind == REMINDER_KIND).any()  # the restaurant had reminders in the range: left out
        assert (ev.kind == INTEGRITY_KIND).any() == (rid != "R2")  # and R1's and R3's findings
        ev = offences(ev)
        assert sorted(r["event_id"] for r in rows) == sorted(ev["event_id"])
        by_id = ev.set_index("event_id")
        for r in rows:
            e = by_id.loc[r["event_id"]]
            assert r["time"] == e["time"] and (r["kind"], r["state"], r["level"]) == (
                e["kind"],
                e["state"],
                e["level"],
            )
            assert (r["severity"], r["duration_s"]) == (e["severity"], e["duration_s"])
            assert r["restaurant_id"] == rid  # the key of the join with the registry (the name column)


def _annotation(kind: str, rid: str):
    def check(w: World, pq, ran) -> None:
        rows, _ = ran(restaurant_vars(rid))
        ev = in_range(w.events, w.t_from, w.t_to)
        ev = ev[(ev.restaurant_id == rid) & (ev.kind == kind)]
        assert len(ev) >= 1
        assert sorted(r["time"] for r in rows) == sorted(ev["time"])
        if kind == "exceedance":  # text column: the peak; tags: pollutant, level, state
            got = {r["time"]: (r["peak_mg_m3"], r["pollutant"], r["level"], r["state"]) for r in rows}
            exp = {
                e["time"]: (e["peak_mg_m3"], e["pollutant"], e["level"], e["state"])
                for e in ev.to_dict("records")
            }
            assert got == exp
        else:
            assert {r["event_id"] for r in rows} == set(ev["event_id"])
        rows, _ = ran(restaurant_vars("R-none"))
        assert rows == []

    return check


def check_district_variable(w: World, pq, ran) -> None:
    rows, _ = ran({})
    assert sorted(r["value"] for r in rows) == sorted(set(w.readings["district"])) == ["朝阳区", "海淀区"]


def check_restaurant_variable(w: World, pq, ran) -> None:
    rows, _ = ran({"district": ["朝阳区"]})
    assert sorted(r["value"] for r in rows) == ["R1", "R2"]
    rows, _ = ran({"district": ALL})
    assert sorted(r["value"] for r in rows) == sorted(set(w.readings["restaurant_id"])) == ["R1", "R2", "R3"]


#: Panels whose queries tests/test_geomap.py checks, on data the alerts service writes about now: the map
#: (the state now) and the table of every restaurant (today, local day). Their registry query is checked
#: here too.
LIVE_PANELS = (citymap.TITLE, roster.TITLE)


def all_checks(o: Options) -> dict[str, Callable]:
    return {
        city.q_exceeding_restaurants(o): check_exceeding_restaurants,
        city.q_offline_devices(o): check_offline_devices,
        cases.q_open_cases(o): check_open_cases,
        cases.q_cases_in_range(o): check_cases_in_range,
        cases.q_case_table(o): check_case_table,
        names.q_restaurants(o): check_registry,
        restaurant.q_restaurant(o): check_restaurant_registry,
        city.q_compliance_by_district(o): check_compliance_by_district,
        city.q_exceeding_peaks(o): check_exceeding_peaks,
        city.q_latest_event(o): check_latest_event,
        city.q_events_over_time(o): check_events_over_time,
        roster.q_open_events(o): check_roster_open_events,
        roster.q_ladder(o): check_roster_ladder,
        reminders.q_sent(o): check_reminders_sent,
        **{reminders.q_outcome(o, k): _reminder_outcome(k) for k in reminders.OUTCOMES},
        reminders.q_back_under_share(o): check_back_under_share,
        reminders.q_table(o): check_reminder_table,
        integrity.q_count(o): check_integrity_count,
        integrity.q_table(o): check_integrity_table,
        restaurant.q_compliance(o): check_compliance_in_range,
        restaurant.q_peak(o): check_peak,
        restaurant.q_open_events(o): check_open_events,
        restaurant.q_oil_fume(o): check_oil_fume,
        restaurant.q_oil_fume_limit(o): check_oil_fume_limit,
        restaurant.q_pm_nmhc(o): check_pm_nmhc,
        restaurant.q_pm_nmhc_limit(o): check_pm_nmhc_limit,
        restaurant.q_fan_purifier(o): check_fan_purifier,
        restaurant.q_daily_compliance(o): check_daily_compliance,
        restaurant.q_events(o): check_events_table,
        restaurant.q_reminders(o): check_restaurant_reminders,
        restaurant.q_annotation(o, "exceedance"): _annotation("exceedance", "R1"),
        restaurant.q_annotation(o, "purifier_off"): _annotation("purifier_off", "R2"),
        restaurant.q_annotation(o, "offline"): _annotation("offline", "R3"),
        district_variable(o).build().query: check_district_variable,
        restaurant_variable(o).build().query: check_restaurant_variable,
    }


@pytest.mark.integration
def test_every_panel_query_on_real_influxdb_matches_pandas(world: World):
    checks = all_checks(OPTS)
    all_queries = [
        (uid, pq)
        for uid, doc in dashboards.build_all(OPTS).items()
        for pq in queries(doc)
        if pq.panel not in LIVE_PANELS or pq.query in checks
    ]
    # every query of both dashboards (panels, annotations, variables) has a check, and nothing else does
    assert {pq.query for _, pq in all_queries} == set(checks)
    returned_rows: dict[str, int] = {}
    for uid, pq in all_queries:

        def ran(variables: dict, pq=pq) -> tuple[list[dict], str]:
            rows, q = world.run(pq, variables)
            returned_rows[pq.query] = returned_rows.get(pq.query, 0) + len(rows)
            return rows, q

        try:
            checks[pq.query](world, pq, ran)
        except AssertionError as exc:
            raise AssertionError(f"{uid} / {pq.source} {pq.panel!r} {pq.ref_id}: {exc}") from exc
    assert all(n > 0 for n in returned_rows.values()), returned_rows
    assert set(returned_rows) == set(checks)


# ================================================================================ times in tables


def test_table_times_are_in_the_dashboard_zone_with_offset_whatever_the_browser():
    from dashboards.common import TABLE_TIME_UNIT

    assert TABLE_TIME_UNIT == "time:YYYY-MM-DDTHH:mm:ssZ"  # 2026-11-20T10:00:00+08:00, as the listings
    timed = untimed = 0
    for doc in dashboards.build_all().values():
        assert doc["timezone"] == "Asia/Shanghai"  # the display zone, never "browser" or ""
        for p in doc["panels"]:
            if p["type"] != "table":
                continue
            drops_time = {"id": "filterFieldsByName", "options": {"exclude": {"names": ["Time"]}}}
            if drops_time in p.get("transformations", []):
                untimed += 1  # the table of every restaurant: no time column at all
                continue
            timed += 1
            [time_col] = [o for o in p["fieldConfig"]["overrides"] if o["matcher"]["options"] == "Time"]
            props = {x["id"]: x["value"] for x in time_col["properties"]}
            heading = (
                "提醒时间 / Reminded at" if "fume_reminder" in p["targets"][0]["query"] else "开始 / Start"
            )
            assert props == {"displayName": heading, "unit": TABLE_TIME_UNIT}
            for o in p["fieldConfig"]["overrides"]:  # other epoch-ms columns (a case's last change) too
                if o["matcher"]["options"].endswith("_ms") and not o["matcher"]["options"].endswith("mg_m3"):
                    assert {"id": "unit", "value": TABLE_TIME_UNIT} in o["properties"], o
    assert (timed, untimed) == (6, 1)  # the findings' table too


def test_cli_dashboards_default_to_the_display_zone_of_the_settings(tmp_path):
    (tmp_path / "c.toml").write_text('display_tz = "Asia/Urumqi"\n', encoding="utf-8")
    out = tmp_path / "grafana"
    res = run_module("build", "--out", str(out), "--config", str(tmp_path / "c.toml"))
    assert res.returncode == 0, res.stderr
    rdoc = json.loads((out / "dashboards" / "fumewatch-restaurant.json").read_text(encoding="utf-8"))
    assert rdoc["timezone"] == "Asia/Urumqi"
    daily = next(p for p in rdoc["panels"] if p["title"].startswith("日达标率"))
    assert "tz('Asia/Urumqi')" in daily["targets"][0]["query"]
    res = run_module("build", "--out", str(out), "--config", str(tmp_path / "c.toml"), "--timezone", "UTC")
    assert res.returncode == 0, res.stderr
    cdoc = json.loads((out / "dashboards" / "fumewatch-city.json").read_text(encoding="utf-8"))
    assert cdoc["timezone"] == "UTC"  # the flag wins over the file
    (tmp_path / "bad.toml").write_text('display_tz = "Asia/Shangai"\n', encoding="utf-8")
    res = run_module("build", "--out", str(out), "--config", str(tmp_path / "bad.toml"))
    assert res.returncode == 2 and "display_tz: unknown time zone 'Asia/Shangai'" in res.stderr


def test_integrity_check_labels_are_the_ledger_views_labels():
    """The dashboards (which may not import alerts) name each check as the report, the case file and
    `fumewatch devices` do (alerts.rules.CHECK_LABELS)."""
    from alerts.rules import CHECK_LABELS
    from dashboards.integrity import CHECKS

    assert CHECKS == {k: f"{zh} / {en}" for k, (zh, en) in CHECK_LABELS.items()}
