"""The streaming detector's snapshot and restore (:class:`DetectorState`, a base of
:class:`alerts.detection.detector.Detector`), whole or incremental.

- **Whole**: :meth:`DetectorState.snapshot` is the whole state as JSON-serialisable data (the header
  below plus ``devices``, every device's state by id); :meth:`DetectorState.restore` continues from it.
- **Incremental** (what the alerts service stores, issue 14): the *header* (:meth:`DetectorState.header`:
  config, counters, the first ``advance`` time, the highest ``advance`` watermark, finalised windows not
  yet drained) plus one state per device (:meth:`DetectorState.device_state`), written only for the
  devices that changed since the last save (:meth:`DetectorState.take_changes`). The detector tracks them
  as it goes: a device is changed when a reading, ``advance`` or ``flush`` changed its state; one whose
  watermark ``advance`` merely moved is not (that is every device at every tick): each device state
  carries ``adv``, the detector's advance watermark when it was taken, and a restored device whose
  ``adv`` is older than the header's takes the header's watermark (``advance`` moved every device that
  existed then). A device missing from the stored states starts fresh, like one never heard of.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Self

from alerts.detection.state import _NEG
from alerts.detection.window import DetectorConfig
from alerts.model import WindowResult
from alerts.profiles import Profiles
from ingest.registry import Registry

#: Version 2 adds the gb18483 trackers (tagged with their ``type``) and the unconverted-sample count of
#: open windows; version 3 the learned reporting intervals (``gaps`` per device) and the lower-bound and
#: excluded counts of open windows; version 4 the advance watermark (``advance_wm``, and ``adv`` per
#: device) for incremental saving, where the devices are stored apart from the header. Versions 1 to 3
#: still load (nothing learned, nothing excluded yet; a whole document, rewritten as rows by its first
#: incremental save).
SNAPSHOT_VERSION = 4
_LOADABLE_VERSIONS = (1, 2, 3, 4)


@dataclass
class StateChanges:
    """What an incremental save writes (:meth:`DetectorState.take_changes`): the states of ``changed``
    devices, deleting those of ``gone``; ``rewrite``: first delete every stored device state (a fresh
    detector, or one restored from a whole document)."""

    changed: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    rewrite: bool = False


class DetectorState:
    """Snapshot and restore of :class:`~alerts.detection.detector.Detector` (which provides the state)."""

    # -- snapshot / restore ---------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """The whole state as JSON-serialisable data (open events, partial windows, counters, and
        finalised windows not yet drained)."""
        return {**self.header(), "devices": {dev_id: self.device_state(dev_id) for dev_id in self._devs}}

    def header(self) -> dict:
        """The detector-wide part of the state: everything but the devices."""
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config.as_dict(),
            "counters": self.counters,
            "baseline_ms": self._baseline_ms,
            "advance_wm": self._adv_wm,
            "pending_windows": [asdict(w) for w in self._windows_out],
        }

    def device_state(self, device_id: str) -> dict:
        """One device's state (JSON-serialisable), with the advance watermark it was taken at."""
        return {**self._devs[device_id].to_state(), "adv": self._adv_wm}

    def device_states(self, device_ids: Iterable[str]) -> Iterator[tuple[str, dict]]:
        """``(device id, state)`` of those of ``device_ids`` the detector holds, one at a time."""
        devs = self._devs
        for dev_id in device_ids:
            if dev_id in devs:
                yield dev_id, self.device_state(dev_id)

    @property
    def has_changes(self) -> bool:
        """Whether :meth:`take_changes` has anything to save (a restored whole document: every device)."""
        return bool(self._changed or self._gone or self._rewrite)

    def take_changes(self) -> StateChanges:
        """The devices changed (and forgotten) since the last call, and whether the stored states must be
        replaced wholesale; the detector starts tracking afresh. Give them back with
        :meth:`requeue_changes` if they could not be saved."""
        ch = StateChanges(self._changed, self._gone, self._rewrite)
        self._changed, self._gone, self._rewrite = set(), set(), False
        return ch

    def requeue_changes(self, ch: StateChanges) -> None:
        """Undo :meth:`take_changes` (the save failed): its devices are changed again."""
        self._changed |= ch.changed
        self._gone |= ch.gone - self._changed
        self._rewrite = self._rewrite or ch.rewrite

    def requeue_windows(self, windows: list[WindowResult]) -> None:
        """Put drained windows back in front (the commit that was to store them failed)."""
        self._windows_out[:0] = windows

    def device_ids(self) -> list[str]:
        """Every device the detector holds state for."""
        return list(self._devs)

    @classmethod
    def restore(
        cls,
        registry: Registry,
        profiles: Profiles,
        config: DetectorConfig | None,
        snapshot: dict,
        devices: Iterable[tuple[str, dict]] = (),
    ) -> Self:
        """A detector continuing from ``snapshot`` (from :meth:`snapshot`, possibly through JSON), or from
        a :meth:`header` and the stored device states ``devices`` (``(device id, state)``, read lazily).

        ``config`` None takes the snapshot's config. Devices no longer in the registry are dropped (and
        their stored states deleted by the next incremental save). A whole snapshot (``devices`` in it)
        is saved whole by the first incremental save, as rows replacing whatever was stored.
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
        adv_wm = det._adv_wm = snapshot.get("advance_wm", _NEG)
        whole = "devices" in snapshot
        for dev_id, s in snapshot["devices"].items() if whole else devices:
            st = det._dev(dev_id)
            if st is None:
                det._gone.add(dev_id)
                continue
            st.load_state(s)
            if s.get("adv", adv_wm) < adv_wm and adv_wm > st.wm:
                st.wm = adv_wm  # advance() moved it after it was saved, finding nothing due
        det._windows_out = [WindowResult(**w) for w in snapshot["pending_windows"]]
        if whole:
            det._changed = set(det._devs)
            det._gone = set()
        else:
            det._rewrite = False
        return det
