"""The store interface."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from ingest.model import Reading

Batch = Sequence[tuple[Hashable, Sequence[Reading]]]


class Store:
    """Base class of reading stores."""

    kind = "store"

    def __init__(self) -> None:
        self._on_durable: Callable[[list[Hashable]], None] = lambda tokens: None

    def set_on_durable(self, callback: Callable[[list[Hashable]], None]) -> None:
        self._on_durable = callback

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
