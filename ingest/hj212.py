"""HJ 212-2017 frame codec (environmental monitoring data transmission protocol).

Frame: ``"##" + LLLL + data segment + CCCC + "\\r\\n"`` where LLLL is the 4-digit decimal length of the
data segment (bytes) and CCCC the 4 hex digits of the CRC over the data segment. The CRC is the one of
HJ 212-2017 Appendix A (reg=0xFFFF; reg=(reg>>8)^byte; 8 shifts with 0xA001) -- note the byte goes into
the *high-shifted* register, so it is NOT CRC-16/MODBUS although the polynomial is the same.

Data segment: ``QN=...;ST=..;CN=....;PW=......;MN=......;Flag=.;CP=&&...&&``. CP holds ``DataTime=...``
and factor entries ``a34041-Rtd=1.23,a34041-Flag=N`` separated by ``;``.

This module only knows frames. Mapping factor codes to reading fields is the ingest pipeline's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

MAX_DATA_LEN = 9999  # four decimal digits
HEADER = "##"
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")

#: Command numbers (CN) for uploaded monitoring data.
CN_REALTIME = "2011"
CN_MINUTE = "2051"
CN_HOURLY = "2061"
CN_DAILY = "2031"
DATA_CNS = {CN_REALTIME: "Rtd", CN_MINUTE: "Avg", CN_HOURLY: "Avg", CN_DAILY: "Avg"}

#: Data flags of HJ 212-2017 (6.6.5): values with these flags are measurements of the process.
#: Values with these flags are judged (ingest/dialects/decode.py); others are kept, never judged.
VALID_DATA_FLAGS = frozenset({"N", "T"})  # normal, above the instrument's range (a lower bound)
DATA_FLAG_MEANINGS = {
    "N": "normal",
    "F": "monitor stopped",
    "M": "maintenance",
    "S": "manually set",
    "D": "fault",
    "C": "calibration",
    "T": "above the instrument's range (the value is a lower bound)",
    "B": "communication error",
}


class HJ212Error(ValueError):
    """A frame that cannot be accepted; ``reason`` is a short machine-friendly code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def _crc_step(reg: int) -> int:
    for _ in range(8):
        lsb = reg & 1
        reg >>= 1
        if lsb:
            reg ^= 0xA001
    return reg


# reg=(reg>>8)^byte, then 8 shifts: the shifts depend only on the low byte of (reg>>8)^byte and the
# high byte after the first step is 0, so a 256-entry table of the 8 shifts per low byte is exact.
_CRC_TABLE = tuple(_crc_step(i) for i in range(256))


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (reg=0xFFFF; reg^=byte; 8 shifts with 0xA001): the checksum some monitors send
    instead of the HJ 212 one, printed with its two bytes swapped (variant ``modbus_swapped``)."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


#: Opt-in checksum variants a dialect may admit (``crc_variants``): name -> CRC of the data segment as the
#: device prints it. Every frame admitted by a variant is counted (Outcome.notes, fumewatch devices).
CRC_VARIANTS = {
    "modbus_swapped": lambda data: ((c := crc16_modbus(data)) >> 8) | ((c & 0xFF) << 8),
    "modbus": crc16_modbus,
}


def crc16_reference(data: bytes) -> int:
    """HJ 212-2017 CRC, bit by bit exactly as the standard's Appendix A writes it (used by the tests)."""
    reg = 0xFFFF
    for byte in data:
        reg = _crc_step((reg >> 8) ^ byte)
    return reg


def crc16(data: bytes) -> int:
    """HJ 212-2017 CRC of ``data`` (the data segment only), table-driven."""
    reg = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        reg = table[(reg >> 8) ^ byte]
    return reg


def encode_frame(data_segment: str) -> str:
    """Wrap a data segment into a full frame with length, CRC and CRLF."""
    raw = data_segment.encode("ascii")
    if len(raw) > MAX_DATA_LEN:
        raise HJ212Error("too_long", f"data segment of {len(raw)} bytes exceeds {MAX_DATA_LEN}")
    return f"{HEADER}{len(raw):04d}{data_segment}{crc16(raw):04X}\r\n"


