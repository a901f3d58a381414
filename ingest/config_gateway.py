"""The ``[gateway]`` settings section: the HJ 212 TCP gateway (docs/gateway.md).

Beside ingest/config.py rather than inside ingest/gateway/: the config imports it, and the gateway's
modules import the config, so inside the package it would make an import cycle (the acyclic_siblings
contract of pyproject.toml). ``ingest.gateway.settings`` re-exports it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class GatewaySettings(BaseModel):
    """``[gateway]`` (environment: ``FUMEWATCH_GATEWAY_<KEY>``)."""

    # HOST:PORT the data loggers connect to; "" = no gateway in `fumewatch run`. Localhost by default:
    # exposing it is a deliberate act (a public address here, the port in docker-compose.yml).
    listen: str = ""
    # A connection silent this long is closed (loggers send every minute or so; a DTU keeps its link).
    idle_timeout_s: float = Field(300.0, gt=0)
    # Connections at once, in all and from one peer address (DTUs behind one carrier NAT share one).
    max_connections: int = Field(5000, ge=1)
    max_connections_per_peer: int = Field(1000, ge=1)
    # The largest frame accepted, bytes ("##" to CRLF); HJ 212's own bound is 10,017.
    max_frame_bytes: int = Field(10_017, ge=64, le=10_017)
    # Frames a second one connection may send (a token bucket of max_frame_burst); beyond, a frame is
    # refused unanswered (the logger sends it again: no 9014), counted and logged. The burst holds a day
    # of minute data, a DTU's backlog after an outage; a flat-out simulation needs more.
    max_frames_per_s: float = Field(50.0, gt=0)
    max_frame_burst: int = Field(1500, ge=1)
    # Waiting for the broker's acknowledgement of a frame before giving up on it (no 9014 then).
    publish_timeout_s: float = Field(10.0, gt=0)
    # MQTT client id of the gateway's publishing session.
    client_id: str = "fumewatch-hj212-gateway"
    # TLS for the loggers' connections (both files, PEM); "" = plain TCP, as most loggers speak.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Seconds between two writes of the connections to the state database (gateway_connections: what
    # `fumewatch devices` shows); a logger's first accepted frame and its disconnection are written at once.
    # 0 = no status table (the gateway then needs no state database).
    status_interval_s: float = Field(5.0, ge=0)


def parse_host_port(
    text: str, flag: str, *, default_host: str = "", any_port: bool = False
) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9212`` for IPv6) -> (host, port) for the gateway's listening address and
    the simulator's gateway; a ValueError names ``flag`` and says what is wrong. ``default_host``: for an
    empty host (none: a host is needed); ``any_port``: port 0 (the system picks one) is allowed."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]") or default_host
    low = 0 if any_port else 1
    if not sep or not host or not port.isdigit() or not low <= int(port) <= 65535:
        raise ValueError(f"{flag} {text!r}: give HOST:PORT, e.g. 127.0.0.1:9212")
    return host, int(port)
