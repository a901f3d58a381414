"""The store interface."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence

from ingest.model import DeadLetter, Reading

log = logging.getLogger("fumewatch.store")

Batch = Sequence[tuple[Hashable, Sequence[Reading]]]


class Store:
    """Base class of reading stores."""

    kind = "store"

    def __init__(self) -> None:
        self._on_durable: Callable[[list[Hashable]], None] = lambda tokens: None
        self._on_rejected: Callable[[list[DeadLetter]], None] = _log_rejected

    def set_on_durable(self, callback: Callable[[list[Hashable]], None]) -> None:
        self._on_durable = callback

    def set_on_rejected(self, callback: Callable[[list[DeadLetter]], None]) -> None:
        """Where points the store rejected for good go (the ingest service: the dead letters). The
        callback must commit them or raise; the store keeps the points until it returned."""
        self._on_rejected = callback

    def problems(self, stall_s: float) -> list[dict]:
        """Why the store cannot make progress right now (for /healthz); [] when it can."""
        return []

    def workers(self) -> dict[str, bool]:
        """The store's own threads, name -> alive."""
        return {}

    def write_health(self) -> list:
        """The store's own writers' :class:`~ingest.store.faults.WriteHealth` (the InfluxDB drain)."""
        return []

    def write(self, batch: Batch) -> None:
        raise NotImplementedError

    def flush(self, timeout_s: float = 30.0) -> None:
        """Make everything written so far durable (and acknowledged through the callback)."""

    def close(self) -> None:
        self.flush()

    def query(
        self,
        *,
        restaurant_id: str | None = None,
        device_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[dict]:
        """Stored readings as dicts keyed like READING_CSV_COLUMNS (plus time_ms), oldest first."""
        raise NotImplementedError

    def counts_by_restaurant(self) -> dict[str, int]:
        raise NotImplementedError

    @property
    def backlog(self) -> int:
        """Readings accepted by write() but not yet durable."""
        return 0

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _log_rejected(items: list[DeadLetter]) -> None:
    for d in items:
        log.error("event=store_rejected_dropped device_id=%s detail=%s", d.device_id, d.detail)


def rollback(conn) -> None:
    """Roll back a sqlite3 transaction if one is still open (SQLite may have ended it on SQLITE_FULL)."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except Exception as exc:  # the original error matters more
        log.warning("event=rollback_failed error=%s", exc)
