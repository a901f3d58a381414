"""Maintenance reminders (清洗提醒): a friendly word to an owner whose purifier is silting up, before any
exceedance, never on the enforcement ladder (issue 15, service before penalty; docs/reminders.md).

- :mod:`~alerts.maintenance.settings`: the ``[maintenance]`` section.
- :mod:`~alerts.maintenance.rule`: service values and the rule (pure).
- :mod:`~alerts.maintenance.watch`: the alerts service's side (service ends, the period, the event).
- :mod:`~alerts.maintenance.outcomes`: what happened after each reminder (reports, dashboards).
"""
