"""`fumewatch case` and `fumewatch cases` as real processes (issue 12): show, act, attach, refusals, and
the inspector names of FUMEWATCH_INSPECTOR_TOKENS."""

from __future__ import annotations

import json
from pathlib import Path

from casedata import exceedance, open_case
from servers import run_fumewatch

from alerts.ledger import Ledger
from fumewatch.db import upgrade
from ingest.timeutil import now_ms

H = 3_600_000
INSPECTORS = {"FUMEWATCH_INSPECTOR_TOKENS": "张伟:" + "a" * 24 + ",李娜:" + "b" * 24}


def make_case(tmp: Path) -> str:
    upgrade(str(tmp / "state.db"))
    with Ledger(tmp / "state.db") as led:
        return open_case(led, exceedance(start=now_ms() - 5 * H))["case_id"]


def fw(tmp: Path, *argv: str, env: dict | None = None):
    return run_fumewatch(tmp, *argv, "--state", str(tmp / "state.db"), env={**INSPECTORS, **(env or {})})


def test_an_inspector_works_a_case_at_the_terminal(tmp_path: Path) -> None:
    cid = make_case(tmp_path)
    r = fw(tmp_path, "case", "act", cid, "assign", "--by", "张伟", "--set", "assignee=张伟")
    assert r.returncode == 0 and r.stdout.strip().endswith("-> assigned (version 2)"), r.stderr
    # stale version, unknown inspector, bad field, illegal transition: one line each, exit 2, nothing changes
    r = fw(tmp_path, "case", "act", cid, "assign", "--by", "李娜", "--set", "assignee=李娜", "--version", "1")
    assert (
        r.returncode == 2 and "is at version 2, not 1" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    )
    r = fw(tmp_path, "case", "act", cid, "assign", "--by", "王五", "--set", "assignee=王五")
    assert r.returncode == 2 and "not an inspector of FUMEWATCH_INSPECTOR_TOKENS" in r.stderr
    r = fw(
        tmp_path,
        "case",
        "act",
        cid,
        "inspect",
        "--by",
        "张伟",
        "--set",
        "inspected_at=2026-12-02T10:00",
        "--set",
        "findings=滤网堵塞",
        "--set",
        "purifier=broken",
        "--set",
        "fan=working",
    )
    assert r.returncode == 2 and "purifier" in r.stderr
    r = fw(tmp_path, "case", "act", cid, "recheck", "--by", "张伟", "--set", "rectified=true")
    assert r.returncode == 2 and "recheck is not allowed on a case that is assigned" in r.stderr
    (tmp_path / "现场.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    r = fw(
        tmp_path, "case", "attach", cid, str(tmp_path / "现场.png"), "--by", "张伟", "--note", "后厨排烟口"
    )
    assert r.returncode == 0 and "attached 现场.png as att-" in r.stdout, r.stderr
    att = r.stdout.split(" as ")[1].split()[0]
    r = fw(
        tmp_path,
        "case",
        "act",
        cid,
        "inspect",
        "--by",
        "张伟",
        "--set",
        "inspected_at=2026-12-02T10:00",
        "--set",
        "findings=滤网堵塞",
        "--set",
        "purifier=not_working",
        "--set",
        "fan=working",
        "--set",
        f"attachments={att}",
        "--note",
        "店长在场",
    )
    assert r.returncode == 0, r.stderr
    r = fw(
        tmp_path,
        "case",
        "act",
        cid,
        "close",
        "--by",
        "张伟",
        "--json",
        '{"outcome": "not_punished", "exemption_item": "首违不罚清单第3项"}',
    )
    assert r.returncode == 0 and "-> closed (version 4)" in r.stdout, r.stderr
    show = fw(tmp_path, "case", "show", cid)
    assert show.returncode == 0, show.stderr
    text = show.stdout
    assert "已结案" in text and "not_punished" in text and "inspected_at=2026-12-02T10:00:00+08:00" in text
    assert "首违不罚清单第3项" in text and "店长在场" in text and "现场.png" in text
    view = json.loads(fw(tmp_path, "case", "show", cid, "--format", "json").stdout)
    assert [a["action"] for a in view["trail"]] == ["open", "assign", "attach", "inspect", "close"]
    assert all(a["at"].endswith("+08:00") for a in view["trail"])
    utc = json.loads(fw(tmp_path, "case", "show", cid, "--format", "json", "--utc").stdout)
    assert utc["trail"][0]["at"].endswith("+00:00")
    rows = fw(tmp_path, "cases", "--status", "closed").stdout.splitlines()
    assert rows[0].startswith("case_id,case_type,restaurant_id,district,status,assignee,outcome")
    assert ",closed,张伟,not_punished," in rows[1]
    assert fw(tmp_path, "cases", "--status", "open").stdout.splitlines()[1:] == []
    r = fw(tmp_path, "case", "show", "case-nope")
    assert r.returncode == 2 and "no case 'case-nope'" in r.stderr


def test_case_file_from_the_terminal(tmp_path: Path) -> None:
    """`fumewatch case file` writes the zip (no registry needed: names are a courtesy); its manifest checks."""
    import subprocess
    import zipfile

    cid = make_case(tmp_path)
    r = fw(tmp_path, "case", "file", cid, "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path.parent == tmp_path / "out" and path.suffix == ".zip"
    with zipfile.ZipFile(path) as z:
        z.extractall(tmp_path / "x")
    check = subprocess.run(
        ["sha256sum", "-c", "manifest.sha256"], cwd=tmp_path / "x", capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert {"case.pdf", "case.json", "readings.csv", "manifest.json"} <= {
        p.name for p in (tmp_path / "x").iterdir()
    }
    r = fw(tmp_path, "case", "file", "case-nope", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "no case" in r.stderr
