"""The ``[api]`` settings section and the bearer tokens it accepts (from the environment only)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

#: Shortest token accepted (characters). Make one with:
#: ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
MIN_TOKEN_CHARS = 16


class ApiSettings(BaseModel):
    """The ``[api]`` settings section (environment: ``FUMEWATCH_API_<KEY>``)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Bearer tokens, comma-separated: ONLY from the environment (FUMEWATCH_API_TOKENS) or .env, never TOML.
    tokens: SecretStr = SecretStr("")
    auth_fail_limit: int = Field(10, ge=1)
    auth_fail_window_s: float = Field(60.0, gt=0)
    max_period_days: float = Field(400.0, gt=0)
    max_concurrent_reports: int = Field(2, ge=1)
    forwarded_allow_ips: str = ""
    access_log: bool = True
    # Case attachments (photos, documents): the largest accepted upload.
    max_attachment_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # The console's session cookie lives this long (then sign in again).
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    # Set the cookie's Secure flag (serve the console over HTTPS, or behind a TLS proxy). Off only for
    # plain-HTTP use on localhost.
    secure_cookies: bool = False


class InspectorSettings(BaseModel):
    """``FUMEWATCH_INSPECTOR_TOKENS``: ``name:token`` pairs, comma-separated, environment only. An
    inspector token may read and act on cases; the name is recorded in the case's audit trail."""

    tokens: SecretStr = SecretStr("")


def parse_inspectors(secret: SecretStr) -> dict[str, str]:
    """token -> inspector name; ValueError (never echoing a token) on a malformed pair."""
    out: dict[str, str] = {}
    names: set[str] = set()
    for i, pair in enumerate(p.strip() for p in secret.get_secret_value().split(",")):
        if not pair:
            continue
        name, sep, token = pair.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token:
            raise ValueError(f"FUMEWATCH_INSPECTOR_TOKENS entry {i + 1} is not name:token")
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"FUMEWATCH_INSPECTOR_TOKENS: the token of {name!r} is shorter than {MIN_TOKEN_CHARS} characters"
            )
        if name in names:
            raise ValueError(f"FUMEWATCH_INSPECTOR_TOKENS: {name!r} appears twice")
        if token in out:
            raise ValueError("FUMEWATCH_INSPECTOR_TOKENS: two inspectors share one token")
        names.add(name)
        out[token] = name
    return out


def parse_tokens(secret: SecretStr, *, required: bool = True) -> list[str]:
    """The configured tokens; raises ValueError (without echoing any token) when one is too short, or
    when there are none and ``required``."""
    tokens = [t.strip() for t in secret.get_secret_value().split(",") if t.strip()]
    if not tokens and required:
        raise ValueError(
            "no API token: set FUMEWATCH_API_TOKENS (comma-separated) in the environment or .env"
        )
    short = sum(1 for t in tokens if len(t) < MIN_TOKEN_CHARS)
    if short:
        raise ValueError(
            f"{short} API token(s) shorter than {MIN_TOKEN_CHARS} characters in FUMEWATCH_API_TOKENS"
        )
    return tokens
