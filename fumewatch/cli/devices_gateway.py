"""``fumewatch devices``' gateway column: each data logger's connection to the HJ 212 gateway, from the rows
the gateway writes to the state database (``gateway_connections``, ingest/gateway/status.py).

The table has one cell, ``gateway``: ``127.0.0.1:53422 since 2026-12-03T12:00:00+08:00, 120 frames, 120
acks`` while connected; ``..., disconnected 2026-12-03T13:00:00+08:00`` once it ended; ``..., no report
since ...`` when the gateway that holds it stopped writing (killed, its host gone: :func:`is_stale`); the
connection's last error after it. CSV and JSON have the parts in fields of their own (:data:`CSV_FIELDS`;
JSON adds the ``*_ms`` times, the refused frames by reason as an object, and the gateway's instance).
A device that never connected to a gateway has them empty (``gateway_connected`` false).
"""

from __future__ import annotations

from typing import Any

from fumewatch.cli.common import present_times
from ingest.gateway.status import is_stale, read_connections

#: The gateway's fields of ``--format csv`` (after the other columns); the table has ``gateway`` only.
CSV_FIELDS = (
    "gateway_peer",
    "gateway_connected",
    "gateway_since",
    "gateway_disconnected",
    "gateway_frames",
    "gateway_acks",
    "gateway_refused",
    "gateway_last_error",
    "gateway_last_frame",
)


def connections(state: str) -> dict[str, dict[str, Any]]:
    """Each MN's connection row (none: the gateway never wrote to this database)."""
    return read_connections(state) or {}


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def fields(row: dict[str, Any] | None, now: int, interval_s: float, tz: str, fmt: str) -> dict[str, Any]:
    """The ``gateway*`` fields of one device from its row (None: never connected to a gateway)."""
    out: dict[str, Any] = {
        "gateway": "",
        "gateway_peer": "",
        "gateway_connected": False,
        "gateway_since": "",
        "gateway_since_ms": None,
        "gateway_disconnected": "",
        "gateway_disconnected_ms": None,
        "gateway_frames": None,
        "gateway_acks": None,
        "gateway_refused": {},
        "gateway_last_error": "",
        "gateway_last_frame": "",
        "gateway_last_frame_ms": None,
        "gateway_updated": "",
        "gateway_updated_ms": None,
        "gateway_instance": "",
    }
    if row is not None:
        stale = is_stale(row, now, interval_s)
        out.update(
            gateway_peer=row["peer"],
            gateway_connected=row["disconnected_ms"] is None and not stale,
            gateway_since_ms=row["connected_since_ms"],
            gateway_disconnected_ms=row["disconnected_ms"],
            gateway_frames=row["frames"],
            gateway_acks=row["acks"],
            gateway_refused=dict(row["refused"]),
            gateway_last_error=row["last_error"],
            gateway_last_frame_ms=row["last_frame_ms"],
            gateway_updated_ms=row["updated_ms"],
            gateway_instance=row["instance"],
        )
        present_times(out, tz)
        text = (
            f"{row['peer']} since {out['gateway_since']}, {_n(row['frames'], 'frame')}, "
            f"{_n(row['acks'], 'ack')}"
        )
        if row["disconnected_ms"] is not None:
            text += f", disconnected {out['gateway_disconnected']}"
        elif stale:
            text += f", no report since {out['gateway_updated']} (is the gateway running?)"
        if row["last_error"]:
            text += f", last error {row['last_error']}"
        out["gateway"] = text
    if fmt != "json":
        out["gateway_connected"] = "true" if out["gateway_connected"] else "false"
        out["gateway_refused"] = ", ".join(
            f"{k} {n}" for k, n in sorted(out["gateway_refused"].items(), key=lambda kv: (-kv[1], kv[0]))
        )
    return out
