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
    # suspect_replay: a run of this many minutes of a service equal (or equal after a constant shift) to
    # the same device's readings of the last replay_lookback_days.
    replay_min: float = Field(60.0, ge=10, le=24 * 60)
    replay_lookback_days: float = Field(30.0, gt=0, le=90)
    # suspect_clone: a run of this many minutes equal to another restaurant's device's in the same service.
    clone_min: float = Field(60.0, ge=10, le=24 * 60)
    # suspect_replay, suspect_clone: a matching run must hold this many distinct values (a constant or a
    # zero run matches anything; that is suspect_flatline's and suspect_zero's business).
    series_min_distinct: int = Field(10, ge=3, le=1000)
    # suspect_clock: the device's clock offset (its smallest lag, received minus reading time, hour by
    # hour; the median over the service) beyond this many seconds (past the registry interval for data
    # stamped at the start of its period); 0 = no drift check. Judged with [alerts] clock = "wall" only: a
    # replay's receive times say nothing of the monitor's clock.
    clock_drift_s: float = Field(600.0, ge=0, le=86_400)
    # suspect_clock: this many steps back in time (each longer than clock_backwards_s) in one service.
    clock_backwards_n: int = Field(3, ge=1, le=1000)
    clock_backwards_s: float = Field(300.0, ge=1, le=86_400)
    # suspect_clock: this many HJ 212 QNs repeated with another DataTime in one service.
    clock_qn_repeats: int = Field(3, ge=1, le=1000)
    # suspect_flow: the service's median flow with the fan on under flow_min_share or over flow_max_share
    # of the registered stove heads x the reference flow per head (GB 18483: 2000 m3/h).
    flow_min_share: float = Field(0.25, ge=0, le=1)
    flow_max_share: float = Field(3.0, ge=1, le=100)
    # suspect_flow: the median flow of the service's high-concentration readings (its top quarter) this
    # share under the median flow of its lower half (a flow that drops when the fume is high lowers the
    # reference concentration C * Q / (n * 2000) just when it matters).
    flow_drop_share: float = Field(0.3, gt=0, lt=1)
    # suspect_flow: fan-on readings with a flow needed to judge a service.
    flow_min_readings: int = Field(20, ge=5, le=10_000)
