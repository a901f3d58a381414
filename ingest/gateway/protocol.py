"""What the gateway answers a data logger (HJ 212-2017, checked against the standard's text in
docs/protocol.md, "HJ 212 over TCP"):

- the data response (数据应答, CN=9014, ST=91): for an upload whose Flag asks for an answer (the A bit,
  bit 0 of Flag = V5..V0 D A), with the same QN, PW and MN and an empty CP, once the frame is durably
  accepted (acknowledged by the broker); to an HJ/T 212-2005 sender (version bits 000000) in the 2005
  form, the request's QN and CN inside CP;
- the set-time command (设置现场机时间, CN=1012) in answer to the data logger's time-calibration request
  (现场机时间校准请求, CN=1013): CP ``SystemTime=YYYYMMDDhhmmss`` in the loggers' zone (``[hj212]
  timezone``), its own QN (the platform's time to the millisecond), Flag=5 (the logger answers 9011/9012).
"""

from __future__ import annotations

from datetime import datetime

from ingest.hj212 import Frame, encode_frame, format_qn

CN_DATA_RESPONSE = "9014"
CN_SET_TIME = "1012"
CN_TIME_REQUEST = "1013"
ST_SYSTEM = "91"


def wants_answer(frame: Frame) -> bool:
    """The A bit of Flag: the sender asks for an answer."""
    return frame.flag.isdigit() and int(frame.flag) & 1 == 1


def is_response(frame: Frame) -> bool:
    """9xxx: a response (9011 request response, 9012 result, 9013 notice response, 9014 data response)."""
    return frame.cn.startswith("9")


def is_2005(frame: Frame) -> bool:
    """Flag's version bits (V5..V0) 000000: an HJ/T 212-2005 sender."""
    return not frame.flag.isdigit() or int(frame.flag) >> 2 == 0


def data_response(frame: Frame) -> bytes:
    """9014 for ``frame``: HJ 212-2017 form (the request's QN in the header, CP empty), or for a 2005
    sender the 2005 form (the request's QN and CN inside CP)."""
    if is_2005(frame):
        seg = (
            f"ST={ST_SYSTEM};CN={CN_DATA_RESPONSE};PW={frame.pw};MN={frame.mn};Flag=0;"
            f"CP=&&QN={frame.qn};CN={frame.cn}&&"
        )
    else:
        seg = f"QN={frame.qn};ST={ST_SYSTEM};CN={CN_DATA_RESPONSE};PW={frame.pw};MN={frame.mn};Flag=4;CP=&&&&"
    return encode_frame(seg).encode("ascii")


def set_time(frame: Frame, now_local: datetime) -> bytes:
    seg = (
        f"QN={format_qn(now_local)};ST={frame.st};CN={CN_SET_TIME};PW={frame.pw};MN={frame.mn};Flag=5;"
        f"CP=&&SystemTime={now_local:%Y%m%d%H%M%S}&&"
    )
    return encode_frame(seg).encode("ascii")
