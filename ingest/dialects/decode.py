"""One HJ 212 frame's CP, read through a device's dialect: quantities, equipment state, data flags, and
everything the dialect does not know (kept, not dropped).

Rules (docs/protocol.md "Data flags and equipment state"):

- A quantity's value is the first of the CN's suffixes present (``-Rtd`` for 2011, ``-Avg`` for 2051/2061
  unless the dialect says otherwise); its ``-Flag`` (default ``N``) is stored in ``Reading.flags``.
- Oil fume flagged ``T`` (above the instrument's range) is kept and judged: it is a lower bound. Oil fume
  flagged anything else but ``N`` (``D`` fault, ``M`` maintenance, ``C`` calibration, ``F`` stopped, ``S``
  set by hand, ``B`` communication error) keeps the reading but excludes it from judgement
  (``Reading.excluded = "flag_X"``). Another quantity flagged so is not used (its column stays empty, so
  it is neither judged nor used for the reference conversion); its value is kept in ``extra``.
- Equipment state: ``rs`` reads the SBn-RS enumeration (0 stopped -> off; 1 running, 4 alarm, 5 backflush ->
  on; 2 calibrating, 3 maintenance -> state unknown and the reading excluded as ``rs_2``/``rs_3``);
  ``switch`` reads 0/1; ``current`` compares amperes with the device's threshold (registry ``fan_on_a`` /
  ``purifier_on_a``, else the dialect's ``on_a``), and keeps the current in ``extra``.
- Unknown factor codes and CP keys, and suffixes of known codes that are not read (``-Min``, ``-Max``,
  ``-ZsRtd``), go to ``Reading.extra`` as sent (at most :data:`MAX_EXTRA` entries of
  :data:`MAX_EXTRA_TEXT` characters; the count of any cut is kept under ``…``). Unknown codes are also
  reported, so that they are counted per device.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.dialects import DEFAULT_SUFFIX, STORED_QUANTITIES, Dialect
from ingest.hj212 import VALID_DATA_FLAGS, Frame
from ingest.model import NUMERIC_FIELDS
from ingest.registry import Device
from ingest.untrusted import Reject

MAX_EXTRA = 64
MAX_EXTRA_TEXT = 32
#: SBn-RS values: 0 stopped, 1 running, 2 calibrating, 3 maintenance, 4 alarm, 5 backflush (HJ 212-2017).
RS_MEANINGS = {0: "stopped", 1: "running", 2: "calibrating", 3: "maintenance", 4: "alarm", 5: "backflush"}
RS_EXCLUDED = frozenset({2, 3})
_RS = ("RS",)


@dataclass(slots=True)
class Decoded:
    values: dict[str, float | None]
    switches: dict[str, bool | None]
    flags: dict[str, str]
    extra: dict[str, str]
    excluded: str
    unknown: list[str]  # unknown factor codes and CP keys, in frame order


def decode(frame: Frame, dialect: Dialect, device: Device) -> Decoded:
    suffixes = dialect.suffix.get(frame.cn) or DEFAULT_SUFFIX.get(frame.cn, ("Rtd",))
    values: dict[str, float | None] = dict.fromkeys(NUMERIC_FIELDS)
    switches: dict[str, bool | None] = {"fan": None, "purifier": None}
    flags: dict[str, str] = {}
    extra: dict[str, str] = {}
    unknown: list[str] = []
    excluded = ""
    scale = dialect.scale

    def keep(key: str, text: str) -> None:
        if len(extra) < MAX_EXTRA:
            extra[key[:MAX_EXTRA_TEXT]] = text[:MAX_EXTRA_TEXT]
        else:
            extra["…"] = str(int(extra.get("…", "0")) + 1)

    items = frame.factors.items()
    if dialect.site_codes:  # site-wide codes last: their value wins over a dialect alias of the same quantity
        items = sorted(items, key=lambda kv: kv[0] in dialect.site_codes)
    taken: dict[str, str] = {}  # quantity -> "code-suffix" it was read from
    for code, parts in items:
        quantity = dialect.factors.get(code)
        state = None if quantity else dialect.states.get(code)
        if quantity is None and state is None:
            unknown.append(code)
            for part, text in parts.items():
                keep(f"{code}-{part}", text)
            continue
        read = _RS if state is not None and state.encoding == "rs" else suffixes
        flag = parts.get("Flag")
        if len(read) == 1:  # the usual case, without a generator
            used = read[0] if read[0] in parts else None
        else:
            used = next((s for s in read if s in parts), None)
        if len(parts) > (used is not None) + (flag is not None):  # suffixes not read: kept as sent
            for part, text in parts.items():
                if part != used and part != "Flag":
                    keep(f"{code}-{part}", text)
        if used is None:
            if flag is not None:
                keep(f"{code}-Flag", flag)
            continue
        text = parts[used]
        try:
            value = float(text)
        except ValueError:
            raise Reject("not_a_number", f"{code}-{used}={text[:20]!r}") from None
        if quantity is not None:
            if code in scale:
                value *= scale[code]
            flag = flag or "N"
            flags[quantity] = flag[:4]
            if quantity != "oil_fume" and flag not in VALID_DATA_FLAGS:
                keep(f"{code}-{used}", text)  # not a valid measurement: kept aside, never judged or converted
                continue
            if quantity in taken:  # a second code for the same quantity: the earlier value is kept aside
                keep(taken[quantity], str(values.get(quantity)))
            taken[quantity] = f"{code}-{used}"
            if quantity in STORED_QUANTITIES:
                keep(STORED_QUANTITIES[quantity], repr(value) if code in scale else text)
            else:
                values[quantity] = value
            if quantity == "oil_fume" and flag not in VALID_DATA_FLAGS:
                excluded = f"flag_{flag[:4]}"
            continue
        target = state.target
        if flag is not None:
            flags[target] = flag[:4]
        if state.encoding == "rs":
            if not (value == value and value.is_integer() and int(value) in RS_MEANINGS):
                raise Reject("bad_state", f"{code}-RS={text[:20]!r} is not an HJ 212 running state 0..5")
            rs = int(value)
            flags[f"{target}_rs"] = str(rs)
            if rs in RS_EXCLUDED:
                excluded = excluded or f"rs_{rs}"
                switches[target] = None
            else:
                switches[target] = rs != 0
        elif state.encoding == "switch":
            if value not in (0.0, 1.0):
                raise Reject("bad_switch", f"{target} must be 0/1, got {code}-{used}={text[:20]!r}")
            switches[target] = value == 1.0
        else:  # current
            threshold = getattr(device, f"{target}_on_a") or state.on_a
            if not (value == value and 0.0 <= value <= 10_000.0):
                raise Reject("bad_state", f"{target} current {code}-{used}={text[:20]!r} is not 0..10000 A")
            switches[target] = value >= threshold
            keep(f"{target}_current_a", text)
    for key, text in frame.cp.items():
        if key == "DataTime":
            continue
        target = dialect.keys.get(key)
        if target is None:
            unknown.append(key)
            keep(key, text)
            continue
        if text not in ("0", "1"):
            raise Reject("bad_switch", f"{key}={text[:20]!r}: {target} state must be 0 or 1")
        switches[target] = text == "1"
    return Decoded(values, switches, flags, extra, excluded, unknown)
