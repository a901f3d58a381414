"""The ``[integrity]`` settings section: data-integrity checks (issue 16, docs/integrity.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class IntegritySettings(BaseModel):
    """``[integrity]`` (environment: ``FUMEWATCH_INTEGRITY_<KEY>``)."""

    # false = no checks are judged.
    enabled: bool = True
    # suspect_flatline: the same oil-fume value (as reported) for this many minutes with the fan on.
    flatline_min: float = Field(60.0, ge=10, le=24 * 60)
    # suspect_zero: oil fume at or under zero_limit_mg_m3 for this many minutes of a service with the fan
    # on, where none of the kitchen's last zero_history_services services (within lookback_days) was so.
    zero_min: float = Field(30.0, ge=10, le=24 * 60)
    # 0.0 = exactly zero; set it to the instrument's detection limit to count readings under it as zero.
    zero_limit_mg_m3: float = Field(0.0, ge=0, le=1.0)
    zero_history_services: int = Field(3, ge=1, le=30)
    lookback_days: float = Field(7.0, gt=0, le=60)
