"""Inspectors' casework: the lifecycle of a case (:mod:`alerts.casework.lifecycle`), what attachments may
be (:mod:`alerts.casework.attachments`) and :class:`Casework`, which applies actions through the ledger
and assembles what a case page shows (:mod:`alerts.casework.service`)."""

from __future__ import annotations

from alerts.casework.lifecycle import ACTIONS, OUTCOMES, STATUSES, BadFields, IllegalAction
from alerts.casework.service import Casework

__all__ = ["ACTIONS", "OUTCOMES", "STATUSES", "BadFields", "Casework", "IllegalAction"]
