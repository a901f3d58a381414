"""The ``[owner]`` settings section: the owner's page (issue 15, service before penalty)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator

#: Shortest signing secret accepted (characters). Make one with
#: ``python -c "import secrets; print(secrets.token_urlsafe(48))"``.
MIN_SECRET_CHARS = 32


class OwnerSettings(BaseModel):
    """``[owner]`` (environment: ``FUMEWATCH_OWNER_<KEY>``). Links are issued only when ``public_url`` is
    set; then every process that sends notices or serves the page needs the same
    ``FUMEWATCH_OWNER_LINK_SECRET``."""

    # The page's public address as owners' phones reach it, e.g. "https://fume.example.gov.cn"; the links
    # are <public_url>/o/<token>. "" = notices carry no link (and the page is not served).
    public_url: str = ""
    # How long a link works after the notice that carried it, days.
    link_days: float = Field(30.0, gt=0, le=366)
    # The HMAC signing secret: ONLY from the environment (FUMEWATCH_OWNER_LINK_SECRET) or .env.
    link_secret: SecretStr = Field(SecretStr(""), json_schema_extra={"env_only": True})
    # Uploads through the page: the largest file, files per submission, submissions per link and day.
    max_upload_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024, le=50 * 1024 * 1024)
    max_files: int = Field(6, ge=1, le=20)
    submissions_per_day: int = Field(20, ge=1, le=1000)
    # Images larger than this many pixels are refused (a decompression bomb), before re-encoding.
    max_image_pixels: int = Field(40_000_000, ge=1_000_000)
    # The chart on the page: the last this many days.
    chart_days: int = Field(7, ge=1, le=31)

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v and not (v.startswith("https://") or v.startswith("http://")):
            raise ValueError("must start with https:// (or http:// for a local test)")
        if "?" in v or "#" in v:
            raise ValueError("must be a base address without ? or #")
        return v
