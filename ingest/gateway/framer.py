"""Frames out of a TCP byte stream: HJ 212 frames split across segments or packed several to one.

A frame is ``"##" + LLLL + data segment + CCCC + "\\r\\n"`` (LLLL: the data segment's length, 4 decimal
digits; ingest/hj212.py). A CRLF is not allowed inside a frame and neither is ``"##"``, so a frame is a
``"##"`` up to the first CRLF after it. :meth:`Framer.feed` takes whatever bytes a read returned and
gives back the pieces complete so far, in order:

- ``frame``: ``"##"`` up to its CRLF. Whether its length field, CRC and fields are right is the
  pipeline's business (ingest/pipeline_hj212.py), which refuses a wrong one with a dead letter;
- ``garbage``: bytes before a ``"##"``; a ``"##"`` whose length field is not 4 digits; a ``"##"``
  followed by another ``"##"`` before any CRLF (a frame that never ended);
- ``oversize``: a frame whose length field says it would pass ``max_frame_bytes``, or ``max_frame_bytes``
  bytes without a CRLF: skipped up to its CRLF or the next ``"##"``.

The buffer never holds more than ``max_frame_bytes``, so garbage never grows it without bound. A piece
carries at most :data:`EXCERPT` bytes of what was dropped (for its dead letter) and how many bytes it was.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER = b"##"
CRLF = b"\r\n"
#: Bytes of a dropped piece kept for its dead letter.
EXCERPT = 512
#: The largest frame HJ 212 allows: "##", 4 digits, 9999 bytes of data segment, 4 hex digits, CRLF.
MAX_FRAME_BYTES = 2 + 4 + 9999 + 4 + 2


@dataclass(frozen=True, slots=True)
class Piece:
    kind: str  # "frame" | "garbage" | "oversize"
    data: bytes  # the frame, or an excerpt of what was dropped
    size: int  # bytes it stands for


class Framer:
    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._skip: tuple[bytes, int] | None = None  # skipping an oversize frame: (excerpt, bytes so far)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Piece]:
        buf = self._buf
        buf += data
        out: list[Piece] = []
        while buf:
            if self._skip is not None:
                if not self._skipping(out):
                    break
                continue
            start = buf.find(HEADER)
            if start != 0:
                # garbage up to the next "##" (or all of it, but a trailing "#" may begin one)
                cut = start if start > 0 else (len(buf) - 1 if buf.endswith(b"#") else len(buf))
                if cut == 0:
                    break
                out.append(self._drop("garbage", cut))
                continue
            if len(buf) < 6:
                break
            digits = bytes(buf[2:6])
            if not digits.isdigit():
                out.append(self._drop("garbage", 1))  # one byte: "###0099..." still holds a frame
                continue
            if 6 + int(digits) + 6 > self.max_frame_bytes:
                self._skip = (bytes(buf[:EXCERPT]), 0)
                continue
            end, nxt = buf.find(CRLF, 6), buf.find(HEADER, 2)
            if nxt >= 0 and (end < 0 or nxt < end):
                out.append(self._drop("garbage", nxt))  # a "##" came before this one's CRLF
            elif end >= 0:
                out.append(Piece("frame", bytes(buf[: end + 2]), end + 2))
                del buf[: end + 2]
            elif len(buf) >= self.max_frame_bytes:
                self._skip = (bytes(buf[:EXCERPT]), 0)
            else:
                break  # wait for the rest
        return out

    def _skipping(self, out: list[Piece]) -> bool:
        """Skip an oversize frame up to its CRLF or the next "##"; True once it is over."""
        assert self._skip is not None
        buf = self._buf
        excerpt, n = self._skip
        end, nxt = buf.find(CRLF), buf.find(HEADER, 2 if n == 0 else 0)
        cuts = [c for c in (end + 2 if end >= 0 else -1, nxt) if c >= 0]
        if not cuts:
            keep = 1 if buf.endswith(b"#") or buf.endswith(b"\r") else 0
            self._skip = (excerpt, n + len(buf) - keep)
            del buf[: len(buf) - keep]
            return False
        cut = min(cuts)
        out.append(Piece("oversize", excerpt, n + cut))
        del buf[:cut]
        self._skip = None
        return True

    def _drop(self, kind: str, n: int) -> Piece:
        piece = Piece(kind, bytes(self._buf[: min(n, EXCERPT)]), n)
        del self._buf[:n]
        return piece

    def flush(self) -> list[Piece]:
        """What is left when the connection ends: an unfinished frame, as garbage (or oversize)."""
        if self._skip is not None:
            excerpt, n = self._skip
            self._skip = None
            n += len(self._buf)
            self._buf.clear()
            return [Piece("oversize", excerpt, n)]
        if not self._buf:
            return []
        return [self._drop("garbage", len(self._buf))]
