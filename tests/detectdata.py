"""Shared by the detector tests of issue 13 (tests/test_detect_cadence.py, tests/test_detect_exclusions.py):
the clock, running a detector to the end, and the replay frame of a list of readings."""

from __future__ import annotations

import pandas as pd

from alerts.detection.detector import Detector
from alerts.model import Transition
from alerts.profiles import load_profiles
from ingest.model import Reading
from ingest.timeutil import parse_time

MIN = 60_000
WIN = 10 * MIN
#: 2026-11-26 11:00 Asia/Shanghai: inside lunch service (10:00-14:00), a window boundary.
T0 = parse_time("2026-11-26T03:00:00Z")
PROFILES = load_profiles()


def run(det: Detector, readings: list[Reading]) -> list[Transition]:
    """Every transition of ``readings`` fed to ``det``, then flushed."""
    return det.process_many(readings) + det.flush()


def frame(readings: list[Reading]) -> pd.DataFrame:
    """The replay's input frame of ``readings`` (every column the replay reads)."""
    return pd.DataFrame(
        {
            "time_ms": [r.time_ms for r in readings],
            "device_id": [r.device_id for r in readings],
            "oil_fume_ref_mg_m3": [r.oil_fume_ref_mg_m3 for r in readings],
            "fan_on": [r.fan_on for r in readings],
            "purifier_on": [r.purifier_on for r in readings],
            "ref_converted": [r.ref_converted for r in readings],
            "lower_bound": [r.lower_bound for r in readings],
            "excluded": [r.excluded or None for r in readings],
        }
    )
