"""Chart data: the readings (or, failing the store, the window evidence) around the exceedance events with
the highest peak. Drawing is in :mod:`alerts.reports.charts`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alerts.ledger import Ledger
from alerts.model import EXCEEDANCE
from alerts.reports.model import _JUDGED_POLLUTANT, READING_FIELD, ChartData
from ingest.registry import Registry
from ingest.store.base import Store


def _charts(
    ledger: Ledger,
    events: pd.DataFrame,
    registry: Registry,
    store: Store | None,
    max_charts: int,
    margin_min: float,
    open_end: int,
    notes: list[str],
) -> list[ChartData]:
    exc = events[(events["kind"] == EXCEEDANCE) & events["peak_mg_m3"].notna()]
    if exc.empty:
        return []
    top = exc.sort_values(["peak_mg_m3", "start_ms"], ascending=[False, True], kind="stable").head(max_charts)
    if len(exc) > len(top):
        notes.append(f"charts show the {len(top)} exceedance events with the highest peak (of {len(exc)})")
    margin_ms = int(margin_min * 60_000)
    out: list[ChartData] = []
    store_failed = 0
    for row in top.itertuples(index=False):  # at most max_charts rows
        end = int(row.end_ms) if not pd.isna(row.end_ms) else max(open_end, int(row.start_ms))
        meta = dict(
            event_id=row.event_id,
            restaurant_id=row.restaurant_id,
            name=row.name,
            district=row.district,
            device_id=row.device_id,
            pollutant=row.pollutant or _JUDGED_POLLUTANT,
            start_ms=int(row.start_ms),
            end_ms=end,
            open=pd.isna(row.end_ms),
            limit_mg_m3=None if pd.isna(row.limit_mg_m3) else float(row.limit_mg_m3),
            peak_mg_m3=float(row.peak_mg_m3),
        )
        chart = None
        if store is not None:
            try:
                readings = store.query(
                    device_id=row.device_id, since_ms=int(row.start_ms) - margin_ms, until_ms=end + margin_ms
                )
            except Exception:  # a store outage must not lose the report: fall back to the evidence
                readings = []
                store_failed += 1
            fieldname = READING_FIELD.get(meta["pollutant"], "oil_fume_ref_mg_m3")
            pts = [(r["time_ms"], r.get(fieldname)) for r in readings if r.get(fieldname) is not None]
            if pts:
                t, v = zip(*pts, strict=True)
                chart = ChartData(
                    **meta,
                    source="readings",
                    times_ms=np.asarray(t, dtype="int64"),
                    values=np.asarray(v, dtype="float64"),
                )
        if chart is None:
            ev = ledger.get_event(row.event_id)
            windows = [
                w for w in (ev.evidence if ev else []) if "start_ms" in w and w.get("mean_mg_m3") is not None
            ]
            chart = ChartData(
                **meta,
                source="evidence",
                times_ms=np.asarray([w["start_ms"] for w in windows], dtype="int64"),
                values=np.asarray([w["mean_mg_m3"] for w in windows], dtype="float64"),
                ends_ms=np.asarray([w.get("end_ms", w["start_ms"]) for w in windows], dtype="int64"),
                max_values=np.asarray(
                    [np.nan if w.get("max_mg_m3") is None else w["max_mg_m3"] for w in windows],
                    dtype="float64",
                ),
            )
        out.append(chart)
    if store_failed:
        notes.append(
            f"the reading store failed for {store_failed} chart(s); they show the event's windows instead"
        )
    return out
