"""``fumewatch devices``' data-integrity history: the findings of the alerts service's integrity checks
(``data_integrity`` events, docs/integrity.md) per device, read from the alerts ledger.

The ledger lives in the same state database as ingest's counters. A state database the alerts service
never ran on (ingest only) has no ledger tables: then :func:`open_ledger` gives None, the ``integrity``
column stays empty and :func:`no_ledger` says so once on stderr. Nothing is created: the command only
reads.

- :func:`counts_by_device`: per device, its findings overlapping the period, by check (the ``integrity``
  column);
- :func:`finding_rows`: one device's findings, newest first (``fumewatch devices --integrity DEVICE``):
  time, check, its label (:data:`alerts.rules.CHECK_LABELS`), minutes, event id and the evidence in
  words (:func:`alerts.findings.evidence_text`).

Findings are screening results for inspectors, not offences (:data:`alerts.findings.NOTE`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from alerts.findings import NOTE, evidence_text
from alerts.ledger import Ledger
from alerts.model import DATA_INTEGRITY
from alerts.rules import check_label
from ingest.db import display

#: ``--integrity DEVICE --format table``; CSV adds the end, the English label and evidence; JSON has all.
TABLE_COLUMNS = ("time", "check", "label", "minutes", "event_id", "evidence")
CSV_COLUMNS = ("time", "end", "check", "label", "label_en", "minutes", "event_id", "evidence", "evidence_en")


def no_ledger(state: str) -> str:
    """The stderr line when the state database holds no alerts ledger."""
    return (
        f"fumewatch devices: state database {display(state)} has no alerts ledger (the alerts service has "
        "not run on it): no data-integrity findings to show, the integrity column is empty"
    )


def open_ledger(state: str) -> Ledger | None:
    """The alerts ledger in ``state``, or None when its tables are not there. Creates nothing (a
    :class:`~alerts.ledger.Ledger` would create missing tables: it is opened only when all are present)."""
    from sqlalchemy import inspect

    from alerts.ledger.schema import metadata
    from ingest.db import make_engine

    engine = make_engine(state, create_dir=False)
    try:
        with engine.connect() as c:
            present = set(inspect(c).get_table_names())
    finally:
        engine.dispose()
    if not {t.name for t in metadata.tables.values()} <= present:
        return None
    return Ledger(state)


def counts_by_device(ledger: Ledger, since_ms: int) -> dict[str, dict[str, int]]:
    """Per device, its findings overlapping ``[since_ms, now)``, counted by check (one query)."""
    counts: dict[str, Counter[str]] = {}
    for e in ledger.list_events(since_ms=since_ms, kind=DATA_INTEGRITY):
        counts.setdefault(e.device_id, Counter())[_check(e)] += 1
    return {dev: dict(c) for dev, c in counts.items()}


def _check(e: Any) -> str:
    return e.rule or str(e.judgement.get("check", "")) or "?"


def finding_rows(
    ledger: Ledger,
    device_id: str,
    *,
    restaurant_id: str | None = None,
    since_ms: int | None = None,
    tz: str = "Asia/Shanghai",
) -> list[dict[str, Any]]:
    """The findings of ``device_id``, newest first (``since_ms``: only those overlapping ``[since_ms,
    now)``). The ``*_ms`` times get their text twins from the caller (:func:`present_times`)."""
    found = [
        e
        for e in ledger.list_events(since_ms=since_ms, restaurant_id=restaurant_id, kind=DATA_INTEGRITY)
        if e.device_id == device_id
    ]
    found.sort(key=lambda e: (e.start_ms, e.event_id), reverse=True)
    rows = []
    for e in found:
        check = _check(e)
        zh, en = check_label(check)
        minutes = e.judgement.get("minutes")
        if not isinstance(minutes, int | float) and e.end_ms is not None:
            minutes = round((e.end_ms - e.start_ms) / 60_000, 1)
        rows.append(
            {
                "time": "",
                "time_ms": e.start_ms,
                "end": "",
                "end_ms": e.end_ms,
                "check": check,
                "label": zh,
                "label_en": en,
                "minutes": minutes,
                "event_id": e.event_id,
                "evidence": evidence_text(e.judgement, "zh", check, tz),
                "evidence_en": evidence_text(e.judgement, "en", check, tz),
                "device_id": e.device_id,
                "restaurant_id": e.restaurant_id,
                "district": e.district,
                "judgement": e.judgement,
            }
        )
    return rows


def heading(device_id: str, name: str, n: int, since_text: str | None) -> str:
    """The first line of ``--integrity DEVICE --format table``: what is listed, and what findings are."""
    who = f"{device_id} ({name})" if name else device_id
    period = f"since {since_text}" if since_text else "all recorded"
    what = "finding" if n == 1 else "findings"
    return f"{n} data-integrity {what} of {who}, {period}, newest first. {NOTE[1]}"
