"""Case states and the registry copied to InfluxDB for the dashboards (alerts/case_sync.py, influx_sink.py).

- ``fume_case`` points: every field written each time (a cleared outcome is cleared), open = status is not
  closed, bad records skipped and counted;
- the watermark: each change copied once, kept across restarts, a late commit inside the overlap still
  copied, pages never cut inside one millisecond, a failed write retried;
- ``fume_restaurant``: tombstones for restaurants that left the registry or moved district;
- on the real InfluxDB 1.6 (relay, real store): the city dashboard's open-case count, per district and per
  restaurant, equals what ``fumewatch cases`` lists as not closed, before and after cases change, on both
  ledger backends.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from servers import run_fumewatch

import alerts.ledger.core as ledger_core
from alerts.case_sync import CASE_STATE, REGISTRY_STATE, CaseSync, DashboardSync, RegistrySync
from alerts.enforcement.ladder import build_case
from alerts.influx_sink import case_line
from alerts.ledger import Ledger
from alerts.model import Event
from dashboards import ALL, cases, citymap, fill, roster
from dashboards.common import Options
from ingest.config import load_settings
from ingest.registry import Registry
from ingest.store import open_store
from ingest.timeutil import now_ms

T0 = 1795651200000 - 8 * 3600_000  # 2026-11-26 00:00 Asia/Shanghai
HOUR = 3_600_000


def event(n: int, rid: str, district: str, start: int) -> Event:
    return Event(
        event_id=f"exceedance:D-{rid}:oil_fume:{start}",
        kind="exceedance",
        restaurant_id=rid,
        device_id=f"D-{rid}",
        district=district,
        start_ms=start,
        end_ms=start + HOUR,
        pollutant="oil_fume",
        peak_mg_m3=3.0 + n / 10,
        mean_mg_m3=2.5,
        limit_mg_m3=2.0,
        profile="gb18483",
        level="enforcement",
        state="closed",
    )


class Clock:
    """The ledger's now_ms, set by the test (cases get the ``updated_ms`` the test wants)."""

    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock(T0 + 10 * HOUR)
    monkeypatch.setattr(ledger_core, "now_ms", c)
    return c


def add_case(
    ledger: Ledger, n: int, rid: str = "R1", district: str = "朝阳区", start: int | None = None
) -> str:
    ev = event(n, rid, district, T0 + n * HOUR if start is None else start)
    ledger.upsert_event(ev)
    case = build_case(ev, created_ms=ev.start_ms)
    ledger.upsert_case(case)
    return case["case_id"]


def move_case(ledger: Ledger, case_id: str, status: str, **record: object) -> None:
    """A case moved on as another process does it (the API, the CLI: alerts.ledger.casework): its row's
    status, lifecycle columns (assignee, outcome) and updated_ms. Straight on the cases table, so a test
    can also make moves the lifecycle refuses (a reopened case); the copy reads only that table."""
    from sqlalchemy import select, update

    from alerts.ledger.schema import cases as table

    with ledger.transaction() as c:
        (text,) = c.execute(select(table.c.record).where(table.c.case_id == case_id)).one()
        doc = {**json.loads(text), **record, "status": status}
        c.execute(
            update(table)
            .where(table.c.case_id == case_id)
            .values(
                status=status,
                record=json.dumps(doc, ensure_ascii=False),
                updated_ms=ledger_core.now_ms(),
                **{k: record[k] for k in ("assignee", "outcome") if k in record},
            )
        )


