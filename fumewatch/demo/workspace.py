"""The demo's own directory: it never overwrites or deletes a file it did not create.

``fumewatch demo`` works in ``data/demo/`` by default (``--data-dir`` elsewhere), never in ``data/`` where
``ingest`` and ``alerts`` keep real files. The first run writes a marker file, :data:`MARKER`, listing
the files the demo makes there; a later run deletes exactly those (a fresh run) and nothing else. A
directory that holds anything else (a file the marker does not list, or a sub-directory) is refused:
the demo will not mix its files with someone's data.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Marker file that says "this directory is the demo's"; it lists the files the demo may delete.
MARKER = ".fumewatch-demo"

#: What the demo writes in its directory (SQLite adds -wal/-shm beside each database).
STORE, STATE, REGISTRY = "fumewatch.db", "state.db", "registry.csv"
DEMO_FILES = tuple(
    [f"{db}{suffix}" for db in (STORE, STATE) for suffix in ("", "-wal", "-shm")]
    + [REGISTRY, "influx-buffer.db", "influx-buffer-derived.db", "influx-first-wins.db"]
)


class DemoDirError(ValueError):
    """The demo directory holds files the demo did not create (the command prints it as one line)."""


def prepare(directory: str | Path) -> Path:
    """Make ``directory`` ready for a fresh demo run and return it.

    A missing or empty directory is created and marked. A marked one is emptied of the files its
    marker lists (the previous demo's). Anything else there is refused with :class:`DemoDirError`.
    """
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise DemoDirError(f"--data-dir {d} is a file, not a directory")
    d.mkdir(parents=True, exist_ok=True)
    marker = d / MARKER
    ours = set(_listed(marker)) if marker.exists() else set()
    foreign = sorted(
        p.name + ("/" if p.is_dir() else "") for p in d.iterdir() if p.name not in ours | {MARKER}
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        made = "the demo's files and others" if marker.exists() else "files the demo did not create"
        raise DemoDirError(
            f"--data-dir {d} holds {made} ({shown}); the demo never overwrites or deletes them: "
            "give a new or empty directory (the default is data/demo)"
        )
    for name in ours:
        p = d / name
        if p.is_file() or p.is_symlink():
            p.unlink()
    marker.write_text(
        json.dumps({"created_by": "fumewatch demo", "files": list(DEMO_FILES)}, indent=2) + "\n",
        encoding="utf-8",
    )
    return d


def _listed(marker: Path) -> list[str]:
    try:
        doc = json.loads(marker.read_text(encoding="utf-8"))
        files = doc.get("files", []) if isinstance(doc, dict) else []
    except (OSError, ValueError):
        return []
    # only plain names the demo itself writes: a hand-edited marker cannot point outside the directory
    return [f for f in files if isinstance(f, str) and f in DEMO_FILES]
