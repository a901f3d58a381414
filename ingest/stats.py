"""The ingest service's running totals (``IngestStats``): logged at each stats interval and at stop, and
read by ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IngestStats:
    messages: int = 0
    readings_received: int = 0
    readings_stored: int = 0
    dead_letters: int = 0
    ignored_frames: int = 0
    acked: int = 0
    connects: int = 0
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    last_message_ms: int = 0

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}
