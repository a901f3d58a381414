"""The streaming detector's snapshot and restore (:class:`DetectorState`, a base of
:class:`alerts.detection.detector.Detector`): the whole state as JSON-serialisable data, and a detector
continuing from it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Self

from alerts.detection.window import DetectorConfig
from alerts.model import WindowResult
from alerts.profiles import Profiles
from ingest.registry import Registry

#: Version 2 adds the gb18483 trackers (tagged with their ``type``) and the unconverted-sample count of
#: open windows; version 3 the learned reporting intervals (``gaps`` per device) and the lower-bound and
#: excluded counts of open windows. Versions 1 and 2 still load (nothing learned, nothing excluded yet).
SNAPSHOT_VERSION = 3
_LOADABLE_VERSIONS = (1, 2, 3)


class DetectorState:
    """Snapshot and restore of :class:`~alerts.detection.detector.Detector` (which provides the state)."""

    # -- snapshot / restore ---------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """The whole state as JSON-serialisable data (open events, partial windows, counters, and
        finalised windows not yet drained)."""
        devs = {dev_id: st.to_state() for dev_id, st in self._devs.items()}
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config.as_dict(),
            "counters": self.counters,
            "baseline_ms": self._baseline_ms,
            "devices": devs,
            "pending_windows": [asdict(w) for w in self._windows_out],
        }

    @classmethod
    def restore(
        cls, registry: Registry, profiles: Profiles, config: DetectorConfig | None, snapshot: dict
    ) -> Self:
        """A detector continuing from ``snapshot`` (from :meth:`snapshot`, possibly through JSON).

        ``config`` None takes the snapshot's config. Devices no longer in the registry are dropped.
        """
        if snapshot.get("version") not in _LOADABLE_VERSIONS:
            raise ValueError(f"detector snapshot version {snapshot.get('version')!r} != {SNAPSHOT_VERSION}")
        snap_cfg = DetectorConfig.from_dict(snapshot["config"])
        config = config or snap_cfg
        if config.window_s != snap_cfg.window_s:
            raise ValueError(
                f"snapshot was taken with window_s={snap_cfg.window_s}, config has {config.window_s}: "
                "partial windows would not line up"
            )
        det = cls(registry, profiles, config)
        for name, value in snapshot["counters"].items():
            if name in det.counters:
                setattr(det, name, value)
        det._baseline_ms = snapshot["baseline_ms"]
        for dev_id, s in snapshot["devices"].items():
            st = det._dev(dev_id)
            if st is None:
                continue
            st.load_state(s)
        det._windows_out = [WindowResult(**w) for w in snapshot["pending_windows"]]
        return det
