"""The layout keeps its shape: imports point one way, and long modules say why they are long.

- The import-linter contracts in pyproject.toml (``lint-imports``): fumewatch -> alerts, dashboards ->
  ingest, and no import cycle among the sibling modules of any package.
- A module of the application over ``MAX_LINES`` lines carries, in its docstring, a line starting with
  ``Why this module is long:`` (CONVENTIONS: a module past ~400 lines is split along its seams, or says
  why not).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fumewatch", "ingest", "alerts", "dashboards")
MAX_LINES = 420  # "about 400"
REASON = "Why this module is long:"


def _lint_imports() -> str | None:
    exe = Path(sys.executable).with_name("lint-imports")
    if exe.exists():
        return str(exe)
    return shutil.which("lint-imports")


def test_import_contracts_hold() -> None:
    exe = _lint_imports()
    if exe is None:
        pytest.fail("lint-imports (import-linter) is not installed: pip install -e '.[test]'")
    proc = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def test_long_modules_say_why() -> None:
    offenders = []
    for path in _modules():
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        if n <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if not any(line.strip().startswith(REASON) for line in doc.splitlines()):
            offenders.append(f"{path.relative_to(REPO)} ({n} lines)")
    assert not offenders, f"split these or give a '{REASON}' line in the docstring: {offenders}"


def test_ingest_never_imports_alerts_or_the_root() -> None:
    """The contract in words, checked on the source too (a lazy import inside a function counts)."""
    bad = []
    for path in (REPO / "ingest").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [
                f"{path.relative_to(REPO)}: {n}"
                for n in names
                if n.split(".")[0] in ("alerts", "fumewatch", "dashboards")
            ]
    assert not bad, bad
