"""The alerts service's detector state in the ledger (issue 14): restore per device, save what changed,
and the open events the ledger keeps as they stand.

- :func:`restore_or_new`: the detector-wide document (``detector_state``) and the device rows
  (``detector_devices``, streamed), or a whole-document snapshot from before revision 0007 (its first
  :func:`save` writes every device as a row and replaces the document); else a fresh detector, whose first
  save deletes any device rows left under the name.
- :func:`save`: in the caller's transaction, the rows of the devices changed since the last save (in
  chunks, :meth:`alerts.ledger.Ledger.save_devices`) and the detector-wide document.
- :class:`OpenEvents`: which open events changed since the ledger last got them, looking only at the
  devices that changed.
"""

from __future__ import annotations

import logging

from alerts.detection.detector import Detector, DetectorConfig
from alerts.detection.snapshot import StateChanges
from alerts.ledger import Ledger
from alerts.model import Event
from alerts.profiles import Profiles
from ingest.registry import Registry

log = logging.getLogger("fumewatch.alerts")


def restore_or_new(
    ledger: Ledger, name: str, registry: Registry, profiles: Profiles, config: DetectorConfig
) -> tuple[Detector, bool]:
    """The detector saved under ``name`` (and True), or a fresh one (and False) when there is none or it
    cannot continue (another window length, an unknown version: logged and discarded)."""
    snap = ledger.load_state(name)
    if snap:
        try:
            whole = "devices" in snap
            rows = () if whole else ledger.load_devices(name)
            det = Detector.restore(registry, profiles, config, snap, rows)
            log.info(
                "event=detector_restored devices=%d from=%s",
                len(det.device_ids()),
                f"document_v{snap.get('version')}" if whole else "rows",
            )
            return det, True
        except ValueError as exc:
            log.warning("event=detector_state_discarded reason=%s", exc)
    return Detector(registry, profiles, config), False


def save(ledger: Ledger, name: str, det: Detector, changes: StateChanges) -> int:
    """Write ``changes`` (from :meth:`Detector.take_changes`) and the detector-wide part under ``name``;
    returns the device rows written. Call inside the commit's transaction."""
    n = ledger.save_devices(
        name, det.device_states(sorted(changes.changed)), changes.gone, replace=changes.rewrite
    )
    ledger.save_state(name, det.header())
    return n


class OpenEvents:
    """What the ledger last got of each open event, by device, and the devices changed since the last
    look: only a changed device can have a changed open event, so a look costs what changed, not the
    number of devices."""

    def __init__(self, touched: set[str] | None = None) -> None:
        self._sig: dict[str, dict[str, tuple]] = {}  # device id -> {event id -> signature}
        #: Devices changed since the last :meth:`kept` (after a restore: every device, since the ledger
        #: may hold an older version of their open events than the restored state).
        self.touched: set[str] = touched or set()

    def grown(self, det: Detector) -> tuple[list[Event], dict[str, dict[str, tuple]]]:
        """Open events of the touched devices that differ from what the ledger got (an exceedance that
        grew by a window, a bypass with more readings), and their signatures for :meth:`kept`."""
        out = []
        sigs: dict[str, dict[str, tuple]] = {d: {} for d in self.touched}
        for ev in det.open_events(self.touched):
            sig = (ev.end_ms, len(ev.evidence), ev.peak_mg_m3, ev.mean_mg_m3, repr(ev.evidence[-1:]))
            sigs[ev.device_id][ev.event_id] = sig
            if self._sig.get(ev.device_id, {}).get(ev.event_id) != sig:
                out.append(ev)
        return out, sigs

    def kept(self, sigs: dict[str, dict[str, tuple]]) -> None:
        """The ledger committed what :meth:`grown` returned: remember it, start afresh."""
        for dev_id, sig in sigs.items():
            if sig:
                self._sig[dev_id] = sig
            else:
                self._sig.pop(dev_id, None)
        self.touched.clear()
