"""HJ 212 messages -> Readings and DeadLetters: the half of :class:`ingest.pipeline.Pipeline` that splits a
message into frames, parses each under its device's dialect (ingest/dialects), holds sub-packets until
their set is complete (ingest/subpackets.py), and keeps garbage full of ``##`` to one dead letter."""

from __future__ import annotations

from datetime import datetime

from ingest import hj212
from ingest.config import Settings
from ingest.dialects import DEFAULT_DIALECT, Dialect, DialectError, load_dialects
from ingest.dialects.decode import decode
from ingest.model import DeadLetter, Outcome, Reading
from ingest.registry import Device, Registry
from ingest.subpackets import SubpacketAssembler
from ingest.timeutil import zone
from ingest.untrusted import Reject

#: More refused frames than this in one message are one dead letter (Pipeline._fragments).
MAX_FRAME_LETTERS = 10


class HJ212Frames:
    """Mixin of :class:`ingest.pipeline.Pipeline` (which calls :meth:`_init_hj212` and provides ``_dead``
    and ``_reading``)."""

    def _init_hj212(self, settings: Settings, registry: Registry) -> None:
        h = settings.hj212
        self._tz = zone(h.timezone)
        self.dialects = load_dialects(h.dialects_dir or None)
        self._site = (dict(h.factors), dict(h.scale))
        self._compiled: dict[str, Dialect] = {}
        unknown = sorted(
            {(d.dialect, d.device_id) for d in registry if d.dialect and d.dialect not in self.dialects}
        )
        if unknown:
            names = ", ".join(f"{dev} ({name!r})" for name, dev in unknown[:10])
            raise DialectError(
                f"registry names unknown dialect(s) for {len(unknown)} device(s): {names}; known: "
                f"{', '.join(self.dialects.names())} (fumewatch dialects lists them; add yours to "
                "[hj212] dialects_dir)"
            )
        self._subpackets = SubpacketAssembler(int(h.subpacket_timeout_s * 1000))

    def dialect_of(self, device: Device) -> Dialect:
        """The device's dialect with the site-wide ``[hj212.factors]`` on top (compiled once per name)."""
        name = device.dialect or DEFAULT_DIALECT
        d = self._compiled.get(name)
        if d is None:
            d = self._compiled[name] = self.dialects.get(name).with_site_factors(*self._site)
        return d

    def _handle_hj212(
        self, device: Device, topic: str, payload: bytes, received_ms: int, out: Outcome
    ) -> None:
        # Split before checking the encoding: one frame in GBK (a vendor's Chinese text) is refused alone.
        # Bytes >= 0x80 decode to lone surrogates and encode back to themselves; "##" stays ASCII.
        text = payload.decode("ascii", "surrogateescape")
        frames = hj212.split_frames(text)
        if not frames:
            raise Reject("empty", "no HJ 212 frame in payload")
        dialect = self.dialect_of(device)
        if self.subpackets_due(received_ms):
            self.expire_subpackets(received_ms, out)
        refused: list[tuple[int, str, Reject]] = []
        accepted = 0
        for index, raw in enumerate(frames):
            try:
                if not raw.isascii():
                    raise Reject("bad_encoding", "HJ 212 frames must be ASCII")
                try:
                    frame = hj212.parse_frame(
                        raw, qn_optional=dialect.qn_optional, crc_variants=dialect.crc_variants
                    )
                except hj212.HJ212Error as e:
                    raise Reject(f"hj212_{e.reason}", e.message) from None
                if frame.mn != device.device_id:
                    raise Reject(
                        "mn_mismatch", f"MN {frame.mn[:64]!r} differs from topic device {device.device_id!r}"
                    )
                if device.hj212_pw and frame.pw != device.hj212_pw:
                    raise Reject("bad_pw", "PW does not match the registry's access password")
                if frame.crc_variant:
                    out.notes.append((device.device_id, "crc_variant", frame.crc_variant))
                kind = hj212.DATA_CNS.get(frame.cn)
                if kind is None or frame.cn == hj212.CN_DAILY:
                    out.ignored += 1  # other commands: acknowledged, not stored
                    accepted += 1
                    continue
                if frame.pnum > 1:
                    merged = self._subpacket(device, topic, frame, received_ms, out)
                    accepted += 1
                    if merged is None:
                        continue
                    frame = merged
                out.readings.append(self._frame_reading(device, dialect, frame, received_ms, out))
                accepted += 1
            except Reject as r:
                refused.append((index, raw, r))
        broken = [x for x in refused if x[2].reason.startswith("hj212_") or x[2].reason == "bad_encoding"]
        if len(broken) > MAX_FRAME_LETTERS or (
            len(broken) > 1 and len(broken) == len(refused) and not accepted
        ):
            # garbage full of "##" (fragments that are no frame, none good): one dead letter, counted;
            # well-formed frames refused for their content keep their own
            out.dead.append(
                self._fragments(topic, payload, received_ms, device.device_id, len(frames), broken)
            )
            refused = [x for x in refused if x not in broken]
        for index, raw, r in refused:  # the rest: each its own dead letter (per-item verdict)
            b = raw.encode("ascii", "surrogateescape")
            out.dead.append(self._dead(topic, b, received_ms, r, device_id=device.device_id, index=index))

    def _frame_reading(
        self, device: Device, dialect: Dialect, frame: hj212.Frame, received_ms: int, out: Outcome
    ) -> Reading:
        time_ms = self._hj212_time(frame.data_time)
        d = decode(frame, dialect, device)
        reading = self._reading(device, time_ms, d.values, d.switches, received_ms, "hj212")
        reading.interval_s = 3600 if frame.cn == hj212.CN_HOURLY else 0
        reading.flags = d.flags or None
        reading.extra = d.extra or None
        reading.excluded = d.excluded
        reading.qn = frame.qn or ""
        for code in d.unknown:
            out.notes.append((device.device_id, "unknown_code", code[:64]))
        return reading

    def _subpacket(
        self, device: Device, topic: str, frame: hj212.Frame, received_ms: int, out: Outcome
    ) -> hj212.Frame | None:
        """Hold a sub-packet; the merged frame once its set is complete (ingest.subpackets)."""
        merged, what, evicted = self._subpackets.add(device.device_id, topic, frame, received_ms)
        for e in evicted:
            out.dead.append(self._expired_dead(e, received_ms))
        if what == "mismatch":
            raise Reject(
                "hj212_bad_subpacket", f"PNUM {frame.pnum} differs from the held parts of QN {frame.qn!r}"
            )
        out.notes.append((device.device_id, f"subpacket_{what}", self._subpackets.key(frame)[:64]))
        return merged

    def subpackets_due(self, now_ms: int) -> bool:
        """Whether held sub-packets have waited past the timeout (the service's timer asks)."""
        oldest = self._subpackets.oldest_ms()
        return oldest is not None and now_ms - oldest > self._subpackets.timeout_ms

    def subpackets_held(self) -> int:
        return len(self._subpackets)

    def expire_subpackets(self, now_ms: int, out: Outcome | None = None, *, drain: bool = False) -> Outcome:
        """Dead letters for sub-packets held longer than ``[hj212] subpacket_timeout_s`` (every held one
        with ``drain``, at shutdown)."""
        out = out if out is not None else Outcome()
        expired = self._subpackets.drain(now_ms) if drain else self._subpackets.expire(now_ms)
        for e in expired:
            out.dead.append(self._expired_dead(e, now_ms))
        return out

    def _expired_dead(self, e, now_ms: int) -> DeadLetter:
        what = {
            "hj212_subpacket_expired": f"waited {e.age_ms / 1000:.0f} s",
            "hj212_subpacket_overflow": "too many sub-packet sets held",
            "hj212_subpacket_shutdown": "the service stopped",
        }[e.reason]
        lone = "lone sub-packet" if len(e.received) == 1 else "incomplete sub-packets"
        r = Reject(e.reason, f"{lone}: {len(e.received)} of {e.pnum} parts of {e.key!r} received, {what}")
        payload = e.raw.encode("ascii", "surrogateescape")
        return self._dead(
            e.topic, payload, now_ms, r, device_id=e.device_id, qn=e.key, pnum=e.pnum, received=e.received
        )

    def _fragments(
        self, topic: str, payload: bytes, received_ms: int, device_id: str, n: int, refused: list
    ) -> DeadLetter:
        """One dead letter for the broken fragments of one message: their reason when they share one
        (else ``hj212_fragments``), how many of how many, by reason, and the first ones' positions."""
        by_reason: dict[str, int] = {}
        for _, _, r in refused:
            by_reason[r.reason] = by_reason.get(r.reason, 0) + 1
        reason = next(iter(by_reason)) if len(by_reason) == 1 else "hj212_fragments"
        first = refused[0][2]
        message = (
            f"{len(refused)} of {n} frames refused ({', '.join(f'{k} {v}' for k, v in by_reason.items())})"
        )
        return self._dead(
            topic,
            payload,
            received_ms,
            Reject(reason, f"{message}; first: {first.message}"),
            device_id=device_id,
            fragments=n,
            refused=len(refused),
            by_reason=by_reason,
            indexes=[i for i, _, _ in refused[:20]],
        )

    def _hj212_time(self, text: str | None) -> int:
        if not text:
            raise Reject("missing_ts", "CP has no DataTime")
        try:
            # strptime alone takes 1-digit fields: "1778299200" (epoch seconds) would read as year 1778.
            if not (len(text) >= 14 and text[:14].isascii() and text[:14].isdigit()):
                raise ValueError(text)
            dt = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=self._tz)
        except ValueError:
            raise Reject("bad_ts", f"DataTime {text[:20]!r} is not YYYYMMDDhhmmss") from None
        return int(dt.timestamp() * 1000)

    # ---------------------------------------------------------------- validation + enrichment
