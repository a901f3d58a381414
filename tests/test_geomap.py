"""The city map and the table of every restaurant, on real data written by the real code.

`fumewatch run` wiring on real servers: readings published on Mosquitto, ingest and the alerts service in
one process on InfluxDB 1.6 (relay), the alerts service's dashboard copies (alerts/case_sync.py) writing
the registry and the case ledger's cases. Then every target of the two panels is filled in as Grafana
would (the panel's relative time: the last hour for the map, "Today so far" for the table), run on
InfluxDB, and the panel's own transformations (the JSON of the dashboard) are applied to the frames by
:func:`transform`, a small model of the Grafana transformations used (filterFieldsByName, joinByField
outer and outerTabular, filterByValue, calculateField reduceRow, organize), written after Grafana's
packages/grafana-data/src/transformations. The rows are checked against the ledger (events, cases) and
against pandas on the points the services wrote.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pandas as pd
import pytest
from servers import publish_mqtt, wait_for
from test_case_sync import move_case

import dashboards
from alerts.enforcement.ladder import build_case
from alerts.ledger import Ledger
from alerts.model import Event
from alerts.service import AlertsService
from dashboards import ALL, citymap, fill, grafana_interval, names, queries, roster
from dashboards.common import Options
from dashboards.queries import panel_range
from fumewatch.settings import AppSettings
from ingest.config import load_settings
from ingest.registry import Registry
from ingest.service import IngestService
from ingest.state import StateDB
from ingest.store import open_store
from ingest.timeutil import now_ms

pytestmark = pytest.mark.integration

MIN = 60_000
REGISTRY = """restaurant_id,name,district,device_id,stove_heads,lat,lon
R1,老王牛肉面,朝阳区,D1,2,39.9219,116.4432
R2,川味小厨,朝阳区,D2,2,39.9301,116.4512
R3,湘菜馆,海淀区,D3,2,39.9593,116.2981
R4,粤香烧腊,东城区,D4,2,39.9288,116.4160
R5,未定位小吃,东城区,D5,2,,
"""


# ==================================================================== Grafana's transformations, modelled
# A frame: {"refId": str, "name": str, "fields": [{"name": str, "values": list}]}; a field's name is its
# display name here (Grafana's InfluxQL frames name each column by its alias: displayNameFromDS).


def frame_from_influx(ref: str, result: dict) -> dict | None:
    """Grafana's InfluxQL "table" frame: one frame per query, Time + the GROUP BY tags + the columns."""
    series = result.get("series") or []
    if not series:
        return None
    tag_keys = sorted({k for s in series for k in (s.get("tags") or {})})
    cols = [c for c in series[0]["columns"] if c != "time"]
    rows = []
    for s in series:
        for values in s["values"]:
            row = dict(zip(s["columns"], values, strict=True))
            rows.append(
                [row["time"], *[(s.get("tags") or {}).get(k) for k in tag_keys], *[row[c] for c in cols]]
            )
    names_ = ["Time", *tag_keys, *cols]
    return {
        "refId": ref,
        "name": series[0]["name"],
        "fields": [{"name": n, "values": [r[i] for r in rows]} for i, n in enumerate(names_)],
    }


def _length(frame: dict) -> int:
    return len(frame["fields"][0]["values"]) if frame["fields"] else 0


def _filter_fields(frame: dict, opts: dict) -> dict:
    inc, exc = opts.get("include", {}).get("names"), opts.get("exclude", {}).get("names")
    keep = [
        f
        for f in frame["fields"]
        if (inc is None or f["name"] in inc) and (exc is None or f["name"] not in exc)
    ]
    return {**frame, "fields": keep}


def _join(frames: list[dict], key: str, mode: str) -> list[dict]:
    tables = [f for f in frames if any(x["name"] == key for x in f["fields"])]
    if len(tables) <= 1:
        return tables
    others = [[x for x in t["fields"] if x["name"] != key] for t in tables]
    keys = [next(x for x in t["fields"] if x["name"] == key)["values"] for t in tables]
    names_ = [key] + [x["name"] for fs in others for x in fs]
    rows: list[list] = []
    if mode == "outer":  # one row per distinct key; a table's values at that key (its last row)
        order: list = list(dict.fromkeys(k for ks in keys for k in ks))
        at = [{k: i for i, k in enumerate(ks)} for ks in keys]
        for k in order:
            row = [k]
            for t, fs in enumerate(others):
                i = at[t].get(k)
                row += [None if i is None else x["values"][i] for x in fs]
            rows.append(row)
    else:  # outerTabular, as joinOuterTabular: each row of each table with its first match in each other
        assert mode == "outerTabular"
        width = [len(fs) for fs in others]
        offset = [1 + sum(width[:t]) for t in range(len(others))]
        seen: dict[str, list] = {}
        for t in range(len(tables)):
            for o in range(len(tables)):
                if o == t:
                    continue
                for i, k in enumerate(keys[t]):
                    row = [k] + [None] * (len(names_) - 1)
                    for j, x in enumerate(others[t]):
                        row[offset[t] + j] = x["values"][i]
                    if k in keys[o]:
                        m = keys[o].index(k)
                        for j, x in enumerate(others[o]):
                            row[offset[o] + j] = x["values"][m]
                    seen[json.dumps(row, ensure_ascii=False)] = row
        rows = list(seen.values())
    return [
        {
            "refId": "",
            "name": "",
            "fields": [{"name": n, "values": [r[i] for r in rows]} for i, n in enumerate(names_)],
        }
    ]


