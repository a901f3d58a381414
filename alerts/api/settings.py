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


def parse_tokens(secret: SecretStr) -> list[str]:
    """The configured tokens; raises ValueError (without echoing any token) when none or one too short."""
    tokens = [t.strip() for t in secret.get_secret_value().split(",") if t.strip()]
    if not tokens:
        raise ValueError(
            "no API token: set FUMEWATCH_API_TOKENS (comma-separated) in the environment or .env"
        )
    short = sum(1 for t in tokens if len(t) < MIN_TOKEN_CHARS)
    if short:
        raise ValueError(
            f"{short} API token(s) shorter than {MIN_TOKEN_CHARS} characters in FUMEWATCH_API_TOKENS"
        )
    return tokens
