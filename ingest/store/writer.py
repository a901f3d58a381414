"""The ingest writer's retry loop: dead letters first, then the readings, until the store took them.

One call of :meth:`StoreWriter.write` ends only when everything in it is settled or the service stops:

- the dead letters of the batch are committed to the state database (retried while it fails, e.g.
  "database or disk is full"; never twice: once committed they are forgotten);
- the readings go to the store. A transient error (see :mod:`ingest.store.faults`) is counted, logged
  once per run and retried with exponential back-off; nothing is acknowledged meanwhile, so the broker
  keeps the messages (back-pressure) and the batch is written as soon as the fault clears.
- a permanent rejection splits the batch by message and then by reading: the readings the store
  refuses become dead letters (reason ``store_rejected``, the store's message in the detail), the rest
  is stored, and the messages are acknowledged once both are durable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

from ingest.model import DeadLetter, Reading
from ingest.store.base import Store
from ingest.store.faults import PERMANENT, Backoff, WriteHealth, classify, error_message, split_rejected
from ingest.timeutil import now_ms

log = logging.getLogger("fumewatch.ingest.writer")

Item = tuple[Hashable, list[Reading]]


class StoreWriter:
    def __init__(
        self,
        store: Store,
        add_dead_letters: Callable[[list[DeadLetter]], None],
        ack: Callable[[list[Hashable]], None],
        *,
        retry_min_s: float,
        retry_max_s: float,
        stopping: Callable[[], bool],
    ) -> None:
        self.store = store
        self._add_dead = add_dead_letters
        self._ack = ack
        self._retry = (retry_min_s, retry_max_s)
        self._stopping = stopping
        self.health = WriteHealth("ingest-writer")
        self.holding = 0  # messages + dead letters inside write() now (for /healthz)

    def write(self, batch: list[Item], dead: list[DeadLetter]) -> bool:
        """Settle ``batch`` and ``dead``; False when the service stopped first (nothing acknowledged)."""
        if not batch and not dead:
            return True
        self.holding = len(batch) + len(dead)
        try:
            return self._write(batch, dead)
        finally:
            self.holding = 0

    def _write(self, batch: list[Item], dead: list[DeadLetter]) -> bool:
        backoff = Backoff(*self._retry)
        failed = False
        while True:
            self.health.begin()
            try:
                if dead:
                    self._add_dead(dead)  # committed before the messages behind them are acknowledged
                    dead = []
                if batch:
                    try:
                        self.store.write(batch)
                    except Exception as exc:
                        if classify(exc) != PERMANENT:
                            raise
                        self.health.failure(PERMANENT, exc)
                        self._set_aside(batch)
                self.health.success()
                if failed:
                    log.info("event=store_accepting_again messages=%d", len(batch))
                return True
            except Exception as exc:
                failed = True
                if self.health.failure(classify(exc), exc):
                    log.error(
                        "event=%s store=%s messages=%d error=%s (retrying with back-off, not acknowledging)",
                        "influx_buffer_full" if type(exc).__name__ == "BufferFull" else "store_write_failed",
                        self.store.kind,
                        len(batch),
                        error_message(exc)[:300],
                        exc_info=not isinstance(exc, (OSError, *_expected_errors())),
                    )
            if self._stopping():
                return False
            time.sleep(backoff.next())

    def _set_aside(self, batch: list[Item]) -> None:
        """The store rejected something in ``batch`` for good: write message by message, and reading by
        reading within a rejected message; dead-letter what is still rejected. Transient errors raise."""
        for token, readings in batch:
            try:
                self.store.write([(token, readings)])
                continue
            except Exception as exc:
                if classify(exc) != PERMANENT:
                    raise
            rejected = split_rejected(readings, lambda rs: self.store.write([(_NOT_A_TOKEN, list(rs))]))
            if rejected:
                self._add_dead([_dead_letter(r, msg, self.store.kind) for r, msg in rejected])
                self.health.rejected(len(rejected))
                log.error(
                    "event=store_rejected store=%s readings=%d error=%s",
                    self.store.kind,
                    len(rejected),
                    rejected[0][1][:200],
                )
            self._ack([token])


_NOT_A_TOKEN = object()  # the service acknowledges only tokens it handed out; this one is ignored


def _expected_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    from ingest.store.influx_buffer import BufferFull

    return (sqlite3.OperationalError, BufferFull)


def _dead_letter(r: Reading, message: str, store: str) -> DeadLetter:
    return DeadLetter(
        received_ms=now_ms(),
        topic="",
        reason="store_rejected",
        payload_excerpt=f"{r.device_id} {r.time_ms} oil_fume={r.oil_fume_mg_m3}"[:256],
        device_id=r.device_id,
        detail={"message": message[:300], "store": store, "time_ms": r.time_ms},
    )