def _rows_where(frame: dict, keep: list[bool]) -> dict:
    return {
        **frame,
        "fields": [
            {**f, "values": [v for v, k in zip(f["values"], keep, strict=True) if k]} for f in frame["fields"]
        ],
    }


def transform(frames: list[dict], transformations: list[dict]) -> list[dict]:
    for t in transformations:
        tid, opts, ref = t["id"], t["options"], (t.get("filter") or {}).get("options")
        hit = [f for f in frames if ref is None or f["refId"] == ref]
        rest = [f for f in frames if f not in hit]
        if tid == "filterFieldsByName":
            hit = [_filter_fields(f, opts) for f in hit]
        elif tid == "joinByField":
            hit = _join(hit, opts["byField"], opts["mode"])
        elif tid == "filterByValue":
            assert (opts["type"], opts["match"]) == ("exclude", "any")
            (flt,) = opts["filters"]
            assert flt["config"]["id"] == "isNull"
            out = []
            for f in hit:
                col = next((x for x in f["fields"] if x["name"] == flt["fieldName"]), None)
                out.append(
                    _rows_where(
                        f, [True] * _length(f) if col is None else [v is not None for v in col["values"]]
                    )
                )
            hit = out
        elif tid == "calculateField":
            assert opts["mode"] == "reduceRow" and opts["reduce"]["reducer"] == "max"
            for f in hit:
                cols = [x for x in f["fields"] if x["name"] in opts["reduce"]["include"]]
                vals = [
                    max((c["values"][i] for c in cols if c["values"][i] is not None), default=None)
                    for i in range(_length(f))
                ]
                f["fields"].append({"name": opts["alias"], "values": vals})
        elif tid == "organize":
            idx, exc = opts["indexByName"], opts["excludeByName"]
            for f in hit:
                kept = [x for x in f["fields"] if not exc.get(x["name"])]
                f["fields"] = sorted(kept, key=lambda x: idx.get(x["name"], 1 << 60))
        else:
            raise AssertionError(f"transformation {tid} not modelled")
        frames = rest + hit
    return frames


def table_rows(frame: dict) -> list[dict]:
    return [{f["name"]: f["values"][i] for f in frame["fields"]} for i in range(_length(frame))]


# ==================================================================== the world


def reading(device: str, t: int, oil: float, *, fan: bool = True, purifier: bool = True) -> tuple[str, bytes]:
    doc = {"ts": t, "oil_fume": oil, "flow": 4000.0, "fan": fan, "purifier": purifier}  # 2 heads: C_ref = C
    return (f"fume/v1/{device}/reading", orjson.dumps(doc))


def readings(end: int) -> list[tuple[str, bytes]]:
    """150 minutes up to ``end``: R1 over the limit for the last 80, R2's purifier off for the last 40 with
    the fan on, R3 silent for the last 100 (offline), R4 and R5 compliant."""
    out = []
    for i in range(150):
        t = end - (149 - i) * MIN
        out.append(reading("D1", t, 3.0 + 0.01 * (i % 3) if i >= 70 else 0.9))
        out.append(reading("D2", t, 0.8, purifier=i < 110))
        if i < 50:
            out.append(reading("D3", t, 0.7))
        out.append(reading("D4", t, 0.8 + 0.01 * (i % 5)))
        out.append(reading("D5", t, 0.6))
    return out


def past_event(rid: str, days: int, end: int) -> Event:
    start = end - days * 86_400_000
    return Event(
        event_id=f"exceedance:D{rid[1:]}:oil_fume:{start}",
        kind="exceedance",
        restaurant_id=rid,
        device_id=f"D{rid[1:]}",
        district=Registry.parse(REGISTRY).get(f"D{rid[1:]}").district,
        start_ms=start,
        end_ms=start + 3_600_000,
        pollutant="oil_fume",
        peak_mg_m3=3.2,
        mean_mg_m3=2.6,
        limit_mg_m3=2.0,
        profile="gb18483",
        level="enforcement",
        state="closed",
    )


