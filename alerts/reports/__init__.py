"""Exceedance reports for inspectors: tables (pandas), charts (matplotlib), csv/xlsx/html/pdf/json.

Public surface::

    from alerts.reports import build_report, render
    report = build_report(ledger, registry, since_ms, until_ms, district="朝阳区", store=store)
    data = render(report, "xlsx")            # bytes; "csv" takes table="events" | "summary"

Also :class:`Report`, :class:`ReportError`, :func:`check_filters`, :class:`ReportSettings` (the
``[report]`` settings section), :data:`FORMATS`, :data:`MEDIA_TYPES` and :func:`filename`.
Column definitions and formats are described in ``alerts/reports/README.md``.

Importing this package is cheap: pandas, matplotlib and openpyxl load on first use (the ``fumewatch``
command imports the CLI module of every subcommand at start-up).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from alerts.reports.config import ReportSettings

if TYPE_CHECKING:
    from alerts.reports.build import Report, ReportError, build_report, check_filters
    from alerts.reports.formats import FORMATS, MEDIA_TYPES, filename, render

_LAZY = {
    "Report": "alerts.reports.build",
    "ReportError": "alerts.reports.build",
    "build_report": "alerts.reports.build",
    "check_filters": "alerts.reports.build",
    "FORMATS": "alerts.reports.formats",
    "MEDIA_TYPES": "alerts.reports.formats",
    "filename": "alerts.reports.formats",
    "render": "alerts.reports.formats",
}

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "Report",
    "ReportError",
    "ReportSettings",
    "build_report",
    "check_filters",
    "filename",
    "render",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'alerts.reports' has no attribute {name!r}")
