"""Secrets out of text meant for people: URLs' passwords and tokens, ``password=``-style values.

Used by every log line (:mod:`ingest.logs`) and by ``fumewatch config``. Two kinds of URL:

- infrastructure URLs (``mqtt://``, ``https://``, ``postgresql://``, ...): the host, port and path stay,
  a password becomes ``***`` (``mqtt://user:***@host:1883``), and so does the value of every query
  parameter whose name says secret (``?token=***``, ``&password=***``, ``api_key``, ``sig`` ...);
- any other scheme (apprise notice targets: ``mailtos://user:pw@host``, ``wecombot://KEY``,
  ``tgram://BOT:TOKEN/CHAT``, ``discord://ID/TOKEN``) carries its tokens anywhere in the URL: only the
  scheme and a host that looks like one (a dotted name, ``localhost``, an IP address, or a word shorter
  than ``MIN_TOKEN_CHARS``) stay, the rest is ``***`` (``mailtos://***@smtp.example.com/***``,
  ``wecombot://***``).

Idempotent (masking masked text changes nothing). ``ingest`` may not import ``alerts``; the ledger's
``alerts.ledger.masking`` (which stores only scheme + host) keeps its own stricter rule.
"""

from __future__ import annotations

import re

#: Schemes whose URL keeps host and path: only the password and secret query values are masked.
INFRA_SCHEMES = frozenset(
    {
        "mqtt", "mqtts", "tcp", "ssl", "ws", "wss", "http", "https", "postgres", "postgresql",
        "postgresql+psycopg", "postgresql+psycopg2", "sqlite", "file", "influxdb", "redis", "rediss", "amqp",
        "amqps",
    }
)  # fmt: skip
MASK = "***"
#: A "host" of another scheme shorter than this is shown (``htp://x`` in an error message): apprise keys
#: and tokens are far longer (WeCom keys are UUIDs, DingTalk tokens 64 hex digits, Telegram's ~46).
MIN_TOKEN_CHARS = 8

_URL = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*)://([^\s'\"<>]*)")
_SECRET_NAME = re.compile(r"(?i)pass|pwd|token|secret|key|auth|sig|cred|session")
_QUERY_PAIR = re.compile(r"([^&;=]+)=([^&;]*)")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?$")
_IP4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_SECRET_KV = re.compile(
    r"(?i)\b((?:[a-z_]*(?:password|passwd|pwd|token|secret|api_?key)|authorization)\s*[=:]\s*)"
    r"(?:(?:bearer|basic|token)\s+)?(?!\*\*\*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)


def mask_url(url: str) -> str:
    """One URL with its secrets masked (see the module docstring); text without ``://`` unchanged."""
    m = _URL.fullmatch(url.strip())
    if not m:
        return url
    scheme, rest = m.group(1), m.group(2)
    # the user info ends at the last "@" before the query: a password may hold "/" (unencoded)
    at_pos = re.split(r"[?#]", rest, maxsplit=1)[0].rfind("@")
    userinfo, at = (rest[:at_pos], "@") if at_pos >= 0 else ("", "")
    after = rest[at_pos + 1 :]
    cut = re.search(r"[/?#]", after)
    hostport, tail = (after[: cut.start()], after[cut.start() :]) if cut else (after, "")
    netloc = f"{userinfo}{at}{hostport}"
    if scheme.lower() in INFRA_SCHEMES:
        if at and "[" not in userinfo:  # not the "[user:pass@]host" of a usage text
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{hostport}" if colon else netloc
        return f"{scheme}://{netloc}{_mask_query(tail)}"
    # another scheme (apprise): tokens may sit in the user info, the "host" and the path
    hp = _HOST_PORT.match(hostport)
    shown = hp and (_looks_like_host(hp.group(1)) or hostport == MASK or len(hostport) < MIN_TOKEN_CHARS)
    host = hostport if shown else MASK
    if not hostport:
        host = ""
    out = f"{scheme}://{MASK + '@' if at else ''}{host}"
    path = re.split(r"[?#]", tail, maxsplit=1)[0]
    if path.strip("/"):
        out += f"/{MASK}"
    return out


def mask_text(text: str) -> str:
    """Every URL in ``text`` masked, and ``password=...`` / ``token: ...`` style values."""
    out = _URL.sub(lambda m: mask_url(m.group(0)), text)
    return _SECRET_KV.sub(lambda m: m.group(1) + MASK, out)


def mask_tree(value):
    """``mask_text`` over every string inside dicts/lists (a settings dump); other values unchanged."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_tree(v) for v in value]
    return value


def _mask_query(tail: str) -> str:
    path, q, query = tail.partition("?")
    if not q:
        return tail
    query, hash_, frag = query.partition("#")
    query = _QUERY_PAIR.sub(
        lambda m: f"{m.group(1)}={MASK}" if _SECRET_NAME.search(m.group(1)) and m.group(2) else m.group(0),
        query,
    )
    return f"{path}?{query}{hash_}{frag}"


def _looks_like_host(host: str) -> bool:
    if host.startswith("[") or host.lower() == "localhost" or _IP4.match(host):
        return True
    return "." in host and not host.startswith(".") and not host.endswith(".")