def display_zone(now: int) -> str:
    """Asia/Shanghai, unless it is less than 3 hours past its midnight (then "today" would hold little of
    the data): a zone where today already has 3 hours. The table follows the dashboard's zone."""
    for tz in ("Asia/Shanghai", *(f"Etc/GMT{o:+d}" for o in range(-14, 13))):
        if datetime.fromtimestamp(now / 1000, ZoneInfo(tz)).hour >= 3:
            return tz
    raise AssertionError("unreachable")


@pytest.fixture
def world(mosquitto, influx_db, tmp_path: Path):
    reg_file = tmp_path / "registry.csv"
    reg_file.write_text(REGISTRY, encoding="utf-8")
    s: AppSettings = load_settings(  # type: ignore[assignment]
        None,
        {
            "mqtt": {"broker": mosquitto.url, "client_id": f"geo-ingest-{tmp_path.name}"},
            "ingest": {
                "store": influx_db.relay_url,
                "state": str(tmp_path / "state.db"),
                "registry": str(reg_file),
                "flush_interval_s": 0.05,
            },
            "influx": {"bucket": influx_db.name, "org": "fumewatch", "flush_interval_ms": 100},
            "alerts": {
                "client_id": f"geo-alerts-{tmp_path.name}",
                "clock": "event",
                "rule": "consecutive",
                "business_hours": "00:00-24:00",
                "commit_interval_s": 0.2,
                "advance_interval_s": 0.5,
                "warmup_hours": 0,
            },
        },
        AppSettings,
    )
    registry = Registry.load(reg_file)
    end = now_ms() // MIN * MIN - MIN
    ledger = Ledger(s.ingest.state)
    # cases of earlier episodes, made by the ladder and moved on by inspectors (another process)
    for rid, days, status in (("R1", 20, "closed"), ("R2", 9, "assigned"), ("R4", 3, "open")):
        ev = past_event(rid, days, end)
        ledger.upsert_event(ev)
        case = build_case(ev, created_ms=ev.start_ms)
        ledger.upsert_case(case)
        if status != "open":
            move_case(ledger, case["case_id"], status)
    store = open_store(s.ingest.store, s)
    state = StateDB(s.ingest.state)
    alerts = AlertsService(s, registry, ledger, store=store, subscribe=False, publish_notices=False)
    ingest = IngestService(s, registry, store, state, on_readings=alerts.feed)
    alerts.start()
    ingest.start()
    try:
        msgs = readings(end)
        publish_mqtt(mosquitto.url, msgs, timeout_s=30)
        wait_for(lambda: ingest.stats.readings_stored >= len(msgs), 60, "readings stored")
        alerts.advance()  # event clock: R3 has been silent for 99 minutes
        alerts.commit()
        alerts.wait_notices()
        wait_for(lambda: len(ledger.list_events(state="open")) >= 3, 30, "open events")
        store.flush()

        def copied() -> bool:
            """The registry is there, and every case of the ledger (the ladder may open more, for
            inspectors, as it notifies) has its point: the service copies every 15 s."""
            cases = influx_db.points('SELECT * FROM "fume_case"')
            registry_there = bool(influx_db.points('SELECT * FROM "fume_restaurant"'))
            return registry_there and len(cases) == len(ledger.list_cases())

        wait_for(copied, 45, "registry and cases copied by the alerts service")
        yield {"db": influx_db, "ledger": ledger, "registry": registry, "end": end, "now": now_ms()}
    finally:
        ingest.stop()
        alerts.stop()
        store.close()
        state.close()
        ledger.close()


def run_panel(w: dict, panel: dict, opts: Options) -> tuple[list[dict], dict[str, list[dict]]]:
    """The panel's targets as Grafana runs them, its transformations applied; returns (rows, raw rows by
    refId)."""
    t0, t1 = panel_range(panel["timeFrom"], w["now"], opts.timezone)
    frames, raw = [], {}
    for t in panel["targets"]:
        interval = grafana_interval(t0, t1, 100, panel.get("interval") or opts.min_interval)
        q = fill(t["query"], {"district": ALL}, t0, t1, interval)
        result = w["db"].query(q, epoch="ms")["results"][0]
        assert "error" not in result, (q, result)
        raw[t["refId"]] = w["db"].points(q, epoch="ms")
        f = frame_from_influx(t["refId"], result)
        if f is not None:
            frames.append(f)
    (out,) = transform(frames, panel["transformations"])
    return table_rows(out), raw


