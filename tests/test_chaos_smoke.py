"""bench/chaos.py on a tiny size: ~20 s of simulated kitchens, the ingest service SIGKILLed once, and the
reconciliation adds up (every acknowledged message stored or dead-lettered, nothing doubled).

Only the ingest service is killed here: a SIGKILLed broker can lose a message it acknowledged but had
not saved yet (see BENCHMARKS.md, "Chaos run"); that is the long run's business, not CI's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:'imghdr' is deprecated")]


def test_chaos_smoke(mosquitto_binary: str, tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    proc = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "chaos.py"),
            "--minutes", "0.35", "--restaurants", "8", "--speed", "600", "--seed", "3",
            "--victims", "ingest", "--max-kills", "1", "--min-gap-s", "6", "--max-gap-s", "8",
            "--min-down-s", "1", "--max-down-s", "2", "--quiet-s", "3", "--settle-s", "20",
            "--workdir", str(tmp_path / "work"), "--json", str(out),
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    table = json.loads(out.read_text())
    r = table["readings"]
    assert table["run"]["kills_by_victim"]["ingest"] == 1, proc.stdout[-2000:]
    assert r["published"] > 1000
    assert r["missing"] == 0 and r["duplicated_rows"] == 0, proc.stdout[-2000:]
    assert proc.returncode == 0, proc.stdout[-2000:]
