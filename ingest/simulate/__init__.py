"""Reproducible simulator of restaurant kitchens and their cooking-fume monitors.

It writes a device registry (:func:`make_registry`, :func:`write_registry`), generates what each monitor
would measure (:func:`generate`, time-major: every device at t, then t + interval) and publishes it over
MQTT in the wire contract of docs/protocol.md (:func:`run_simulation`), optionally with bad input mixed
in so the dead-letter path has something to do. Same seed, same registry, same series, same faults.

The package, in the order the data flows (import from the package: ``from ingest import simulate``,
``simulate.generate``; the names in ``__all__`` are its interface):

- ``model``: the knobs of the kitchen model (:class:`KitchenModel`, described there) and the wire constants.
- ``restaurants``: the simulated registry (:func:`make_registry`, :func:`write_registry`).
- ``kitchen``: behaviours and each device's series for one local day.
- ``series``: :func:`generate` and :func:`count_readings`.
- ``encode``: JSON and HJ 212 encodings of a reading (:func:`encode_json`, :func:`encode_hj212`).
- ``faults``: the fault messages of fault injection (described there).
- ``publisher``: the paho-mqtt client that keeps a window of unacknowledged messages.
- ``runner``: :func:`run_simulation` (pacing, batching, faults) and :func:`default_start_ms`.
- ``gateway_client``: :func:`run_gateway_simulation`, the monitors as HJ 212 data loggers over TCP, one
  connection each, to the gateway (``fumewatch hj212-gateway``) instead of MQTT.
"""

from __future__ import annotations

from ingest.simulate.encode import encode_hj212, encode_json, encode_json_batch
from ingest.simulate.gateway_client import GatewayStats, parse_gateway, run_gateway_simulation
from ingest.simulate.kitchen import behaviours
from ingest.simulate.model import (
    BEHAVIOURS,
    DEFAULT_MODEL,
    FAULT_KINDS_HJ212,
    FAULT_KINDS_JSON,
    KITCHEN_TZ,
    UNKNOWN_DEVICE_ID,
    KitchenModel,
)
from ingest.simulate.restaurants import make_registry, write_registry
from ingest.simulate.runner import SimStats, default_start_ms, run_simulation
from ingest.simulate.series import SimReading, count_readings, generate

__all__ = [
    "BEHAVIOURS",
    "DEFAULT_MODEL",
    "FAULT_KINDS_HJ212",
    "FAULT_KINDS_JSON",
    "KITCHEN_TZ",
    "UNKNOWN_DEVICE_ID",
    "GatewayStats",
    "KitchenModel",
    "SimReading",
    "SimStats",
    "behaviours",
    "count_readings",
    "default_start_ms",
    "encode_hj212",
    "encode_json",
    "encode_json_batch",
    "generate",
    "make_registry",
    "parse_gateway",
    "run_gateway_simulation",
    "run_simulation",
    "write_registry",
]
