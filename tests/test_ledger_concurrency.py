"""Two real processes on one state database (an SQLite file and a private PostgreSQL database): claiming
the same notices, updating one case. Each test fails on PostgreSQL without the ledger's row locks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from alerts.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]

_CLAIMER = r"""
import sys, time
from alerts.ledger import Ledger
url, start, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
led = Ledger(url)
while time.time() < start:
    time.sleep(0.001)
won = []
for i in range(n):
    key = f"e{i}:opened"
    if led.notice_begin(key, "owner", "json://hooks.example.com/x", {"device_id": "D1"}):
        won.append(i)
        led.notice_done(key, "json://hooks.example.com/x", True)
print(" ".join(map(str, won)))
led.close()
"""

_CASE_WRITER = r"""
import sys, time
from alerts.ledger import Ledger
url, start, role, n = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
led = Ledger(url)
while time.time() < start:
    time.sleep(0.001)
for i in range(n):
    if role == "refresh":  # the notifier refreshing the case as the event goes on
        led.upsert_case({"case_id": "C1", "event_id": "e1", "restaurant_id": "R1", "device_id": "D1",
                         "start_ms": 1, "end_ms": 1000 + i, "refresh": i})
    else:  # an inspector moving the case on (alerts.casework: version-checked, audited)
        from alerts.casework import Casework
        Casework(led).act("C1", "assign", {"assignee": f"s{i}"}, actor="inspector")
led.close()
print("ok")
"""


def _race(script: str, *argsets: list[str], watch: Callable[[], None] | None = None) -> list[str]:
    start = str(time.time() + 2.0)  # both started and connected before the race begins
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, args[0], start, *args[1:]],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in argsets
    ]
    while watch is not None and any(p.poll() is None for p in procs):
        watch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    return outs


def test_two_processes_claiming_the_same_notices_exactly_one_wins(state_url: str) -> None:
    n = 60
    with Ledger(state_url) as led:  # half of them failed before: a retry is claimed by one process too
        for i in range(0, n, 2):
            led.notice_begin(f"e{i}:opened", "owner", "json://hooks.example.com/x", {})
            led.notice_done(f"e{i}:opened", "json://hooks.example.com/x", False, "HTTP 503", 0)
    a, b = _race(_CLAIMER, [state_url, str(n)], [state_url, str(n)])
    won_a = {int(x) for x in a.split()}
    won_b = {int(x) for x in b.split()}
    assert won_a.isdisjoint(won_b) and won_a | won_b == set(range(n))  # every notice: exactly one sender
    with Ledger(state_url) as led:
        recs = led.list_notices()
    assert len(recs) == n and {r.status for r in recs} == {"sent"} and {r.attempts for r in recs} == {1}


def test_pending_claim_of_a_live_process_is_honoured_and_of_a_dead_one_taken_over(state_url: str) -> None:
    with Ledger(state_url) as led:
        other = Ledger(state_url)
        other.claimant = f"{led.claimant.rsplit(':', 1)[0]}:1"  # pid 1 is alive: another live sender
        assert other.notice_begin("e1:opened", "owner", "json://h.example.com/x", {}) is True
        assert led.notice_begin("e1:opened", "owner", "json://h.example.com/x", {}) is False
        assert led.notice_skip("e1:opened", "owner", "json://h.example.com/x", "why", {}) is False
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
        other.claimant = f"{led.claimant.rsplit(':', 1)[0]}:{int(dead.stdout)}"  # a sender that crashed
        assert other.notice_begin("e2:opened", "owner", "json://h.example.com/x", {}) is True
        assert led.notice_begin("e2:opened", "owner", "json://h.example.com/x", {}) is True
        other.claimant = "elsewhere.example:42"  # another host: its claim holds for the lease ...
        assert other.notice_begin("e3:opened", "owner", "json://h.example.com/x", {}) is True
        assert led.notice_begin("e3:opened", "owner", "json://h.example.com/x", {}) is False
        led.claim_lease_s = 0  # ... and not after it
        time.sleep(0.01)
        assert led.notice_begin("e3:opened", "owner", "json://h.example.com/x", {}) is True
        other.close()


def test_two_processes_updating_one_case_lose_nothing(state_url: str) -> None:
    """The notifier refreshing a case while an inspector moves it on: each write locks the row it read,
    so no committed state ever mixes one writer's stale read into the other's write, and every action
    is in the audit trail."""
    base = {"case_id": "C1", "event_id": "e1", "restaurant_id": "R1", "device_id": "D1", "start_ms": 1}
    seen: list[tuple] = []
    with Ledger(state_url) as led:
        led.upsert_case(base)
        q = text("SELECT version, record, end_ms FROM cases")
        trail = text("SELECT COUNT(*) FROM case_actions")

        def watch() -> None:  # every committed state: the record JSON agrees with the columns
            version, record, end_ms = led._read(q)[0]  # noqa: SLF001
            actions = led._read(trail)[0][0]  # noqa: SLF001  (read after: at least as many)
            doc = json.loads(record)
            seen.append((version, min(actions, version), end_ms, doc.get("end_ms")))

        n = 150
        outs = _race(_CASE_WRITER, [state_url, "refresh", str(n)], [state_url, "status", str(n)], watch=watch)
        assert outs == ["ok", "ok"]
        watch()
        [case] = led.list_cases()
    torn = [s for s in seen if s[0] != s[1] or s[2] != s[3]]
    assert len(seen) > 20 and not torn, torn[:5]
    assert (case["assignee"], case["status"], case["version"]) == (f"s{n - 1}", "assigned", n + 1)
    assert case["end_ms"] == 1000 + n - 1  # neither writer's last update lost
    with Ledger(state_url) as led:
        assert [a["seq"] for a in led.case_actions("C1")] == list(range(1, n + 2))