def panel_of(doc: dict, title: str) -> dict:
    return next(p for p in doc["panels"] if p["title"] == title)


def open_kinds(ledger: Ledger) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in ledger.list_events(state="open"):
        out.setdefault(e.restaurant_id, set()).add(e.kind)
    return out


def open_cases(ledger: Ledger) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in ledger.list_cases():
        if c["status"] != "closed":
            out[c["restaurant_id"]] = out.get(c["restaurant_id"], 0) + 1
    return out


# ==================================================================== the checks


def test_map_marks_every_placed_restaurant_with_its_state_now(world):
    opts = Options()
    doc = dashboards.build_all(opts)["fumewatch-city"]
    panel = doc["panels"][0]
    assert panel["type"] == "geomap" and panel["title"] == citymap.TITLE  # first, on top
    rows, raw = run_panel(world, panel, opts)
    assert all(raw.values()), {k: len(v) for k, v in raw.items()}  # every target returned rows
    ledger = world["ledger"]
    kinds, cases_open = open_kinds(ledger), open_cases(ledger)
    assert kinds == {"R1": {"exceedance"}, "R2": {"purifier_off"}, "R3": {"offline"}}
    # the cases made above: R1's is closed, R2's and R4's open (the ladder may have opened others today)
    assert cases_open["R4"] == 1 and cases_open.get("R2", 0) >= 1
    earlier = [c for c in ledger.list_cases(restaurant_id="R1") if c["start_ms"] < world["end"] - 86_400_000]
    assert [c["status"] for c in earlier] == ["closed"]
    code = {k: c for c, k, _t, _col in citymap.STATES}

    def expected_state(rid: str) -> int:
        worst = [code[k] for k in kinds.get(rid, ())] + ([code["case_state"]] if rid in cases_open else [])
        return max([1, *worst])

    reg = world["registry"]
    placed = sorted({d.restaurant_id for d in reg if d.lat is not None})
    assert (
        sorted(r["restaurant_id"] for r in rows) == placed == ["R1", "R2", "R3", "R4"]
    )  # R5 has no position
    readings = pd.DataFrame(world["db"].points('SELECT * FROM "fume_reading"', epoch="ms"))
    last_hour = readings[readings["time"] >= world["now"] - 3_600_000].sort_values("time")
    latest = last_hour.groupby("restaurant_id")["oil_fume_ref_mg_m3"].last().to_dict()
    for r in rows:
        d = next(x for x in reg if x.restaurant_id == r["restaurant_id"])
        assert (r["name"], r["district"], r["lat"], r["lon"]) == (d.name, d.district, d.lat, d.lon)
        assert r["state"] == expected_state(d.restaurant_id), r
        assert r["open_cases"] == cases_open.get(d.restaurant_id)
        assert r["oil_fume_ref_mg_m3"] == (
            pytest.approx(latest[d.restaurant_id]) if d.restaurant_id in latest else None
        )
    by_id = {r["restaurant_id"]: r for r in rows}
    assert [by_id[k]["state"] for k in ("R1", "R2", "R3", "R4")] == [5, 4, 3, 2]
    assert (
        by_id["R1"]["oil_fume_ref_mg_m3"] > 2.0 and by_id["R3"]["oil_fume_ref_mg_m3"] is None
    )  # silent 99 min
    # what the tooltip shows: the helper codes are gone, the state is text and colour
    assert list(rows[0])[:6] == ["name", "district", "address", "oil_fume_ref_mg_m3", "state", "open_cases"]
    assert not {"active", "exceedance", "purifier_off", "offline", "case_state", "Time"} & set(rows[0])
    mapping = next(o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "state")
    texts = next(p["value"][0]["options"] for p in mapping["properties"] if p["id"] == "mappings")
    assert texts["5"]["color"] == "red" and texts["1"]["text"].startswith("达标")
    layer = panel["options"]["layers"][0]
    assert layer["location"] == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
    assert layer["config"]["style"]["color"]["field"] == "state"
    name_links = next(o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "name")
    [link] = next(p["value"] for p in name_links["properties"] if p["id"] == "links")
    assert link["url"].startswith("/d/fumewatch-restaurant/?var-restaurant=${__data.fields.restaurant_id}")


