"""What ``fumewatch demo`` prints at the end about the web console: how to serve it on the demo's state
database, which token variable to set, and where its cases (or, when the simulated day opened none, the
restaurants with ladder episodes) are found in it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape

from alerts.ledger import Ledger

#: the API's default port ([api] port)
PORT = 8080
MAX_SHOWN = 5
_LEVEL = {"education": "education", "warning": "warning", "enforcement": "enforcement"}


def print_hint(console: Console, state_path: Path, registry_path: Path, port: int = PORT) -> None:
    base = f"http://127.0.0.1:{port}/console"
    with Ledger(state_path) as led:
        cases = led.list_cases()
        episodes = led.list_episodes()
    console.print("[bold]Web console for inspectors[/] (same server as the API):")
    console.print(
        escape(
            "  export FUMEWATCH_INSPECTOR_TOKENS=\"演示执法员:$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(24))')\"\n"
            f"  fumewatch api --state {state_path} --registry {registry_path}\n"
            f"  open {base}/ and sign in with the token after the colon "
            '(echo "${FUMEWATCH_INSPECTOR_TOKENS#*:}"); docs/console.md has the details.'
        ),
        soft_wrap=True,
    )
    if cases:
        console.print(f"  Cases to work ({len(cases)}):")
        for c in cases[:MAX_SHOWN]:
            console.print(
                f"    {c['case_id']} ({c.get('restaurant_id', '')}, {c['status']}): "
                f"{base}/cases/{quote(c['case_id'], safe='')}",
                soft_wrap=True,
                markup=False,
            )
        if len(cases) > MAX_SHOWN:
            console.print(f"    ... and {len(cases) - MAX_SHOWN} more: {base}/cases", soft_wrap=True)
        return
    console.print(
        "  This simulated day opened no enforcement case (a case opens at the third ladder step in the "
        "look-back period, after two notices reached the owner); the list is empty until one does: "
        f"{base}/cases",
        soft_wrap=True,
    )
    top: dict[str, tuple[int, str]] = {}
    for p in episodes:
        if p.restaurant_id not in top or p.step > top[p.restaurant_id][0]:
            top[p.restaurant_id] = (p.step, p.level)
    if top:
        console.print("  Restaurants on the ladder today (their episodes, events and cases):")
        for rid, (step, level) in sorted(top.items(), key=lambda kv: (-kv[1][0], kv[0]))[:MAX_SHOWN]:
            console.print(
                f"    {rid}: step {step} ({_LEVEL.get(level, level)}): {base}/restaurants/{quote(rid, safe='')}",
                soft_wrap=True,
                markup=False,
            )
