"""The alerts service's notice side (a part of :class:`alerts.service.AlertsService`): the notifier thread
that takes committed transitions in order, the periodic drain, the MQTT publish of alerts, and the copy of
events for the dashboards.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

from alerts.influx_sink import event_line
from alerts.model import Transition

log = logging.getLogger("fumewatch.alerts")

#: A marker on the notice queue: drain what is pending (see ``NoticeThread._notice_loop``).
DRAIN = Transition.__new__(Transition)


class NoticeThread:
    """The notifier thread's loop and what it uses; :class:`~alerts.service.AlertsService` provides the
    attributes below."""

    settings: Any
    registry: Any
    notifier: Any
    client: Any
    notices: dict[str, int]
    _sink: Any
    _notice_q: queue.Queue

    def _notice_loop(self) -> None:
        """Notices, one transition at a time in commit order; every ``[notify] drain_interval_s`` (and on
        each MQTT connect) a drain resends what is pending: MQTT alerts that waited for the connection,
        notices put back by ``fumewatch notices retry``, outbox transitions whose notifying failed."""
        every = self.settings.notify.drain_interval_s
        while True:
            try:
                tr = self._notice_q.get(timeout=every)
            except queue.Empty:
                self._notice_q.put(DRAIN)  # a periodic drain, through the queue like any other item
                continue
            try:
                if tr is None:
                    return
                if tr is DRAIN:
                    for res in self.notifier.drain(self.registry):
                        self.notices[res.status] = self.notices.get(res.status, 0) + 1
                    continue
                device = self.registry.get(tr.event.device_id)
                for res in self.notifier.notify_recorded(tr, device):
                    self.notices[res.status] = self.notices.get(res.status, 0) + 1
                if self._sink is not None and tr.event.level:
                    self._to_influx([event_line(tr.event)])  # now with its ladder level
            except Exception:
                log.exception("event=notify_failed key=%s", getattr(tr, "key", "?"))
            finally:
                self._notice_q.task_done()

    def _to_influx(self, lines: list[str]) -> None:
        try:
            self._sink.write_lines(lines)  # type: ignore[union-attr]
        except Exception as exc:  # dashboards lag; the state database is the record
            log.warning("event=influx_sink_failed lines=%d error=%s", len(lines), str(exc)[:200])

    def wait_notices(self, timeout_s: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._notice_q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._notice_q.unfinished_tasks

    def _publish(self, topic: str, payload: bytes) -> None:
        if self.client is None:
            raise RuntimeError("no MQTT client")
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=self.settings.notify.timeout_s)
        if not info.is_published():
            raise RuntimeError(f"MQTT publish to {topic} not acknowledged")