def split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside double quotes and not escaped (line protocol's rules)."""
    parts, cur, quoted, escaped = [], "", False, False
    for ch in text:
        if escaped:
            cur, escaped = cur + ch, False
        elif ch == "\\":
            cur, escaped = cur + ch, True
        elif ch == '"':
            cur, quoted = cur + ch, not quoted
        elif ch == sep and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def fields(line: str) -> dict[str, str]:
    """The field set of one line-protocol point, values as written (strings keep their quotes)."""
    _tags, field_text, _time = split_top(line, " ")
    return dict(kv.split("=", 1) for kv in split_top(field_text, ","))


# ================================================================================ points (no server)


def test_case_line_writes_every_field_and_the_open_flag():
    base = {
        "case_id": "CASE-1",
        "event_id": "E1",
        "restaurant_id": "R 1",
        "device_id": "D1",
        "district": "朝阳区",
        "kind": "exceedance",
        "pollutant": "oil_fume",
        "start_ms": T0,
        "updated_ms": T0 + 5,
    }
    line = case_line({**base, "status": "assigned", "assignee": {"name": "李执法", "id": "u7"}})
    assert line.startswith(
        "fume_case,case_type=enforcement,device_id=D1,district=朝阳区,kind=exceedance,pollutant=oil_fume,"
    )
    assert "restaurant_id=R\\ 1 " in line and line.endswith(f" {T0}")
    f = fields(line)
    assert (f["status"], f["assignee"], f["outcome"], f["open"]) == ('"assigned"', '"李执法"', '""', "1i")
    assert (f["case_id"], f["event_id"], f["updated_ms"]) == ('"CASE-1"', '"E1"', f"{T0 + 5}i")
    closed = fields(case_line({**base, "status": "closed", "outcome": "rectified"}))
    assert (closed["open"], closed["outcome"], closed["assignee"]) == ("0i", '"rectified"', '""')
    assert fields(case_line({**base, "status": None}))["status"] == '"open"'
    # an inspectors' task sharing the case's lead event is another point (the case_type tag)
    task = case_line({**base, "case_id": "TASK-1", "case_type": "owner_unreachable", "status": "open"})
    assert split_top(task, " ")[0] != split_top(line, " ")[0] and ",case_type=owner_unreachable," in task
    for bad in ({**base, "case_id": ""}, {**base, "start_ms": None}):
        with pytest.raises(ValueError, match="without case_id or start_ms"):
            case_line(bad)


# ================================================================================ the watermark


def test_each_change_is_copied_once_and_the_watermark_survives_a_restart(tmp_path, clock):
    written: list[str] = []
    with Ledger(tmp_path / "state.db") as ledger:
        ids = [add_case(ledger, n) for n in range(3)]
        sync = CaseSync(ledger, written.extend, overlap_s=300)
        assert sync.sync() == 3 and sync.watermark_ms == clock.t
        assert ledger.load_state(CASE_STATE)["watermark_ms"] == clock.t
        assert sync.sync() == 0  # inside the overlap, but already copied with this updated_ms
        clock.t += 60_000
        move_case(ledger, ids[1], "assigned", assignee="李执法")
        assert sync.sync() == 1 and fields(written[-1])["status"] == '"assigned"'
        assert fields(written[-1])["assignee"] == '"李执法"'
        # a restart: the watermark is read back; only what changed within the overlap is copied again
        clock.t += 400_000
        move_case(ledger, ids[2], "closed", outcome="rectified")
        again = CaseSync(ledger, written.extend, overlap_s=300)
        assert again.watermark_ms == clock.t - 400_000
        # a restart copies again what changed within the overlap before the watermark (harmless: same
        # series and time), and the new change
        assert again.sync() == 3 and fields(written[-1])["open"] == "0i"
        restarted = CaseSync(ledger, written.extend, overlap_s=300)
        assert restarted.sync() == 1  # now only ids[2] changed within 300 s of the watermark
        assert [fields(x)["case_id"] for x in written].count(f'"{ids[0]}"') == 2


def test_a_change_committed_late_inside_the_overlap_is_still_copied(tmp_path, clock):
    written: list[str] = []
    with Ledger(tmp_path / "state.db") as ledger:
        add_case(ledger, 0)
        sync = CaseSync(ledger, written.extend, overlap_s=300)
        clock.t += 10_000
        add_case(ledger, 1)
        sync.sync()
        # another process stamped its change 2 minutes ago but committed only now (a slow transaction)
        clock.t -= 120_000
        late = add_case(ledger, 2)
        clock.t += 120_000
        assert sync.sync() == 1 and fields(written[-1])["case_id"] == f'"{late}"'


def test_pages_never_cut_a_millisecond(tmp_path, clock):
    written: list[str] = []
    with Ledger(tmp_path / "state.db") as ledger:
        ids = [add_case(ledger, n) for n in range(7)]  # all stamped in the same millisecond
        clock.t += 1
        ids += [add_case(ledger, n) for n in range(7, 10)]
        sync = CaseSync(ledger, written.extend, page=2)
        assert sync.sync() == 10
        assert sorted(fields(x)["case_id"].strip('"') for x in written) == sorted(ids)
        assert sync.watermark_ms == clock.t


def test_a_failed_write_keeps_the_watermark_and_is_retried(tmp_path, clock):
    written: list[str] = []

    def flaky(lines: list[str]) -> None:
        if fail:
            raise ConnectionError("InfluxDB down")
        written.extend(lines)

    with Ledger(tmp_path / "state.db") as ledger:
        add_case(ledger, 0)
        sync = CaseSync(ledger, flaky)
        fail = True
        with pytest.raises(ConnectionError):
            sync.sync()
        assert sync.watermark_ms == -1 and ledger.load_state(CASE_STATE) is None
        fail = False
        assert sync.sync() == 1 and len(written) == 1


def test_a_bad_record_is_skipped_and_counted():
    class Stub:
        state: dict = {}

        def cases_updated_since(self, since_ms, limit=1000):
            return [
                {"case_id": "C1", "updated_ms": 5},  # no start time
                {"case_id": "C2", "start_ms": T0, "status": "open", "updated_ms": 6},
            ]

        def load_state(self, name):
            return self.state.get(name)

        def save_state(self, name, data):
            self.state[name] = data

    written: list[str] = []
    sync = CaseSync(Stub(), written.extend)  # type: ignore[arg-type]
    assert sync.sync() == 1 and sync.skipped == 1 and sync.watermark_ms == 6
    assert fields(written[0])["case_id"] == '"C2"'


# ================================================================================ the registry


def registry(rows: str) -> Registry:
    return Registry.parse("restaurant_id,name,district,device_id,stove_heads,lat,lon\n" + rows)


def test_registry_points_and_tombstones_for_restaurants_that_left_or_moved(tmp_path):
    written: list[str] = []
    with Ledger(tmp_path / "state.db") as ledger:
        first = registry(
            "R1,老王牛肉面,朝阳区,D1,2,39.9219,116.4432\nR1,老王牛肉面,朝阳区,D1B,3,,\n"
            "R2,川味小厨,海淀区,D2,4,,\nR3,湘菜馆,东城区,D3,3,,\n"
        )
        assert RegistrySync(ledger, first, written.extend).publish(1000) == 3
        r1 = fields(written[0])
        assert written[0].startswith("fume_restaurant,district=朝阳区,restaurant_id=R1 ")
        assert (r1["name"], r1["device_ids"], r1["devices"], r1["stove_heads"]) == (
            '"老王牛肉面"',
            '"D1 D1B"',
            "2i",
            "5i",
        )
        assert (r1["lat"], r1["lon"], r1["active"]) == ("39.9219", "116.4432", "1i")
        assert "lat" not in fields(written[1])  # R2 has no position
        assert ledger.load_state(REGISTRY_STATE)["restaurants"] == {
            "R1": "朝阳区",
            "R2": "海淀区",
            "R3": "东城区",
        }
        written.clear()
        second = registry("R1,老王牛肉面,朝阳区,D1,2,39.9219,116.4432\nR2,川味小厨,西城区,D2,4,,\n")
        assert RegistrySync(ledger, second, written.extend).publish(2000) == 4
        tombstones = [x for x in written if fields(x)["active"] == "0i"]
        assert tombstones == [
            "fume_restaurant,district=海淀区,restaurant_id=R2 active=0i 2000",  # moved to 西城区
            "fume_restaurant,district=东城区,restaurant_id=R3 active=0i 2000",  # left
        ]


def test_dashboard_sync_does_what_is_due_and_never_raises(tmp_path, clock):
    calls: list[str] = []
    now = [0.0]
    broken = [True]

    def write(lines: list[str]) -> None:
        if broken[0] and lines[0].startswith("fume_restaurant"):
            raise OSError("no route to InfluxDB")
        calls.append(lines[0].split(",", 1)[0])

    with Ledger(tmp_path / "state.db") as ledger:
        add_case(ledger, 0)
        sync = DashboardSync(
            ledger,
            registry("R1,a,x,D1,2,,\n"),
            write,
            interval_s=15,
            refresh_s=3600,
            retry_s=60,
            clock=lambda: now[0],
        )
        sync.tick()  # the registry write fails (logged), the cases are copied
        assert calls == ["fume_case"]
        broken[0] = False
        now[0] = 30.0
        sync.tick()  # registry not due again before retry_s
        assert calls == ["fume_case"]
        now[0] = 61.0
        sync.tick()
        assert calls == ["fume_case", "fume_restaurant"]
        now[0] = 3000.0
        clock.t += 1000
        move_case(ledger, sync.cases.ledger.list_cases()[0]["case_id"], "assigned")
        sync.tick()
        assert calls == ["fume_case", "fume_restaurant", "fume_case"]  # the refresh is 3600 s after 61 s


# ================================================================================ real InfluxDB + CLI


def cli_open_cases(tmp: Path, state: str, *flags: str) -> list[dict]:
    proc = run_fumewatch(tmp, "cases", "--state", state, *flags)
    assert proc.returncode == 0, proc.stderr
    return [c for c in csv.DictReader(io.StringIO(proc.stdout)) if c["status"] != "closed"]


@pytest.mark.integration
def test_open_case_count_on_influxdb_matches_fumewatch_cases(tmp_path, influx_db, state_url):
    settings = load_settings(
        None,
        {
            "ingest": {"store": influx_db.relay_url, "state": str(tmp_path / "state.db")},
            "influx": {"bucket": influx_db.name, "org": "fumewatch", "flush_interval_ms": 100},
        },
    )
    store = open_store(influx_db.relay_url, settings, readings=False)
    o = Options()
    now = now_ms()
    places = [("R1", "朝阳区"), ("R2", "朝阳区"), ("R3", "海淀区"), ("R4", "丰台区")]

    def dashboard_count(query: str, variables: dict) -> list[dict]:
        return influx_db.points(fill(query, variables, now - HOUR, now, "1m"))

    def check() -> int:
        """The dashboard's counts against `fumewatch cases`; returns how many cases it lists as open."""
        store.flush()
        listed = cli_open_cases(tmp_path, state_url)
        by_district = {d: sum(c["district"] == d for c in listed) for _, d in places}
        assert len(cli_open_cases(tmp_path, state_url, "--district", "海淀区")) == by_district["海淀区"]
        for districts in (ALL, ["朝阳区"], ["海淀区"], ["朝阳区", "海淀区"], ["丰台区"]):
            expected = len(listed) if districts is ALL else sum(by_district[d] for d in districts)
            rows = dashboard_count(cases.q_open_cases(o), {"district": districts})
            assert [r["cases"] for r in rows] == ([expected] if expected else []), (districts, expected)
        # per restaurant, as the map (state "case open") and the table of every restaurant show it
        by_restaurant = {rid: n for rid, _ in places if (n := sum(c["restaurant_id"] == rid for c in listed))}
        for q in (citymap.q_case_state(o), roster.q_open_cases(o)):
            got = {r["restaurant_id"]: r["open_cases"] for r in dashboard_count(q, {"district": ALL})}
            assert got == by_restaurant, q
        return len(listed)

    try:
        with Ledger(state_url) as ledger:
            ids = []
            for n, (rid, district) in enumerate(places * 2):
                # one case started 400 days ago: open cases count whatever their age
                start = now - 400 * 86_400_000 if n == 0 else now - (n + 1) * 86_400_000
                ids.append(add_case(ledger, n, rid, district, start))
            sync = CaseSync(ledger, store.write_lines)
            assert sync.sync() == 8
            assert check() == 8
            # the case lifecycle moves on in another process (the API, the CLI): the copy follows
            move_case(ledger, ids[0], "closed", outcome="penalized")
            move_case(ledger, ids[3], "closed", outcome="dismissed")
            move_case(ledger, ids[5], "assigned", assignee="王队")
            move_case(ledger, ids[6], "rectification_ordered")
            assert sync.sync() == 4
            assert check() == 6
            move_case(ledger, ids[3], "rechecked", outcome="")  # reopened
            CaseSync(ledger, store.write_lines).sync()  # a restarted service continues from the watermark
            assert check() == 7
    finally:
        store.close()


def test_what_inspectors_do_reaches_the_copy(tmp_path):
    """Through the real lifecycle (alerts.casework), not the table: assignee and outcome are copied."""
    from alerts.casework import Casework

    written: list[str] = []
    with Ledger(tmp_path / "state.db") as ledger:
        cid = add_case(ledger, 0)
        cw = Casework(ledger)
        cw.act(cid, "assign", {"assignee": "张伟"}, actor="张伟")
        sync = CaseSync(ledger, written.extend, overlap_s=300)
        assert sync.sync() == 1
        assert (fields(written[-1])["status"], fields(written[-1])["assignee"]) == ('"assigned"', '"张伟"')
        cw.act(
            cid,
            "close",
            {"outcome": "dismissed", "dismiss_reason": "device_fault"},
            actor="张伟",
            note="故障",
        )
        assert sync.sync() >= 1
        case_points = [x for x in written if x.startswith("fume_case")]
        assert (fields(case_points[-1])["outcome"], fields(case_points[-1])["open"]) == ('"dismissed"', "0i")
        # the case's lead event, dismissed with it, is rewritten for the dashboards as not open
        [ev] = [x for x in written if x.startswith("fume_event")]
        assert (fields(ev)["state"], fields(ev)["open"]) == ('"dismissed"', "0i")
