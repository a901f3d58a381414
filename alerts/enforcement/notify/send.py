"""Sending: apprise targets with idempotency headers, retries with exponential backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import apprise

from alerts.enforcement.notify.settings import NotifySettings
from alerts.ledger import scrub


class Sender:
    """Sending through apprise: one ``Apprise`` per target (one failure does not hide another), each
    attempt bounded by ``settings.timeout_s``, retried with exponential backoff (``sleep`` sleeps)."""

    def __init__(self, settings: NotifySettings, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep

    def with_retries(self, attempt: Callable[[], tuple[bool, str]]) -> tuple[bool, int, str]:
        s = self.settings
        error = ""
        for n in range(1, s.retries + 2):
            try:
                ok, error = attempt()
            except Exception as exc:  # a broken target must not stop the others
                ok, error = False, f"{type(exc).__name__}: {exc}"
            if ok:
                return True, n, ""
            if n <= s.retries:
                self._sleep(min(s.retry_backoff_s * 2 ** (n - 1), s.retry_backoff_max_s))
        return False, s.retries + 1, error

    def apprise_for(self, url: str, notice_id: str) -> apprise.Apprise | None:
        """One ``Apprise`` holding just this target (reused across its retries), or None for a bad URL."""
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            return None
        plugin.socket_connect_timeout = self.settings.timeout_s
        plugin.socket_read_timeout = self.settings.timeout_s
        headers = getattr(plugin, "headers", None)
        if isinstance(headers, dict):  # HTTP plugins (json/form/xml) and email: extra headers
            headers["X-Fumewatch-Notice-Key"] = notice_id
            if url.split("://", 1)[0].lower() in ("json", "jsons", "form", "forms", "xml", "xmls"):
                headers["Idempotency-Key"] = notice_id
        extras = getattr(plugin, "payload_extras", None)
        if isinstance(extras, dict):  # json:// body fields
            extras["notice_key"] = notice_id
        sender = apprise.Apprise()
        sender.add(plugin)
        return sender

    @staticmethod
    def send_once(sender: apprise.Apprise, title: str, body: str) -> tuple[bool, str]:
        # apprise reports failure as False plus a warning in its log: capture the warning as the reason.
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
        if ok:
            return True, ""
        lines = [ln for ln in captured.getvalue().splitlines() if ln.strip()]
        return False, scrub(lines[-1] if lines else "apprise reported a failure")
