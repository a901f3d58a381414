"""HJ 212 sub-packets (``PNUM``/``PNO``): a data upload too long for one frame is split, each part a frame
of its own with the same ``QN``. The parts are held, in memory, until all ``PNUM`` have arrived; then they
are one frame (their CP factors merged in PNO order) and become one reading.

A part that waits longer than ``[hj212] subpacket_timeout_s`` (a lone part, or a set whose other parts were
lost) becomes a dead letter ``hj212_subpacket_expired`` holding every part received, so nothing vanishes.
Held parts are bounded (:data:`MAX_HELD` sets; the oldest is expired early, reason
``hj212_subpacket_overflow``) and the service turns what is still held at shutdown into dead letters
(``hj212_subpacket_shutdown``). Not covered: a crash (kill -9) while parts are held loses them, because
their MQTT messages were already acknowledged; docs/protocol.md says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ingest.hj212 import Frame

#: Most sets of sub-packets held at once (all devices); a device sending parts that never complete cannot
#: grow memory without bound.
MAX_HELD = 10_000


@dataclass(slots=True)
class _Held:
    first_ms: int
    topic: str
    pnum: int
    parts: dict[int, Frame] = field(default_factory=dict)


@dataclass(slots=True)
class Expired:
    """A set of sub-packets given up: which device, topic, the raw frames and why."""

    device_id: str
    topic: str
    key: str
    reason: str
    pnum: int
    received: list[int]
    raw: str
    age_ms: int


class SubpacketAssembler:
    """Parts by (device, QN); :meth:`add` returns the merged frame once complete, else None."""

    def __init__(self, timeout_ms: int, max_held: int = MAX_HELD) -> None:
        self.timeout_ms = timeout_ms
        self.max_held = max_held
        self._held: dict[tuple[str, str], _Held] = {}  # insertion order = arrival order of first parts
        # add() runs on the MQTT thread, expire() on the service's flush timer
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    @staticmethod
    def key(frame: Frame) -> str:
        # HJ 212-2005 frames may have no QN: the command and DataTime identify the upload instead.
        return frame.qn or f"{frame.cn}@{frame.data_time or ''}"

    def add(
        self, device_id: str, topic: str, frame: Frame, received_ms: int
    ) -> tuple[Frame | None, str, list[Expired]]:
        """(merged frame or None, what happened: ``held`` | ``done`` | ``duplicate`` | ``mismatch``,
        sets expired early to make room)."""
        with self._lock:
            return self._add(device_id, topic, frame, received_ms)

    def _add(
        self, device_id: str, topic: str, frame: Frame, received_ms: int
    ) -> tuple[Frame | None, str, list[Expired]]:
        k = (device_id, self.key(frame))
        held = self._held.get(k)
        evicted: list[Expired] = []
        if held is None:
            if len(self._held) >= self.max_held:
                oldest = next(iter(self._held))
                evicted.append(self._expire(oldest, received_ms, "hj212_subpacket_overflow"))
            held = self._held[k] = _Held(received_ms, topic, frame.pnum)
        elif held.pnum != frame.pnum:
            return None, "mismatch", evicted
        if frame.pno in held.parts:
            return None, "duplicate", evicted  # a redelivered part: already held
        held.parts[frame.pno] = frame
        if len(held.parts) < held.pnum:
            return None, "held", evicted
        del self._held[k]
        return _merge([held.parts[i] for i in sorted(held.parts)]), "done", evicted

    def expire(self, now_ms: int) -> list[Expired]:
        """Sets whose first part arrived more than the timeout before ``now_ms``."""
        with self._lock:
            old = [k for k, h in self._held.items() if now_ms - h.first_ms > self.timeout_ms]
            return [self._expire(k, now_ms, "hj212_subpacket_expired") for k in old]

    def drain(self, now_ms: int) -> list[Expired]:
        """Everything still held (service shutdown)."""
        with self._lock:
            return [self._expire(k, now_ms, "hj212_subpacket_shutdown") for k in list(self._held)]

    def oldest_ms(self) -> int | None:
        with self._lock:
            return next(iter(self._held.values())).first_ms if self._held else None

    def _expire(self, k: tuple[str, str], now_ms: int, reason: str) -> Expired:
        h = self._held.pop(k)
        parts = sorted(h.parts)
        return Expired(
            device_id=k[0],
            topic=h.topic,
            key=k[1],
            reason=reason,
            pnum=h.pnum,
            received=parts,
            raw="".join(h.parts[i].raw for i in parts),
            age_ms=now_ms - h.first_ms,
        )


def _merge(parts: list[Frame]) -> Frame:
    first = parts[0]
    cp: dict[str, str] = {}
    factors: dict[str, dict[str, str]] = {}
    for p in parts:
        cp.update(p.cp)
        for code, kinds in p.factors.items():
            factors.setdefault(code, {}).update(kinds)
    return Frame(
        qn=first.qn,
        st=first.st,
        cn=first.cn,
        pw=first.pw,
        mn=first.mn,
        flag=first.flag,
        cp=cp,
        factors=factors,
        raw="".join(p.raw for p in parts),
        crc_variant=next((p.crc_variant for p in parts if p.crc_variant), ""),
    )
