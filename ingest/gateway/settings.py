"""The ``[gateway]`` settings section (defined in ingest/config_gateway.py, which says why)."""

from __future__ import annotations

from ingest.config_gateway import GatewaySettings

__all__ = ["GatewaySettings"]
