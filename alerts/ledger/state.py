"""Saved state in the ledger: small documents by name (``detector_state``: the detector's detector-wide
part, the dashboards sync's watermarks) and the detector's state per device (``detector_devices``,
revision 0007), written in chunks and read back as a stream so neither side holds every device's JSON at
once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from sqlalchemy import bindparam, delete, func, select

from alerts.ledger.schema import detector_devices, detector_state
from ingest.timeutil import now_ms


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class StateStore:
    """The state methods of :class:`alerts.ledger.Ledger` (which provides the plumbing used here)."""

    # -- detector state -----------------------------------------------------------------------------------

    def save_state(self, name: str, data: dict[str, Any]) -> None:
        """Store a JSON-serialisable snapshot under ``name`` (replaces the previous one)."""

        def build() -> Any:
            stmt = self._insert(detector_state)  # type: ignore[attr-defined]
            return stmt.on_conflict_do_update(
                index_elements=[detector_state.c.name],
                set_={"data": stmt.excluded.data, "updated_ms": stmt.excluded.updated_ms},
            )

        doc = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        with self.transaction() as c:  # type: ignore[attr-defined]
            stmt = self._prepared("save_state", build)  # type: ignore[attr-defined]
            c.execute(stmt, {"name": name, "data": doc, "updated_ms": now_ms()})

    def load_state(self, name: str) -> dict[str, Any] | None:
        q = self._prepared(  # type: ignore[attr-defined]
            "load_state",
            lambda: select(detector_state.c.data).where(detector_state.c.name == bindparam("b_name")),
        )
        rows = self._read(q, {"b_name": name})  # type: ignore[attr-defined]
        return json.loads(rows[0][0]) if rows else None

    # -- detector state per device ------------------------------------------------------------------------

    #: Rows per ``executemany`` when saving device states (bounds the JSON held at once).
    device_chunk = 2000

    def save_devices(
        self,
        name: str,
        states: Iterable[tuple[str, dict[str, Any]]],
        gone: Iterable[str] = (),
        *,
        replace: bool = False,
    ) -> int:
        """Upsert the ``(device id, state)`` rows of ``states`` under ``name`` (consumed lazily, written in
        chunks of :attr:`device_chunk`), delete the rows of ``gone``, or first every row of ``name`` with
        ``replace``. One transaction (joins the caller's); returns the rows written."""

        def build() -> Any:
            t = detector_devices.c
            stmt = self._insert(detector_devices)  # type: ignore[attr-defined]
            return stmt.on_conflict_do_update(
                index_elements=[t.name, t.device_id],
                set_={"data": stmt.excluded.data, "updated_ms": stmt.excluded.updated_ms},
            )

        d = detector_devices.c
        ts = now_ms()
        written = 0
        it = iter(states)
        with self.transaction() as c:  # type: ignore[attr-defined]
            if replace:
                c.execute(delete(detector_devices).where(d.name == name))
            gone_ids = list(gone)
            for i in range(0, len(gone_ids), self.device_chunk):
                part = gone_ids[i : i + self.device_chunk]
                c.execute(delete(detector_devices).where(d.name == name, d.device_id.in_(part)))
            if replace and self.dialect == "postgresql":  # type: ignore[attr-defined]
                return self._copy_devices(c, name, it, ts)
            stmt = self._prepared("save_devices", build)  # type: ignore[attr-defined]
            while chunk := list(islice(it, self.device_chunk)):
                rows = [
                    {"name": name, "device_id": dev_id, "data": _json(state), "updated_ms": ts}
                    for dev_id, state in chunk
                ]
                del chunk
                c.execute(stmt, rows)
                written += len(rows)
        return written

    def _copy_devices(self, c: Any, name: str, states: Iterator[tuple[str, dict[str, Any]]], ts: int) -> int:
        """PostgreSQL, every row of ``name`` just deleted (a commit writing every device: the first after
        a warm-up or a migration): ``COPY`` instead of upserts, about 4x faster, still one state at a
        time. In the caller's transaction (the same driver connection)."""
        written = 0
        cur = c.connection.driver_connection.cursor()
        with cur.copy("COPY detector_devices (name, device_id, data, updated_ms) FROM STDIN") as copy:
            for dev_id, state in states:
                copy.write_row((name, dev_id, _json(state), ts))
                written += 1
        return written

    def load_devices(self, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The ``(device id, state)`` rows under ``name``, streamed (fetched :attr:`device_chunk` at a time;
        the ledger stays locked until the iterator is exhausted or closed)."""
        d = detector_devices.c
        q = select(d.device_id, d.data).where(d.name == name)
        with self._lock, self._engine.connect() as c:  # type: ignore[attr-defined]
            result = c.execution_options(stream_results=True, yield_per=self.device_chunk).execute(q)
            for dev_id, data in result:
                yield dev_id, json.loads(data)

    def count_devices(self, name: str) -> int:
        """How many device rows are stored under ``name``."""
        d = detector_devices.c
        rows = self._read(select(func.count()).select_from(detector_devices).where(d.name == name))  # type: ignore[attr-defined]
        return int(rows[0][0])
