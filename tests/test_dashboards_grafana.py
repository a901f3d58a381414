"""The dashboards in a real Grafana (testcontainers, grafana/grafana:11.6.0 as in docker-compose.yml).

- `fumewatch dashboards push` twice with a service-account token: same uids, version incremented, the
  datasource created once, the token never printed.
- Grafana provisioned from `fumewatch dashboards build` (datasource + dashboard provider) next to an
  InfluxDB 2.7 with a DBRP mapping: every query of both dashboards goes through Grafana's /api/ds/query
  and returns the same numbers as the query dashboards.fill() produces, run directly on InfluxDB 2.7
  (maintenance reminders included: the 优服务 stats read 3 sent, 1 back under, 50 %, and the offence
  panels the same as without them; one data-integrity finding: the 数据可信性 row counts it, 40 minutes).

Skipped (with the reason) where no Docker engine runs: this build machine has only the docker CLI.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

import dashboards
from alerts.influx_sink import case_line, restaurant_lines
from dashboards import city, integrity, reminders, restaurant
from dashboards.queries import grafana_interval, interpolate
from ingest.registry import Registry

pytestmark = [pytest.mark.docker, pytest.mark.integration]

REPO = Path(__file__).resolve().parent.parent
GRAFANA_IMAGE = "grafana/grafana:11.6.0"
INFLUX_TOKEN = "fumewatch-test-token"  # a throwaway container's token, not a secret
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, *, body=None, headers=None, timeout=30.0):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if body is not None and not isinstance(body, bytes):
        req.add_header("Content-Type", "application/json")
    with _NO_PROXY.open(req, timeout=timeout) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


def wait_healthy(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if http("GET", f"{url}/api/health", timeout=5).get("database") == "ok":
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(1)
    raise AssertionError(f"Grafana at {url} not healthy in {timeout_s} s")


def grafana_container(password: str):
    from testcontainers.core.container import DockerContainer

    return (
        DockerContainer(GRAFANA_IMAGE)
        .with_exposed_ports(3000)
        .with_env("GF_SECURITY_ADMIN_USER", "admin")
        .with_env("GF_SECURITY_ADMIN_PASSWORD", password)
        .with_env("GF_ANALYTICS_REPORTING_ENABLED", "false")
        .with_env("GF_ANALYTICS_CHECK_FOR_UPDATES", "false")
    )


def url_of(container) -> str:
    return f"http://{container.get_container_host_ip()}:{container.get_exposed_port(3000)}"


def test_push_twice_same_uid_new_version():
    password = secrets.token_hex(12)
    with grafana_container(password) as g:
        url = url_of(g)
        wait_healthy(url)
        admin = basic("admin", password)
        sa = http(
            "POST",
            f"{url}/api/serviceaccounts",
            body={"name": "fumewatch-push", "role": "Admin"},
            headers=admin,
        )
        token = http(
            "POST", f"{url}/api/serviceaccounts/{sa['id']}/tokens", body={"name": "push"}, headers=admin
        )["key"]
        env = {**os.environ, "FUMEWATCH_GRAFANA_TOKEN": token, "FUMEWATCH_INFLUX_TOKEN": INFLUX_TOKEN}
        argv = [
            sys.executable,
            "-m",
            "fumewatch",
            "dashboards",
            "push",
            "--grafana",
            url,
            "--folder",
            "FumeWatch 测试",
        ]
        versions = []
        for attempt in range(2):
            res = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
            assert res.returncode == 0, res.stderr
            assert token not in res.stdout + res.stderr and INFLUX_TOKEN not in res.stdout + res.stderr
            assert f"datasource fumewatch-influxdb: {'created' if attempt == 0 else 'exists'}" in res.stdout
            versions.append(
                {
                    uid: http("GET", f"{url}/api/dashboards/uid/{uid}", headers=admin)
                    for uid in dashboards.build_all()
                }
            )
        for uid, first in versions[0].items():
            second = versions[1][uid]
            assert first["dashboard"]["uid"] == second["dashboard"]["uid"] == uid
            assert second["dashboard"]["version"] == first["dashboard"]["version"] + 1
            assert second["meta"]["folderTitle"] == "FumeWatch 测试"
            assert second["dashboard"]["title"] == dashboards.build_all()[uid]["title"]
            history = http("GET", f"{url}/api/dashboards/uid/{uid}/versions", headers=admin)
            items = history["versions"] if isinstance(history, dict) else history
            assert len(items) >= 2
        ds = http("GET", f"{url}/api/datasources/uid/fumewatch-influxdb", headers=admin)
        assert ds["type"] == "influxdb" and ds["jsonData"]["version"] == "InfluxQL"


# ------------------------------------------------------------------------------------------ provisioning


def _lines(t0: int) -> list[str]:
    out = []
    for i in range(120):
        t = t0 + i * 60_000
        oil = 2.6 if 40 <= i < 80 else 1.1 + 0.01 * (i % 5)
        out.append(
            f"fume_reading,device_id=DEV-1,district=朝阳区,restaurant_id=R1 oil_fume_mg_m3={oil},"
            f"oil_fume_ref_mg_m3={oil},pm_mg_m3=1.2,nmhc_mg_m3=4.5,fan_on=1i,purifier_on={0 if i < 10 else 1}i,"
            f'ref_converted=1i,source="json" {t}'
        )
        if i % 10 == 0:
            mean = oil
            exceeds = int(mean > 2.0)
            for pol, lim, m in (("oil_fume", 2.0, mean), ("pm", 5.0, 1.2), ("nmhc", 10.0, 4.5)):
                ex = exceeds if pol == "oil_fume" else 0
                out.append(
                    f"fume_window,device_id=DEV-1,district=朝阳区,pollutant={pol},restaurant_id=R1 "
                    f"mean_mg_m3={m},max_mg_m3={m},limit_mg_m3={lim},samples=10i,expected=10i,valid=1i,"
                    f"exceeds={ex}i,compliant={1 - ex}i {t}"
                )
    out.append(
        "fume_event,device_id=DEV-1,district=朝阳区,kind=exceedance,pollutant=oil_fume,restaurant_id=R1 "
        'event_id="E1",state="open",open=1i,end_ms=0i,duration_s=0i,peak_mg_m3=2.6,mean_mg_m3=2.6,'
        f'limit_mg_m3=2.0,profile="GB18483-2001",level="enforcement",severity=3i {t0 + 40 * 60_000}'
    )
    out.append(
        "fume_event,device_id=DEV-1,district=朝阳区,kind=purifier_off,restaurant_id=R1 "
        'event_id="E0",state="closed",open=0i,end_ms=1i,duration_s=600i,profile="GB18483-2001",level="",'
        f"severity=0i {t0}"
    )
    out.append(
        "fume_event,device_id=DEV-1,district=朝阳区,kind=offline,restaurant_id=R1 "
        'event_id="E2",state="closed",open=0i,end_ms=1i,duration_s=300i,profile="GB18483-2001",level="",'
        f"severity=0i {t0 + 100 * 60_000}"
    )
    # maintenance reminders (清洗提醒): a fume_event point of kind maintenance_reminder (open 0, level "") and
    # a fume_reminder point each; three outcomes, so the 优服务 stats read 3 sent, 1 back under, 50 %
    for n, (minute, outcome) in enumerate(((20, "exceeded"), (90, "back_under"), (110, "pending"))):
        t = t0 + minute * 60_000
        out.append(
            "fume_event,device_id=DEV-1,district=朝阳区,kind=maintenance_reminder,pollutant=oil_fume,"
            f'restaurant_id=R1 event_id="RM{n}",state="sent",open=0i,end_ms={t}i,duration_s=0i,'
            f'mean_mg_m3=1.7,limit_mg_m3=1.6,profile="GB18483-2001",level="",severity=0i {t}'
        )
        flags = ",".join(
            f"{k}={int(k == outcome)}i" for k in ("pending", "back_under", "exceeded", "still_above")
        )
        out.append(
            f'fume_reminder,device_id=DEV-1,district=朝阳区,restaurant_id=R1 event_id="RM{n}",'
            f'outcome="{outcome}",{flags},threshold_mg_m3=1.6,mean_mg_m3=1.7 {t}'
        )
    # a data-integrity finding after R1's latest offence (not an offence: the latest event is still the
    # offline one), as alerts/influx_sink.py writes it
    t = t0 + 105 * 60_000
    out.append(
        "fume_event,device_id=DEV-1,district=朝阳区,kind=data_integrity,pollutant=oil_fume,restaurant_id=R1 "
        f'event_id="integrity:suspect_zero:DEV-1:{t0}",state="closed",profile="",level="",open=0i,'
        f'end_ms={t + 2_400_000}i,duration_s=2400i,severity=0i,rule="suspect_zero" {t}'
    )
    # the registry and a case, as the alerts service copies them (alerts/case_sync.py)
    registry = Registry.parse(
        "restaurant_id,name,district,device_id,stove_heads,lat,lon\nR1,老王牛肉面,朝阳区,DEV-1,2,39.9219,116.4432\n"
    )
    out += restaurant_lines(registry, t0 + 60_000)
    out.append(
        case_line(
            {
                "case_id": "CASE-E1",
                "event_id": "E1",
                "restaurant_id": "R1",
                "device_id": "DEV-1",
                "district": "朝阳区",
                "kind": "exceedance",
                "pollutant": "oil_fume",
                "start_ms": t0 + 40 * 60_000,
                "status": "assigned",
                "updated_ms": t0 + 90 * 60_000,
            }
        )
    )
    return out


def _numbers_from_influx(rows_doc: dict) -> list[float]:
    out = []
    for result in rows_doc.get("results", []):
        assert "error" not in result, result
        for s in result.get("series", []):
            for row in s.get("values", []):
                for col, v in zip(s["columns"], row, strict=True):
                    if col != "time" and isinstance(v, int | float) and not isinstance(v, bool):
                        out.append(round(float(v), 9))
    return sorted(out)


def _numbers_from_frames(frames: list[dict]) -> list[float]:
    out = []
    for f in frames:
        fields = f["schema"]["fields"]
        for field, values in zip(fields, f["data"]["values"], strict=False):
            if field.get("type") == "time" or field.get("name") == "Time":
                continue
            out += [
                round(float(v), 9) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
            ]
    return sorted(out)


def expected_numbers() -> dict[str, list[float]]:
    """What some queries return on the data of :func:`_lines` (whole range, every district, R1)."""
    o = dashboards.Options()
    return {
        reminders.q_sent(o): [3.0],
        reminders.q_outcome(o, "back_under"): [1.0],
        reminders.q_back_under_share(o): [0.5],  # 1 back under / (3 sent - 1 pending)
        reminders.q_outcome(o, "exceeded"): [1.0],
        reminders.q_outcome(o, "still_above"): [0.0],
        reminders.q_outcome(o, "pending"): [1.0],
        reminders.q_table(o): [1.6, 1.6, 1.6, 1.7, 1.7, 1.7],
        integrity.q_count(o): [1.0],
        integrity.q_table(o): [40.0],  # minutes
        # the offence panels as without the reminders: one restaurant in exceedance, one open event, and
        # R1's latest event is the offline one (severity 0, no peak or limit), not the later reminder
        city.q_exceeding_restaurants(o): [1.0],
        city.q_latest_event(o): [0.0],
        restaurant.q_open_events(o): [1.0],
    }


def test_provisioned_grafana_answers_every_query_like_fill(tmp_path):
    from influxdb_client import DBRPCreate
    from testcontainers.community.influxdb.version2 import InfluxDb2Container
    from testcontainers.core.network import Network

    out = tmp_path / "grafana"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "fumewatch",
            "dashboards",
            "build",
            "--out",
            str(out),
            "--dashboards-path",
            "/provisioning/dashboards",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert build.returncode == 0, build.stderr
    for p in out.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    out.chmod(0o755)
    password = secrets.token_hex(12)
    with Network() as net:
        influx = (
            InfluxDb2Container(
                image="influxdb:2.7",
                init_mode="setup",
                admin_token=INFLUX_TOKEN,
                username="fumewatch",
                password="fumewatch-test-password",
                org_name="fumewatch",
                bucket="fumewatch",
            )
            .with_network(net)
            .with_network_aliases("influxdb")
        )
        with influx:
            client, org = influx.get_client(token=INFLUX_TOKEN, org_name="fumewatch")
            bucket = client.buckets_api().find_bucket_by_name("fumewatch")
            client.dbrps_api().create(
                DBRPCreate(
                    org_id=org.id,
                    bucket_id=bucket.id,
                    database="fumewatch",
                    retention_policy="autogen",
                    default=True,
                )
            )
            client.close()
            influx_url = influx.get_url()
            t_to = (int(time.time() * 1000) // 60_000) * 60_000
            t_from = t_to - 120 * 60_000
            qs = urllib.parse.urlencode({"org": "fumewatch", "bucket": "fumewatch", "precision": "ms"})
            http(
                "POST",
                f"{influx_url}/api/v2/write?{qs}",
                body="\n".join(_lines(t_from)).encode(),
                headers={"Authorization": f"Token {INFLUX_TOKEN}"},
            )
            grafana = (
                grafana_container(password)
                .with_env("GF_PATHS_PROVISIONING", "/provisioning/provisioning")
                .with_env("INFLUX_URL", "http://influxdb:8086")
                .with_env("INFLUX_DATABASE", "fumewatch")
                .with_env("INFLUX_TOKEN", INFLUX_TOKEN)
                .with_volume_mapping(str(out), "/provisioning", "ro")
                .with_network(net)
            )
            with grafana as g:
                url = url_of(g)
                wait_healthy(url)
                admin = basic("admin", password)
                expected, checked = expected_numbers(), set()
                ds = http("GET", f"{url}/api/datasources/uid/fumewatch-influxdb", headers=admin)
                assert ds["jsonData"]["version"] == "InfluxQL" and ds["url"] == "http://influxdb:8086"
                for uid, doc in dashboards.build_all().items():
                    provisioned = http("GET", f"{url}/api/dashboards/uid/{uid}", headers=admin)
                    assert provisioned["meta"]["provisioned"] is True
                    assert len(provisioned["dashboard"]["panels"]) == len(doc["panels"])
                    for pq in dashboards.queries(doc):
                        variables = {"district": dashboards.ALL, "restaurant": "R1"}
                        max_points = 60  # 2 h / 60 = 2 min: Grafana's and fill()'s interval agree
                        # a relative panel range (timeFrom) is left out: the absolute range keeps both sides equal
                        interval = grafana_interval(t_from, t_to, max_points, pq.min_interval or "1m")
                        target = {
                            "refId": "A",
                            "datasource": {"type": "influxdb", "uid": "fumewatch-influxdb"},
                            "query": interpolate(pq.query, variables, t_from, t_to),
                            "rawQuery": True,
                            "resultFormat": pq.result_format,
                            "maxDataPoints": max_points,
                            "intervalMs": 120_000,
                        }
                        if pq.min_interval:
                            target["interval"] = pq.min_interval
                        answer = http(
                            "POST",
                            f"{url}/api/ds/query",
                            body={"from": str(t_from), "to": str(t_to), "queries": [target]},
                            headers=admin,
                        )
                        result = answer["results"]["A"]
                        assert "error" not in result, (pq.panel, result.get("error"))
                        frames = result.get("frames", [])
                        filled = dashboards.fill(pq.query, variables, t_from, t_to, interval)
                        executed = [
                            (f.get("schema", {}).get("meta") or {}).get("executedQueryString") for f in frames
                        ]
                        for e in executed:
                            if e:
                                assert e == filled, (pq.panel, e, filled)
                        direct = http(
                            "POST",
                            f"{influx_url}/query?"
                            + urllib.parse.urlencode({"db": "fumewatch", "q": filled, "epoch": "ms"}),
                            headers={"Authorization": f"Token {INFLUX_TOKEN}"},
                        )
                        assert _numbers_from_frames(frames) == _numbers_from_influx(direct), (
                            pq.panel,
                            filled,
                        )
                        if pq.query in expected:
                            assert _numbers_from_influx(direct) == expected[pq.query], (pq.panel, filled)
                            checked.add(pq.query)
                assert checked == set(expected)