def format_qn(t: datetime) -> str:
    """QN request number: local time to the millisecond, YYYYMMDDhhmmsszzz."""
    return t.strftime("%Y%m%d%H%M%S") + f"{t.microsecond // 1000:03d}"


def build_data_frame(
    *,
    mn: str,
    data_time_local: datetime,
    values: dict[str, float | int],
    cn: str = CN_MINUTE,
    st: str = "22",
    pw: str = "123456",
    flags: dict[str, str] | None = None,
    qn_time_local: datetime | None = None,
) -> str:
    """Build an upload frame (CN 2011/2051/2061/2031) for ``values`` keyed by factor code.

    ``data_time_local`` is the monitor's local clock (HJ 212 ``DataTime``, YYYYMMDDhhmmss).
    """
    kind = DATA_CNS.get(cn)
    if kind is None:
        raise HJ212Error("bad_cn", f"CN {cn} is not a data upload command")
    flags = flags or {}
    parts = [f"DataTime={data_time_local.strftime('%Y%m%d%H%M%S')}"]
    for code, value in values.items():
        parts.append(f"{code}-{kind}={_fmt(value)},{code}-Flag={flags.get(code, 'N')}")
    cp = ";".join(parts)
    qn = format_qn(qn_time_local or data_time_local)
    seg = f"QN={qn};ST={st};CN={cn};PW={pw};MN={mn};Flag=5;CP=&&{cp}&&"
    return encode_frame(seg)


