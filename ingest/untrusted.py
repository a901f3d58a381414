"""Untrusted input for the ingest pipeline: :class:`Reject` (why a reading or message is refused) and
bounded helpers for values straight off the wire (JSON timestamps, text of arbitrary JSON, topics).
"""

from __future__ import annotations

import json
import math
import reprlib
from datetime import datetime

import orjson


class Reject(Exception):
    """One reading (or a whole message) is refused; ``reason`` is a short code, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _json_time(ts: object) -> int:
    if ts is None:
        raise Reject("missing_ts", "ts is required")
    if isinstance(ts, bool):
        raise Reject("bad_ts", "ts is a boolean")
    if isinstance(ts, int):
        return ts  # epoch milliseconds; seconds sent by mistake land in 1970 and fail the age check
    if isinstance(ts, float):
        if not math.isfinite(ts):
            raise Reject("bad_ts", f"ts is {ts}")
        return int(ts)
    if isinstance(ts, str):
        s = ts.strip()
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise Reject("bad_ts", f"ts {ts[:40]!r} is not RFC 3339") from None
        if dt.tzinfo is None:
            raise Reject("bad_ts", f"ts {ts[:40]!r} has no UTC offset")
        return int(dt.timestamp() * 1000)
    raise Reject("bad_ts", f"ts is {type(ts).__name__}")


_REPR = reprlib.Repr()
_REPR.maxlevel = 3


def _short(value: object, n: int) -> str:
    """Bounded text of an untrusted JSON value: str() of a list nested ~1000 deep (orjson accepts 1024)
    raises RecursionError, and str() of a huge array builds the whole text before it is cut."""
    return value[:n] if isinstance(value, str) else _REPR.repr(value)[:n]


def _dumpable(item: object) -> bool:
    try:
        orjson.dumps(item)
        return True
    except TypeError:
        return False


def _topic_device(topic: str) -> str:
    parts = topic.split("/")
    return parts[-2] if len(parts) >= 2 else ""


#: What :func:`_lenient_json` returns for text that is not JSON even for the standard library.
_INVALID = object()


def _parse_int(text: str) -> int | float:
    # As orjson: integers beyond 64 bits become floats (a float() of a 400-digit int would raise later).
    return int(text) if len(text) <= 18 else float(text)


_LENIENT = json.JSONDecoder(parse_int=_parse_int)


def _lenient_json(payload: bytes) -> object:
    """JSON that orjson refused, parsed by the standard library, which also takes ``NaN``,
    ``Infinity``, ``-Infinity`` and reads ``1e400`` as infinity (the validator then refuses those items
    one by one). Strict UTF-8 as orjson; :data:`_INVALID` when it is still not JSON."""
    try:
        return _LENIENT.decode(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _INVALID


def _item_excerpt(item: object, lenient: bool, payload: bytes) -> bytes:
    """The JSON text of one refused item (NaN written as NaN when it was parsed leniently), or the
    message's own bytes when the item cannot be written back."""
    if not lenient:
        return orjson.dumps(item) if _dumpable(item) else payload
    try:
        return json.dumps(item, allow_nan=True, ensure_ascii=False).encode("utf-8", "backslashreplace")
    except (TypeError, ValueError, RecursionError):
        return payload
