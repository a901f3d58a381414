"""Finalised windows in the ledger (the evidence behind events, and the reports' window totals)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import false, select

from alerts.ledger.schema import _WINDOW_COLUMNS, windows
from alerts.model import WindowResult

if TYPE_CHECKING:  # pandas is imported lazily: only reports need it
    import pandas as pd


class WindowStore:
    """The window methods of :class:`alerts.ledger.Ledger` (which provides the plumbing used here)."""

    # -- windows ------------------------------------------------------------------------------------------

    def add_windows(self, windows_: Iterable[WindowResult]) -> int:
        """Store finalised windows, idempotent on (device_id, pollutant, start_ms); return how many given."""
        rows = [
            {
                **{c: getattr(w, c) for c in _WINDOW_COLUMNS},
                "valid": int(w.valid),
                "exceeds": int(w.exceeds),
            }
            for w in windows_
        ]
        if not rows:
            return 0

        def build() -> Any:
            t = windows.c
            stmt = self._insert(windows)  # type: ignore[attr-defined]
            return stmt.on_conflict_do_update(
                index_elements=[t.device_id, t.pollutant, t.start_ms],
                set_={c: stmt.excluded[c] for c in _WINDOW_COLUMNS[3:]},
            )

        stmt = self._prepared("add_windows", build)  # type: ignore[attr-defined]
        with self.transaction() as c:  # type: ignore[attr-defined]
            c.execute(stmt, rows)
        return len(rows)

    def list_windows(
        self,
        device_id: str | None = None,
        pollutant: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        device_ids: Iterable[str] | None = None,
    ) -> list[WindowResult]:
        """Windows whose start lies in ``[since_ms, until_ms)``, ordered by device, pollutant, start."""
        t = windows.c
        q = select(*(t[c] for c in _WINDOW_COLUMNS))
        if device_id is not None:
            q = q.where(t.device_id == device_id)
        if device_ids is not None:
            ids = list(device_ids)
            q = q.where(t.device_id.in_(ids) if ids else false())
        if pollutant is not None:
            q = q.where(t.pollutant == pollutant)
        if since_ms is not None:
            q = q.where(t.start_ms >= since_ms)
        if until_ms is not None:
            q = q.where(t.start_ms < until_ms)
        q = q.order_by(t.device_id, t.pollutant, t.start_ms)
        return [
            WindowResult(
                device_id=r[0],
                pollutant=r[1],
                start_ms=r[2],
                end_ms=r[3],
                samples=r[4],
                expected=r[5],
                valid=bool(r[6]),
                invalid_reason=r[7],
                mean_mg_m3=r[8],
                max_mg_m3=r[9],
                exceeds=bool(r[10]),
            )
            for r in self._read(q)  # type: ignore[attr-defined]
        ]

    def windows_frame(self, **filters: Any) -> pd.DataFrame:
        """:meth:`list_windows` as a pandas DataFrame (one row per window, columns as the table)."""
        import pandas as pd

        rows = [{c: getattr(w, c) for c in _WINDOW_COLUMNS} for w in self.list_windows(**filters)]
        return pd.DataFrame(rows, columns=list(_WINDOW_COLUMNS))
