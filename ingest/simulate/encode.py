"""Encodings of a simulated reading in the wire contract (docs/protocol.md): JSON and HJ 212."""

from __future__ import annotations

import orjson

from ingest.hj212 import CN_MINUTE, build_data_frame
from ingest.simulate.model import KITCHEN_TZ, WIRE_ORDER
from ingest.simulate.series import SimReading
from ingest.timeutil import ms_to_utc, zone


def _rfc3339(t_ms: int, tz: str) -> str:
    dt = ms_to_utc(t_ms).astimezone(zone(tz))
    return dt.isoformat(timespec="milliseconds" if t_ms % 1000 else "seconds")


def _json_obj(r: SimReading, ts: str | int) -> dict:
    obj: dict = {"ts": ts, "oil_fume": r.oil_fume}
    for name in ("pm", "nmhc", "flow"):
        value = getattr(r, name)
        if value is not None:
            obj[name] = value
    obj["fan"] = r.fan
    obj["purifier"] = r.purifier
    return obj


def encode_json(r: SimReading, *, tz: str = KITCHEN_TZ) -> bytes:
    """One JSON object; ``ts`` is RFC 3339 with the offset of ``tz`` (e.g. 2026-11-26T12:00:00+08:00)."""
    return orjson.dumps(_json_obj(r, _rfc3339(r.time_ms, tz)))


def encode_json_batch(rs: list[SimReading]) -> bytes:
    """A JSON array of objects with ``ts`` as integer epoch milliseconds."""
    return orjson.dumps([_json_obj(r, r.time_ms) for r in rs])


def _invert_factors(factors: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for code, target in factors.items():
        out.setdefault(target, code)
    return out


def encode_hj212(
    r: SimReading,
    *,
    factors: dict[str, str],
    tz: str = "Asia/Shanghai",
    pw: str = "123456",
    cn: str = CN_MINUTE,
) -> bytes:
    """One HJ 212-2017 data frame (CRLF-terminated). ``factors`` is the config map code -> field.

    DataTime is the local time in ``tz``; fan and purifier are sent as 0/1. Fields without a factor code
    in ``factors`` (or None) are left out; oil_fume must be mapped.
    """
    codes = _invert_factors(factors)
    if "oil_fume" not in codes:
        raise ValueError("factors map no code to oil_fume")
    values: dict[str, float | int] = {}
    for name in WIRE_ORDER:
        value = getattr(r, name)
        if name in codes and value is not None:
            values[codes[name]] = int(value) if isinstance(value, bool) else value
    local = ms_to_utc(r.time_ms).astimezone(zone(tz))
    return build_data_frame(mn=r.device_id, data_time_local=local, values=values, cn=cn, pw=pw).encode(
        "ascii"
    )
