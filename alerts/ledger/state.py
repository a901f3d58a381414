"""Saved state in the ledger: the detector's snapshot and other services' small documents by name
(``detector_state``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, select

from alerts.ledger.schema import detector_state
from ingest.timeutil import now_ms


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