def _fmt(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "NaN"


@dataclass(slots=True)
class Frame:
    """A parsed, CRC-checked frame."""

    qn: str
    st: str
    cn: str
    pw: str
    mn: str
    flag: str
    cp: dict[str, str] = field(default_factory=dict)  # plain CP keys, e.g. DataTime
    factors: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> {"Rtd": "1.2", "Flag": "N"}
    raw: str = ""
    #: Sub-packet number and count (HJ 212 ``PNO``/``PNUM``); 0 when the frame is not split.
    pno: int = 0
    pnum: int = 0
    #: The CRC variant that admitted the frame ("" = the HJ 212 CRC).
    crc_variant: str = ""

    @property
    def data_time(self) -> str | None:
        return self.cp.get("DataTime")


def split_frames(text: str) -> list[str]:
    """Split a payload holding one or more frames (CRLF-terminated or back to back) into frames."""
    out: list[str] = []
    pos = text.find(HEADER)
    if pos < 0:
        return [text] if text.strip() else []
    if text[:pos].strip():
        out.append(text[:pos])  # junk before the first header: reported as its own bad frame
    while pos >= 0:
        nxt = text.find(HEADER, pos + 2)
        # A "##" inside a data segment is not legal, so the next header starts the next frame.
        chunk = text[pos:nxt] if nxt >= 0 else text[pos:]
        body = chunk.rstrip("\r\n\t ")
        if chunk[len(body) :].startswith("\r\n"):
            chunk = body + "\r\n"  # extra blank lines between frames are not part of a frame
        out.append(chunk)
        pos = nxt
    return [c for c in out if c.strip()]


def parse_frame(frame: str, *, qn_optional: bool = False, crc_variants: tuple[str, ...] = ()) -> Frame:
    """Validate header, length and CRC of one frame and parse its data segment.

    ``qn_optional``: admit frames without ``QN`` (HJ 212-2005 style). ``crc_variants``: names in
    :data:`CRC_VARIANTS` admitted besides the HJ 212 CRC (the frame records which one matched).

    Raises :class:`HJ212Error` with a reason code: ``no_header``, ``bad_length``, ``length_mismatch``,
    ``truncated``, ``bad_crc``, ``no_crlf``, ``bad_segment``, ``missing_field``, ``bad_subpacket``.
    """
    if not frame.startswith(HEADER):
        raise HJ212Error("no_header", "frame does not start with '##'")
    body = frame[2:]
    if body.endswith("\r\n"):
        body = body[:-2]
    elif body.endswith("\n"):
        raise HJ212Error("no_crlf", "frame ends with LF, HJ 212 needs CRLF")
    len_field = body[:4]
    # isascii: str.isdigit() also accepts digits like '\u00b2' that int() then refuses with a plain ValueError.
    if len(len_field) < 4 or not (len_field.isascii() and len_field.isdigit()):
        raise HJ212Error("bad_length", f"length field {len_field!r} is not 4 decimal digits")
    declared = int(len_field)
    rest = body[4:]
    try:
        rest_bytes = rest.encode("ascii")
    except UnicodeEncodeError as exc:
        raise HJ212Error("bad_segment", "non-ASCII characters in frame") from exc
    if len(rest_bytes) < declared + 4:
        raise HJ212Error(
            "truncated", f"declared {declared} data bytes + 4 CRC, got {len(rest_bytes)} bytes in all"
        )
    if len(rest_bytes) != declared + 4:
        raise HJ212Error(
            "length_mismatch", f"declared {declared} data bytes, frame carries {len(rest_bytes) - 4}"
        )
    data, crc_text = rest_bytes[:declared], rest_bytes[declared:]
    # Exactly 4 hex digits: int(x, 16) alone would also take " 1C8", "+1C8", "0x1C" or "1_C8".
    if not all(c in _HEX_DIGITS for c in crc_text):
        raise HJ212Error("bad_crc", f"CRC field {crc_text!r} is not 4 hex digits")
    crc_given = int(crc_text, 16)
    crc_calc = crc16(data)
    variant = ""
    if crc_given != crc_calc:
        variant = next((v for v in crc_variants if CRC_VARIANTS[v](data) == crc_given), "")
        if not variant:
            raise HJ212Error("bad_crc", f"CRC {crc_text.decode()} given, {crc_calc:04X} computed")
    parsed = parse_segment(data.decode("ascii"), raw=frame, qn_optional=qn_optional)
    parsed.crc_variant = variant
    return parsed


def parse_segment(segment: str, raw: str = "", *, qn_optional: bool = False) -> Frame:
    """Parse a data segment (already length- and CRC-checked)."""
    cp_at = segment.find("CP=&&")
    if cp_at < 0:
        raise HJ212Error("missing_field", "no CP=&&...&& section")
    head, cp_part = segment[:cp_at], segment[cp_at + 5 :]
    if not cp_part.endswith("&&"):
        raise HJ212Error("bad_segment", "CP section not closed with '&&'")
    cp_body = cp_part[:-2]
    fields: dict[str, str] = {}
    for item in head.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise HJ212Error("bad_segment", f"header item {item[:20]!r} has no '='")
        fields[key] = value
    for key in ("ST", "CN", "MN") if qn_optional else ("QN", "ST", "CN", "MN"):
        if key not in fields:
            raise HJ212Error("missing_field", f"{key} missing")
    pno = pnum = 0
    if "PNUM" in fields or "PNO" in fields:
        try:
            pnum, pno = int(fields.get("PNUM", "")), int(fields.get("PNO", ""))
        except ValueError:
            raise HJ212Error("bad_subpacket", "PNUM/PNO must both be whole numbers") from None
        if not (1 <= pno <= pnum <= 9999):
            raise HJ212Error("bad_subpacket", f"PNO {pno} of PNUM {pnum} is not 1 <= PNO <= PNUM <= 9999")
    cp: dict[str, str] = {}
    factors: dict[str, dict[str, str]] = {}
    for group in cp_body.split(";"):
        if not group:
            continue
        for item in group.split(","):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise HJ212Error("bad_segment", f"CP item {item[:20]!r} has no '='")
            code, dash, kind = key.partition("-")
            if dash:
                factors.setdefault(code, {})[kind] = value
            else:
                cp[key] = value
    return Frame(
        qn=fields.get("QN", ""),
        st=fields["ST"],
        cn=fields["CN"],
        pw=fields.get("PW", ""),
        mn=fields["MN"],
        flag=fields.get("Flag", ""),
        cp=cp,
        factors=factors,
        raw=raw,
        pno=pno,
        pnum=pnum,
    )
