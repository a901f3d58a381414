"""The ingest service: MQTT in, store out, acknowledged only once stored.

paho-mqtt v2 callback API, QoS 1, persistent session (fixed client id, clean start off) and automatic
reconnect. Messages are decoded in the network thread and buffered; a batch is handed to the store when
it is full or ``flush_interval_s`` old, and each MQTT message is acknowledged (manual ack) only after the
store has accepted its readings and its dead letters are committed. A crash therefore loses nothing: the
broker redelivers what was not acknowledged, and the stores are idempotent on (device_id, time).

Store writes run on their own thread (``ingest-writer``), so the network thread keeps receiving and
decoding while SQLite works (it releases the GIL) or InfluxDB answers; batches that queue up meanwhile
are written together, in one bigger transaction. Nothing is logged per message (BENCHMARKS.md).

Store faults (retries, set-aside, back-pressure, /healthz): :mod:`ingest.store.writer`, docs/reliability.md.

Per-device counters (``fumewatch devices``): each message's readings and notes are counted as it is
decoded (:class:`ingest.device_stats.DeviceStats`), its dead letters by the state database as it writes
them; the state database keeps both in ``device_stats``.
"""

from __future__ import annotations

import gc
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from ingest.clock import ClockWatch
from ingest.config import Settings
from ingest.device_stats import DeviceStats
from ingest.duplicates import ConflictSink
from ingest.model import DeadLetter, Reading
from ingest.mqtt_client import connect_properties, make_client
from ingest.pipeline import Pipeline
from ingest.registry import Registry
from ingest.state import StateDB
from ingest.stats import IngestStats
from ingest.store.base import Store
from ingest.store.writer import StoreWriter
from ingest.timeutil import now_ms

log = logging.getLogger("fumewatch.ingest")


