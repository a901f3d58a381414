"""What an owner may upload through the page, and what is kept of it.

Owners are the public: their files are hostile until proven otherwise. So:

- **Photos** (JPEG, PNG, WebP, recognised by their bytes, the declared type must agree) are decoded with
  Pillow, refused above ``[owner] max_image_pixels`` (a decompression bomb) or when they do not decode,
  turned upright (EXIF orientation), scaled down to at most :data:`MAX_SIDE` pixels a side and
  **re-encoded as a new JPEG**. Only the pixels survive: no EXIF (GPS), no comment segments, nothing
  appended after the image, no script hidden in a polyglot. The SHA-256 of the bytes as sent is recorded
  next to the stored image's, so the original can still be matched if the owner keeps it.
- **PDF** documents (an invoice, a cleaning contract) are kept byte for byte, as attachments only: served
  with ``Content-Disposition: attachment`` and a sandboxing CSP, never rendered by fumewatch.
- Anything else (HTML, SVG, GIF, office files, archives, executables) is refused with a one-line reason.

Virus-free by construction rather than by scanning: no file an owner sent is ever shown as sent except a
PDF, which is only offered for download to inspectors.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from alerts.casework import attachments as att

#: Longest side of a stored photo, pixels (a phone photo at 4000 px is ~10x the bytes for no evidence).
MAX_SIDE = 2560
JPEG_QUALITY = 85


class UploadRefused(ValueError):
    """The file is refused: the message is shown to the owner (zh-CN, one line)."""


@dataclass(frozen=True, slots=True)
class Kept:
    """What is stored of one upload."""

    filename: str
    content_type: str
    data: bytes
    sent_sha256: str  # of the bytes as sent
    sent_bytes: int
    reencoded: bool


def accept(filename: str, declared: str, data: bytes, *, max_bytes: int, max_pixels: int) -> Kept:
    """The stored form of one upload, or :class:`UploadRefused`."""
    if not data:
        raise UploadRefused(f"文件 {_short(filename)} 是空的")
    if len(data) > max_bytes:
        raise UploadRefused(f"文件 {_short(filename)} 超过 {max_bytes // (1024 * 1024)} MB 的上限")
    real = att.sniff(data)
    if real is None:
        raise UploadRefused(f"文件 {_short(filename)} 不是 JPEG、PNG、WebP 照片或 PDF 文件，未保存")
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and declared not in ("application/octet-stream", real):
        raise UploadRefused(f"文件 {_short(filename)} 的类型（{declared}）与其内容（{real}）不符，未保存")
    sent = hashlib.sha256(data).hexdigest()
    if real == "application/pdf":
        if b"%%EOF" not in data[-2048:]:
            raise UploadRefused(f"文件 {_short(filename)} 不是完整的 PDF 文件，未保存")
        return Kept(att.safe_name(filename, real), real, data, sent, len(data), False)
    jpeg = _reencode(data, max_pixels, filename)
    name = att.safe_name(filename, "image/jpeg").rsplit(".", 1)[0] + ".jpg"
    return Kept(name, "image/jpeg", jpeg, sent, len(data), True)


def _reencode(data: bytes, max_pixels: int, filename: str) -> bytes:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                w, h = probe.size
                if w * h > max_pixels:
                    raise UploadRefused(f"照片 {_short(filename)} 像素过多（{w}×{h}），请压缩后再上传")
                if probe.format not in ("JPEG", "PNG", "WEBP"):
                    raise UploadRefused(f"照片 {_short(filename)} 的格式不受支持")
                probe.verify()  # structure and checksums (PNG CRCs), without decoding the pixels
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                img = img.convert("RGB")
                img.thumbnail((MAX_SIDE, MAX_SIDE))
                out = io.BytesIO()
                img.save(
                    out, "JPEG", quality=JPEG_QUALITY, optimize=True
                )  # no exif=, no comment: pixels only
                return out.getvalue()
    except UploadRefused:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise UploadRefused(f"照片 {_short(filename)} 无法识别（文件损坏或不是照片），未保存") from exc


def _short(filename: str) -> str:
    name = att.safe_name(filename, "application/octet-stream")
    return f"“{name[:40]}”"
