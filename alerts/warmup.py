"""Warm-up: the store's readings the detector has not yet counted (after a restart, or a first start).

Only readings in windows the detector has not finalised are returned, so a warm-up never creates
``late_data`` and never counts a reading twice.
"""

from __future__ import annotations

import logging

from alerts.detection.detector import Detector
from alerts.detection.window import window_start
from ingest.model import Reading
from ingest.store.base import Store

log = logging.getLogger("fumewatch.alerts")


def unseen(store: Store, detector: Detector, window_ms: int, since_ms: int, until_ms: int) -> list[Reading]:
    """Stored readings of ``[since_ms, until_ms]`` in windows ``detector`` has not finalised; [] when the
    store cannot be read (the stream still works)."""
    try:
        rows = store.query(since_ms=since_ms, until_ms=until_ms + 1)
    except Exception as exc:  # the store may be down
        log.warning("event=warmup_failed error=%s", str(exc)[:200])
        return []
    fed: list[Reading] = []
    for row in rows:
        wm = detector.watermark(row["device_id"])
        if wm is not None and window_start(row["time_ms"], window_ms) + window_ms <= wm:
            continue
        fed.append(reading_from_row(row))
    return fed


def reading_from_row(row: dict) -> Reading:
    """A store row (``Store.query``) as the Reading the detector takes."""
    return Reading(
        time_ms=int(row["time_ms"]),
        device_id=row["device_id"],
        restaurant_id=row["restaurant_id"],
        district=row.get("district") or "",
        oil_fume_mg_m3=row["oil_fume_mg_m3"],
        oil_fume_ref_mg_m3=row["oil_fume_ref_mg_m3"],
        ref_converted=bool(row.get("ref_converted")),
        pm_mg_m3=row.get("pm_mg_m3"),
        nmhc_mg_m3=row.get("nmhc_mg_m3"),
        flow_m3_h=row.get("flow_m3_h"),
        fan_on=row.get("fan_on"),
        purifier_on=row.get("purifier_on"),
        source=row.get("source") or "json",
    )