class IngestService:
    """Runs in the background (paho's network thread + a flush timer); ``stop()`` flushes and acks."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        store: Store,
        state: StateDB,
        *,
        on_readings: Callable[[list[Reading]], None] | None = None,
        clock: ClockWatch | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.state = state
        self.pipeline = Pipeline(settings, registry)
        self.stats = IngestStats()
        self.devices = DeviceStats(lambda device_id: device_id in self.registry)
        state.track_devices(self.devices)
        self._on_readings = on_readings
        # each device's clock as seen from here (ingest/clock.py), for the alerts side's suspect_clock
        self._clock = clock
        self._lock = threading.RLock()
        self._buf: list[tuple[int, list[Reading]]] = []
        self._buf_readings = 0
        self._buf_since = 0.0
        self._dead: list[DeadLetter] = []
        self._disconnected_since: float | None = time.monotonic()
        self._tokens: dict[int, tuple[int, int, list[Reading] | None]] = {}
        self._seq = itertools.count(1)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._timer: threading.Thread | None = None
        # batches (lists of (token, readings)) for the writer thread; a threading.Event marks a flush()
        self._writes: queue.SimpleQueue[list | threading.Event | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        m = settings.mqtt
        self._qos = m.qos
        batch = settings.ingest.batch_size
        if m.protocol != "5":
            # MQTT 3.1.1 has no Receive Maximum: the broker sends at most its max_inflight_messages
            # unacknowledged messages, so a batch must not wait for more than that.
            batch = min(batch, max(1, m.broker_max_inflight))
        self._batch_size = batch
        self._max_buf_readings = settings.ingest.batch_size * 4
        self._flush_interval = settings.ingest.flush_interval_s
        self.client = make_client(settings, m.client_id, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._subscribed = threading.Event()  # the broker acknowledged our subscriptions (SUBACK)
        store.set_on_durable(self._on_durable)
        self._conflicts = ConflictSink(state, self.stats, self._lock, m.topic_prefix)
        store.on_conflict = self._conflicts  # used by stores that report them (ingest.duplicates)
        store.set_on_rejected(state.add_dead_letters)
        self.writer = StoreWriter(
            store,
            state.add_dead_letters,
            self._on_durable,
            retry_min_s=settings.ingest.store_retry_min_s,
            retry_max_s=settings.ingest.store_retry_max_s,
            stopping=self._stop.is_set,
        )

    # ------------------------------------------------------------------ lifecycle
    @property
    def topics(self) -> list[str]:
        prefix = self.settings.mqtt.topic_prefix.strip("/")
        group = self.settings.mqtt.shared_group
        base = [f"{prefix}/+/reading", f"{prefix}/+/hj212"]
        return [f"$share/{group}/{t}" for t in base] if group else base

    def start(self, wait_connected_s: float = 10.0) -> None:
        host, port = self.client._fw_endpoint  # type: ignore[attr-defined]
        log.info(
            "event=ingest_start broker=%s:%d client_id=%s store=%s batch=%d",
            *(host, port, self.settings.mqtt.client_id, self.store.kind, self._batch_size),
        )
        self.client.connect_async(
            host,
            port,
            keepalive=self.settings.mqtt.keepalive_s,
            clean_start=False if self.settings.mqtt.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect_properties(self.settings),
        )
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        # What is alive now lives as long as the service: keep the collections the message flow triggers
        # from walking it again and again (0.45-0.6 s of a 60,000-message drain; BENCHMARKS.md, issue 14).
        gc.collect()
        gc.freeze()
        self.client.loop_start()
        self._timer = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)
        self._timer.start()
        # ready = connected AND subscribed: on a first start (no broker session yet) a message published
        # before the SUBACK has nobody to go to
        if wait_connected_s and not (
            self._connected.wait(wait_connected_s) and self._subscribed.wait(wait_connected_s)
        ):
            log.warning("event=broker_not_connected_yet waited_s=%.0f (will keep retrying)", wait_connected_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Clean stop: flush buffered readings, wait for the store, ack, disconnect. Loses nothing."""
        self._stop.set()
        self.client.on_message = lambda *a: None  # anything arriving now stays unacked -> redelivered
        self._expire_subpackets(drain=True)  # parts still waiting for their set: dead letters, not lost
        with self._lock:
            self._flush_locked()
        if self._writer is not None:
            self._writes.put(None)  # the writer writes everything queued before it, then ends
            self._writer.join(timeout_s)
        self.store.flush(timeout_s)
        time.sleep(0.05)
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        if self._timer is not None:
            self._timer.join(timeout=2)
        log.info("event=ingest_stop %s", _kv(self.stats.as_dict()))

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        last = 0.0
        while not stop.wait(1.0):
            if time.monotonic() - last > 60:
                last = time.monotonic()
                log.info("event=ingest_stats %s backlog=%d", _kv(self.stats.as_dict()), self.store.backlog)
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------------ MQTT callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("event=broker_refused reason=%s", reason_code)
            return
        self.stats.connects += 1
        self._disconnected_since = None
        client.subscribe([(t, self._qos) for t in self.topics])
        self._connected.set()
        log.info(
            "event=broker_connected session_present=%s topics=%s",
            getattr(flags, "session_present", None),
            ",".join(self.topics),
        )

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(rc) for rc in reason_codes if getattr(rc, "is_failure", False)]
        if refused:
            log.error("event=subscribe_refused reasons=%s (check the broker ACL)", ",".join(refused))
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        self._subscribed.clear()
        if self._disconnected_since is None:
            self._disconnected_since = time.monotonic()
        if not self._stop.is_set():
            log.warning("event=broker_disconnected reason=%s (reconnecting)", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        received = time.time_ns() // 1_000_000  # now_ms(), without building a datetime per message
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "backslashreplace")
        try:
            out = self.pipeline.handle(topic, msg.payload, received)
        except Exception as exc:  # a bug must not stop the service: keep the message as a dead letter
            log.exception("event=pipeline_error topic=%s", topic[:120])
            out = None
            dead = [
                DeadLetter(
                    received_ms=received,
                    topic=topic[:256],
                    reason="internal_error",
                    payload_excerpt=msg.payload[:256].decode("utf-8", "backslashreplace"),
                    detail={"message": f"{type(exc).__name__}: {exc}"[:300]},
                )
            ]
        with self._lock:
            st = self.stats
            st.messages += 1
            st.last_message_ms = received
            if out is not None:
                dead = out.dead
                if msg.dup:  # a redelivery: its dead letters may be written already (ingest.state)
                    for d in dead:
                        d.detail["redelivered"] = True
                st.ignored_frames += out.ignored
                readings = out.readings
                self.devices.observe(readings, out.notes, received)
                if self._clock is not None:
                    self._clock.observe(readings, received)
            else:
                readings = []
            if dead:
                self._add_dead(dead)
            st.readings_received += len(readings)
            if not self._buf:
                self._buf_since = time.monotonic()
            self._buf.append((msg.mid if msg.qos > 0 else 0, readings))
            self._buf_readings += len(readings)
            if len(self._buf) >= self._batch_size or self._buf_readings >= self._max_buf_readings:
                self._flush_locked()

    # ------------------------------------------------------------------ flushing and acks
    def _flush_loop(self) -> None:
        while not self._stop.wait(self._flush_interval / 2):
            try:
                self._expire_subpackets()
                with self._lock:
                    if self._buf and time.monotonic() - self._buf_since >= self._flush_interval:
                        self._flush_locked()
            except Exception:  # never die: the buffered messages stay unacknowledged, retried next tick
                log.exception("event=flush_failed")

    def _expire_subpackets(self, drain: bool = False) -> None:
        """HJ 212 sub-packets whose set did not complete in time (all of them with ``drain``) become dead
        letters, written with the next flush (ingest.subpackets)."""
        now = time.time_ns() // 1_000_000
        if not (self.pipeline.subpackets_held() if drain else self.pipeline.subpackets_due(now)):
            return
        dead = self.pipeline.expire_subpackets(now, drain=drain).dead
        with self._lock:
            self._add_dead(dead)
            if dead and not drain:
                self._flush_locked()

    def _add_dead(self, dead: list[DeadLetter]) -> None:
        """Queue dead letters for the next flush and count them (lock held)."""
        st = self.stats
        self._dead.extend(dead)
        st.dead_letters += len(dead)
        for d in dead:
            st.dead_by_reason[d.reason] = st.dead_by_reason.get(d.reason, 0) + 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Hand the buffered readings to the store now and wait until the store has taken them."""
        with self._lock:
            self._flush_locked()
        if self._writer is not None and self._writer.is_alive():
            done = threading.Event()
            self._writes.put(done)
            done.wait(timeout_s)

    def _flush_locked(self) -> None:
        if not self._buf and not self._dead:
            return
        buf, self._buf = self._buf, []
        dead, self._dead = self._dead, []
        self._buf_readings = 0
        batch = []
        keep = self._on_readings is not None
        for mid, readings in buf:
            seq = next(self._seq)
            self._tokens[seq] = (mid, len(readings), readings if keep else None)
            batch.append((seq, readings))
        if self._writer is not None:  # even a dead writer (/healthz says so): never block the caller
            self._writes.put((batch, dead))
        else:  # not started: write here
            self._write(batch, dead)

    def _write_loop(self) -> None:
        q = self._writes
        while True:
            item = q.get()
            batch, dead = [], []
            try:
                while True:  # take what queued up meanwhile: one bigger transaction
                    if item is None:
                        self._write(batch, dead)
                        return
                    if isinstance(item, threading.Event):
                        self._write(batch, dead)
                        batch, dead = [], []
                        item.set()
                    else:
                        batch.extend(item[0])
                        dead.extend(item[1])
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                self._write(batch, dead)
            except Exception as exc:  # a bug: count it, keep the thread; the messages stay unacknowledged
                self.writer.health.failure("transient", exc)
                log.exception("event=writer_error messages=%d (not acknowledged)", len(batch))

    def _write(self, batch: list, dead: list) -> None:
        """Until the store took it; nothing is acknowledged meanwhile (back-pressure: the broker holds them)."""
        if not self.writer.write(batch, dead):
            # Stopping: leave them unacknowledged; the broker redelivers them to the next start.
            with self._lock:
                for seq, _ in batch:
                    self._tokens.pop(seq, None)

    def _on_durable(self, tokens: list) -> None:
        ready: list[Reading] = []
        mids: list[int] = []
        with self._lock:
            for seq in tokens:
                entry = self._tokens.pop(seq, None)
                if entry is None:
                    continue
                mid, n, readings = entry
                self.stats.readings_stored += n
                if mid:
                    mids.append(mid)
                if readings:
                    ready.extend(readings)
            if mids:
                self.client.ack_many(mids)  # one write for the batch's PUBACKs (ingest.mqtt_client)
                self.stats.acked += len(mids)
            ready = self._conflicts.drop(ready)
        if ready and self._on_readings is not None:
            try:
                self._on_readings(ready)
            except Exception:
                log.exception("event=on_readings_hook_failed readings=%d", len(ready))

    @property
    def buffered(self) -> int:
        """Readings received but not yet durable in the store (the service buffer and writes in flight)."""
        with self._lock:
            return self._buf_readings + sum(n for _, n, _ in self._tokens.values())

    def broker_down_for(self) -> float:
        """Seconds since the broker connection was lost (or since start, before the first); 0 when up."""
        since = None if self._connected.is_set() else self._disconnected_since
        return 0.0 if since is None else time.monotonic() - since

    def workers(self) -> dict[str, bool]:
        """Threads that must be alive while the service runs (name -> alive), the store's included."""
        if self._stop.is_set() or self._writer is None:
            return {}
        net = getattr(self.client, "_thread", None)
        threads = {t.name: t.is_alive() for t in (self._writer, self._timer) if t is not None}
        return {**threads, "mqtt-network": net is not None and net.is_alive(), **self.store.workers()}

    # ------------------------------------------------------------------ helpers for demo/tests
    def wait_idle(self, quiet_s: float = 1.0, timeout_s: float = 60.0) -> bool:
        """Wait until no message arrived for ``quiet_s`` and everything buffered is durable."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                last = self.stats.last_message_ms
                pending = len(self._buf) + len(self._tokens)
            if pending == 0 and now_ms() - last >= quiet_s * 1000:
                return True
            time.sleep(0.05)
        return False


def _kv(d: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in d.items() if not isinstance(v, dict))
