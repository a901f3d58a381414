"""The application settings: every section of every package, composed in one class.

Defaults < ``--config`` TOML < command-line flags < ``FUMEWATCH_<SECTION>_<KEY>`` environment. Each
package defines the sections it reads (``ingest.config``, ``alerts.config``, ``alerts.reports.config``,
``alerts.api``); this module only puts them together. Every setting and its default is documented in
``config/fumewatch.sample.toml`` (a test loads it and checks it matches these defaults).
"""

from __future__ import annotations

from alerts.api import ApiSettings
from alerts.api.settings import InspectorSettings
from alerts.config import AlertsAppSettings, AlertsSettings
from alerts.reports.config import ReportSettings

__all__ = ["AlertsSettings", "AppSettings"]


class AppSettings(AlertsAppSettings):
    """All sections: ingest's, ``[alerts]``, ``[notify]``, ``[report]`` and ``[api]``."""

    report: ReportSettings = ReportSettings()
    api: ApiSettings = ApiSettings()
    # FUMEWATCH_INSPECTOR_TOKENS (environment only): name:token pairs of inspectors who may act on cases
    inspector: InspectorSettings = InspectorSettings()
