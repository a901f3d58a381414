"""Secrets never reach the state database: notice targets reduced to scheme + host, error texts scrubbed."""

from __future__ import annotations

import re

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?$")
_DUP_SUFFIX = re.compile(r"#\d+$")
_SECRET_KV = re.compile(r"(?i)((?:password|passwd|pass|pwd|token|secret|key|authorization)=)[^&\s]+")


def mask_target(target: str) -> str:
    """Reduce an apprise URL to what may be stored: scheme + host (+ port); user info becomes ``***``.

    ``mailto://user:pw@example.com?to=x@y.z`` -> ``mailto://***@example.com``;
    ``json://127.0.0.1:8080/hook?token=abc`` -> ``json://127.0.0.1:8080``. Many apprise schemes carry a
    token where a host would be (``dingtalk://TOKEN``, ``wecombot://KEY``, ``tgram://BOT:TOKEN/CHAT``):
    a "host" is kept only when it looks like a DNS name (has a dot), ``localhost`` or an IP address,
    otherwise it is shown as ``***`` too. A trailing ``#<n>`` (the notifier's marker that tells apart two
    targets which mask alike) is kept. Strings without ``://`` (labels such as ``mqtt:fume/v1/alerts/R1``
    or ``owner:none``) are stored as they are. Idempotent: masking a masked target changes nothing.
    """
    text = target.strip()
    if "://" not in text:
        return text
    dup = ""
    m = _DUP_SUFFIX.search(text)
    if m:
        dup = m.group(0)
        text = text[: m.start()]
    scheme, _, rest = text.partition("://")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, hostport = netloc.rpartition("@")
    masked_user = "***@" if at and userinfo else ""
    hp = _HOST_PORT.match(hostport)
    if hp and _looks_like_host(hp.group("host")):
        host = hp.group("host") + (f":{hp.group('port')}" if hp.group("port") else "")
    elif hostport:
        host = "***"
    else:
        host = ""
    if masked_user and host == "***":
        masked_user = ""
    return f"{scheme.lower()}://{masked_user}{host}{dup}"


def _looks_like_host(host: str) -> bool:
    if host.startswith("["):
        return True
    if host.lower() == "localhost":
        return True
    return "." in host and not host.startswith(".") and not host.endswith(".")


def scrub(text: str, limit: int = 500) -> str:
    """Mask every URL and ``password=``/``token=``-style value in a free text (error messages)."""
    out = _URL_IN_TEXT.sub(lambda m: mask_target(m.group(0)), text)
    out = _SECRET_KV.sub(r"\1***", out)
    return out if len(out) <= limit else out[: limit - 1] + "…"
