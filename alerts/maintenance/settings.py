"""The ``[maintenance]`` settings section: maintenance reminders (清洗提醒, issue 15).

The rule itself is described in :mod:`alerts.maintenance.rule`; docs/reminders.md explains the choice.
A limit profile may set its own ``maintenance_share_of_limit`` (profiles.toml), e.g. a stricter local
standard that wants owners warned earlier.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class MaintenanceSettings(BaseModel):
    """``[maintenance]`` (environment: ``FUMEWATCH_MAINTENANCE_<KEY>``)."""

    # false = no reminders are judged or sent.
    enabled: bool = True
    # Level rule: the mean of the last `services` valid services above share_of_limit x the limit.
    services: int = Field(3, ge=1, le=20)
    share_of_limit: float = Field(0.8, gt=0, lt=1)
    # Trend rule: the least-squares line through the last `trend_services` valid services reaches the
    # limit within trend_days of the last one, and the last service is at least trend_floor_share x the
    # limit. 0 = the trend rule is off.
    trend_days: float = Field(7.0, ge=0, le=60)
    trend_services: int = Field(6, ge=3, le=40)
    trend_floor_share: float = Field(0.6, gt=0, lt=1)
    # At most one reminder per restaurant in this many days.
    period_days: float = Field(14.0, gt=0, le=365)
    # How far back the ledger's windows are read to find the services, days.
    lookback_days: float = Field(10.0, gt=0, le=60)
