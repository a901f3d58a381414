"""Copies for the dashboards: case states (``fume_case``) and the registry (``fume_restaurant``) in InfluxDB.

The state database stays the record; these are copies for Grafana, written by the alerts service when its
store is InfluxDB (:class:`DashboardSync`, called from the service's tick loop).

Cases (:class:`CaseSync`). Cases change in other processes too (the API, the ``fumewatch`` commands), so
the copy follows the ledger, not the service's own transitions: every ``interval_s`` it reads
:meth:`Ledger.cases_updated_since` the watermark and writes one ``fume_case`` point per changed case
(alerts/influx_sink.py). The watermark (newest ``updated_ms`` copied) is kept in the ledger under the
state name ``case_sync``, so a restart continues where the last run stopped. Each read starts
``overlap_s`` before the watermark: a change committed late by a slow transaction, or stamped by a host
whose clock is a little behind, is still copied (a case already copied with the same ``updated_ms`` is
not written again). Pages of ``page`` rows; a page whose rows all share one ``updated_ms`` is read again
with a larger limit, so a bulk change stamped in one millisecond is never cut. Writing is idempotent
(same series and time), so copying a case twice is harmless.

Registry (:class:`RegistrySync`). The registry is read once when the service starts (there is no reload:
an edited registry reaches the dashboards when the alerts service restarts). At start and every
``refresh_s`` (so the dashboards' ``last()`` over their registry lookback always finds it) every
restaurant gets a ``fume_restaurant`` point; restaurants written by an earlier run (state name
``restaurant_sync``) that left the registry or moved district get a tombstone (active=0) under their old
tags.

A case closed as ``dismissed`` also rewrites the ``fume_event`` points of the events it dismissed, with
state ``dismissed`` (open 0): the dashboards stop counting them, as the reports and listings do.

Reminders (:class:`ReminderSync`): every ``reminder_interval_s`` the maintenance reminders of the last
``reminder_days`` with their outcome so far (:mod:`alerts.maintenance.outcomes`) as ``fume_reminder``
points, one per reminder, rewritten in place as the outcome becomes known.

A failed write is logged and retried at the next tick; the watermark moves only after a write went through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from alerts.detection.hours import BusinessHours
from alerts.influx_sink import case_line, event_line, reminder_line, restaurant_lines, restaurant_tombstone
from alerts.ledger import Ledger
from alerts.maintenance.outcomes import outcomes
from ingest.registry import Registry
from ingest.timeutil import now_ms

log = logging.getLogger("fumewatch.alerts.case_sync")

CASE_STATE = "case_sync"
REGISTRY_STATE = "restaurant_sync"

Write = Callable[[list[str]], None]


class CaseSync:
    """Case records changed since the watermark -> ``fume_case`` points."""

    def __init__(
        self,
        ledger: Ledger,
        write: Write,
        *,
        overlap_s: float = 300.0,
        page: int = 1000,
    ) -> None:
        self.ledger = ledger
        self.write = write
        self.overlap_ms = int(overlap_s * 1000)
        self.page = max(1, int(page))
        self._seen: dict[str, int] = {}  # case id -> updated_ms already written (inside the overlap)
        self.written = 0
        self.skipped = 0  # case records without case_id or start time (logged, never written)

    @property
    def watermark_ms(self) -> int:
        state = self.ledger.load_state(CASE_STATE) or {}
        return int(state.get("watermark_ms", -1))

    def sync(self) -> int:
        """Copy the cases changed since the watermark (minus the overlap); returns the points written."""
        start_wm = wm = self.watermark_ms
        since = wm - self.overlap_ms if wm >= 0 else -1
        limit = self.page
        written = 0
        while True:
            rows = self.ledger.cases_updated_since(since, limit=limit)
            lines, fresh = self._lines(rows)
            if lines:
                self.write(lines)
                written += len(lines)
            for cid, updated in fresh:
                self._seen[cid] = updated
            if rows:
                wm = max(wm, max(int(r.get("updated_ms") or 0) for r in rows))
            if len(rows) < limit:
                break
            first, last = int(rows[0]["updated_ms"]), int(rows[-1]["updated_ms"])
            if first == last:  # a full page of one millisecond: read it whole before moving on
                limit *= 10
                continue
            since, limit = last - 1, self.page  # the rows of `last` may go on past this page
        floor = wm - self.overlap_ms
        self._seen = {k: v for k, v in self._seen.items() if v > floor}
        if wm != start_wm:
            self.ledger.save_state(CASE_STATE, {"watermark_ms": wm, "synced_ms": now_ms()})
        self.written += written
        if written:
            log.info("event=case_sync points=%d watermark_ms=%d", written, wm)
        return written

    def _lines(self, rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, int]]]:
        lines, fresh = [], []
        for r in rows:
            cid, updated = str(r.get("case_id") or ""), int(r.get("updated_ms") or 0)
            if cid and self._seen.get(cid) == updated:
                continue
            try:
                lines.append(case_line(r))
                if r.get("outcome") == "dismissed":
                    lines += self._dismissed_events(r)
            except (ValueError, TypeError) as exc:
                self.skipped += 1
                log.warning("event=case_sync_skipped reason=%s", str(exc)[:200])
                continue
            fresh.append((cid, updated))
        return lines, fresh

    def _dismissed_events(self, case: dict[str, Any]) -> list[str]:
        """The ``fume_event`` points of the events a dismissed case took off the ladder, rewritten with
        state ``dismissed`` (open 0), so the dashboards stop counting them as the reports do."""
        ids = {case.get("event_id")}
        for p in case.get("episodes") or []:
            ids |= {e.get("event_id") for e in p.get("events") or []}
        out = []
        for eid in sorted(i for i in ids if i):
            if self.ledger.dismissed_by(eid) != case["case_id"]:
                continue
            e = self.ledger.get_event(eid)
            if e is not None:
                out.append(event_line(replace(e, state="dismissed")))
        return out


class RegistrySync:
    """The registry -> ``fume_restaurant`` points (and tombstones for restaurants no longer in it)."""

    def __init__(self, ledger: Ledger, registry: Registry, write: Write) -> None:
        self.ledger = ledger
        self.registry = registry
        self.write = write

    def publish(self, time_ms: int | None = None) -> int:
        """Write every restaurant (and the tombstones); returns the points written."""
        t = now_ms() if time_ms is None else time_ms
        current = {rid: devs[0].district for rid, devs in self.registry.restaurants().items()}
        before = (self.ledger.load_state(REGISTRY_STATE) or {}).get("restaurants") or {}
        lines = restaurant_lines(self.registry, t)
        gone = {rid: d for rid, d in before.items() if current.get(rid) != d}
        lines += [restaurant_tombstone(rid, d, t) for rid, d in sorted(gone.items())]
        self.write(lines)
        self.ledger.save_state(REGISTRY_STATE, {"restaurants": current, "written_ms": t})
        log.info("event=registry_published restaurants=%d tombstones=%d", len(current), len(gone))
        return len(lines)


class ReminderSync:
    """Maintenance reminders of the last ``days`` and their outcomes -> ``fume_reminder`` points."""

    def __init__(self, ledger: Ledger, write: Write, hours: BusinessHours, days: float = 45.0) -> None:
        self.ledger = ledger
        self.write = write
        self.hours = hours
        self.days = days

    def sync(self, time_ms: int | None = None) -> int:
        t = now_ms() if time_ms is None else time_ms
        found = outcomes(self.ledger, self.hours, t - int(self.days * 86_400_000), t + 1)
        if found:
            self.write([reminder_line(o) for o in found])
        return len(found)


class DashboardSync:
    """Both copies on the alerts service's tick: :meth:`tick` does what is due and never raises."""

    def __init__(
        self,
        ledger: Ledger,
        registry: Registry,
        write: Write,
        *,
        interval_s: float = 15.0,
        refresh_s: float = 6 * 3600.0,
        retry_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        hours: BusinessHours | None = None,
        reminder_interval_s: float = 300.0,
    ) -> None:
        self.cases = CaseSync(ledger, write)
        self.restaurants = RegistrySync(ledger, registry, write)
        self.reminders = ReminderSync(ledger, write, hours) if hours is not None else None
        self.reminder_interval_s = reminder_interval_s
        self._next_reminders = float("-inf")
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self._clock = clock
        self._next_cases = self._next_registry = float("-inf")  # both due at the first tick

    def tick(self) -> None:
        now = self._clock()
        if now >= self._next_registry:
            self._next_registry = now + (
                self.refresh_s if self._run("registry", self.restaurants.publish) else self.retry_s
            )
        if now >= self._next_cases:
            self._run("cases", self.cases.sync)
            self._next_cases = now + self.interval_s
        if self.reminders is not None and now >= self._next_reminders:
            self._run("reminders", self.reminders.sync)
            self._next_reminders = now + self.reminder_interval_s

    @staticmethod
    def _run(what: str, fn: Callable[[], int]) -> bool:
        try:
            fn()
            return True
        except Exception as exc:  # the dashboards lag; the state database is the record
            log.warning("event=dashboard_sync_failed what=%s error=%s", what, str(exc)[:200])
            return False