def test_every_restaurant_table_today(world):
    tz = display_zone(world["now"])
    opts = Options(timezone=tz)
    panel = panel_of(dashboards.build_all(opts)["fumewatch-city"], roster.TITLE)
    assert panel["timeFrom"] == "now/d"
    rows, raw = run_panel(world, panel, opts)
    assert all(raw.values()), {k: len(v) for k, v in raw.items()}
    t0, t1 = panel_range("now/d", world["now"], tz)
    db, ledger, reg = world["db"], world["ledger"], world["registry"]
    assert sorted(r["restaurant_id"] for r in rows) == sorted(reg.restaurants())  # every one, placed or not
    assert list(rows[0])[: len(roster.COLUMNS)] == roster.COLUMNS
    windows = pd.DataFrame(db.points('SELECT * FROM "fume_window"', epoch="ms"))
    today = windows[(windows["time"] >= t0) & (windows["time"] <= t1) & (windows["valid"] == 1)]
    compliance = today.groupby("restaurant_id")["compliant"].mean().to_dict()
    readings = pd.DataFrame(db.points('SELECT * FROM "fume_reading"', epoch="ms"))
    rd = readings[(readings["time"] >= t0) & (readings["time"] <= t1)]
    per_bucket = 600 // opts.expected_interval_s
    first, last = t0 - t0 % 600_000, t1 - t1 % 600_000
    buckets = (last - first) // 600_000 + 1  # fill(0): every bucket of the range, the one under way too
    completeness = {
        rid: g.groupby("device_id").size().div(buckets * per_bucket).mean()
        for rid, g in rd.groupby("restaurant_id")
    }
    # the earlier episodes' events went into the ledger directly (as before the service wrote InfluxDB):
    # the ladder level on the dashboard is that of the events the service wrote
    events = [e for e in ledger.list_events() if e.start_ms >= world["end"] - 86_400_000]
    ladder = {}
    for e in sorted(events, key=lambda e: e.start_ms):
        if e.level:
            ladder[e.restaurant_id] = {"education": 1, "warning": 2, "enforcement": 3}[e.level]
    opened = {}
    for e in events:
        if e.state == "open":
            opened[e.restaurant_id] = opened.get(e.restaurant_id, 0) + 1
    cases_open = open_cases(ledger)
    for r in rows:
        rid = r["restaurant_id"]
        d = reg.restaurants()[rid][0]
        assert (r["name"], r["district"]) == (d.name, d.district)
        assert r["compliance"] == (pytest.approx(compliance[rid]) if rid in compliance else None), rid
        assert r["completeness"] == (pytest.approx(completeness[rid]) if rid in completeness else None), rid
        assert r["open_events"] == opened.get(rid)
        assert r["ladder"] == ladder.get(rid), (rid, ladder)
        assert r["open_cases"] == cases_open.get(rid)
    by_id = {r["restaurant_id"]: r for r in rows}
    assert by_id["R4"]["compliance"] == 1.0 and by_id["R1"]["compliance"] < 1.0
    assert by_id["R1"]["ladder"] is not None  # R1's exceedance today has its ladder step
    assert by_id["R3"]["completeness"] < by_id["R4"]["completeness"]  # R3 went silent
    name_col = next(o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "name")
    assert any(p["id"] == "links" for p in name_col["properties"])


def test_every_live_panel_query_is_checked_here():
    """The queries tests/test_dashboards.py leaves to this file (LIVE_PANELS) are the two panels above."""
    doc = dashboards.build_all()["fumewatch-city"]
    live = {pq.query for pq in queries(doc) if pq.panel in (citymap.TITLE, roster.TITLE)}
    assert live == {q for _, q in citymap.targets(Options())} | {q for _, q in roster.targets(Options())}
    assert names.q_restaurants(Options()) in live


def test_transform_model_joins_like_grafana():
    """The model of the joins on the two cases Grafana's source describes: outer = one row per key;
    outerTabular keeps a key's several rows (and the registry row alone when nothing matched)."""
    a = {
        "refId": "A",
        "name": "m",
        "fields": [{"name": "k", "values": ["x", "x", "y"]}, {"name": "v", "values": [1, 2, 3]}],
    }
    b = {
        "refId": "B",
        "name": "m",
        "fields": [{"name": "k", "values": ["x", "z"]}, {"name": "n", "values": ["X", "Z"]}],
    }
    (tab,) = _join([a, b], "k", "outerTabular")
    assert sorted(map(tuple, zip(*[f["values"] for f in tab["fields"]], strict=True)), key=str) == sorted(
        [("x", 1, "X"), ("x", 2, "X"), ("y", 3, None), ("z", None, "Z")], key=str
    )
    (out,) = _join([a, b], "k", "outer")
    assert table_rows(out) == [
        {"k": "x", "v": 2, "n": "X"},
        {"k": "y", "v": 3, "n": None},
        {"k": "z", "v": None, "n": "Z"},
    ]
