"""Data integrity (数据可信性): checks that flag a monitor whose data should not decide a case until an
inspector has looked (issue 16; docs/integrity.md).

- :mod:`~alerts.integrity.settings`: the ``[integrity]`` section.
- :mod:`~alerts.integrity.checks`: the checks (pure functions of a device's windows and readings).
- :mod:`~alerts.integrity.watch`: the alerts service's side (service ends -> ``data_integrity`` events).
"""
