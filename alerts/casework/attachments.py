"""What a case attachment may be: photos (JPEG, PNG, WebP) and PDF documents, recognised by their bytes.

The declared content type is not trusted: the file's first bytes must say the same. The size limit is
``[api] max_attachment_bytes`` (10 MiB by default); filenames are reduced to a safe base name.
"""

from __future__ import annotations

import re
import unicodedata

from alerts.casework.lifecycle import BadFields

#: content type -> what its first bytes look like
TYPES = {
    "image/jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
    "image/png": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
    "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "application/pdf": lambda b: b[:5] == b"%PDF-",
}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


def sniff(data: bytes) -> str | None:
    """The content type ``data`` really is (of :data:`TYPES`), or None."""
    return next((t for t, looks in TYPES.items() if looks(data)), None)


def check(filename: str, declared: str, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, str]:
    """(safe filename, content type) of an upload, or :class:`BadFields` with a one-line reason."""
    if not data:
        raise BadFields("attachment is empty")
    if len(data) > max_bytes:
        raise BadFields(f"attachment is {len(data)} bytes; the limit is {max_bytes}")
    real = sniff(data)
    if real is None:
        raise BadFields(f"attachment is not a JPEG, PNG, WebP or PDF file (declared {declared or 'nothing'})")
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and declared not in ("application/octet-stream", real):
        raise BadFields(f"attachment declared {declared} but its content is {real}")
    return safe_name(filename, real), real


def safe_name(filename: str, content_type: str) -> str:
    """A base name without paths or control characters, at most 120 characters, keeping CJK letters."""
    name = unicodedata.normalize("NFC", (filename or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = re.sub(r"[\x00-\x1f\x7f<>:\"|?*]", "_", name).strip(" .")
    if not name:
        name = "attachment." + content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
    return name[-120:]
