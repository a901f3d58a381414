"""Reading stores, chosen by the ``--store`` value (adding a backend never touches the pipeline).

- ``*.db`` (or ``sqlite:///path``): the embedded SQLite store (WAL), idempotent on (device_id, time).
- ``http://`` / ``https://``: InfluxDB, written through influxdb-client's batching WriteApi and read
  with InfluxQL on the v1-compatible /query endpoint.

Every store accepts ``write(batch)`` where ``batch`` is a list of ``(token, readings)`` pairs and calls
the ``on_durable`` callback with the tokens whose readings the backend has accepted; the ingest service
acknowledges the MQTT messages behind those tokens only then.
"""

from __future__ import annotations

from ingest.config import Settings
from ingest.store.base import Store


def beside_state_db(state: str, name: str) -> str:
    """Where a store keeps its file ``name`` by default: beside an SQLite state database, else
    ``data/``."""
    from pathlib import Path

    from ingest.db import is_url

    return f"data/{name}" if is_url(state) else str(Path(state).with_name(name))


def open_store(
    spec: str, settings: Settings | None = None, *, read_only: bool = False, readings: bool = True
) -> Store:
    """The store ``spec`` names. ``read_only``: a SQLite file must exist (FileNotFoundError otherwise).
    ``readings=False``: the caller writes only derived rows (the alerts service), so an InfluxDB store
    keeps no first-wins index (ingest/store/first_wins.py) and buffers in ``*-derived.db`` (one drain
    per buffer file: the ingest and alerts processes must not share one)."""
    settings = settings or Settings()
    s = spec.strip()
    if s.startswith(("http://", "https://")):
        from pathlib import Path

        from ingest.store.influx import InfluxStore

        def beside_state(name: str) -> str:
            return beside_state_db(settings.ingest.state, name)

        buffer_path = first_wins_path = None
        if not read_only and readings:
            first_wins_path = settings.influx.first_wins_file or beside_state("influx-first-wins.db")
        if not read_only and settings.influx.buffer:
            buffer_path = settings.influx.buffer_file or beside_state("influx-buffer.db")
            if not readings:  # a buffer file has one drain: the alerts service's rows get their own
                p = Path(buffer_path)
                buffer_path = str(p.with_name(f"{p.stem}-derived{p.suffix}"))
        return InfluxStore(
            s,
            settings.influx,
            read_only=read_only,
            buffer_path=buffer_path,
            first_wins_path=first_wins_path,
            skew_s=settings.validation.max_future_skew_s,
        )
    if s.startswith("sqlite:///"):
        s = s[len("sqlite:///") :]
    if s.endswith((".db", ".sqlite", ".sqlite3")):
        from pathlib import Path

        from ingest.store.sqlite import SQLiteStore

        if read_only and not Path(s).exists():
            # reading must never create an empty database (a typo would look like "no data")
            raise FileNotFoundError(f"store {s} does not exist")
        return SQLiteStore(s)
    raise ValueError(
        f"--store {spec!r}: use a path ending in .db (embedded SQLite) or an http(s):// InfluxDB URL"
    )


__all__ = ["Store", "open_store"]
