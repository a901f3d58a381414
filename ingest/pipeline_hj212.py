"""HJ 212 messages -> Readings and DeadLetters: the half of :class:`ingest.pipeline.Pipeline` that splits a
message into frames, judges each frame, and keeps garbage full of ``##`` to one dead letter."""

from __future__ import annotations

from datetime import datetime

from ingest import hj212
from ingest.model import DeadLetter, Outcome
from ingest.registry import Device
from ingest.untrusted import Reject

_NUMERIC = ("oil_fume", "pm", "nmhc", "flow")
_SWITCH = ("fan", "purifier")

#: More refused frames than this in one message are one dead letter (Pipeline._fragments).
MAX_FRAME_LETTERS = 10


class HJ212Frames:
    """Mixin of :class:`ingest.pipeline.Pipeline` (which sets ``_factors``, ``_scale``, ``_tz`` and
    provides ``_dead`` and ``_reading``)."""

    def _handle_hj212(
        self, device: Device, topic: str, payload: bytes, received_ms: int, out: Outcome
    ) -> None:
        # Split before checking the encoding: one frame in GBK (a vendor's Chinese text) is refused alone.
        # Bytes >= 0x80 decode to lone surrogates and encode back to themselves; "##" stays ASCII.
        text = payload.decode("ascii", "surrogateescape")
        frames = hj212.split_frames(text)
        if not frames:
            raise Reject("empty", "no HJ 212 frame in payload")
        refused: list[tuple[int, str, Reject]] = []
        accepted_before = len(out.readings) + out.ignored
        for index, raw in enumerate(frames):
            try:
                if not raw.isascii():
                    raise Reject("bad_encoding", "HJ 212 frames must be ASCII")
                try:
                    frame = hj212.parse_frame(raw)
                except hj212.HJ212Error as e:
                    raise Reject(f"hj212_{e.reason}", e.message) from None
                if frame.mn != device.device_id:
                    raise Reject(
                        "mn_mismatch", f"MN {frame.mn[:64]!r} differs from topic device {device.device_id!r}"
                    )
                if device.hj212_pw and frame.pw != device.hj212_pw:
                    raise Reject("bad_pw", "PW does not match the registry's access password")
                kind = hj212.DATA_CNS.get(frame.cn)
                if kind is None or frame.cn == hj212.CN_DAILY:
                    out.ignored += 1  # other commands: acknowledged, not stored
                    continue
                time_ms = self._hj212_time(frame.data_time)
                values: dict[str, object] = {k: None for k in _NUMERIC}
                switches: dict[str, object] = {k: None for k in _SWITCH}
                for code, parts in frame.factors.items():
                    target = self._factors.get(code)
                    if target is None:
                        continue
                    flag = parts.get("Flag", "N")
                    if flag not in hj212.VALID_DATA_FLAGS:
                        meaning = hj212.DATA_FLAG_MEANINGS.get(flag, "unknown flag")
                        if target == "oil_fume":
                            raise Reject("data_flag", f"oil fume value flagged {flag!r} ({meaning})")
                        continue  # that factor is not a valid measurement; keep the others
                    text_value = parts.get(kind)
                    if text_value is None:
                        continue
                    try:
                        value = float(text_value)
                    except ValueError:
                        raise Reject("not_a_number", f"{code}-{kind}={text_value[:20]!r}") from None
                    if code in self._scale:
                        value *= self._scale[code]
                    if target in _SWITCH:
                        switches[target] = value
                    else:
                        values[target] = value
                interval_s = 3600 if frame.cn == hj212.CN_HOURLY else 0
                reading = self._reading(device, time_ms, values, switches, received_ms, "hj212")
                reading.interval_s = interval_s
                out.readings.append(reading)
            except Reject as r:
                refused.append((index, raw, r))
        accepted = len(out.readings) + out.ignored - accepted_before
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
