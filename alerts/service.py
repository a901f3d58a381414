"""The alerts service: readings -> detector -> events (state DB) -> enforcement ladder -> notices.

Readings arrive either over MQTT (its own persistent session, ``fumewatch alerts``) or in-process from
the ingest service (``fumewatch run``, the demo). Every ``commit_interval_s`` the detector state, the
finalised windows and the events it produced are committed in one transaction; only then are the MQTT
messages behind them acknowledged and the transitions handed to the notifier thread. After a crash the
broker redelivers what was not acknowledged, the restored detector ignores what it had already counted,
event ids are deterministic, and the notice ledger sends each (event, transition, target) once.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable

import paho.mqtt.client as mqtt

from alerts import detector_store
from alerts.case_sync import DashboardSync
from alerts.config import AlertsAppSettings
from alerts.detection.detector import Detector
from alerts.detection.hours import BusinessHours
from alerts.enforcement.episodes import LadderPolicy
from alerts.enforcement.notify import Notifier
from alerts.influx_sink import event_line, window_lines
from alerts.ledger import Ledger
from alerts.model import Transition
from alerts.owner.links import OwnerLinks
from alerts.partition import Partition
from alerts.profiles import Profiles, load_profiles
from alerts.service_maintenance import MaintenanceThread
from alerts.service_notices import DRAIN, NoticeThread
from alerts.service_registry import RegistryFollower
from alerts.warmup import unseen
from ingest.model import Reading
from ingest.mqtt_client import connect_properties, make_client
from ingest.pipeline import Pipeline
from ingest.registry import Registry
from ingest.store.base import Store
from ingest.timeutil import now_ms

log = logging.getLogger("fumewatch.alerts")

STATE_NAME = "detector"


class AlertsService(NoticeThread, MaintenanceThread, RegistryFollower):
    def __init__(
        self,
        settings: AlertsAppSettings,
        registry: Registry,
        ledger: Ledger,
        *,
        store: Store | None = None,
        subscribe: bool = True,
        publish_notices: bool = True,
        profiles: Profiles | None = None,
        partition: Partition | None = None,
        fence: Callable[[], None] | None = None,
        state_name: str | None = None,
    ) -> None:
        self.settings = settings
        # A partitioned worker (alerts/partition.py) judges, subscribes to and notifies for its own devices;
        # the whole registry still goes to the dashboards (written by partition 0 only).
        self.partition = partition
        self.fence = fence  # called before each commit: a partitioned worker that lost its lock ends there
        # each partition keeps its detector state under its own name ("detector:0-of-2"); a one-off replay
        # beside the service (the demo's history) may name its own
        self.state_name = state_name or (
            STATE_NAME if partition is None else f"{STATE_NAME}:{partition.slug}"
        )
        self.full_registry = registry
        registry = partition.select(registry) if partition is not None else registry
        self.registry = registry
        self.ledger = ledger
        self.store = store
        self.profiles = profiles or load_profiles(settings.alerts.profiles_file or None)
        self._cfg = settings.alerts.detector_config()
        # Windows and events also go to InfluxDB (for Grafana) when the store is a writable InfluxDB.
        self._sink = (
            store if getattr(store, "kind", "") == "influxdb" and getattr(store, "_write_api", None) else None
        )
        # ... and so do case states and the registry (changed by other processes too): alerts/case_sync.py
        self._dash = (
            DashboardSync(
                ledger,
                self.full_registry,
                self._sink.write_lines,
                hours=BusinessHours(self._cfg.business_hours, self._cfg.business_tz),
            )
            if self._sink and (partition is None or partition.index == 0)
            else None
        )
        self._limits = self._limits_of(registry)
        self._lock = threading.RLock()
        self._pending_acks: list[int] = []
        self._pending_transitions: list[Transition] = []
        self._dirty = False
        self._last_commit = time.monotonic()
        self._max_event_ms = 0
        self._stop = threading.Event()
        self._notice_q: queue.Queue[Transition | None] = queue.Queue()  # transitions, DRAIN, None = stop
        self._threads: list[threading.Thread] = []
        self.transitions_total = 0
        self.reminders_total = 0
        self.integrity_total = 0
        self.integrity_by_check: dict[str, int] = {}
        self._maint_q: queue.Queue = queue.Queue()  # (device, service start, service end), None = stop
        self.notices: dict[str, int] = {}
        self._restored = False
        self.detector = self._restore_or_new()
        self._subscribe = subscribe
        self.client: mqtt.Client | None = None
        self._pipeline = Pipeline(settings, registry) if subscribe else None
        self.client_id = settings.alerts.client_id + (f"-{partition.slug}" if partition is not None else "")
        if subscribe or publish_notices:
            self.client = make_client(settings, self.client_id, manual_ack=subscribe)
            self.client.on_connect = self._on_connect
            if subscribe:
                self.client.on_message = self._on_message
        a = settings.alerts
        # owner notices carry the owner's page link when [owner] public_url is set (OwnerLinkError if the
        # secret is missing: the process refuses to start rather than send notices without their link)
        self.owner_links = OwnerLinks.from_settings(ledger, settings.owner)
        self.notifier = Notifier(
            settings.notify,
            ledger,
            mqtt_publish=self._publish if self.client is not None else None,
            standard_of=self._standard_of,
            policy=LadderPolicy(
                lookback_days=settings.notify.lookback_days,
                correction_days=a.correction_days,
                tz=settings.notify.display_tz,
                touch_ms=self._cfg.window_ms,
                profile_correction_days={
                    name: p.correction_days for name, p in self.profiles.items() if p.correction_days
                },
            ),
            readings_of=self._readings_of if store is not None else None,
            mqtt_connected=self._mqtt_connected,
            contact_of=settings.district_contact,
            objection_days=a.objection_days,
            ref_flow_per_head_m3_h=settings.gb18483.reference_flow_per_head_m3_h,
            owns=partition.owns if partition is not None else None,
            owner_link=self.owner_links.for_notice if self.owner_links is not None else None,
        )
        # maintenance reminders and data-integrity checks: services that ended, judged on their own thread
        self._init_judgements(ledger, registry, settings, store)
        # what the ledger last got of each open event (after a restore: look at every device once)
        self._open = detector_store.OpenEvents(set(self.detector.device_ids()) if self._restored else None)

    # ------------------------------------------------------------------ start-up
    def _mqtt_connected(self) -> bool:
        return self.client is not None and self.client.is_connected()

    def _readings_of(self, device_id: str, since_ms: int, until_ms: int) -> list[dict]:
        assert self.store is not None
        return self.store.query(device_id=device_id, since_ms=since_ms, until_ms=until_ms)

    def _standard_of(self, name: str) -> str:
        try:
            return self.profiles.get(name).standard
        except Exception:
            return name

    def _restore_or_new(self) -> Detector:
        det, self._restored = detector_store.restore_or_new(
            self.ledger, self.state_name, self.registry, self.profiles, self._cfg
        )
        return det

    def warm_up(self, until_ms: int | None = None) -> int:
        """Feed the detector the store's readings it has not yet counted (:func:`alerts.warmup.unseen`)."""
        if self.store is None or self.settings.alerts.warmup_hours <= 0:
            return 0
        end = until_ms if until_ms is not None else now_ms()
        since = end - int(self.settings.alerts.warmup_hours * 3600_000)
        fed = unseen(self.store, self.detector, self._cfg.window_ms, since, end)
        self.feed(fed)
        log.info("event=detector_warmup readings=%d since_ms=%d", len(fed), since)
        return len(fed)

    def start(self) -> None:
        # Notices left pending by a crash first (MQTT ones once connected), then transitions of the outbox
        # whose notices never finished.
        self.notifier.drain(self.registry)
        self.notifier.catch_up(self.registry)  # events stored before the outbox existed
        if not (self._subscribe and self._restored):
            # Over MQTT with saved state the broker redelivers what was not acknowledged; otherwise
            # (first start, or readings handed over in-process) the store holds what the state missed.
            self.warm_up()
        # Everything alive now (modules, the registry, profiles, the restored or warmed detector) lives as
        # long as the service: move it out of the garbage collector's generations. A commit builds the
        # state of every changed device (after a warm-up: all of them, hundreds of thousands of small
        # objects), which triggers collections that would otherwise walk this whole heap again and again:
        # 17 % of the commit time at 5,000 devices (BENCHMARKS.md, "After the ledger moved to SQLAlchemy").
        gc.collect()
        gc.freeze()
        t = threading.Thread(target=self._notice_loop, name="alerts-notices", daemon=True)
        t.start()
        self._threads.append(t)
        t = threading.Thread(target=self._maintenance_loop, name="alerts-maintenance", daemon=True)
        t.start()
        self._threads.append(t)
        t = threading.Thread(target=self._tick_loop, name="alerts-tick", daemon=True)
        t.start()
        self._threads.append(t)
        if self.client is not None:
            host, port = self.client._fw_endpoint  # type: ignore[attr-defined]
            self.client.connect_async(
                host,
                port,
                keepalive=self.settings.mqtt.keepalive_s,
                clean_start=False if self.settings.mqtt.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                properties=connect_properties(self.settings),
            )
            self.client.loop_start()
        log.info(
            "event=alerts_start subscribe=%s clock=%s window_s=%d N=%d M=%d",
            self._subscribe,
            self.settings.alerts.clock,
            self._cfg.window_s,
            self._cfg.open_after_windows,
            self._cfg.close_after_windows,
        )

    def stop(self) -> None:
        self._stop.set()
        if self.client is not None and self._subscribe:
            self.client.on_message = lambda *a: None
        self.commit()
        self._maint_q.put(None)
        self._notice_q.put(None)
        for t in self._threads:
            t.join(timeout=60)
        if self.client is not None:
            try:
                self.client.disconnect()
            finally:
                self.client.loop_stop()
        log.info(
            "event=alerts_stop transitions=%d notices=%s %s",
            self.transitions_total,
            self.notices,
            " ".join(f"{k}={v}" for k, v in self.detector.counters.items()),
        )

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        while not stop.wait(1.0):
            pass
        self.stop()

    # ------------------------------------------------------------------ input
    def feed(self, readings: Iterable[Reading]) -> None:
        """Process readings (thread-safe). Transitions are committed by the next :meth:`commit`."""
        with self._lock:
            det = self.detector
            out = self._pending_transitions
            before = len(out)
            for r in readings:
                if r.interval_s:
                    continue  # hourly means are reported, not judged (windows need the samples)
                out.extend(det.process(r))
                if r.time_ms > self._max_event_ms:
                    self._max_event_ms = r.time_ms
            self._dirty = True
            urgent = len(out) > before
        if urgent:
            self.commit()  # an event opened or closed: notify now, not at the next commit tick

    on_readings = feed  # the ingest service's hook signature

    def advance(self, now: int | None = None) -> None:
        """Move the detector's clock: finalise silent devices' windows, detect offline devices."""
        with self._lock:
            if now is None:
                now = now_ms() if self.settings.alerts.clock == "wall" else self._max_event_ms
            if not now:
                return
            trs = self.detector.advance(now)
            self._pending_transitions.extend(trs)
            self._dirty = True
            self._maintenance_due(now)
        if trs:
            self.commit()

    def finish(self) -> None:
        """End of a replay: finalise every window, commit, and wait for the notices."""
        with self._lock:
            self._pending_transitions.extend(self.detector.flush())
            self._dirty = True
        self.commit()
        with self._lock:
            self._maintenance_due(2**62)  # the replay is over: so is every service in it
        self.wait_maintenance()
        self.wait_notices()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("event=broker_refused reason=%s", reason_code)
            return
        if self._subscribe:
            prefix = self.settings.mqtt.topic_prefix.strip("/")
            self._subscribe_readings(client, prefix)
        log.info("event=broker_connected client_id=%s", self.client_id)
        self._notice_q.put(DRAIN)  # MQTT alerts left pending while disconnected go out now

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            received = now_ms()
            out = self._pipeline.handle(msg.topic, msg.payload, received)  # type: ignore[union-attr]
            readings = out.readings  # refused input is ingest's to dead-letter; ignore it here
            if self.clock is not None:
                self.clock.observe(readings, received)
        except Exception:
            log.exception("event=alerts_decode_error")
            readings = []
        self.feed(readings)
        with self._lock:
            if msg.qos:
                self._pending_acks.append(msg.mid)
            n = len(self._pending_acks)
        if n >= max(1, int(self.settings.mqtt.receive_maximum * 0.8)):
            self.commit()

    # ------------------------------------------------------------------ commit and notices
    def commit(self) -> None:
        """One transaction: finalised windows, events of the new transitions, the detector state of the
        devices that changed since the last commit (and the detector-wide part). Then acknowledge the MQTT
        messages and queue the transitions for notices. A failed transaction gives everything back to the
        next commit."""
        with self._lock:
            det = self.detector
            if not self._dirty and not self._pending_acks and not det.has_changes:
                return
            if self.fence is not None:
                self.fence()
            transitions, self._pending_transitions = self._pending_transitions, []
            acks, self._pending_acks = self._pending_acks, []
            windows = det.drain_windows()
            changes = det.take_changes()
            self._open.touched |= changes.changed
            grown, sigs = self._open.grown(det) if windows or transitions else ([], {})
            try:
                with self.ledger.transaction():
                    if windows:
                        self.ledger.add_windows(windows)
                    for tr in transitions:
                        self.ledger.upsert_event(tr.event)
                    for ev in grown:
                        self.ledger.upsert_event(ev)
                    # the durable outbox: "event stored" implies "will be notified", whatever crashes next
                    self.ledger.add_outbox(transitions)
                    detector_store.save(self.ledger, self.state_name, det, changes)
            except BaseException:
                det.requeue_changes(changes)
                det.requeue_windows(windows)
                self._pending_transitions[:0] = transitions
                self._pending_acks[:0] = acks
                raise
            if windows or transitions:
                self._open.kept(sigs)
            if windows and self.service_ends is not None:
                self.service_ends.observe(windows)
            self._dirty = False
            self._last_commit = time.monotonic()
        if acks and self.client is not None:
            for mid in acks:
                self.client.ack(mid, 1)
        if self._sink is not None and (windows or transitions):
            self._to_influx(
                window_lines(windows, self.registry, self._limits)
                + [event_line(t.event) for t in transitions]
            )
        for tr in transitions:
            self.transitions_total += 1
            log.info(
                "event=transition action=%s kind=%s restaurant_id=%s device_id=%s id=%s",
                tr.action,
                tr.event.kind,
                tr.event.restaurant_id,
                tr.event.device_id,
                tr.event.event_id,
            )
            self._notice_q.put(tr)

    def _tick_loop(self) -> None:
        interval = self.settings.alerts.commit_interval_s
        adv_every = self.settings.alerts.advance_interval_s
        last_adv = 0.0
        while not self._stop.wait(min(interval, adv_every) / 2):
            try:
                if time.monotonic() - last_adv >= adv_every:
                    last_adv = time.monotonic()
                    self.advance()
                if time.monotonic() - self._last_commit >= interval:
                    self.commit()
                if self._dash is not None:
                    self._dash.tick()
            except Exception:
                log.exception("event=alerts_tick_failed")
