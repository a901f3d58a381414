"""Notices: who is told what, rendered from templates, sent through apprise, recorded exactly once.

Recipients by transition (``opened`` unless noted):

==========================  =====================================================================
exceedance, ``education``   owner (guidance: a reminder, no penalty for a first minor offence)
exceedance, ``warning``     owner + inspectors (the notice says the inspector is copied)
exceedance, ``enforcement`` inspectors only; the case record is stored in the ledger
purifier_off, offline       owner
any kind, ``closed``        owner (short note); an enforcement case is refreshed with the end time
late_data                   nobody
==========================  =====================================================================

Owners' targets are the apprise URLs of the registry's ``owner_notify``; inspectors' are
``[notify] inspector_targets``. Each target is sent separately (one ``apprise.Apprise()`` each, so one
failure does not hide another), retried with exponential backoff. Every transition is also published as
JSON on MQTT ``{mqtt_topic_prefix}/alerts/{restaurant_id}`` through the ``mqtt_publish`` callback.

Exactly once, and the window that remains
-----------------------------------------
Each (transition key, target) goes through the ledger's gate (:meth:`Ledger.notice_begin`): it is recorded
``pending`` in a committed transaction *before* the send, and ``sent``/``failed`` after. A target already
``sent`` is never sent again: calling :meth:`Notifier.notify` twice, replaying, or restarting the service
sends nothing new. After a crash, :meth:`Notifier.resume_pending` resends what is still ``pending``.

The remaining window is between the remote end accepting a notice and the ``sent`` record being committed
(milliseconds): a crash exactly there resends that one notice on restart (at-least-once for that notice).
No protocol apprise speaks lets us close it, so every notice carries an idempotency key for receivers to
dedupe on: ``<event_id>:<action>:<channel>`` as the ``Idempotency-Key`` and ``X-Fumewatch-Notice-Key``
HTTP headers and a ``notice_key`` JSON field for ``json://`` webhooks, the ``X-Fumewatch-Notice-Key``
header for email, and ``notice_key`` in the MQTT JSON. Transport-level retries inside one attempt (an SMTP
server that accepted but whose reply was lost) are the same window.

Raw target URLs hold secrets and are never stored; the ledger keeps masked forms. To resend after a crash
the notifier therefore re-derives the URLs from the registry and settings (``resume_pending(devices)``);
a pending target that is no longer configured is marked failed, not guessed. If two targets of one
transition mask alike (same scheme and host), the later ones get ``#2``, ``#3`` in recipient order.

Sending blocks (retries sleep): run the notifier on its own thread, off the ingest/detector path.

The package, stage by stage: ``settings`` (the ``[notify]`` section, :class:`NoticeResult`), ``targets``
(who is told), ``render`` (templates and locale texts), ``send`` (apprise, retries) and ``notifier``
(:class:`Notifier`: ledger gate -> send -> receipt).
"""

from __future__ import annotations

from alerts.enforcement.notify.notifier import Notifier
from alerts.enforcement.notify.render import TEMPLATE_NAMES, TEMPLATES_DIR, format_duration, normalize_locale
from alerts.enforcement.notify.settings import (
    ALREADY_SENT,
    DEFAULT_LOCALE,
    DEFAULT_PROFILE_STANDARDS,
    DeviceLookup,
    NoticeResult,
    NotifySettings,
)
from alerts.enforcement.notify.targets import INSPECTOR, MQTT, OWNER
from alerts.ledger import FAILED, PENDING, SENT, SKIPPED

__all__ = [
    "ALREADY_SENT",
    "DEFAULT_LOCALE",
    "DEFAULT_PROFILE_STANDARDS",
    "FAILED",
    "INSPECTOR",
    "MQTT",
    "OWNER",
    "PENDING",
    "SENT",
    "SKIPPED",
    "TEMPLATES_DIR",
    "TEMPLATE_NAMES",
    "DeviceLookup",
    "NoticeResult",
    "Notifier",
    "NotifySettings",
    "format_duration",
    "normalize_locale",
]
