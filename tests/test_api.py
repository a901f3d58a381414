"""The read-only report API over real HTTP: `fumewatch api` runs as a subprocess on a free port.

Covers every endpoint and format with a right token, 401 for a missing/wrong token (never echoed in the
body, headers or logs), 429 after repeated failures, 400 for bad parameters, /healthz without auth, and
tokens coming only from the environment.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from alerts.api import FailureLimiter, TokenChecker
from alerts.ledger import Ledger
from alerts.model import EXCEEDANCE, OFFLINE, Event, WindowResult
from alerts.reports.build import EVENT_COLUMNS, SUMMARY_COLUMNS
from ingest.registry import Device, Registry
from ingest.timeutil import parse_time

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import free_port  # noqa: E402

TOKEN = "tok-" + secrets.token_urlsafe(24)
TOKEN2 = "second-" + secrets.token_urlsafe(24)
WRONG = "wrong-" + secrets.token_urlsafe(24)
T0 = parse_time("2026-11-25T00:00:00+08:00")
H = 3_600_000
W = 600_000
PERIOD = {"since": "2026-11-25", "until": "2026-11-26"}


def build_state(tmp: Path) -> tuple[Path, Path]:
    reg = Registry(
        [
            Device("R1", "老王川菜馆", "朝阳区", "D1", 4),
            Device("R2", "小李面馆", "海淀区", "D2", 2),
        ]
    )
    reg_path = tmp / "registry.csv"
    reg.write_csv(reg_path)
    state = tmp / "state.db"
    with Ledger(state) as led:
        wins = [
            WindowResult("D1", T0 + k * W, T0 + (k + 1) * W, 10, 10, True, "", 1.0 + k, 2.0 + k, k >= 3)
            for k in range(4)
        ]
        wins += [
            WindowResult("D2", T0 + k * W, T0 + (k + 1) * W, 8, 10, True, "", 0.5, 0.9, False)
            for k in range(5)
        ]
        led.add_windows(wins)
        led.upsert_event(
            Event(
                "e1",
                EXCEEDANCE,
                "R1",
                "D1",
                "朝阳区",
                T0 + 10 * H,
                T0 + 11 * H,
                "oil_fume",
                3.2,
                2.6,
                2.0,
                "gb18483",
                "education",
                "closed",
                [
                    {
                        "start_ms": T0 + 10 * H,
                        "end_ms": T0 + 10 * H + W,
                        "mean_mg_m3": 3.2,
                        "max_mg_m3": 4.0,
                        "samples": 10,
                    }
                ],
            )
        )
        led.upsert_event(Event("e2", OFFLINE, "R2", "D2", "海淀区", T0 + 2 * H, T0 + 3 * H, state="closed"))
        assert led.notice_begin("e1:opened", "owner", "json://owner.example", {"restaurant_id": "R1"})
        led.notice_done("e1:opened", "json://owner.example", ok=True)
    return state, reg_path


@dataclass
class Api:
    url: str
    log: Path
    proc: subprocess.Popen

    def get(self, path: str, token: str | None = TOKEN, **params) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + path, params=params, headers=headers, timeout=30)


def start_api(tmp: Path, state: Path, reg: Path, **env_extra: str) -> Api:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    env.update({"FUMEWATCH_API_TOKENS": f"{TOKEN}, {TOKEN2}", "FUMEWATCH_LOGGING_LEVEL": "INFO", **env_extra})
    log = tmp / f"api-{port}.log"
    cmd = [sys.executable, "-c", "from fumewatch.cli import main; raise SystemExit(main())", "api"]
    cmd += ["--state", str(state), "--registry", str(reg), "--port", str(port)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
    api = Api(f"http://127.0.0.1:{port}", log, proc)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fumewatch api exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(api.url + "/healthz", timeout=1).status_code == 200:
                return api
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"fumewatch api did not answer within 30 s:\n{log.read_text()}")


def stop_api(api: Api) -> None:
    api.proc.terminate()
    try:
        api.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        api.proc.kill()
        api.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("api")
    return (tmp, *build_state(tmp))


@pytest.fixture(scope="module")
def api(data: tuple[Path, Path, Path]) -> Iterator[Api]:
    srv = start_api(*data, FUMEWATCH_API_AUTH_FAIL_LIMIT="1000")
    try:
        yield srv
    finally:
        stop_api(srv)


# ---------------------------------------------------------------------------------------------------------
# the happy path, every endpoint and format
# ---------------------------------------------------------------------------------------------------------


def test_healthz_needs_no_auth(api: Api) -> None:
    r = httpx.get(api.url + "/healthz", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok", "state_db": "ok"}


def test_report_json(api: Api) -> None:
    r = api.get("/api/v1/reports/exceedances", **PERIOD)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    doc = r.json()
    assert [e["event_id"] for e in doc["events"]] == ["e2", "e1"]
    assert {c.key for c in EVENT_COLUMNS} <= set(doc["events"][0])
    assert {c.key for c in SUMMARY_COLUMNS} <= set(doc["summary"][0])
    r1 = next(s for s in doc["summary"] if s["restaurant_id"] == "R1")
    assert (r1["compliance_rate"], r1["exceedance_events"], r1["notices_sent"]) == (0.75, 1, 1)
    assert (
        api.get("/api/v1/reports/exceedances", **PERIOD, district="海淀区").json()["events"][0]["event_id"]
        == "e2"
    )
    only = api.get("/api/v1/reports/exceedances", **PERIOD, restaurant="R1").json()
    assert [s["restaurant_id"] for s in only["summary"]] == ["R1"]


def test_report_csv(api: Api) -> None:
    r = api.get("/api/v1/reports/exceedances", **PERIOD, format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and ".csv" in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [x["event_id"] for x in rows] == ["e2", "e1"] and rows[1]["name"] == "老王川菜馆"
    r = api.get("/api/v1/reports/exceedances", **PERIOD, format="csv", table="summary")
    summary = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {x["restaurant_id"] for x in summary} == {"R1", "R2"}


def test_report_xlsx(api: Api) -> None:
    from openpyxl import load_workbook

    r = api.get("/api/v1/reports/exceedances", **PERIOD, format="xlsx", district="朝阳区")
    assert r.status_code == 200 and "spreadsheetml" in r.headers["content-type"]
    assert "filename*=UTF-8''" in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames[:2] == ["超标事件 Exceedances", "汇总 Summary"]
    assert wb["超标事件 Exceedances"].cell(2, 2).value == "老王川菜馆"


def test_report_html_and_pdf(api: Api) -> None:
    r = api.get("/api/v1/reports/exceedances", **PERIOD, format="html")
    assert r.status_code == 200 and "data:image/png;base64," in r.text
    r = api.get("/api/v1/reports/exceedances", **PERIOD, format="pdf", restaurant="R1")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")


def test_events(api: Api) -> None:
    r = api.get("/api/v1/events", **PERIOD)
    assert r.status_code == 200 and r.headers["x-total-count"] == "2"
    items = r.json()
    assert [e["event_id"] for e in items] == ["e2", "e1"]
    e1 = items[1]
    assert (e1["kind"], e1["name"], e1["level"], e1["start"]) == (
        "exceedance",
        "老王川菜馆",
        "education",
        "2026-11-25T10:00:00+08:00",
    )
    assert [e["event_id"] for e in api.get("/api/v1/events", **PERIOD, kind="offline").json()] == ["e2"]
    assert [e["event_id"] for e in api.get("/api/v1/events", **PERIOD, restaurant="R1").json()] == ["e1"]
    assert [e["event_id"] for e in api.get("/api/v1/events", **PERIOD, district="朝阳区").json()] == ["e1"]
    assert len(api.get("/api/v1/events", **PERIOD, limit="1").json()) == 1


def test_second_token_and_unencoded_plus(api: Api) -> None:
    assert api.get("/api/v1/events", token=TOKEN2, **PERIOD).status_code == 200
    # a client that forgets to URL-encode "+08:00" sends a space; the API reads it as intended
    r = httpx.get(
        api.url + "/api/v1/events?since=2026-11-25T00:00:00+08:00&until=2026-11-26T00:00:00+08:00",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 200 and len(r.json()) == 2


# ---------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/reports/exceedances", "/api/v1/nope"])
def test_missing_or_wrong_token_is_401_without_echo(api: Api, path: str) -> None:
    for headers in (
        {},
        {"Authorization": f"Bearer {WRONG}"},
        {"Authorization": f"Basic {WRONG}"},
        {"Authorization": "Bearer"},
    ):
        r = httpx.get(api.url + path, params=PERIOD, headers=headers, timeout=10)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith('Bearer realm="fumewatch"')
        assert r.json()["error"] == "unauthorized"
        assert WRONG not in r.text and all(WRONG not in v for v in r.headers.values())
    r = httpx.get(api.url + path, params=PERIOD, headers={"Authorization": f"Bearer {WRONG}"})
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        (
            "/api/v1/reports/exceedances",
            {"since": "yesterday-ish", "until": "2026-11-26"},
            "cannot read since",
        ),
        (
            "/api/v1/reports/exceedances",
            {"since": "2026-11-26", "until": "2026-11-25"},
            "since must be before until",
        ),
        (
            "/api/v1/reports/exceedances",
            {"since": "2026-11-25", "until": "2026-11-25"},
            "since must be before until",
        ),
        ("/api/v1/reports/exceedances", {"until": "2026-11-26"}, "since is required"),
        ("/api/v1/reports/exceedances", {**PERIOD, "format": "docx"}, "unknown format"),
        ("/api/v1/reports/exceedances", {**PERIOD, "district": "火星区"}, "unknown district"),
        ("/api/v1/reports/exceedances", {**PERIOD, "restaurant": "R404"}, "unknown restaurant"),
        ("/api/v1/reports/exceedances", {**PERIOD, "table": "charts"}, "unknown table"),
        ("/api/v1/reports/exceedances", {"since": "2020-01-01", "until": "2026-01-01"}, "period longer than"),
        ("/api/v1/events", {**PERIOD, "kind": "fire"}, "unknown kind"),
        ("/api/v1/events", {**PERIOD, "limit": "-3"}, "limit must be"),
        ("/api/v1/events", {"since": "2026-13-45", "until": "2026-11-26"}, "cannot read since"),
    ],
)
def test_bad_parameters_are_400(api: Api, path: str, params: dict, says: str) -> None:
    r = api.get(path, **params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "bad_request" and says in body["detail"]


def test_unknown_path_is_404_json(api: Api) -> None:
    r = api.get("/api/v1/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_logs_have_access_lines_but_never_tokens(api: Api) -> None:
    api.get("/api/v1/events", **PERIOD)
    api.get("/api/v1/events", token=WRONG, **PERIOD)
    httpx.get(
        api.url + "/api/v1/events", params={**PERIOD, "access_token": WRONG}
    )  # a token in the query, too
    time.sleep(0.2)
    text = api.log.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if "event=http" in ln]
    assert any("status=200" in ln and "path=/api/v1/events" in ln for ln in lines)
    assert any("status=401" in ln and "reason=auth_invalid" in ln for ln in lines)
    assert "access_token=%2A%2A%2A" in text or "access_token=***" in text
    for secret in (TOKEN, TOKEN2, WRONG):
        assert secret not in text
    assert "bearer" not in text.lower() and "authorization" not in text.lower()


# ---------------------------------------------------------------------------------------------------------
# rate limit, token sources
# ---------------------------------------------------------------------------------------------------------


def test_repeated_failures_get_429_but_never_for_the_right_token(data: tuple[Path, Path, Path]) -> None:
    srv = start_api(*data, FUMEWATCH_API_AUTH_FAIL_LIMIT="3", FUMEWATCH_API_AUTH_FAIL_WINDOW_S="60")
    try:
        for _ in range(3):
            assert srv.get("/api/v1/events", token=WRONG, **PERIOD).status_code == 401
        r = srv.get("/api/v1/events", token=WRONG, **PERIOD)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert r.json()["error"] == "too_many_requests" and "retry after" in r.json()["detail"]
        assert WRONG not in r.text
        assert srv.get("/api/v1/events", token=None, **PERIOD).status_code == 429  # no token: throttled
        # the right token from the same (throttled) client always passes, and does not lift the limit
        assert srv.get("/api/v1/events", **PERIOD).status_code == 200
        assert srv.get("/api/v1/events", token=TOKEN2, **PERIOD).status_code == 200
        assert srv.get("/api/v1/events", token=WRONG, **PERIOD).status_code == 429
        assert httpx.get(srv.url + "/healthz").status_code == 200  # health stays open
    finally:
        stop_api(srv)
    assert "event=http" in srv.log.read_text() and WRONG not in srv.log.read_text()


def _get_from(srv: Api, forwarded_for: str, token: str | None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(srv.url + "/api/v1/events", params=PERIOD, headers=headers, timeout=30)


def test_behind_a_proxy_failures_count_per_real_client(data: tuple[Path, Path, Path]) -> None:
    """With forwarded_allow_ips = the proxy, X-Forwarded-For names the client: one client's failures
    do not throttle another. Without it, every client shares the proxy's IP (one limit for all), and a
    right token still passes."""
    limits = {"FUMEWATCH_API_AUTH_FAIL_LIMIT": "2", "FUMEWATCH_API_AUTH_FAIL_WINDOW_S": "60"}
    srv = start_api(*data, FUMEWATCH_API_FORWARDED_ALLOW_IPS="127.0.0.1", **limits)
    try:
        for _ in range(2):
            assert _get_from(srv, "203.0.113.7", WRONG).status_code == 401
        assert _get_from(srv, "203.0.113.7", WRONG).status_code == 429
        assert _get_from(srv, "198.51.100.9", WRONG).status_code == 401  # another client: its own count
        assert _get_from(srv, "203.0.113.7", TOKEN).status_code == 200
        time.sleep(0.2)
        text = srv.log.read_text(encoding="utf-8")
        assert "client=203.0.113.7" in text and "client=198.51.100.9" in text
    finally:
        stop_api(srv)

    srv = start_api(*data, **limits)  # no forwarded_allow_ips: X-Forwarded-For is not believed
    try:
        for _ in range(2):
            assert _get_from(srv, "203.0.113.7", WRONG).status_code == 401
        assert _get_from(srv, "198.51.100.9", WRONG).status_code == 429  # everyone is 127.0.0.1 here
        assert _get_from(srv, "198.51.100.9", TOKEN).status_code == 200  # ... but the right token passes
        time.sleep(0.2)
        text = srv.log.read_text(encoding="utf-8")
        assert "client=203.0.113.7" not in text and "client=127.0.0.1" in text
    finally:
        stop_api(srv)


def test_failure_limiter_window_and_memory_bound() -> None:
    now = [1000.0]
    lim = FailureLimiter(limit=2, window_s=60, max_clients=3, clock=lambda: now[0])
    lim.failed("a")
    assert lim.retry_after("a") is None
    lim.failed("a")
    assert lim.retry_after("a") == 60
    now[0] += 30
    assert lim.retry_after("a") == 30
    now[0] += 31
    assert lim.retry_after("a") is None  # the window moved on
    for c in "bcde":
        lim.failed(c)
    assert len(lim._fails) <= 3


def test_token_checker() -> None:
    chk = TokenChecker([TOKEN, TOKEN2])
    assert chk.check(f"Bearer {TOKEN}") == "ok" and chk.check(f"bearer  {TOKEN2} ") == "ok"
    assert chk.check(f"Bearer {WRONG}") == "invalid" and chk.check(f"Bearer {TOKEN}x") == "invalid"
    assert (
        chk.check(None) == "missing"
        and chk.check(f"Basic {TOKEN}") == "missing"
        and chk.check("Bearer ") == "missing"
    )


def test_tokens_only_from_the_environment(
    data: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fumewatch.cli import main

    for var in [v for v in os.environ if v.startswith("FUMEWATCH_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)  # no stray .env
    _, state, reg = data
    args = ["api", "--state", str(state), "--registry", str(reg), "--port", str(free_port())]
    cfg = tmp_path / "api.toml"
    cfg.write_text(f'[api]\nport = 9999\ntokens = "{TOKEN}"\n', encoding="utf-8")
    assert main([*args, "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "FUMEWATCH_API_TOKENS" in err and TOKEN not in err
    assert main(args) == 2
    assert "no API token" in capsys.readouterr().err
    monkeypatch.setenv("FUMEWATCH_API_TOKENS", "short")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 API token(s) shorter than 16 characters" in err and "'short'" not in err


def test_report_serves_the_case_tables_as_csv(api: Api) -> None:
    """The enforcement cases' csv tables are served too (only the header here: no case in the period)."""
    for table in ("cases", "case_events", "case_windows", "case_receipts"):
        r = api.get("/api/v1/reports/exceedances", **PERIOD, format="csv", table=table)
        assert r.status_code == 200, r.text
        assert f".{table}.csv" in r.headers["content-disposition"]
