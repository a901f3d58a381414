"""The alerts part of ``fumewatch demo``: detector in-process, notices to a local webhook receiver.

The demo replays yesterday at high speed, so the detector runs on event time (``clock = "event"``).
Owners' and inspectors' notices go to a real HTTP receiver started here (apprise ``json://``), so the
summary shows notices that were really delivered, and one of them in full.
"""

from __future__ import annotations

import dataclasses
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from alerts.detection.hours import BusinessHours
from alerts.ledger import Ledger
from alerts.maintenance.outcomes import outcomes
from alerts.service import AlertsService
from fumewatch.settings import AppSettings
from ingest.config import Settings
from ingest.registry import Registry
from ingest.store.base import Store
from ingest.timeutil import format_local


class _Receiver:
    """A webhook receiver standing in for WeCom/DingTalk/e-mail gateways during the demo."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError:
                    doc = {"raw": body.decode("utf-8", "replace")}
                outer.received.append((self.path, doc))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DemoAlerts:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        state_path: Path,
        broker_url: str,
        store: Store | None = None,
        no_owner_channel: set[str] | None = None,
        state_name: str | None = None,
    ) -> None:
        self.receiver = _Receiver()
        base = f"json://127.0.0.1:{self.receiver.port}"
        self.no_owner_channel = set(no_owner_channel or ())
        self.registry = Registry(
            dataclasses.replace(
                d,
                owner_notify=""
                if d.restaurant_id in self.no_owner_channel
                else f"{base}/owner/{d.restaurant_id}",
            )
            for d in registry
        )
        data = settings.model_dump()
        data["mqtt"]["password"] = ""
        data["influx"]["token"] = ""
        data["alerts"] = {
            "clock": "event",
            "client_id": "fumewatch-demo-alerts",
            "warmup_hours": 0,
            "advance_interval_s": 0.25,  # simulated time runs ~2000x: advance often
        }
        data["notify"] = {"inspector_targets": [f"{base}/inspector"], "retries": 1, "retry_backoff_s": 0.2}
        self.settings = AppSettings(**data)
        self.ledger = Ledger(state_path)
        self._history_only = state_name is not None  # the demo's history: no report of its own
        # the readings store: notices state the measured C, Q and the reference concentration from it
        self.service = AlertsService(
            self.settings, self.registry, self.ledger, store=store, subscribe=False, state_name=state_name
        )
        self.service.start()

    def on_readings(self, readings) -> None:
        self.service.feed(readings)

    def finish(self, end_ms: int) -> None:
        self.service.advance(end_ms)
        self.service.finish()

    def close(self) -> None:
        self.service.stop()
        self.receiver.close()
        if self._history_only:
            self.ledger.close()

    def report(self, console: Console) -> None:
        tz = self.settings.display_tz
        events = self.ledger.list_events()
        names = {d.restaurant_id: d.name for d in self.registry}
        repeats = {p.episode_id: p.repeat for p in self.ledger.list_episodes()}
        t = Table(
            title="Events (GB 18483-2001 rule: groups of 5 valid 10-min windows of one service)",
            title_justify="left",
        )
        for col in ("restaurant", "kind", "start", "end", "peak / limit mg/m3", "rule", "level", "state"):
            t.add_column(col)
        for e in sorted(events, key=lambda e: (e.start_ms, e.restaurant_id)):
            if e.kind == "late_data":
                continue
            peak = "" if e.peak_mg_m3 is None else f"{e.peak_mg_m3:.2f} / {e.limit_mg_m3 or 0:.1f}"
            t.add_row(
                f"{e.restaurant_id} {names.get(e.restaurant_id, '')}",
                e.kind + (f" ({e.pollutant})" if e.pollutant and e.pollutant != "oil_fume" else ""),
                format_local(e.start_ms, tz, "%m-%d %H:%M"),
                format_local(e.end_ms, tz, "%H:%M") if e.end_ms else "open",
                peak,
                e.rule,
                e.level + (" (repeat)" if repeats.get(e.episode_id) else ""),
                e.state,
                style="red" if e.level == "enforcement" else ("yellow" if e.level == "warning" else None),
            )
        console.print(t)
        notices = self.ledger.list_notices()
        by: dict[tuple[str, str], int] = {}
        for n in notices:
            by[(n.channel, n.status)] = by.get((n.channel, n.status), 0) + 1
        summary = ", ".join(f"{ch} {st}: {k}" for (ch, st), k in sorted(by.items())) or "none"
        console.print(f"Notices: {summary}; webhook receiver got {len(self.receiver.received)} deliveries.")
        # Show the first education notice (the ladder's first step) as the owner received it.
        shown = [
            n.payload
            for n in notices
            if n.channel == "owner" and n.status == "sent" and n.payload.get("level") == "education"
        ] or [n.payload for n in notices if n.channel == "owner" and n.status == "sent"]
        if shown:
            first = shown[0]
            console.print(
                Panel(
                    escape(f"{first.get('title', '')}\n\n{first.get('body', '')}"),
                    title="a notice as an owner receives it",
                )
            )
        self._reminders(console, notices, names)
        found = [e for e in events if e.kind == "data_integrity"]
        console.print(
            "Data integrity (for inspectors only, never the owner, never on the ladder; docs/integrity.md): "
            + (
                "; ".join(
                    f"{e.restaurant_id} {names.get(e.restaurant_id, '')} {e.rule} "
                    f"{format_local(e.start_ms, tz, '%m-%d %H:%M')}-{format_local(e.end_ms or e.start_ms, tz, '%H:%M')}"
                    for e in found
                )
                if found
                else "no findings"
            )
        )
        episodes = self.ledger.list_episodes()
        steps = sum(1 for p in episodes if not p.repeat)
        console.print(
            f"Episodes (one restaurant's overlapping offences count once): {len(episodes)}; "
            f"{steps} ladder steps, {len(episodes) - steps} repeats inside a correction period "
            f"({self.settings.alerts.correction_days:g} days) that do not escalate."
        )
        cases = self.ledger.list_cases()
        enforcement = sum(1 for c in cases if c.get("case_type") == "enforcement")
        console.print(
            f"Cases for inspectors: {enforcement} enforcement, {len(cases) - enforcement} owner_unreachable "
            "(fumewatch cases --state ...)"
            + (
                f"; {', '.join(sorted(self.no_owner_channel))} has no owner notice channel in the demo's "
                "registry, so its notices reached nobody and inspectors must serve them on site"
                if self.no_owner_channel
                else ""
            )
        )
        self.ledger.close()

    def _reminders(self, console: Console, notices, names: dict[str, str]) -> None:
        """The maintenance reminders (清洗提醒) with what followed each, and the first as its owner got it."""
        cfg = self.settings.alerts.detector_config()
        found = outcomes(self.ledger, BusinessHours(cfg.business_hours, cfg.business_tz), 0, 2**62)
        tz = self.settings.display_tz
        t = Table(
            title="Maintenance reminders (清洗提醒: service before penalty, not offences, never on the ladder)",
            title_justify="left",
        )
        for col in ("restaurant", "reminded", "basis", "recent mean / threshold mg/m3", "since", "outcome"):
            t.add_column(col)
        for o in found:
            e = o.event
            t.add_row(
                f"{e.restaurant_id} {names.get(e.restaurant_id, '')}",
                format_local(e.start_ms, tz, "%m-%d %H:%M"),
                str(e.judgement.get("basis", "")),
                f"{e.mean_mg_m3 or 0:.2f} / {o.threshold_mg_m3 or 0:.2f}",
                f"{o.services_after} services, mean "
                + ("-" if o.mean_after_mg_m3 is None else f"{o.mean_after_mg_m3:.2f}"),
                o.outcome,
                style="green" if o.outcome == "back_under" else None,
            )
        console.print(t if found else "Maintenance reminders: none")
        ids = {o.event.event_id for o in found}
        sent = [
            n.payload for n in notices if n.event_id in ids and n.channel == "owner" and n.status == "sent"
        ]
        if sent:
            console.print(
                Panel(
                    escape(f"{sent[0].get('title', '')}\n\n{sent[0].get('body', '')}"),
                    title="the maintenance reminder as its owner received it",
                )
            )


def start(
    settings: Settings,
    registry: Registry,
    state_path: Path,
    broker_url: str,
    store: Store | None = None,
    *,
    no_owner_channel: set[str] | None = None,
) -> DemoAlerts:
    return DemoAlerts(settings, registry, state_path, broker_url, store, no_owner_channel)
